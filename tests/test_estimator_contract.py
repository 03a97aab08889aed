"""The estimator's contract with the simulator, for every policy (see
:mod:`muxsim.placement.contract`): on a grid of units of 1-4 colocated LLMs of different
sizes, at several SM splits and loads from 30% to 150% of the capacity the estimator
finds, the policy's steady-state model is within 5% of the simulator (median) and 15%
(worst) on the units it claims to serve, and never more than 15% optimistic on the
ones it calls overloaded. ``python experiments/estimator_contract.py`` prints the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from muxsim.placement.contract import GRID, check_plan, check_policy, summary

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("mode,policy", list(GRID))
def test_every_policy_keeps_the_contract(mode, policy):
    rows = check_policy(mode, policy)
    s = summary(rows)
    assert s["served"] >= 10 and s["overloaded"] >= 4  # both branches really tested
    assert s["median_error"] <= 0.05, s
    assert s["worst_error"] <= 0.15, [r for r in rows if r["served"] and abs(r["error"]) > 0.15]
    assert s["worst_optimism"] <= 0.15, [r for r in rows if not r["served"] and r["error"] > 0.15]


def _small_example():
    # The case was this example at twice its rates on the datasheet cost model:
    # one estimate (27.0 req/s) whatever the simulator ran, while fcfs and round-robin
    # served 19.2 (41% optimistic). The fitted model's per-step engine overhead about
    # halves what a GPU serves, so at twice the rates every unit is overloaded and ADBS
    # places each LLM alone; at its own rates placement colocates, and ADBS's plan (16.9
    # req/s estimated and simulated) serves 11.0 under fcfs: the same case.
    from muxsim.workload import Workload

    d = json.loads((ROOT / "examples" / "small-4llm.json").read_text())
    d["duration_s"] = 240.0  # a longer run: the first quarter is warm-up
    return Workload.from_dict(d)


@pytest.mark.parametrize("policy", ["adbs", "fcfs", "round-robin"])
def test_placement_for_the_policy_is_within_bounds_on_the_small_example(policy):
    # placement plans for the policy (prefills beside the decodes where there is no
    # prefill priority), so its estimate holds under the policy the simulator runs
    from muxsim.placement import solve_placement
    from muxsim.sim import SimConfig

    wl = _small_example()
    config = SimConfig(flex_policy=policy)
    plan = solve_placement(wl, "muxserve", sim_config=config).plan
    assert plan.policy == policy
    rows = check_plan(plan, wl, config)
    assert any(len(m.units) > 1 for m in plan.meshes)
    for r in rows:
        assert (abs(r["error"]) if r["served"] else r["error"]) <= 0.15, r
    if policy != "adbs":  # no prefill priority: every prefill fits beside the decodes
        for m in plan.meshes:
            if len(m.units) > 1:
                decode = sum(u.decode_sm for u in m.units)
                assert all(u.prefill_sm + decode <= config.limits.overload + 1e-9 for u in m.units)


def test_a_policy_declines_a_unit_it_has_no_model_for():
    # ADBS's plan (prefills on every SM) run without prefill priority: a prefill cannot
    # start beside the decodes, so colocated batches would drain first; fcfs declines
    from muxsim.placement import make_estimator, solve_placement
    from muxsim.placement.contract import GridUnit, estimate_unit
    from muxsim.policy.steady import NoSteadyState
    from muxsim.sim import SimConfig

    wl = _small_example()
    plan = solve_placement(wl, "muxserve").plan
    pair = next(m for m in plan.meshes if len(m.units) > 1)
    unit = GridUnit(tuple(u.model for u in pair.units), len(pair.gpus), tuple(u.decode_sm for u in pair.units),
                    pair.units[0].prefill_sm)
    with pytest.raises(NoSteadyState, match="does not fit beside decode jobs"):
        estimate_unit(unit, "flex", SimConfig(flex_policy="fcfs"), [wl.rate_of(u.name) for u in pair.units])
    assert make_estimator(wl, sim_config=SimConfig(flex_policy="fcfs")).policies["flex"].name == "fcfs"
