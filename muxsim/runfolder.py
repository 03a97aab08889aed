"""Run folders: what a run produced, in one folder people can keep, read and plot.

``simulate --out-dir`` and ``compare --out-dir`` write one (and so can any command that
simulates or executes plans: build :class:`Run` records and call :func:`write_run_folder`).
A folder holds one or more *runs*, each a plan and its results, labelled (``compare``:
by algorithm; ``simulate``: by the plan's algorithm)::

    run.json          manifest: muxsim version, command, seed, the runs (label, algorithm,
                      status, plan file), the files
    workload.json     the workload as resolved (rates filled in, paths rebased)
    sim_config.json   the simulator configuration
    plan.json         simulate: the plan; compare: plans/<label>.json, one per run
    summary.json      simulate: the results document; compare: {"workload", "seed",
                      "rows": [per run: algorithm, status, ..., then its results document]}
    requests.parquet  one row per request and run: run, then Results.to_frame()'s columns
    per_llm.csv       one row per LLM (workload order) and a "total" row, per run:
                      run, name, model, then every metric (dotted names: ttft_ms.p99)
    timeline.parquet  one row per mesh and sample: run, mesh, t (s), sm (share of the
                      mesh's SMs busy, mean over the sample interval), kv (share of the
                      KV pool in use)
    figures/*.png     see :func:`muxsim.plot.run_figures`

The folder is built beside its destination and renamed into place: it appears whole or
not at all, and an existing folder is used only when empty.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from muxsim.errors import InputError
from muxsim.limits import MAX_NAME_CHARS

MANIFEST = "run.json"
SIMULATE_SUMMARY_KEYS = ("aggregate", "per_llm", "utilization", "run")


@dataclass(frozen=True)
class Run:
    """One plan and what became of it; ``results`` is None when no plan was found."""

    label: str
    plan: Any = None  # muxsim.plan.Plan
    results: Any = None  # muxsim.sim.Results (or an executor's, same shape)
    status: str = "ok"
    message: str = ""
    placement_s: float | None = None


@dataclass
class RunFolder:
    """A run folder in memory: what :func:`write_run_folder` writes and :func:`read_run_folder` returns."""

    manifest: dict[str, Any]
    workload: dict[str, Any]
    config: dict[str, Any]
    plans: dict[str, dict[str, Any]]  # label -> plan.json document
    summary: dict[str, Any]
    requests: pd.DataFrame
    per_llm: pd.DataFrame
    timeline: pd.DataFrame
    path: Path | None = None
    figures: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [r["label"] for r in self.manifest["runs"]]

    def results(self) -> dict[str, dict[str, Any]]:
        """label -> results document (runs without a plan are left out)."""
        if self.manifest["command"] == "simulate" or "rows" not in self.summary:
            return {self.labels[0]: self.summary}
        return {r["algorithm"]: {k: r[k] for k in SIMULATE_SUMMARY_KEYS}
                for r in self.summary["rows"] if r.get("aggregate") is not None}

    def offered_rates(self) -> dict[str, float]:
        """LLM name -> its mean request rate in the workload (workload order)."""
        return {m["name"]: float(m.get("rate") or 0.0) for m in self.workload.get("models", [])}


def summary_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """Per run: ``algorithm, status, message, placement_s, estimate`` (the plan's
    ``throughput_rps`` and ``per_llm``), then its results document (``aggregate, per_llm,
    utilization, run``; null without a plan): the rows of ``compare``'s summary."""
    rows = []
    for r in runs:
        est = r.plan.estimate if r.plan is not None else {}
        doc = r.results.to_dict() if r.results is not None else dict.fromkeys(SIMULATE_SUMMARY_KEYS)
        rows.append({"algorithm": r.label, "status": r.status, "message": r.message, "placement_s": r.placement_s,
                     "estimate": {"throughput_rps": est.get("throughput_rps"), "per_llm": est.get("per_llm", {})},
                     **doc})
    return rows


