"""The flex search (MuxServe's multiplexing with replicas): never rated below a baseline
it can construct, valid plans, replicas colocated with other LLMs, and a local search
whose incremental scores agree with scoring from scratch."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from muxsim.limits import DEFAULT_LIMITS
from muxsim.memory import MemoryModel
from muxsim.placement import make_estimator, solve_placement
from muxsim.placement.flex import Replicas, Search, baseline_starts
from muxsim.plan import Plan
from tests.test_placement import workloads  # random small workloads and clusters
from tests.test_placement_fakes import problem

BASELINES = ("muxserve", "greedy-memory", "spatial", "spatial-min")

@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads())
def test_flex_is_never_rated_below_a_baseline_and_its_plans_are_valid(p):
    res = solve_placement(p, "flex")
    for name in BASELINES:
        base = solve_placement(p, name)
        if base.success:  # plan estimates are rounded to 1e-6 per LLM
            assert res.success and res.objective >= base.objective - 1e-4, name
    if not res.success:  # no baseline found a plan either (e.g. five 13Bs on two GPUs)
        assert res.status == "infeasible"
        return
    plan = res.plan
    assert {u.name for _, u in plan.units()} == {m.name for m in p.llms}
    for m in p.llms:  # replicas: the LLM's model, each on a mesh of its own
        reps = plan.replicas(m.name)
        assert {u.model for _, u in reps} == {m.model}
        assert len({mesh.id for mesh, _ in reps}) == len(reps)
        assert 0 <= plan.estimate["per_llm"][m.name] <= m.rate + 1e-6
    plan.verify(memory=MemoryModel(p.cluster.gpu), limits=DEFAULT_LIMITS)
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert plan.estimate["throughput_rps"] == pytest.approx(res.objective)


def test_one_hot_model_gets_replicas_not_one_large_mesh():
    # a single popular 7B on a node of 8: MuxServe's greedy can only give it one mesh
    # (TP 8), rated well below eight one-GPU replicas; flex finds the replicas
    p = problem([100.0], nodes=1, gpus_per_node=8, prompt_len=161, output_len=338)
    mux, spatial, flex = (solve_placement(p, a) for a in ("muxserve", "spatial", "flex"))
    assert mux.objective < spatial.objective
    assert flex.objective >= spatial.objective - 1e-4
    assert len(flex.plan.replicas("llm-0")) > 1


def test_a_hot_llm_has_a_replica_colocated_with_another():
    # four 7Bs on four GPUs, one hot: dedicated meshes cannot carry it; flex packs the
    # cold ones and runs the hot one on two meshes, one shared
    p = problem([0.5, 3.0, 3.0, 12.0], nodes=1, gpus_per_node=4, prompt_len=161, output_len=338)
    flex, spatial = solve_placement(p, "flex"), solve_placement(p, "spatial")
    assert flex.verdict == "meets load" and spatial.verdict.startswith("overloaded: llm-3")
    assert flex.objective == pytest.approx(p.total_rate, abs=1e-4)
    assert flex.objective > spatial.objective
    hot = flex.plan.replicas("llm-3")
    assert len(hot) >= 2 and any(len(mesh.units) > 1 for mesh, _ in hot)
    assert flex.plan.estimate["per_unit"]  # each replica's share is recorded


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads(), st.integers(0, 10_000))
def test_incremental_scores_agree_with_scoring_from_scratch(p, pick):
    est = make_estimator(p)
    starts = baseline_starts(est)
    if not starts:
        return
    search = Search(Replicas(est))
    cur = search.score(next(iter(starts.values())))
    moves = list(search.moves(cur, list(range(len(p.llms)))))
    if not moves:
        return
    changed, added, reps = moves[pick % len(moves)]
    key = search.attempt(cur, changed, added, reps, cut=False)
    full = search.score(search.apply(cur.a, changed, added, reps))
    assert (key is None) == (full is None)
    if key is not None:
        assert key[0] == pytest.approx(full.key[0], abs=2e-6)
        assert all(abs(x - y) <= 1 for x, y in zip(key[2:], full.key[2:]))  # loads in steps: a rounding apart


def test_flex_is_deterministic():
    p = problem([12.0, 6.0, 3.0, 1.0, 0.5], nodes=1, gpus_per_node=4, prompt_len=161, output_len=338)
    a, b = solve_placement(p, "flex"), solve_placement(p, "flex")
    assert a.plan.to_dict() == b.plan.to_dict()
