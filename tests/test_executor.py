"""The executor on a CPU: two tiny colocated models run to completion through the CLI
with the simulator's policies; tokens are deterministic and the reference decoder's;
a killed worker or Ctrl-C ends the run with its status, its results and no orphans;
plans that do not fit the machine are refused before anything starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from muxsim.errors import InputError
from tests import tinyplan
from tests.hardening import cli

pytest.importorskip("torch")


def _cmd(*args: object) -> list[str]:
    return [sys.executable, "-m", "muxsim.cli.main", *map(str, args)]


def _children(pid: int) -> set[int]:
    out = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out.update(int(x) for x in (task / "children").read_text().split())
        except OSError:
            pass
    return out


def _alive(pids: set[int]) -> list[str]:
    """Command lines of the processes of ``pids`` still running (not gone, not zombies)."""
    out = []
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmd = Path(f"/proc/{p}/cmdline").read_text().replace("\0", " ")
        except OSError:
            continue
        if state != "Z":
            out.append(f"{p}: {cmd}")
    return out


def _gone(pids: set[int], grace_s: float = 10.0) -> list[str]:
    """[] once every process of ``pids`` has exited (the helpers multiprocessing starts,
    as its resource tracker, exit on their own when the driver does: a grace period)."""
    deadline = time.monotonic() + grace_s
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _alive(pids)


def _keys(d: dict, depth: int = 2) -> set:
    out = set()
    for k, v in d.items():
        out.add(k)
        if depth > 1 and isinstance(v, dict) and k not in ("per_llm", "meshes", "models", "config"):
            out |= {f"{k}.{x}" for x in _keys(v, depth - 1)}
    return out


def test_two_tiny_models_run_to_completion(tmp_path: Path) -> None:
    import muxsim as mx
    from muxsim.executor import execute
    from muxsim.plan import load_plan

    plan, wl = tinyplan.write_case(tmp_path)
    out, tokens = tmp_path / "results.json", tmp_path / "tokens.json"
    r = subprocess.run(_cmd("execute", plan, wl, "--out", out, "--tokens", tokens, "--out-dir", tmp_path / "run",
                            "--no-figures"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "status completed" in r.stdout and "ready: 4 workers" in r.stderr
    doc = json.loads(out.read_text())
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["aggregate"] == doc["aggregate"]
    reqs = mx.generate_requests(mx.load_workload(wl), 0)
    assert doc["run"]["status"] == "completed"
    assert doc["aggregate"]["requests"] == doc["aggregate"]["completed"] == len(reqs)  # every request completes
    for name, m in doc["per_llm"].items():
        assert m["requests"] == m["completed"] == int((reqs["name"] == name).sum())
    sim = mx.simulate(load_plan(plan), mx.load_workload(wl), seed=0).to_dict()
    assert _keys(doc) >= _keys(sim) and set(doc["per_llm"]) == set(sim["per_llm"])
    assert _keys(doc["per_llm"]["a"]) == _keys(sim["per_llm"]["a"])
    first = json.loads(tokens.read_text())
    assert [len(t) for t in first] == reqs["output_len"].tolist()
    # a second run with the seed generates the same tokens, and they are the reference decoder's
    again = execute(load_plan(plan), mx.load_workload(wl), seed=0)
    assert again.status == "completed"
    assert [t[p:] for t, p in zip(again.tokens, reqs["prompt_len"])] == first
    assert first == tinyplan.reference_tokens(plan, wl, 0)


def start_until_ready(plan: Path, wl: Path, out: Path) -> tuple[subprocess.Popen, str]:
    """``muxsim execute`` started, once it says its workers are ready (and that line)."""
    proc = subprocess.Popen(_cmd("execute", plan, wl, "--out", out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 240
    line = proc.stderr.readline()
    while "ready:" not in line:
        assert line and time.monotonic() < deadline, "the executor never became ready"
        line = proc.stderr.readline()
    return proc, line


def _run_until_ready(tmp_path: Path, duration: float) -> tuple[subprocess.Popen, Path, set[int]]:
    plan, wl = tinyplan.write_case(tmp_path, duration_s=duration)
    out = tmp_path / "results.json"
    proc, _ = start_until_ready(plan, wl, out)
    workers = _children(proc.pid)
    time.sleep(1.5)  # mid-run: requests are arriving and being served
    return proc, out, workers


def _finish(proc: subprocess.Popen, workers: set[int], out: Path) -> tuple[int, str, dict]:
    _, err = proc.communicate(timeout=120)
    left = _gone(workers)
    assert not left, f"outlived the run: {left}"
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(f"muxsim-{proc.pid}-")] if os.path.isdir(
        "/dev/shm") else True
    return proc.returncode, err, json.loads(out.read_text())


def test_killed_worker_ends_the_run_with_its_status_and_no_orphans(tmp_path: Path) -> None:
    proc, out, workers = _run_until_ready(tmp_path, duration=30.0)
    assert len(workers) >= 4
    decode = [p for p in workers if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
    victim = sorted(decode)[-1]
    os.kill(victim, signal.SIGKILL)
    code, err, doc = _finish(proc, workers, out)
    assert code == 1 and err.strip().splitlines()[-1].startswith("error: run ended worker_failed: mesh m0 ")
    status = doc["run"]["status"]
    assert status.startswith("worker_failed: mesh m0 ") and "exited with code -9" in status
    assert 0 < doc["aggregate"]["requests"] < 4 * 30 + 2 * 30  # what arrived before the failure, counted
    assert doc["aggregate"]["completed"] <= doc["aggregate"]["requests"]


def test_ctrl_c_writes_what_was_gathered(tmp_path: Path) -> None:
    proc, out, workers = _run_until_ready(tmp_path, duration=30.0)
    proc.send_signal(signal.SIGINT)
    code, _, doc = _finish(proc, workers, out)
    assert code == 130 and doc["run"]["status"] == "interrupted"
    assert doc["aggregate"]["requests"] > 0 and doc["aggregate"]["completed"] > 0


def test_plan_needing_more_devices_than_present_is_refused(tmp_path: Path) -> None:
    wl = tinyplan.workload()
    wl["cluster"]["gpus_per_node"] = 128  # every plan GPU is a core on a CPU
    (tmp_path / "wl.json").write_text(json.dumps(wl))
    (tmp_path / "plan.json").write_text(json.dumps(tinyplan.plan(gpus_per_node=128, gpus=(127,))))
    before = _children(os.getpid())
    r = cli("execute", tmp_path / "plan.json", tmp_path / "wl.json", "--out", tmp_path / "r.json")
    if os.cpu_count() and os.cpu_count() >= 128:
        pytest.skip("this machine has 128 cores")
    assert r.code == 2 and r.err.startswith("error: plan.meshes: node 0 needs 128 devices") and r.err.count("\n") == 1
    assert not (tmp_path / "r.json").exists() and _children(os.getpid()) == before


def test_weights_and_pools_over_memory_are_refused() -> None:
    from muxsim.executor.machine import check_fits
    from muxsim.executor.worker import WorkerSpec
    from muxsim.plan import plan_from_dict

    plan = plan_from_dict(tinyplan.plan())
    specs = [WorkerSpec(0, "m0", "a", "prefill", tinyplan.TINY_A, 0, "", 0, 16)]
    pools = {"m0": (1 << 20, plan.meshes[0].units[0])}  # a million blocks of 2 x 32 x 16 floats: 4 GiB
    check_fits(plan, specs, {"m0": (16, plan.meshes[0].units[0])}, "local", devices=1, memory=1 << 30)
    with pytest.raises(InputError, match=r"^plan: the workers' weights \(0.00 GiB\) and KV pools \(4.00 GiB\)"):
        check_fits(plan, specs, pools, "local", devices=1, memory=1 << 30)


def test_two_node_plan_is_refused_by_the_local_backend(tmp_path: Path) -> None:
    wl = tinyplan.workload()
    wl["cluster"]["nodes"] = 2
    p = tinyplan.plan()
    p["cluster"]["nodes"] = 2
    p["meshes"].append({"id": "m1", "node": 1, "gpus": [0], "units": [p["meshes"][0]["units"].pop()]})
    (tmp_path / "wl.json").write_text(json.dumps(wl))
    (tmp_path / "plan.json").write_text(json.dumps(p))
    r = cli("execute", tmp_path / "plan.json", tmp_path / "wl.json")
    assert r.code == 2 and r.err.startswith("error: plan.meshes: the plan uses 2 nodes") and r.err.count("\n") == 1
