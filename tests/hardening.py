"""Helpers of the hardening tests: the command line in process and in a bounded
subprocess, and snapshots of a folder to prove that nothing but the requested output
changed."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from muxsim.cli.main import main

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "examples" / "small-4llm.json"
PROFILE = REPO / "profiles" / "cpu-tiny-2026-11-25.csv"
MEMORY_LIMIT = 3 << 30  # address space of a command-line subprocess (bytes)


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def cli(*args: Any, cwd: Path | None = None) -> Outcome:
    """``muxsim ARGS`` in this process (the same code as the command; much quicker).
    Any exception other than those ``main`` turns into an exit status escapes."""
    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        os.chdir(old)
    return Outcome(code, out.getvalue(), err.getvalue())


def _limit_memory() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def bounded(*args: Any, cwd: Path, timeout: float = 60.0) -> Outcome:
    """``muxsim ARGS`` in a subprocess with at most MEMORY_LIMIT of address space and
    ``timeout`` seconds (a hang fails the test through subprocess.TimeoutExpired)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "muxsim.cli.main", *map(str, args)], cwd=cwd, capture_output=True,
                       text=True, timeout=timeout, preexec_fn=_limit_memory, env=env)
    return Outcome(r.returncode, r.stdout, r.stderr)


def assert_refused(r: Outcome, *fields: str) -> None:
    """Exit 2, one line ``error: ...`` naming each of ``fields``, no traceback."""
    assert r.code == 2, (r.code, r.err[-2000:])
    assert r.err.startswith("error: ") and r.err.endswith("\n") and r.err.count("\n") == 1, r.err[-2000:]
    assert "Traceback" not in r.err
    for f in fields:
        assert f in r.err, (f, r.err)


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder`` (not following links): kind, mode, size, mtime and a
    hash of the content of regular files."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = os.lstat(p)
        digest = ""
        if p.is_file() and not p.is_symlink():
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
        out[str(p.relative_to(folder))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


def changed(before: dict[str, tuple], after: dict[str, tuple]) -> set[str]:
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k)}


_PLAN: dict[str, str] = {}


def workspace(folder: Path) -> None:
    """A folder with the 5 s example workload (``wl.json``), its plan (``plan.json``, made
    once per process), a small profile (``prof.csv`` and its models sidecar) and a short
    request log in Azure's format (``az.csv``)."""
    small_workload(folder)
    if "plan" not in _PLAN:
        assert cli("plan", "wl.json", "--out", "plan.json", cwd=folder).code == 0
        _PLAN["plan"] = (folder / "plan.json").read_text()
    (folder / "plan.json").write_text(_PLAN["plan"])
    lines = PROFILE.read_text().splitlines(keepends=True)
    (folder / "prof.csv").write_text("".join(lines[:1] + lines[1:80:3]))  # enough rows to fit, quick to fit
    (folder / "prof.models.json").write_bytes(PROFILE.with_suffix(".models.json").read_bytes())
    (folder / "az.csv").write_text(AZURE)
    (folder / "sw.yaml").write_text(SWEEP)


SWEEP = "base:\n  workload: {kind: file, path: wl.json}\n  algorithm: spatial\n"  # one trial over wl.json

AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(
    f"2023-11-16 18:15:{i:02d}.000,{100 + i},{10 + i}\n" for i in range(40))


def small_workload(folder: Path, **changes: Any) -> Path:
    """The shipped 4-LLM example, shortened to 5 s, with top-level ``changes``."""
    d = json.loads(SMALL.read_text())
    d["duration_s"] = 5.0
    d.update(changes)
    p = folder / "wl.json"
    p.write_text(json.dumps(d))
    return p


VIDUR_FILES = ["vid/compute/a100/meta-llama/Llama-2-7b-hf/mlp.csv", "vid/compute/a100/meta-llama/Llama-2-13b-hf/mlp.csv",
               "vid/compute/a100/acme/Odd-1b/mlp.csv", "vid/network/a100_dgx/all_reduce.csv",
               "vid/network/a100_pairwise_nvlink/all_reduce.csv", "vid/cpu_overheads/a100/cpu_overheads.csv"]


def vidur_tree(folder: Path) -> Path:
    """A small Vidur ``data/profiling`` tree ``vid`` (plain CSV; :data:`VIDUR_FILES`) whose
    timings come from a known cost model (``tests/test_vidur.py``); quick to fit."""
    from tests.vidurtree import write_tree

    return write_tree(folder / "vid", compress=False)