def save_runs(path: str | os.PathLike[str], workload: Any, runs: list[Run], *, config: Any = None,
              seed: int | None = None, figures: bool = True) -> RunFolder:
    """Write a run folder from Python: one run is a ``simulate`` folder (``summary.json``
    is its results document), several a ``compare`` folder. Returns the folder."""
    from muxsim.errors import InputTypeError
    from muxsim.io import check_output_dir
    from muxsim.sim import SimConfig
    from muxsim.workload import as_workload

    check_output_dir(path, "path")  # before anything is built
    workload = as_workload(workload)
    if not isinstance(runs, list | tuple) or not all(isinstance(r, Run) for r in runs):
        raise InputTypeError(f"runs: expected a list of Run, got {type(runs).__name__}")
    if not runs:
        raise InputError("runs: give at least one Run")
    if config is not None and not isinstance(config, SimConfig):
        raise InputTypeError(f"config: expected a SimConfig, got {type(config).__name__}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InputError(f"seed: must be an integer >= 0, got {seed!r:.40}")
    seed = int(runs[0].results.run["seed"]) if seed is None and runs[0].results is not None else int(seed or 0)
    config = config if config is not None else SimConfig()
    if len(runs) == 1 and runs[0].results is not None:
        folder = build_run_folder("simulate", workload, runs, config=config, seed=seed,
                                  summary=runs[0].results.to_dict())
    else:
        folder = build_run_folder("compare", workload, runs, config=config, seed=seed,
                                  summary={"workload": None, "seed": seed, "rows": summary_rows(runs)})
    write_run_folder(path, folder, workload=workload, figures=figures, field="path")
    return folder


def _frames(runs: list[Run]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from muxsim.sim.results import FRAME_COLUMNS

    reqs, llm_rows, tl = [], [], []
    for r in runs:
        if r.results is None:
            continue
        df = r.results.to_frame()
        df.insert(0, "run", r.label)
        reqs.append(df)
        llm_rows += [{"run": r.label, **row} for row in r.results.rows()]
        for mesh, u in r.results.utilization["meshes"].items():
            tl.append(pd.DataFrame({"run": r.label, "mesh": mesh, "t": pd.Series(u["t"], dtype="float64"),
                                    "sm": pd.Series(u["sm"], dtype="float64"),
                                    "kv": pd.Series(u["kv"], dtype="float64")}))
    empty_reqs = pd.DataFrame({c: [] for c in ("run", *FRAME_COLUMNS)})
    requests = pd.concat(reqs, ignore_index=True) if reqs else empty_reqs
    timeline = (pd.concat(tl, ignore_index=True) if tl
                else pd.DataFrame({"run": [], "mesh": [], "t": [], "sm": [], "kv": []}))
    return requests, pd.DataFrame(llm_rows), timeline


def build_run_folder(command: str, workload: Any, runs: list[Run], *, config: Any, seed: int,
                     summary: dict[str, Any]) -> RunFolder:
    """The folder's contents from ``runs`` (labels must differ)."""
    from muxsim import __version__

    labels = [r.label for r in runs]
    for label in labels:  # a label names a file (plans/<label>.json)
        if (not isinstance(label, str) or not 1 <= len(label) <= MAX_NAME_CHARS or label in (".", "..")
                or any(c in label for c in "/\\") or not label.isprintable()):
            raise InputError(f"runs: a label must be a printable name of 1 to {MAX_NAME_CHARS} characters "
                             f"without slashes, got {label!r:.60}")
    if len(set(labels)) != len(labels):
        raise InputError(f"runs: labels must differ, got {labels}")
    single = command == "simulate"
    plans = {r.label: r.plan.to_dict() for r in runs if r.plan is not None}
    manifest = {
        "muxsim_version": __version__,
        "command": command,
        "seed": seed,
        "runs": [{"label": r.label, "algorithm": r.plan.algorithm if r.plan is not None else r.label,
                  "status": r.status, "message": r.message,
                  "plan": None if r.plan is None else ("plan.json" if single else f"plans/{r.label}.json")}
                 for r in runs],
    }
    requests, per_llm, timeline = _frames(runs)
    wl = workload.to_dict() if hasattr(workload, "to_dict") else dict(workload)
    cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
    return RunFolder(manifest, wl, cfg, plans, summary, requests, per_llm, timeline)


def write_run_folder(path: str | os.PathLike[str], folder: RunFolder, *, workload: Any = None,
                     figures: bool = True, field: str = "--out-dir", quiet: bool = True,
                     inputs: Iterable[tuple[str, Any]] = ()) -> Path:
    """Write ``folder`` to ``path`` whole or not at all; returns the path. ``path`` is a
    new folder in an existing one, or an empty folder, and never is or holds one of
    ``inputs`` (:func:`muxsim.io.check_output_dir`; errors name ``field``).
    ``workload`` (a :class:`muxsim.workload.Workload`) is saved with its relative paths
    rebased onto the folder; ``figures`` adds ``figures/*.png``."""
    from muxsim.io import (
        write_bytes_atomic,
        write_dir_atomic,
        write_json_atomic,
        write_parquet_atomic,
    )
    from muxsim.tables import to_csv

    def fill(tmp: Path) -> None:
        files = ["workload.json", "sim_config.json", "summary.json", "requests.parquet", "per_llm.csv",
                 "timeline.parquet"]
        if workload is not None:
            from muxsim.workload import save_workload

            save_workload(workload, tmp / "workload.json")
        else:
            write_json_atomic(tmp / "workload.json", folder.workload)
        write_json_atomic(tmp / "sim_config.json", folder.config)
        for run in folder.manifest["runs"]:
            if run["plan"] is not None:
                (tmp / run["plan"]).parent.mkdir(exist_ok=True)  # plans/, inside the folder being built
                write_json_atomic(tmp / run["plan"], folder.plans[run["label"]])
                files.append(run["plan"])
        write_json_atomic(tmp / "summary.json", folder.summary)
        write_parquet_atomic(tmp / "requests.parquet", folder.requests)
        write_parquet_atomic(tmp / "timeline.parquet", folder.timeline)
        write_bytes_atomic(tmp / "per_llm.csv", to_csv(folder.per_llm.to_dict(orient="records"),
                                                        list(folder.per_llm.columns)).encode())
        if figures:
            files += [f"figures/{n}" for n in write_figures(folder, tmp / "figures", quiet=quiet)]
        write_json_atomic(tmp / MANIFEST, {**folder.manifest, "files": [MANIFEST, *files]})

    dest = write_dir_atomic(path, fill, what=field, inputs=inputs)
    folder.path = dest
    return dest


def figure_names(folder: RunFolder, fmt: str = "png") -> list[str]:
    """The file names :func:`write_figures` writes for ``folder``."""
    from muxsim.plot.figures import figure_makers

    return [f"{name}.{fmt}" for name in figure_makers(folder)]


def write_figures(folder: RunFolder, out: str | os.PathLike[str], fmt: str = "png", *, quiet: bool = True,
                  field: str = "--out", inputs: Iterable[tuple[str, Any]] = ()) -> list[str]:
    """Draw every figure of ``folder`` (:func:`muxsim.plot.figures.figure_makers`) into
    the folder ``out``; returns the file names. A new ``out`` is built whole
    (:func:`muxsim.io.write_dir_atomic`: the folder above it must exist); in an existing
    one each figure replaces a regular file or takes a new name, never one of ``inputs``
    (check them first with :func:`check_figures_out`)."""
    from muxsim.io import write_dir_atomic
    from muxsim.plot.figures import figure_makers, save
    from muxsim.progress import Progress

    makers = figure_makers(folder)
    names: list[str] = []

    def draw(into: Path) -> None:
        with Progress("figures", total=len(makers), unit="fig", quiet=quiet) as bar:
            for name, make in makers.items():
                bar.status(name)
                save(make(), into / f"{name}.{fmt}", what=field, inputs=inputs)
                names.append(f"{name}.{fmt}")
                bar.advance()

    if _existing_folder(out):
        draw(Path(out))
    else:
        write_dir_atomic(out, draw, what=field, inputs=inputs)
    return names


def check_figures_out(folder: RunFolder, out: str | os.PathLike[str], fmt: str = "png", *, field: str = "--out",
                      inputs: Iterable[tuple[str, Any]] = ()) -> None:
    """Before drawing: ``out`` is an existing folder whose figure files muxsim may
    replace, or a new folder it may build (:mod:`muxsim.io`'s checks, naming ``field``)."""
    from muxsim.io import check_output_dir, check_outputs

    if _existing_folder(out):
        check_outputs([(field, Path(out) / n) for n in figure_names(folder, fmt)], inputs)
    else:
        check_output_dir(out, field, inputs)


def _existing_folder(path: Any) -> bool:
    """``path`` names a folder that exists, not through a symbolic link (``''`` names none)."""
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        return False
    p = Path(path)
    return p.is_dir() and not p.is_symlink()


def folder_inputs(folder: RunFolder) -> list[tuple[str, Path]]:
    """The files of a run folder read back (:func:`read_run_folder`) as ``(name, path)``
    inputs: what a command drawing from it must never write over."""
    assert folder.path is not None
    names = [MANIFEST, "workload.json", "sim_config.json", "summary.json", "requests.parquet", "per_llm.csv",
             "timeline.parquet", *(r["plan"] for r in folder.manifest["runs"] if r.get("plan"))]
    return [(f"run folder's {n}", folder.path / n) for n in names]


def read_run_folder(path: str | os.PathLike[str]) -> RunFolder:
    """Load a run folder written by :func:`write_run_folder`; a missing or malformed
    file is an InputError naming it."""
    from muxsim.io import read_json

    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        from muxsim.errors import InputTypeError

        raise InputTypeError(f"run folder: expected a folder path, got {type(path).__name__}")
    p = Path(path)
    if not p.is_dir():
        raise InputError(f"run folder: {str(p)!r} is not a folder")
    if not (p / MANIFEST).is_file():
        raise InputError(f"run folder: {str(p)!r} has no {MANIFEST} (not written by --out-dir?)")
    manifest = read_json(p / MANIFEST, MANIFEST)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("runs"), list) or not manifest["runs"]:
        raise InputError(f"{MANIFEST}: expected an object with a non-empty list 'runs'")
    plans = {}
    for r in manifest["runs"]:
        if not isinstance(r, dict) or "label" not in r:
            raise InputError(f"{MANIFEST}: every run needs a label")
        if r.get("plan"):
            plans[r["label"]] = read_json(p / r["plan"], r["plan"])
    tables = {}
    for name in ("requests.parquet", "timeline.parquet", "per_llm.csv"):
        f = p / name
        try:
            tables[name] = pd.read_parquet(f) if name.endswith(".parquet") else pd.read_csv(f)
        except FileNotFoundError:
            raise InputError(f"run folder: {name} is missing in {str(p)!r}") from None
        except (OSError, ValueError) as e:
            raise InputError(f"{name}: cannot read it ({str(e).splitlines()[0] if str(e) else e})") from None
    summary = read_json(p / "summary.json", "summary.json")
    folder = RunFolder(manifest, read_json(p / "workload.json", "workload.json"),
                       read_json(p / "sim_config.json", "sim_config.json"), plans, summary,
                       tables["requests.parquet"], tables["per_llm.csv"], tables["timeline.parquet"], path=p)
    folder.figures = [f for f in manifest.get("files", []) if str(f).startswith("figures/")]
    return folder
