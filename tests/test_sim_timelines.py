"""Exact timelines on toy cases worked out by hand (ToyCost: a + b*tokens/sm + c*kv ms)."""

from __future__ import annotations

import pytest

from muxsim.limits import ServingLimits
from muxsim.sim import SimConfig, simulate
from tests.test_sim_toys import Entry, StandIn, ToyCost, ToyMemory, make_plan, requests

MS = 1e-3


def frame(plan, names, rows, cost=None, memory=None, config=None):
    wl = StandIn([Entry(n) for n in names])
    res = simulate(plan, wl, 0, cost=cost or ToyCost(), memory=memory or ToyMemory(), config=config,
                   requests=requests(rows))
    return res, res.to_frame().set_index(res.to_frame().index)


@pytest.mark.parametrize("mode", ["spatial", "flex", "temporal"])
def test_one_request_alone_ttft_is_prefill_and_tpot_is_decode_step(mode: str) -> None:
    plan = make_plan([[{"name": "x"}]], mode)
    res, df = frame(plan, ["x"], [(0.5, "x", 100, 11)])
    r = df.iloc[0]
    # prefill: 1 + 0.01 * 100 = 2 ms; decode step at batch 1: 1 + 0.01 = 1.01 ms
    assert r.ttft_ms == pytest.approx(2.0)
    assert r.tpot_ms == pytest.approx(1.01)
    assert r.e2e_ms == pytest.approx(2.0 + 10 * 1.01)
    assert r.finish_s == pytest.approx(0.5 + 12.1 * MS)
    assert r.slo_ms == pytest.approx(12.1)  # alone on a dedicated mesh: the same
    agg = res.aggregate
    assert agg["requests"] == 1 and agg["completed"] == 1
    assert agg["slo_attainment"]["1"] == 1.0
    assert agg["throughput_rps"] == pytest.approx(1 / 1.0)  # one request over the 1 s run


def test_decode_time_follows_the_growing_context_in_closed_form() -> None:
    plan = make_plan([[{"name": "x"}]], "spatial")
    cost = ToyCost(a=1.0, b=0.01, c=0.001)
    _, df = frame(plan, ["x"], [(0.0, "x", 100, 5)], cost=cost)
    r = df.iloc[0]
    prefill = 1 + 0.01 * 100 + 0.001 * 100
    steps = [1 + 0.01 + 0.001 * c for c in (101, 102, 103, 104)]
    assert r.ttft_ms == pytest.approx(prefill)
    assert r.e2e_ms == pytest.approx(prefill + sum(steps))
    assert r.tpot_ms == pytest.approx(sum(steps) / 4)


def test_two_models_taking_whole_mesh_turns_round_robin() -> None:
    plan = make_plan([[{"name": "x"}, {"name": "y"}]], "temporal")
    cfg = SimConfig(temporal_policy="round-robin")
    _, df = frame(plan, ["x", "y"], [(0.0, "x", 100, 3), (0.0, "y", 100, 3)], config=cfg)
    x, y = df.iloc[0], df.iloc[1]
    # 0-2 prefill x, 2-4 prefill y, then one decode step (1.01) each in turn: x, y, x, y
    assert x.first_token_s == pytest.approx(2 * MS)
    assert y.first_token_s == pytest.approx(4 * MS)
    assert x.finish_s == pytest.approx((4 + 3 * 1.01) * MS)
    assert y.finish_s == pytest.approx((4 + 4 * 1.01) * MS)


def test_two_models_temporal_fcfs_serves_the_oldest_request_first() -> None:
    plan = make_plan([[{"name": "x"}, {"name": "y"}]], "temporal")
    _, df = frame(plan, ["x", "y"], [(0.0, "x", 100, 3), (0.0001, "y", 100, 3)])
    x, y = df.iloc[0], df.iloc[1]
    # x: prefill 0-2 ms; y waits (x is older), x decodes 2 steps to 4.02; y: prefill, 2 steps
    assert x.finish_s == pytest.approx((2 + 2 * 1.01) * MS)
    assert y.first_token_s == pytest.approx((4.02 + 2) * MS)
    assert y.finish_s == pytest.approx((4.02 + 2 + 2 * 1.01) * MS)


