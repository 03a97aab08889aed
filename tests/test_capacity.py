"""Capacity planning: GPU budgets (whole nodes, then part of the last), the fewest GPUs
reaching the target, monotone attainment on the cases tried, and the commands."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import muxsim as mx
from muxsim.errors import InputError
from muxsim.placement import solve_placement
from muxsim.placement.problem import gpu_budget
from muxsim.plan import Cluster
from muxsim.workload import Workload


def workload(rates, *, nodes=1, gpus_per_node=4, duration=15.0):
    return Workload.model_validate({
        "cluster": {"gpu": "a100-80gb", "nodes": nodes, "gpus_per_node": gpus_per_node},
        "models": [{"name": f"llm-{i}", "model": "llama-7b", "rate": r} for i, r in enumerate(rates)],
        "duration_s": duration, "seed": 0})


def test_a_gpu_budget_fills_whole_nodes_first():
    c = Cluster("a100-80gb", 3, 8)
    assert gpu_budget(c, None) is None
    assert gpu_budget(c, 8) == (8, 0, 0) and gpu_budget(c, 19) == (8, 8, 3) and gpu_budget(c, 24) == (8, 8, 8)
    for bad in (0, 25, 2.5, True):
        with pytest.raises(InputError, match="gpus"):
            gpu_budget(c, bad)


@pytest.mark.parametrize("algorithm", ["flex", "spatial", "muxserve", "ilp"])
def test_plans_use_only_the_gpus_of_the_budget(algorithm):
    wl = workload([6.0, 3.0, 1.0], nodes=2, gpus_per_node=4)
    res = solve_placement(wl, algorithm, gpus=5)
    assert res.success
    used = {(m.node, g) for m in res.plan.meshes if m.units for g in m.gpus}
    assert len(used) <= 5 and all(node == 0 or g < 1 for node, g in used)


@pytest.mark.parametrize("algorithm", ["flex", "spatial"])
def test_more_gpus_never_lower_attainment_and_the_answer_is_the_fewest(algorithm):
    wl = workload([8.0, 3.0, 1.0, 0.5], nodes=1, gpus_per_node=4)
    c = mx.capacity(wl, algorithm, max_gpus=8)
    att = [p["attainment"] for p in c.curve]
    gpus = [p["gpus"] for p in c.curve]
    assert gpus == sorted(gpus) and att == sorted(att)  # monotone on this case
    meeting = [p["gpus"] for p in c.curve if p["attainment"] >= c.target]
    assert c.gpus == min(meeting) and c.nodes == -(-c.gpus // 4)
    assert all(p["attainment"] < c.target for p in c.curve if p["gpus"] < c.gpus)
    assert c.plan is not None and sum(m.size for m in c.plan.meshes if m.units) <= c.gpus
    d = c.to_dict()
    assert {"algorithm", "gpus", "nodes", "attainment", "curve", "plan"} <= set(d)
    assert d["objective"] == "slo_attainment.8" and d["target"] == 0.99


def test_capacity_bounds_its_work_before_starting():
    wl = workload([1.0])
    for bad in (0, 10**6, 2.5):
        with pytest.raises(InputError, match="max_gpus"):
            mx.capacity(wl, "spatial", max_gpus=bad)
    with pytest.raises(InputError, match="max_gpus: 4096 GPUs means up to"):
        mx.capacity(workload([1e5], duration=1e4), "spatial", max_gpus=4096)
    with pytest.raises(InputError, match="target"):
        mx.capacity(wl, "spatial", target=1.5)


def _muxsim(*args):
    return subprocess.run([sys.executable, "-m", "muxsim.cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_capacity_and_compare_capacity_commands(tmp_path):
    p = tmp_path / "wl.json"
    p.write_text(json.dumps(workload([8.0, 3.0, 1.0, 0.5]).model_dump(mode="json", exclude_none=True)))
    r = _muxsim("capacity", p, "--algorithm", "spatial", "--format", "json", "--plot", tmp_path / "cap.png")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["algorithm"] == "spatial" and doc["gpus"] >= 1 and doc["curve"] and doc["plan"]["meshes"]
    assert (tmp_path / "cap.png").read_bytes()[:4] == b"\x89PNG"
    t = _muxsim("compare", p, "--capacity", "--algorithms", "flex,spatial")
    assert t.returncode == 0, t.stderr
    lines = t.stdout.splitlines()
    assert lines[0].split()[:4] == ["algorithm", "gpus", "nodes", "attainment"]
    assert lines[2].startswith("flex") and lines[3].startswith("spatial")
    for args in (("--max-gpus", "0"), ("--target", "2"), ("--slo-scale", "-1")):
        bad = _muxsim("capacity", p, *args)
        assert bad.returncode == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1


def test_absolute_slos_and_the_workloads_target_are_the_default_objective():
    from pathlib import Path

    wl = mx.load_workload(Path(__file__).resolve().parents[1] / "examples" / "slo-3llm.json")
    wl = wl.model_copy(update={"duration_s": 20.0})  # TTFT 1 s, TPOT 60 ms, 95% (the workload's)
    c = mx.capacity(wl, "spatial", max_gpus=4)
    assert c.objective == "slo.attainment" and c.target == 0.95
    scaled = mx.capacity(wl, "spatial", max_gpus=4, slo_scale=8, target=0.5)
    assert scaled.objective == "slo_attainment.8" and scaled.target == 0.5


def test_mx_capacity_is_the_function_even_when_its_module_was_imported_first():
    code = "import muxsim.capacity, muxsim as mx; print(callable(mx.capacity), mx.capacity.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "muxsim.capacity"]
