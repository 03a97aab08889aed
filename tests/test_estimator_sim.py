"""The estimator against the simulator on the example workload ``small-4llm.json``, at
its own rates and at twice them (an overloaded cluster).

Stated tolerance, per mesh (unit), comparing the estimated unit throughput with the
simulator's steady-window throughput (completions in the last three quarters of the
arrival window, per second):
- a unit the estimator calls fully served completes its offered rate within 10%;
- a unit the estimator calls short of its rate is within 30% of the simulator
  (measured: within 8% except a 30B alone on one GPU, KV-starved, where the estimate
  is 25% high at twice the rates; preemption and length variance matter most there).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from muxsim.placement import solve_placement
from muxsim.workload import Workload

ROOT = Path(__file__).resolve().parents[1]


def steady_throughput(frame, names, duration_s):
    w0 = duration_s / 4
    sel = frame[frame["name"].isin(names)]
    fin = sel["finish_s"].to_numpy()
    return float(((fin >= w0) & (fin <= duration_s)).sum()) / (duration_s - w0)


@pytest.mark.parametrize("algorithm,scale", [("muxserve", 1.0), ("muxserve", 2.0), ("spatial", 2.0)])
def test_unit_estimates_agree_with_the_simulator(algorithm, scale):
    from muxsim.sim import simulate

    d = json.loads((ROOT / "examples" / "small-4llm.json").read_text())
    for m in d["models"]:
        m["rate"] *= scale
    wl = Workload.from_dict(d)
    plan = solve_placement(wl, algorithm).plan
    res = simulate(plan, wl, seed=0)
    short = 0
    for mesh in plan.meshes:
        names = [u.name for u in mesh.units]
        est = sum(plan.estimate["per_llm"][n] for n in names)
        rate = sum(wl.rate_of(n) for n in names)
        sim = steady_throughput(res.frame, names, wl.duration_s)
        if est >= rate * (1 - 1e-6):
            assert sim == pytest.approx(rate, rel=0.10), (mesh.id, names, est, sim)
        else:
            short += 1
            assert est == pytest.approx(sim, rel=0.30), (mesh.id, names, est, sim)
    if scale > 1:
        assert short >= 1  # the overloaded case really tests the unsaturated branch


def test_overloaded_colocated_unit_agrees_with_the_simulator():
    """A hot 7B beside a 65B on 8 GPUs, both beyond what the mesh serves. The scheduler
    admits whatever fits, so both batches fill to their KV caps and every prefill job
    stalls the other decode job; an estimate that picks the batches maximizing the unit
    total (MuxServe's) was 110% high on the 7B here. Measured now: 26% high on the 7B, 12%
    low on the 65B (both batches full as estimated; the 7B's time per token is 36 ms in
    the simulator, 29 ms estimated: a prefill waits for the 65B's long step, more than
    the mean-step stall the estimator charges)."""
    from muxsim.placement import make_estimator
    from muxsim.placement.build import build_plan
    from muxsim.sim import simulate

    wl = Workload.from_dict({
        "cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 8},
        "models": [{"name": "hot", "model": "llama-7b", "rate": 50.0},
                   {"name": "big", "model": "llama-65b", "rate": 6.4}],
        "duration_s": 120.0, "seed": 0})
    est = make_estimator(wl)
    u = est.flex((0, 1), 8)
    assert u.throughput[0] < 50.0 and u.throughput[1] < 6.4  # both short
    plan = build_plan(est.problem, [u], algorithm="muxserve", mode="flex")
    res = simulate(plan, wl, seed=0)
    for k, name in enumerate(("hot", "big")):
        sim = steady_throughput(res.frame, [name], wl.duration_s)
        assert u.throughput[k] == pytest.approx(sim, rel=0.30), (name, u.throughput[k], sim)
