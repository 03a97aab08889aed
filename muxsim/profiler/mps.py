"""NVIDIA MPS: how the profiler restricts a process to a share of the SMs.

A process started with ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=p`` while the MPS control
daemon runs gets at most ``p``% of the SMs. :func:`ensure_mps` finds the daemon, starts
it when it is not running and ``start`` allows, and says what happened; the caller
records that (``sm_enforced``) instead of pretending a share was enforced.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

CONTROL = "nvidia-cuda-mps-control"


@dataclass(frozen=True)
class MPSStatus:
    available: bool  # SM shares can be enforced
    started_here: bool  # this run started the daemon (and should stop it)
    reason: str
    pipe_dir: str | None = None  # private pipe/log directory of a daemon started here


def _query(timeout: float = 5.0) -> bool:
    """True when a control daemon answers."""
    try:
        r = subprocess.run([CONTROL], input="get_server_list\n", capture_output=True, text=True,
                           timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and "Cannot find MPS control daemon" not in (r.stdout + r.stderr)


def ensure_mps(start: bool = True) -> MPSStatus:
    if shutil.which(CONTROL) is None:
        return MPSStatus(False, False, f"{CONTROL} not found")
    if _query():
        return MPSStatus(True, False, "MPS control daemon already running")
    if not start:
        return MPSStatus(False, False, "MPS control daemon not running (not started: --mps off)")
    # A daemon of our own, with pipe and log directories we can write (the defaults,
    # /tmp/nvidia-mps and /var/log/nvidia-mps, may need root). Workers inherit the
    # variables through os.environ (sm_env copies it).
    private = tempfile.mkdtemp(prefix="muxsim-mps-")
    saved = {k: os.environ.get(k) for k in _DIRS}
    for k in _DIRS:
        os.environ[k] = private
    try:
        r = subprocess.run([CONTROL, "-d"], capture_output=True, text=True, timeout=10, check=False)
        ok = r.returncode == 0 and _query()
        why = (r.stderr or r.stdout).strip().splitlines()[-1:] or [f"exit {r.returncode}"]
    except (OSError, subprocess.TimeoutExpired) as e:
        ok, why = False, [str(e)]
    if not ok:
        _restore(saved)
        shutil.rmtree(private, ignore_errors=True)
        return MPSStatus(False, False, f"cannot start the MPS control daemon ({why[0]})")
    _SAVED[private] = saved
    return MPSStatus(True, True, "MPS control daemon started for this run", private)


_DIRS = ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY")
_SAVED: dict[str, dict[str, str | None]] = {}


def _restore(saved: dict[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def stop_mps(status: MPSStatus) -> None:
    """Stop the daemon only if this run started it."""
    if status.started_here:
        subprocess.run([CONTROL], input="quit\n", capture_output=True, text=True, timeout=10, check=False)
        if status.pipe_dir:
            _restore(_SAVED.pop(status.pipe_dir, {}))
            shutil.rmtree(status.pipe_dir, ignore_errors=True)


def sm_env(sm_pct: int, enforced: bool) -> dict[str, str]:
    """Environment for a worker process at ``sm_pct`` percent of the SMs."""
    env = dict(os.environ)
    env.pop("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", None)
    if enforced and sm_pct < 100:
        env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(sm_pct)
    return env
