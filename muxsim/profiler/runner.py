"""Run the profiler: one worker process per SM share, rows and sidecars out.

:func:`run_profile` measures the grid of a :class:`ProfileConfig`;
:func:`run_interference` measures prefill/decode co-location slowdowns. Both start
worker processes (``muxsim.profiler.worker``) and never import torch themselves.

SM shares: on a GPU each worker runs under MPS with
``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` (the daemon is started when needed and allowed);
when MPS cannot be had, only full-GPU points are measured and the rest are listed as
skipped in the meta sidecar. On a CPU a share sets the worker's thread count
(``round(cores * sm_pct / 100)``), recorded as ``sm_enforced=false``.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from muxsim.errors import InputError
from muxsim.profiler import mps as mpsmod
from muxsim.profiler.config import Point, ProfileConfig
from muxsim.profiler.schema import InterferenceRow, ProfileRow


class WorkerError(RuntimeError):
    """A worker process failed (a bug or the machine, not bad input)."""


@dataclass
class ProfileRun:
    rows: list[ProfileRow]
    meta: dict[str, Any] = field(default_factory=dict)


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cuda_devices() -> int:
    try:
        import torch
    except ImportError:
        raise InputError("device: torch is not installed (pip install 'muxsim-lab[gpu]')") from None
    return torch.cuda.device_count()


def cuda_memory_bytes() -> int:
    import torch

    return int(torch.cuda.get_device_properties(0).total_memory)


def check_device(cfg: ProfileConfig) -> None:
    if cfg.device == "cuda":
        n = cuda_devices()
        if n == 0:
            raise InputError("device: cuda requested but no CUDA device is available (use --device cpu)")
        if cfg.tp > n:
            raise InputError(f"tp: {cfg.tp} needs {cfg.tp} GPUs, this machine has {n}")
        need, have = cfg.model.weight_bytes_per_gpu(cfg.tp), cuda_memory_bytes()
        if need > 0.9 * have:
            raise InputError(f"tp: {cfg.model_name} holds {need / 2**30:.1f} GiB of weights per GPU at tp "
                             f"{cfg.tp}, more than this GPU's {have / 2**30:.1f} GiB allows (raise --tp)")
    elif importlib.util.find_spec("torch") is None:  # no import: it costs seconds
        raise InputError("device: torch is not installed (pip install 'muxsim-lab[gpu]')")


def cpu_threads(share: float) -> int:
    """Threads of a CPU worker given ``share`` of the machine's cores (an SM share on a
    CPU; the executor's workers count the same way), at least one."""
    return max(1, round(cpu_cores() * share))


def _job(cfg: ProfileConfig, points: list[Point], sm_pct: int, loop: dict | None = None) -> dict:
    threads = cpu_threads(sm_pct / 100)
    return {"model": cfg.model.to_dict(), "device": cfg.device, "tp": cfg.tp,
            "dtype": cfg.torch_dtype_name(), "seed": cfg.seed, "warmup": cfg.warmup,
            "repeats": cfg.repeats, "weights": cfg.weights, "threads": threads,
            "points": [asdict(p) for p in points], "loop": loop,
            "cuda_graphs": bool(cfg.extra.get("cuda_graphs", True)),
            "rounds": int(cfg.extra.get("rounds") or (1 if cfg.device == "cuda" else 3))}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(job: dict, env: dict[str, str], workdir: Path, tag: str) -> tuple[list[subprocess.Popen], Path]:
    """Start the worker process(es) of one job: one, or one per tensor-parallel rank."""
    job_path, out_path = workdir / f"{tag}.job.json", workdir / f"{tag}.result.json"
    job_path.write_text(json.dumps(job))
    cmd = [sys.executable, "-m", "muxsim.profiler.worker", str(job_path), str(out_path)]
    ranks = [[]] if job["tp"] == 1 else [[str(r), str(port)] for port in [_free_port()]
                                          for r in range(job["tp"])]
    procs = []
    for r, extra in enumerate(ranks):
        # stderr to a file: a chatty worker never blocks on a full pipe
        with open(workdir / f"{tag}.rank{r}.err", "w") as err:
            procs.append(subprocess.Popen(cmd + extra, env=env, stdout=subprocess.DEVNULL, stderr=err))
    return procs, out_path


