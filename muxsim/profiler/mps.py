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
from dataclasses import dataclass

CONTROL = "nvidia-cuda-mps-control"


@dataclass(frozen=True)
class MPSStatus:
    available: bool  # SM shares can be enforced
    started_here: bool  # this run started the daemon (and should stop it)
    reason: str


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
    try:
        r = subprocess.run([CONTROL, "-d"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return MPSStatus(False, False, f"cannot start the MPS control daemon ({e})")
    if r.returncode != 0 or not _query():
        msg = (r.stderr or r.stdout).strip().splitlines()[-1:] or [f"exit {r.returncode}"]
        return MPSStatus(False, False, f"cannot start the MPS control daemon ({msg[0]})")
    return MPSStatus(True, True, "MPS control daemon started for this run")


def stop_mps(status: MPSStatus) -> None:
    """Stop the daemon only if this run started it."""
    if status.started_here:
        subprocess.run([CONTROL], input="quit\n", capture_output=True, text=True, timeout=10, check=False)


def sm_env(sm_pct: int, enforced: bool) -> dict[str, str]:
    """Environment for a worker process at ``sm_pct`` percent of the SMs."""
    env = dict(os.environ)
    env.pop("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", None)
    if enforced and sm_pct < 100:
        env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(sm_pct)
    return env
