"""Placement is told the policy and limits the simulator will run with: the plan records
them, ``muxsim plan`` takes the simulator's policy flags, and ``simulate`` warns when it
runs a plan under another policy or other limits."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from muxsim.errors import InputError
from muxsim.limits import ServingLimits
from muxsim.plan import plan_from_dict
from muxsim.sim import PlanMismatchWarning, SimConfig, simulate
from muxsim.workload import Workload

WL = {"cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 2},
      "models": [{"name": "a", "model": "llama-7b", "rate": 9.0}, {"name": "b", "model": "llama-7b", "rate": 4.0},
                 {"name": "c", "model": "llama-13b", "rate": 1.0}],
      "duration_s": 20, "seed": 0}


def muxsim(*args):
    return subprocess.run([sys.executable, "-m", "muxsim.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_a_placed_plan_records_its_policy_and_limits_and_round_trips():
    from muxsim.placement import place

    wl = Workload.from_dict(WL)
    plan = place(wl)
    assert plan.policy == "adbs" and plan.limits == ServingLimits()
    d = json.loads(json.dumps(plan.to_dict()))
    assert d["policy"] == "adbs" and d["limits"]["overload"] == 1.2
    assert plan_from_dict(d) == plan
    assert place(wl, algorithm="temporal").policy == "fcfs"
    assert place(Workload.from_dict({**WL, "models": WL["models"][:2]}), algorithm="spatial").policy == "continuous"
    with pytest.raises(InputError, match=r"plan.policy: 'lottery' is not a flex policy"):
        plan_from_dict({**d, "policy": "lottery"})
    with pytest.raises(InputError, match=r"limits.overload"):
        plan_from_dict({**d, "limits": {"overload": 0.5}})
    # a plan that records its limits is held to them
    pair = next(m for m in d["meshes"] if len(m["units"]) == 2)
    pair["units"][0]["decode_sm"] = 0.9  # 0.9 + 0.4 > 1.2
    with pytest.raises(InputError, match=r"decode_sm sums to 1.3 > the overload limit 1.2"):
        plan_from_dict(d)


def test_a_plan_without_policy_or_limits_still_loads_and_runs_quietly_under_the_simulators_limits():
    from muxsim.placement import place

    wl = Workload.from_dict(WL)
    d = json.loads(json.dumps(place(wl).to_dict()))
    del d["policy"], d["limits"]  # a plan written before plans recorded them
    old = plan_from_dict(d)
    assert old.policy is None and old.limits is None and "policy" not in old.to_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing recorded: nothing to disagree with
        simulate(old, wl, seed=0, config=SimConfig(flex_policy="fcfs"))
    pair = next(m for m in d["meshes"] if len(m["units"]) == 2)
    for u in pair["units"]:
        u["decode_sm"] = 0.7  # 1.4: fine for the plan alone, past the simulator's overload limit
    with pytest.raises(InputError, match=r"decode_sm sums to 1\.4 > the overload limit 1\.2"):
        simulate(plan_from_dict(d), wl, seed=0)
    simulate(plan_from_dict(d), wl, seed=0, config=SimConfig(limits=ServingLimits(overload=1.5)))


def test_simulating_under_another_policy_or_limits_warns():
    from muxsim.placement import place

    wl = Workload.from_dict(WL)
    plan = place(wl)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the plan's own policy: no warning
        simulate(plan, wl, seed=0)
    with pytest.warns(PlanMismatchWarning, match="placed for the flex policy 'adbs'; simulating it with 'fcfs'"):
        res = simulate(plan, wl, seed=0, config=SimConfig(flex_policy="fcfs"))
    assert "plan.policy" in res.run["warnings"][0]
    with pytest.warns(PlanMismatchWarning, match=r"max_prefill_tokens 2048 \(simulating 1024\)"):
        simulate(plan, wl, seed=0, config=SimConfig(limits=ServingLimits(max_prefill_tokens=1024)))


def test_plan_takes_the_simulators_policy_flags(tmp_path: Path):
    wl = tmp_path / "wl.json"
    wl.write_text(json.dumps(WL))
    r = muxsim("plan", wl, "--flex-policy", "fcfs", "--format", "json", "--out", tmp_path / "plan.json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["plan"] == json.loads((tmp_path / "plan.json").read_text())
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["mode"] == "flex" and plan["policy"] == "fcfs"
    for m in plan["meshes"]:
        if len(m["units"]) > 1:  # no prefill priority: every prefill fits beside the decodes
            decode = sum(u["decode_sm"] for u in m["units"])
            assert all(u["prefill_sm"] + decode <= 1.2 + 1e-9 for u in m["units"])
    # the same plan simulated with its policy: quiet; with ADBS: a warning, and results
    ok = muxsim("simulate", tmp_path / "plan.json", wl, "--flex-policy", "fcfs", "--format", "json")
    assert ok.returncode == 0 and ok.stderr == "", ok.stderr
    other = muxsim("simulate", tmp_path / "plan.json", wl, "--format", "json")
    assert other.returncode == 0
    assert other.stderr.startswith("warning: plan.policy: the plan was placed for the flex policy 'fcfs'")
    assert json.loads(other.stdout)["run"]["warnings"]
    bad = muxsim("plan", wl, "--flex-policy", "lottery")
    assert bad.returncode == 2 and "--flex-policy" in bad.stderr