def test_two_colocated_models_flex_run_prefills_and_decodes_concurrently() -> None:
    units = [{"name": "x", "prefill_sm": 0.5, "decode_sm": 0.5}, {"name": "y", "prefill_sm": 0.5,
                                                                    "decode_sm": 0.5}]
    plan = make_plan([units], "flex")
    rows = [(0.0, "x", 100, 3), (0.0, "y", 100, 3)]
    _, alone = frame(plan, ["x", "y"], rows, config=SimConfig(interference_on=False))
    # both prefills co-run at half the SMs: 1 + 0.01 * 100 / 0.5 = 3 ms; decode steps 1 + 0.01/0.5
    for r in alone.itertuples():
        assert r.ttft_ms == pytest.approx(3.0)
        assert r.tpot_ms == pytest.approx(1.02)
    _, shared = frame(plan, ["x", "y"], rows)
    # with interference: prefills demand 1/3 of HBM each (sum 2/3 <= 1: no slowdown); the
    # two decode jobs each stream for 1/1.02 of their time, so HBM demand sums to 2/1.02
    d = 1 / 1.02
    slow = 1 + d * (2 * d - 1)
    for r in shared.itertuples():
        assert r.ttft_ms == pytest.approx(3.0)
        assert r.tpot_ms == pytest.approx(1.02 * slow)
    assert shared.tpot_ms.iloc[0] > 1.9 * alone.tpot_ms.iloc[0]


def test_sm_overload_slows_every_job_in_proportion() -> None:
    units = [{"name": "x", "prefill_sm": 0.6, "decode_sm": 0.6}, {"name": "y", "prefill_sm": 0.6,
                                                                    "decode_sm": 0.6}]
    plan = make_plan([units], "flex")
    cost = ToyCost(a=0.0, b=0.01)  # pure compute: no HBM term
    _, df = frame(plan, ["x", "y"], [(0.0, "x", 120, 1), (0.0, "y", 120, 1)], cost=cost)
    # alone: 0.01 * 120 / 0.6 = 2 ms; together the shares sum to 1.2: 20% slower
    for r in df.itertuples():
        assert r.ttft_ms == pytest.approx(2.0 * 1.2)
    cfg = SimConfig(limits=ServingLimits(overload=1.0))  # the plan's decode shares must fit it; prefills wait for SMs
    units = [{**u, "decode_sm": 0.5} for u in units]
    _, df = frame(make_plan([units], "flex"), ["x", "y"], [(0.0, "x", 120, 1), (0.0, "y", 120, 1)], cost=cost,
                  config=cfg)
    assert list(df.ttft_ms) == pytest.approx([2.0, 4.0])  # y waits for SMs


def test_preemption_recomputes_the_newest_request() -> None:
    plan = make_plan([[{"name": "x"}]], "spatial")
    mem = ToyMemory(blocks=4)  # four 32-token blocks
    res, df = frame(plan, ["x"], [(0.0, "x", 32, 40), (0.0, "x", 32, 40)], memory=mem)
    a, b = df.iloc[0], df.iloc[1]
    # prefills: 1.32 ms each (a: 0-1.32, b: 1.32-2.64); both hold 1 block, decode together:
    # 32 steps (1.02 ms) fill the other 2 blocks (contexts 64); then b is preempted with 33
    # tokens generated, a decodes its last 7 steps alone (1.01 ms), b recomputes 65 tokens
    # (1.65 ms) and decodes its last 6 steps.
    t_full = 2.64 + 32 * 1.02
    assert a.first_token_s == pytest.approx(1.32 * MS)
    assert b.first_token_s == pytest.approx(2.64 * MS)
    assert a.finish_s == pytest.approx((t_full + 7 * 1.01) * MS)
    assert b.finish_s == pytest.approx((t_full + 7 * 1.01 + 1.65 + 6 * 1.01) * MS)
    assert (a.preemptions, b.preemptions) == (0, 1)
    assert res.run["preemptions"] == 1


def test_utilization_is_the_mean_sm_share_over_each_interval_and_kv_in_use() -> None:
    plan = make_plan([[{"name": "x"}]], "spatial")
    cfg = SimConfig(sample_interval_s=0.01)
    res, _ = frame(plan, ["x"], [(0.0, "x", 100, 11)], memory=ToyMemory(blocks=8), config=cfg)
    u = res.utilization["meshes"]["m0"]
    # busy 0-12.1 ms: the first 10 ms interval fully, the second for 2.1 ms
    assert u["t"][:2] == pytest.approx([0.01, 0.02])
    assert u["sm"][:2] == pytest.approx([1.0, 0.21])
    assert u["kv"][0] == pytest.approx(4 / 8)  # 100 prompt + up to 10 generated tokens: 4 blocks
    assert u["kv"][1] == 0.0
