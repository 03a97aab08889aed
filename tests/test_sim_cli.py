"""``muxsim simulate`` through a real subprocess: a hand-written plan, JSON output, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

WORKLOAD = {"cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 2},
            "models": [{"name": "chat", "model": "llama-7b", "rate": 2.0},
                       {"name": "code", "model": "llama-7b", "rate": 1.0}],
            "duration_s": 10, "seed": 0}
# written by hand: optional fields (tp, SM shares, kv_share, max_batch, ids) left out
PLAN = {"mode": "flex", "cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 2},
        "meshes": [{"node": 0, "gpus": [0, 1], "units": [{"name": "chat", "model": "llama-7b"},
                                                         {"name": "code", "model": "llama-7b",
                                                          "decode_sm": 0.2}]}]}


def muxsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "muxsim.cli.main", *args], capture_output=True, text=True,
                          timeout=120)


def write(tmp: Path, name: str, obj: object) -> str:
    p = tmp / name
    p.write_text(json.dumps(obj))
    return str(p)


def test_simulate_a_hand_written_plan_prints_json_and_writes_results(tmp_path: Path) -> None:
    wl = write(tmp_path, "wl.json", WORKLOAD)
    plan = write(tmp_path, "plan.json", PLAN)
    out = tmp_path / "res.json"
    r = muxsim("simulate", plan, wl, "--format", "json", "--out", str(out), "--seed", "3")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert set(d) == {"aggregate", "per_llm", "utilization", "run"}
    assert d["aggregate"]["requests"] > 10 and d["aggregate"]["completed"] == d["aggregate"]["requests"]
    assert d["run"]["seed"] == 3
    saved = json.loads(out.read_text())
    saved["run"].pop("wall_s")
    d["run"].pop("wall_s")
    assert saved == d
    table = muxsim("simulate", plan, wl, "--seed", "3", "--flex-policy", "fcfs")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["ttft_ms", "tpot_ms", "e2e_ms"]  # groups of the dotted metric names
    assert lines[1].split()[:4] == ["name", "model", "requests", "completed"]
    assert [x.split()[0] for x in lines[3:6]] == ["chat", "code", "total"]  # workload order


def test_bad_input_is_one_line_exit_2_and_no_output_file(tmp_path: Path) -> None:
    wl = write(tmp_path, "wl.json", WORKLOAD)
    out = tmp_path / "res.json"
    bad = dict(PLAN, meshes=[dict(PLAN["meshes"][0], units=[{"name": "chat", "model": "llama-7b"}])])
    r = muxsim("simulate", write(tmp_path, "p1.json", bad), wl, "--out", str(out))
    assert r.returncode == 2 and r.stderr.startswith("error: plan: LLM(s) code")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = muxsim("simulate", write(tmp_path, "p3.json", PLAN), wl, "--drain", "-1")
    assert r.returncode == 2 and "--drain" in r.stderr
    assert not out.exists()
