"""Sweeps: many trials (workload x algorithm x policy x simulator option), one table.

    df = mx.sweep("sweep.yaml", backend="local", workers=2, out_dir="runs/s1")

:mod:`~muxsim.sweeps.spec` reads the sweep file (YAML, safe loader), :mod:`~muxsim.sweeps.trials`
expands it into frozen trials named by a hash, :mod:`~muxsim.sweeps.run` runs one trial
(workload, plan, simulation) through the public API, :mod:`~muxsim.sweeps.backends`
runs them on a process pool or on Ray, and :mod:`~muxsim.sweeps.folder` keeps finished
trials so that a rerun resumes. The table has one row per trial: ``trial``,
``trial_id``, every parameter (dotted names such as ``workload.alpha``), ``status``
(``ok`` or ``error``), ``error`` and every metric (muxsim's names: ``throughput_rps``,
``slo_attainment.8``, ``ttft_ms.p99``, ...; wall-clock seconds under ``time.``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd

from muxsim.errors import InputError
from muxsim.io import dumps_json
from muxsim.limits import MAX_TRIALS, MAX_WORKERS
from muxsim.sweeps.backends import BACKENDS, check_ray, run_backend
from muxsim.sweeps.spec import SweepSpec, as_spec, load_spec
from muxsim.sweeps.trials import PATH_KEYS, Trial, expand

__all__ = ["BACKENDS", "SweepSpec", "Trial", "expand", "load_spec", "sweep", "trials_table"]


def _cell(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, list | dict) else v


def trials_table(trials: list[Trial], rows: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per trial (trial order): parameters, then status, error and metrics."""
    records = []
    for t in trials:
        row = rows[t.id]
        records.append({"trial": t.index, "trial_id": t.id, **{k: _cell(v) for k, v in t.params}, **row})
    df = pd.DataFrame.from_records(records)
    for col in df.columns:  # one type per column, as Parquet wants
        if df[col].dtype != object:
            continue
        kinds = {type(v) for v in df[col] if v is not None and not (isinstance(v, float) and pd.isna(v))}
        if kinds <= {int, float} and kinds:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float if float in kinds else "Int64")
        elif len(kinds) > 1:
            df[col] = [None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v) for v in df[col]]
    return df


def _check_workers(workers: Any, n: int) -> int:
    if workers is None:
        return max(1, min(os.cpu_count() or 1, n))
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise InputError(f"--workers: must be an integer in [1, {MAX_WORKERS}], got {workers!r}")
    return workers


def _inputs(spec_path: Any, trials: list[Trial]) -> list[tuple[str, Any]]:
    named = [("sweep", spec_path)] if spec_path is not None else []
    paths = sorted({(k, p) for t in trials for k, p in t.params if k in PATH_KEYS})
    return named + paths


def sweep(spec: Any, backend: str = "local", *, workers: int | None = None, address: str | None = None,
          out_dir: Any = None, max_trials: int = MAX_TRIALS, retry_failed: bool = False,
          quiet: bool = True) -> pd.DataFrame:
    """Run every trial of ``spec`` (a path to SWEEP.yaml, a dict of its content or a
    :class:`SweepSpec`) and return the table. With ``out_dir`` the trials are kept
    there as they finish and ``results.parquet`` is written at the end; a rerun into the
    same folder skips the finished trials (and, with ``retry_failed``, reruns the
    failed ones). ``backend``: ``local`` (``workers`` processes; default one per CPU) or
    ``ray`` (a local Ray of ``workers`` CPUs, or the cluster at ``address``). Every check
    (the sweep file, the output folder, the work bound ``max_trials``) runs before the
    first trial."""
    from muxsim.progress import Progress
    from muxsim.sweeps.folder import SweepFolder, spec_json

    if backend not in BACKENDS:
        raise InputError(f"--backend: must be one of {', '.join(BACKENDS)}, got {str(backend)[:40]!r}")
    if address is not None and backend != "ray":
        raise InputError("--address: only with --backend ray")
    if address is not None and (not isinstance(address, str) or not 0 < len(address) <= 1000):
        raise InputError("--address: expected a Ray address such as auto or ray://host:10001")
    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
        raise InputError(f"--max-trials: must be an integer >= 1, got {max_trials!r}")
    if workers is not None:
        _check_workers(workers, 1)
    if backend == "ray":
        check_ray()
    path = spec if isinstance(spec, str | os.PathLike) else None
    spec = load_spec(spec) if path is not None else as_spec(spec)
    root = os.path.dirname(os.fspath(path)) if path is not None else None
    trials = expand(spec, max_trials, root)
    folder = SweepFolder(out_dir, _inputs(path, trials)) if out_dir is not None else None
    rows: dict[str, dict[str, Any]] = {}
    if folder is not None:
        folder.create()
        folder.write_marker(spec_json(spec), [t.id for t in trials])
        rows = folder.finished(t.id for t in trials)
        if retry_failed:
            rows = {k: r for k, r in rows.items() if r.get("status") == "ok"}
    todo = [t for t in trials if t.id not in rows]
    n_workers = _check_workers(workers, len(todo))
    failed = sum(r.get("status") != "ok" for r in rows.values())

    with Progress(f"sweep {spec.name}", total=len(todo), unit="trial", quiet=quiet) as bar:
        if rows:
            bar.status(f"{len(rows)} finished before")

        def done(t: Trial, row: dict[str, Any]) -> None:
            nonlocal failed
            row = json.loads(dumps_json(row, indent=None))  # as the folder keeps it: resumed == fresh
            rows[t.id] = row
            if folder is not None:
                folder.save_trial(t.id, t.as_dict(), row)
            failed += row.get("status") != "ok"
            bar.advance()
            if failed:
                bar.status(f"{failed} failed")

        try:
            if todo:
                run_backend(backend, todo, n_workers, done, address)
        finally:
            if folder is not None and rows:
                folder.save_table(trials_table([t for t in trials if t.id in rows], rows))
    return trials_table(trials, rows)