def _finish(procs: list[subprocess.Popen], out_path: Path, tag: str) -> dict[str, Any]:
    if len(procs) > 1:  # a failed rank leaves the others waiting in a collective: stop them
        while any(p.poll() is None for p in procs):
            if any(p.returncode not in (None, 0) for p in procs):
                for p in procs:
                    if p.poll() is None:
                        p.terminate()
                break
            time.sleep(0.05)
    failures = []
    for rank, proc in enumerate(procs):
        proc.wait()
        if proc.returncode != 0:
            err = (out_path.parent / f"{out_path.name.removesuffix('.result.json')}.rank{rank}.err").read_text()
            tail = "\n".join(err.strip().splitlines()[-15:])
            failures.append(f"profiler worker {tag} (rank {rank}) exited with status {proc.returncode}:\n{tail}")
    if failures or not out_path.exists():
        raise WorkerError("\n".join(failures) or f"profiler worker {tag} wrote no result")
    return json.loads(out_path.read_text())


def _sm_plan(cfg: ProfileConfig, mps_mode: str) -> tuple[list[int], list[int], bool, mpsmod.MPSStatus | None, str]:
    """(shares to measure, shares skipped, enforced, MPS status, control label)."""
    grid = sorted(cfg.sm_grid)
    if cfg.device == "cpu":
        return grid, [], False, None, "cpu-threads"
    if all(s == 100 for s in grid):
        return grid, [], True, None, "full-gpu"
    status = mpsmod.ensure_mps(start=mps_mode != "off") if mps_mode != "off" else \
        mpsmod.MPSStatus(False, False, "--mps off")
    if status.available:
        return grid, [], True, status, "mps"
    if mps_mode == "require":
        raise InputError(f"sm-grid: shares below 100 need MPS, which is unavailable ({status.reason})")
    keep = [s for s in grid if s == 100]
    skipped = [s for s in grid if s != 100]
    print(f"warning: MPS unavailable ({status.reason}); sm_pct {','.join(map(str, skipped))} not measured",
          file=sys.stderr)
    return keep, skipped, False, status, "none"


def run_profile(cfg: ProfileConfig, *, mps: str = "auto", log=None) -> ProfileRun:
    check_device(cfg)
    measure, skipped_sm, enforced, status, control = _sm_plan(cfg, mps)
    if not measure:
        raise InputError("sm-grid: nothing to measure (only 100 can be measured without MPS)")
    rows: list[ProfileRow] = []
    skipped: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    graphs: list[str] = []
    date = today()
    points = cfg.points()
    try:
        with tempfile.TemporaryDirectory(prefix="muxsim-profile-") as tmp:
            for sm in measure:
                if log:
                    log(f"sm_pct {sm}: {len(points)} points")
                procs, out = _launch(_job(cfg, points, sm), mpsmod.sm_env(sm, enforced), Path(tmp), f"sm{sm}")
                info = _finish(procs, out, f"sm_pct={sm}")
                for r in info["results"]:
                    if "cuda_graph" in r:
                        graphs.append(r["cuda_graph"])
                    if r["latency_ms"] is None:
                        skipped.append({"sm_pct": sm, "phase": r["phase"], "batch": r["batch"],
                                        "seq_len": r["seq_len"], "reason": r["skipped"]})
                        continue
                    rows.append(ProfileRow(cfg.model_name, info["gpu"], cfg.tp, sm, r["phase"], r["batch"],
                                           r["seq_len"], float(r["latency_ms"]), "measured",
                                           info["device_name"], date, enforced))
    finally:
        if status is not None:
            mpsmod.stop_mps(status)
    meta = {"source": "measured", "device": info.get("device_name"), "gpu": info.get("gpu"), "date": date,
            "sm_control": control, "mps": status.reason if status else None,
            "skipped_sm_pct": skipped_sm, "skipped_points": skipped,
            "dtype": info.get("dtype"), "backend": info.get("backend"), "torch": info.get("torch"),
            "triton": info.get("triton"), "warmup": cfg.warmup, "repeats": cfg.repeats,
            "rounds": int(cfg.extra.get("rounds") or (1 if cfg.device == "cuda" else 3)),
            "statistic": "median", "timer": "cuda events" if cfg.device == "cuda" else "perf_counter",
            "decode_cuda_graphs": {g: graphs.count(g) for g in sorted(set(graphs))}}
    return ProfileRun(rows, meta)


# ---- co-location ------------------------------------------------------------------------

