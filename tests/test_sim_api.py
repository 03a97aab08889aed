"""The simulator's contracts: results shape, frame, config round trip, KV variants, ADBS."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import muxsim as mx
from muxsim.errors import InputError
from muxsim.limits import ServingLimits
from muxsim.plan import plan_from_dict
from muxsim.policy import adbs_quotas
from muxsim.sim import Results, SimConfig, simulate
from muxsim.workload import Workload, generate_requests
from tests.test_sim_toys import Entry, StandIn, ToyCost, ToyMemory, make_plan, requests

AGG_KEYS = {"requests", "completed", "offered_rps", "throughput_rps", "tokens_per_s", "ttft_ms", "tpot_ms",
            "e2e_ms", "slo_attainment", "slo"}


def small_workload(duration: float = 20.0) -> Workload:
    return Workload.from_dict({
        "cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 2},
        "models": [{"name": "a", "model": "llama-7b", "rate": 3.0}, {"name": "b", "model": "llama-13b", "rate": 1.0}],
        "duration_s": duration, "seed": 0})


def flex_plan(**unit) -> object:
    u = {"prefill_sm": 1.0, "decode_sm": 0.5}
    u.update(unit)
    return plan_from_dict({"version": 1, "mode": "flex",
                           "cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 2},
                           "meshes": [{"id": "m0", "node": 0, "gpus": [0, 1], "units": [
                               {"name": "a", "model": "llama-7b", "kv_share": 0.6, **u},
                               {"name": "b", "model": "llama-13b", "kv_share": 0.4, **u}]}]})


def test_results_have_the_design_shape_and_round_trip_json() -> None:
    wl = small_workload()
    res = mx.simulate(flex_plan(), wl, seed=1)
    assert isinstance(res, Results)
    d = json.loads(res.to_json())
    assert set(d) == {"aggregate", "per_llm", "utilization", "run"}
    assert set(d["aggregate"]) == AGG_KEYS
    assert set(d["per_llm"]) == {"a", "b"} and all(set(v) == AGG_KEYS for v in d["per_llm"].values())
    assert set(d["aggregate"]["slo_attainment"]) == {"1", "2", "4", "8", "16"}
    assert {"seed", "sim_duration_s", "events", "wall_s"} <= set(d["run"])
    assert d["run"]["seed"] == 1
    mesh = d["utilization"]["meshes"]["m0"]
    assert len(mesh["t"]) == len(mesh["sm"]) == len(mesh["kv"]) > 0
    assert all(0 <= x <= 1.2 + 1e-9 for x in mesh["sm"]) and all(0 <= x <= 1 for x in mesh["kv"])
    df = res.to_frame()
    reqs = generate_requests(wl, seed=1)
    assert len(df) == len(reqs) == d["aggregate"]["requests"]
    for c in ("name", "arrival_s", "prompt_len", "output_len", "first_token_s", "finish_s", "ttft_ms",
              "tpot_ms", "e2e_ms", "finished", "preemptions"):
        assert c in df.columns
    assert d["aggregate"]["completed"] == int(df.finished.sum())
    per = d["per_llm"]
    assert d["aggregate"]["throughput_rps"] == pytest.approx(sum(v["throughput_rps"] for v in per.values()))
    # the seed changes the requests
    other = mx.simulate(flex_plan(), wl, seed=2).aggregate
    assert other["requests"] != d["aggregate"]["requests"] or other != d["aggregate"]


def test_given_requests_replace_generated_ones_and_bad_names_are_refused() -> None:
    wl = small_workload()
    reqs = pd.DataFrame({"arrival_s": [0.0, 0.1], "name": ["a", "b"], "prompt_len": [10, 20],
                         "output_len": [5, 6]})
    res = simulate(flex_plan(), wl, 0, requests=reqs)
    assert res.aggregate["requests"] == res.aggregate["completed"] == 2
    with pytest.raises(InputError, match=r"requests\.name"):
        simulate(flex_plan(), wl, 0, requests=reqs.assign(name=["a", "zz"]))
    with pytest.raises(InputError, match="requests: missing column"):
        simulate(flex_plan(), wl, 0, requests=reqs.drop(columns="output_len"))


def test_config_round_trips_and_names_bad_fields() -> None:
    cfg = SimConfig(flex_policy="fcfs", kv_cache="static", adapt_period_s=4.0)
    assert SimConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(InputError, match=r"config\.flex_policy"):
        SimConfig(flex_policy="lottery")
    with pytest.raises(InputError, match=r"limits\.overload"):
        SimConfig(limits=ServingLimits(overload=0.5))
    with pytest.raises(InputError, match=r"limits: unknown field"):
        SimConfig.from_dict({"limits": {"overlord": 1.0}})
    lim = SimConfig(limits=ServingLimits(overload=1.1, max_batch=64))
    assert SimConfig.from_dict(json.loads(json.dumps(lim.to_dict()))) == lim
    with pytest.raises(InputError, match="config: unknown field"):
        SimConfig.from_dict({"speed": 2})


def test_cost_grid_agrees_with_asking_the_cost_model_every_run() -> None:
    wl = small_workload(10.0)
    reqs = generate_requests(wl, seed=0)
    fast = simulate(flex_plan(), wl, 0, requests=reqs).to_frame()
    exact = simulate(flex_plan(), wl, 0, requests=reqs, config=SimConfig(cost_grid=False)).to_frame()
    assert fast.finished.all() and exact.finished.all()
    assert fast.e2e_ms.to_numpy() == pytest.approx(exact.e2e_ms.to_numpy(), rel=1e-6)


def test_interference_raises_tpot_of_colocated_decodes_on_the_analytic_model() -> None:
    # An engine without the Ray hop keeps these TP-2 decodes busy on HBM, so two of them
    # contend (with vLLM-2024's ~8 ms of CPU time a step they rarely stream together).
    wl = small_workload(10.0)
    reqs = generate_requests(wl, seed=0)
    cost = mx.AnalyticCostModel("a100-80gb", engine="lean")
    on = simulate(flex_plan(), wl, 0, requests=reqs, cost=cost).aggregate
    off = simulate(flex_plan(), wl, 0, requests=reqs, cost=cost, config=SimConfig(interference_on=False)).aggregate
    assert on["tpot_ms"]["p50"] > off["tpot_ms"]["p50"] * 1.02


def test_static_partition_keeps_an_idle_models_blocks_from_a_busy_one() -> None:
    units = [{"name": "x", "kv_share": 0.5}, {"name": "y", "kv_share": 0.5}]
    plan = make_plan([units], "temporal")
    rows = [(0.0, "x", 60, 3), (0.0, "x", 60, 3)]  # 2 blocks each (62 tokens at most)
    wl = StandIn([Entry("x"), Entry("y")])
    mem = ToyMemory(blocks=5)
    shared = simulate(plan, wl, 0, cost=ToyCost(), memory=mem, requests=requests(rows)).to_frame()
    split = simulate(plan, wl, 0, cost=ToyCost(), memory=mem, requests=requests(rows),
                     config=SimConfig(kv_cache="static")).to_frame()
    # unified: both prefilled back to back (1.6 ms each); static: x owns 2 of the 5 blocks,
    # so the second request waits for the first to finish (1.6 + 2 * 1.01 ms)
    assert shared.first_token_s.iloc[1] == pytest.approx(3.2e-3)
    assert split.first_token_s.iloc[1] == pytest.approx((3.62 + 1.6) * 1e-3)


def test_adbs_moves_quota_from_an_idle_donor_to_a_hot_model_with_backlog() -> None:
    quota, used = [500, 500], [480, 100]
    new = adbs_quotas(quota, used, [0.96, 0.2], [True, False], hot_threshold=0.9, donor_keep=0.95)
    assert new == [875, 125]  # the donor offers (0.95 - 0.2) of its 500-block quota
    assert adbs_quotas(quota, used, [0.96, 0.2], [False, False], 0.9, 0.95) == quota  # no backlog: nothing moves
    # never blocks in use: a donor using 450 of 500 offers at most 50
    assert adbs_quotas(quota, [480, 450], [0.96, 0.2], [True, False], 0.9, 0.95) == [550, 450]


def test_adbs_quota_adaptation_helps_the_hot_model() -> None:
    units = [{"name": "x", "kv_share": 0.2, "prefill_sm": 1.0, "decode_sm": 0.5},
             {"name": "y", "kv_share": 0.8, "prefill_sm": 1.0, "decode_sm": 0.5}]
    plan = make_plan([units], "flex")
    rows = [(0.001 * i, "x", 60, 200) for i in range(40)]
    wl = StandIn([Entry("x"), Entry("y")], duration_s=0.1)
    mem = ToyMemory(blocks=100)
    cfg = dict(adapt_period_s=0.05, adapt_window_steps=10)
    adbs = simulate(plan, wl, 0, cost=ToyCost(), memory=mem, requests=requests(rows),
                    config=SimConfig(**cfg)).to_frame()
    static = simulate(plan, wl, 0, cost=ToyCost(), memory=mem, requests=requests(rows),
                      config=SimConfig(flex_policy="static-quota", **cfg)).to_frame()
    assert adbs.finished.all() and static.finished.all()
    assert adbs.finish_s.max() < 0.8 * static.finish_s.max()


def test_initial_quota_follows_the_plan_or_rate_times_blocks_per_token_block() -> None:
    from muxsim.sim.run import Simulation

    units = [{"name": "x", "kv_share": 0.5, "decode_sm": 0.5}, {"name": "y", "kv_share": 0.5, "decode_sm": 0.5}]
    plan = make_plan([units], "flex")
    wl = StandIn([Entry("x", rate=3.0), Entry("y", rate=1.0)])
    reqs = requests([(0.0, "x", 10, 2)])
    mem = ToyMemory(blocks=1000, per_token_block=2)
    by_plan = Simulation(plan, wl, reqs, cost=ToyCost(), memory=mem).meshes[0].kv.quota
    by_rate = Simulation(plan, wl, reqs, cost=ToyCost(), memory=mem,
                         config=SimConfig(initial_quota="rate")).meshes[0].kv.quota
    assert by_plan == [500, 500]
    assert by_rate == [750, 250]
