"""The SLO-aware search (``flex-slo``, the default): candidates re-scored by simulation on a
scoring sample that is not the evaluation run, never rated below a baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from muxsim.errors import InputError
from muxsim.placement import DEFAULT_ALGORITHM, solve_placement
from muxsim.placement.scoring import SimScorer, mesh_groups_of, scoring_requests
from muxsim.sim.run import Simulation
from muxsim.workload import Workload, generate_requests
from tests.test_placement_fakes import problem

BASELINES = ("muxserve", "greedy-memory", "spatial", "spatial-min")
FAST = {"budget": 3, "score_horizon_s": 8.0}


def workload(rates, models=None, *, gpus_per_node=4, duration=20.0, **extra):
    models = models or ["llama-7b"] * len(rates)
    return Workload.model_validate({
        "cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": gpus_per_node},
        "models": [{"name": f"llm-{i}", "model": m, "rate": r} for i, (m, r) in enumerate(zip(models, rates))],
        "duration_s": duration, "seed": 0, **extra})


def test_the_default_is_the_slo_aware_search():
    assert DEFAULT_ALGORITHM == "flex-slo"


def test_mesh_groups_simulated_apart_add_up_to_the_whole_plan():
    wl = workload([0.5, 4.0, 4.0, 20.0])
    plan = solve_placement(wl, "flex").plan  # the hot LLM on two meshes, one shared
    assert len(mesh_groups_of(plan)) >= 2
    scorer = SimScorer(wl, seed=3, horizon_s=10.0)
    s = scorer(plan)
    short = wl.model_copy(update={"duration_s": scorer.window_s, "slo": wl.slo.model_copy(update={"scales": (8.0,)})})
    agg = Simulation(plan, short, scorer.requests, 3).run().results().aggregate
    n = agg["requests"]
    assert s.requests == n == len(scorer.requests) > 0
    assert s.attainment == pytest.approx(round(agg["slo_attainment"]["8"] * n) / n, abs=1e-12)
    assert s.throughput_rps == pytest.approx(round(agg["throughput_rps"] * scorer.window_s) / scorer.window_s)
    assert scorer(plan) == s and scorer.simulated == len(mesh_groups_of(plan))  # remembered, not rerun


def test_scoring_sample_is_another_draw_than_the_evaluation():
    wl = workload([3.0, 1.0])
    scorer = SimScorer(wl, horizon_s=5.0)
    assert scorer.seed == wl.seed + 1 and scorer.window_s == 5.0
    evaluation = generate_requests(wl)
    sample = scorer.requests
    assert sample["arrival_s"].max() < 5.0
    first = evaluation[evaluation["arrival_s"] < 5.0].reset_index(drop=True)
    assert not (len(first) == len(sample) and np.allclose(first["arrival_s"], sample["arrival_s"]))


def _trace_workload(tmp_path):
    rows = [(0.5 * k, f"llm-{k % 2}", 10 + k, 5 + k % 7) for k in range(120)]  # 60 s of requests
    pd.DataFrame(rows, columns=["arrival_s", "name", "prompt_len", "output_len"]).to_csv(tmp_path / "t.csv",
                                                                                          index=False)
    return workload([1.0, 1.0], duration=60.0, arrivals={"process": "trace"}, trace=str(tmp_path / "t.csv"))


def test_a_trace_is_scored_on_a_fresh_draw_of_its_statistics(tmp_path):
    wl = _trace_workload(tmp_path)
    trace = generate_requests(wl)
    a, window = scoring_requests(wl, seed=1, horizon_s=30.0)
    assert window == 30.0 and a.equals(scoring_requests(wl, seed=1, horizon_s=30.0)[0])
    assert not a.equals(scoring_requests(wl, seed=2, horizon_s=30.0)[0])
    # no arrival time of the trace is replayed; lengths come from the LLM's own rows
    assert not np.isin(a["arrival_s"].to_numpy(), trace["arrival_s"].to_numpy()).any()
    assert a["arrival_s"].between(0, 30, inclusive="left").all() and a["arrival_s"].is_monotonic_increasing
    for name, part in a.groupby("name"):
        own = trace[trace["name"] == name]
        assert set(zip(part["prompt_len"], part["output_len"])) <= set(zip(own["prompt_len"], own["output_len"]))
    assert 30 <= len(a) <= 90  # two LLMs at 1 req/s each over 30 s, gaps as regular as the trace's
    with pytest.raises(InputError, match="score_horizon_s"):  # bounded before any is drawn
        scoring_requests(wl, seed=1, horizon_s=1e9)


def test_the_evaluation_run_is_scored_only_as_a_labelled_oracle(tmp_path):
    wl = workload([3.0, 1.0])
    with pytest.raises(InputError, match=r"score_seed.*evaluation run.*oracle"):
        SimScorer(wl, seed=wl.seed)
    with pytest.raises(InputError, match="score_seed"):
        SimScorer(wl, seed=wl.seed + 5, eval_seed=wl.seed + 5)
    assert SimScorer(wl, horizon_s=5.0, eval_seed=7).seed == 8
    oracle = SimScorer(wl, sample="oracle")
    assert oracle.requests.equals(generate_requests(wl)) and oracle.window_s == wl.duration_s
    res = solve_placement(wl, "flex-slo", score_sample="oracle", budget=1)
    assert "ORACLE" in res.message and res.stats["score_sample"] == "oracle"
    assert "fresh draw" in solve_placement(wl, "flex-slo", budget=1).message


def test_a_trace_is_resampled_in_blocks_only_when_asked(tmp_path):
    wl = _trace_workload(tmp_path)
    a, window = scoring_requests(wl, seed=1, horizon_s=25.0, sample="blocks", block_s=10.0)
    b, _ = scoring_requests(wl, seed=1, horizon_s=25.0, sample="blocks", block_s=10.0)
    c, _ = scoring_requests(wl, seed=2, horizon_s=25.0, sample="blocks", block_s=10.0)
    assert window == 25.0 and a.equals(b) and not a.equals(c)
    assert a["arrival_s"].between(0, 25, inclusive="left").all() and a["arrival_s"].is_monotonic_increasing
    # request k of the trace arrives at 0.5 k with prompt 10 + k: each 10 s of the sample
    # is one whole 10 s block of the trace (20 requests), shifted in time
    src = (a["prompt_len"] - 10) // 20
    for k, part in a.groupby(a["arrival_s"] // 10):
        assert src[part.index].nunique() == 1 and len(part) == (20 if k < 2 else 10)
        b = int(src[part.index].iloc[0])
        offset = part["arrival_s"] - 10 * k
        assert np.allclose(offset, 0.5 * (part["prompt_len"] - 10) - 10 * b)


@st.composite
def small_workloads(draw):
    n = draw(st.integers(1, 4))
    models = [draw(st.sampled_from(["llama-7b", "llama-13b", "mistral-7b"])) for _ in range(n)]
    rates = [draw(st.floats(0.2, 25.0)) for _ in range(n)]
    return workload(rates, models, gpus_per_node=draw(st.sampled_from([2, 4])), duration=10.0)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_workloads())
def test_slo_search_is_never_rated_below_a_baseline_and_picks_its_best_score(wl):
    res = solve_placement(wl, "flex-slo", **FAST)
    for name in BASELINES:
        base = solve_placement(wl, name)
        if base.success:
            assert res.success and res.objective >= base.objective - 1e-4, name
    if not res.success:  # no baseline found a plan either
        return
    scored = res.stats["scored"]
    chosen = next(r for r in scored if r["candidate"] == res.stats["chosen"])
    # never a plan that served less than the spatial plan on the scoring sample (beyond one standard error)
    spatial = next((r for r in scored if r["candidate"] == "spatial"), None)
    bar = -1.0 if spatial is None else (
        spatial["throughput_rps"] - (spatial["throughput_rps"] / res.stats["score_horizon_s"]) ** 0.5 - 1e-6)
    assert chosen["throughput_rps"] >= bar
    eligible = [r for r in scored if r["throughput_rps"] >= bar]
    top = max(r["attainment"] for r in eligible)
    # of the others, the best simulated attainment, up to one standard error of the scoring sample
    assert chosen["attainment"] >= top - (top * (1 - top) / max(1, res.stats["score_requests"])) ** 0.5 - 1e-6
    earlier = scored[:scored.index(chosen)]  # the estimator's better-ranked candidates lost on simulation
    assert all(r["throughput_rps"] < bar or r["attainment"] < chosen["attainment"] + 1e-9
               or r["throughput_rps"] < chosen["throughput_rps"] for r in earlier)
    assert len(scored) <= FAST["budget"] and res.stats["score_seed"] == wl.seed + 1


def test_slo_search_is_deterministic_and_needs_a_workload():
    wl = workload([0.5, 4.0, 4.0, 20.0])
    a, b = solve_placement(wl, "flex-slo", **FAST), solve_placement(wl, "flex-slo", **FAST)
    assert a.plan.to_dict() == b.plan.to_dict() and a.stats["scored"] == b.stats["scored"]
    with pytest.raises(InputError, match="flex-slo"):
        solve_placement(problem([1.0]), "flex-slo")
    with pytest.raises(InputError, match="budget"):
        solve_placement(wl, "flex-slo", budget=0)