def _wait_files(paths: list[Path], procs: list[subprocess.Popen], timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not all(p.exists() for p in paths):
        for proc in procs:
            if proc.poll() is not None and proc.returncode != 0:
                return  # _finish reports the failure
        if time.monotonic() > end:
            raise WorkerError(f"profiler workers did not reach {', '.join(p.name for p in paths)} in time")
        time.sleep(0.002)


def _colocate(cfg: ProfileConfig, jobs: dict[str, tuple[Point, int]], duration_s: float,
              enforced: bool, workdir: Path) -> dict[str, dict[str, float]]:
    """Start one process per role (``prefill``, ``decode``) at its SM share; time each
    alone in turn (the other idles), then both at once. Returns role -> stage -> ms."""
    sync = workdir / f"sync-{time.monotonic_ns()}"
    sync.mkdir()
    procs = {}
    for role, (point, sm) in jobs.items():
        loop = {"sync_dir": str(sync), "role": role, "duration_s": duration_s,
                "stages": ["alone", "both"], "shared": ["both"]}
        procs[role] = _launch(_job(cfg, [point], sm, loop), mpsmod.sm_env(sm, enforced), sync, role)
    plist = [p for ps, _ in procs.values() for p in ps]
    budget = 900 + 10 * duration_s
    try:
        _wait_files([sync / f"{r}.ready" for r in jobs], plist, budget)
        for role in jobs:
            (sync / f"go.alone.{role}").touch()
            _wait_files([sync / f"{role}.alone.measured"], plist, budget)
        for role in jobs:
            (sync / f"go.both.{role}").touch()
        _wait_files([sync / f"{r}.both.measured" for r in jobs], plist, budget)
    finally:  # release every waiting worker, whatever happened
        for role in jobs:
            for stage in ("alone", "both"):
                (sync / f"go.{stage}.{role}").touch()
        (sync / "stop.both").touch()
    out = {}
    for role, (ps, path) in procs.items():
        res = _finish(ps, path, f"{role} (co-location)")
        r = res["results"][0]
        if r["latency_ms"] is None:
            raise WorkerError(f"co-location {role} point {r['batch']}x{r['seq_len']} not measured: {r['skipped']}")
        out[role] = {**r["stages"], "gpu": res["gpu"], "device_name": res["device_name"]}
    return out


def run_interference(cfg: ProfileConfig, pairs: list[tuple[int, int]], prefill: tuple[int, int],
                     decode: tuple[int, int], *, duration_s: float = 2.0, mps: str = "auto",
                     log=None) -> tuple[list[InterferenceRow], dict[str, Any]]:
    """Per (prefill_sm, decode_sm) pair: each job alone, then both at once."""
    check_device(cfg)
    if cfg.tp != 1:
        raise InputError("interference: co-location runs support tp 1 only")
    status = None
    enforced = False
    if cfg.device == "cuda" and mps != "off":
        status = mpsmod.ensure_mps(start=True)
        enforced = status.available
        if not enforced and mps == "require":
            raise InputError(f"colocate: SM shares need MPS, which is unavailable ({status.reason})")
    pp, dp = Point("prefill", *prefill), Point("decode", *decode)
    rows = []
    date = today()
    try:
        with tempfile.TemporaryDirectory(prefix="muxsim-colocate-") as tmp:
            for ps, ds in pairs:
                if log:
                    log(f"co-location prefill {ps}% / decode {ds}%")
                m = _colocate(cfg, {"prefill": (pp, ps), "decode": (dp, ds)}, duration_s, enforced, Path(tmp))
                pa, pc, da, dc = m["prefill"]["alone"], m["prefill"]["both"], m["decode"]["alone"], m["decode"]["both"]
                device = m["prefill"]["device_name"]
                if m["decode"]["device_name"] != device:
                    device = f"{device} / {m['decode']['device_name']}"
                rows.append(InterferenceRow(
                    m["prefill"]["gpu"], cfg.model_name, cfg.tp, ps, ds, pp.batch, pp.seq_len, dp.batch,
                    dp.seq_len, pa, pc, da, dc, pc / pa, dc / da, enforced, "measured", device, date))
    finally:
        if status is not None:
            mpsmod.stop_mps(status)
    meta = {"sm_control": "mps" if enforced else ("cpu-threads" if cfg.device == "cpu" else "none"),
            "mps": status.reason if status else None, "duration_s": duration_s}
    return rows, meta
