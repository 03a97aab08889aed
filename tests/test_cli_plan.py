"""``muxsim plan`` and ``muxsim compare`` through a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from muxsim.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "examples" / "small-4llm.json"


def muxsim(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "muxsim.cli.main", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=300)


@pytest.fixture
def short_small(tmp_path):
    d = json.loads(SMALL.read_text())
    d["duration_s"] = 20.0
    p = tmp_path / "small.json"
    p.write_text(json.dumps(d))
    return p


@pytest.fixture
def unservable(tmp_path):
    p = tmp_path / "big.json"
    p.write_text(json.dumps({"cluster": {"gpu": "a100-80gb", "nodes": 2, "gpus_per_node": 1},
                             "models": [{"name": "small", "model": "llama-7b", "rate": 1.0},
                                        {"name": "huge", "model": "llama-65b", "rate": 1.0}],
                             "duration_s": 10}))
    return p


def test_plan_table_and_json_agree(tmp_path):
    out = tmp_path / "plan.json"
    r = muxsim("plan", SMALL, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "throughput_rps" in r.stdout and "estimated throughput" in r.stdout
    for name in ("llm-0", "llm-1", "llm-2", "llm-3"):
        assert name in r.stdout
    assert "status: feasible (" in r.stdout and "verdict: " in r.stdout
    plan = load_plan(out)
    j = muxsim("plan", SMALL, "--format", "json")
    assert j.returncode == 0, j.stderr
    doc = json.loads(j.stdout)
    assert doc["plan"] == plan.to_dict()  # the plan inside the result, deterministic
    assert {"status", "success", "message", "verdict", "objective", "placement_s", "per_llm", "stats"} <= set(doc)
    assert list(doc["per_llm"]) == ["llm-0", "llm-1", "llm-2", "llm-3"]
    assert plan.algorithm == "flex-slo" and plan.mode in ("flex", "spatial")  # the default
    assert set(plan.estimate["per_llm"]) == {"llm-0", "llm-1", "llm-2", "llm-3"}


@pytest.mark.parametrize("algorithm,mode", [("spatial", "spatial"), ("temporal", "temporal"),
                                            ("greedy-memory", "flex"), ("ilp", "flex")])
def test_plan_each_algorithm(algorithm, mode, capsys):
    from muxsim.cli.main import main

    assert main(["plan", str(SMALL), "--algorithm", algorithm, "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)["plan"]
    assert d["algorithm"] == algorithm and d["mode"] == mode


def test_unservable_workload_exits_2_naming_the_model(unservable, tmp_path):
    out = tmp_path / "plan.json"
    r = muxsim("plan", unservable, "--out", out)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert "huge" in r.stderr and "llama-65b" in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()
    c = muxsim("compare", unservable)
    assert c.returncode == 2 and "huge" in c.stderr and c.stdout == ""


def test_bad_arguments_exit_2():
    r = muxsim("plan", SMALL, "--algorithm", "nope")
    assert r.returncode == 2 and "--algorithm" in r.stderr
    r = muxsim("compare", SMALL, "--algorithms", "muxserve,nope")
    assert r.returncode == 2 and r.stderr.strip() == (
        "error: --algorithms: unknown nope (known: flex-slo, flex, muxserve, greedy-memory, spatial, spatial-min, "
            "temporal, ilp)")
    r = muxsim("plan", "missing.json")
    assert r.returncode == 2 and "missing.json" in r.stderr


def test_compare_table_json_and_plot(short_small, tmp_path):
    png = tmp_path / "cmp.png"
    r = muxsim("compare", short_small, "--algorithms", "muxserve,spatial", "--plot", png)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    # groups of dotted metric names over their leaves: estimate.throughput_rps, slo_attainment.1, ...
    assert lines[0].split() == ["estimate", "slo_attainment", "slo", "ttft_ms", "tpot_ms"]
    assert lines[1].split()[:5] == ["algorithm", "status", "throughput_rps", "offered_rps", "throughput_rps"]
    assert lines[1].split()[5:] == ["1", "2", "4", "8", "16", "min_scale", "p99", "p99", "placement_s"]
    assert lines[3].startswith("muxserve") and lines[4].startswith("spatial")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    j = muxsim("compare", short_small, "--algorithms", "spatial", "--format", "json")
    assert j.returncode == 0, j.stderr
    rows = json.loads(j.stdout)["rows"]
    assert [x["algorithm"] for x in rows] == ["spatial"]
    row = rows[0]
    agg = row["aggregate"]
    assert agg["requests"] >= agg["completed"] > 0
    assert set(agg["slo_attainment"]) == {"1", "2", "4", "8", "16"}
    assert agg["throughput_rps"] > 0 and row["estimate"]["throughput_rps"] > 0
    assert set(row) >= {"algorithm", "status", "message", "placement_s", "estimate", "aggregate", "per_llm",
                        "utilization", "run"}


def test_placement_sees_the_interference_the_simulator_will_use():
    from muxsim.models import resolve_model
    from muxsim.placement import make_estimator
    from muxsim.placement.problem import LLM, Problem
    from muxsim.plan import Cluster
    from muxsim.sim import InterferenceParams, SimConfig

    llms = tuple(LLM(f"llm-{i}", "llama-7b", resolve_model("llama-7b"), r, 161.0, 338.0)
                 for i, r in enumerate((12.0, 6.0)))
    p = Problem(llms, Cluster("a100-80gb", 1, 2))
    assert make_estimator(p).interference == (1.0, 1.0)  # the simulator's defaults
    assert make_estimator(p, sim_config=SimConfig(interference_on=False)).interference == (0.0, 0.0)
    strong = SimConfig(interference=InterferenceParams(sm_coef=3.0, hbm_coef=2.0))
    assert make_estimator(p, sim_config=strong).interference == (3.0, 2.0)
    # two busy 7Bs on one GPU: the more their decodes slow each other, the less they serve
    totals = [make_estimator(p, sim_config=c).flex((0, 1), 1).total
              for c in (SimConfig(interference_on=False), SimConfig(), strong)]
    assert totals[0] > totals[1] > totals[2]


def test_no_interference_flag_reaches_placement_and_simulation(short_small):
    on = muxsim("compare", short_small, "--algorithms", "muxserve", "--format", "json")
    off = muxsim("compare", short_small, "--algorithms", "muxserve", "--format", "json", "--no-interference")
    assert on.returncode == 0 and off.returncode == 0, on.stderr + off.stderr
    row_on, row_off = json.loads(on.stdout)["rows"][0], json.loads(off.stdout)["rows"][0]
    assert row_off["estimate"]["throughput_rps"] >= row_on["estimate"]["throughput_rps"]
    assert row_off["aggregate"]["throughput_rps"] >= row_on["aggregate"]["throughput_rps"] - 1e-9
    plan_off = muxsim("plan", short_small, "--algorithm", "muxserve", "--no-interference", "--format", "json")
    assert plan_off.returncode == 0
    assert json.loads(plan_off.stdout)["plan"]["estimate"]["throughput_rps"] == pytest.approx(
        row_off["estimate"]["throughput_rps"])
