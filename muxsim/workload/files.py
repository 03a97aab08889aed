"""Reading and writing ``workload.json``.

Relative paths inside a workload file (``trace``, an empirical length's ``file``, a
model given as a ``config.json`` path) are relative to the workload file's folder, never
to wherever muxsim runs; loaded workloads hold them relative to the current folder, and
saving rewrites them relative to the new file's folder. Such files are read as any
input is (regular files only, bounded in size), and errors about them never quote
their content.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from muxsim.errors import InputTypeError
from muxsim.io import Named, check_output, read_json, write_json_atomic
from muxsim.models import CATALOG, catalog_name

from .schema import Workload


def _map_paths(d: Any, fn: Callable[[str], str]) -> Any:
    """A copy of a raw workload dict with ``fn`` applied to every relative file path."""
    if not isinstance(d, dict):
        return d

    def fix(p: Any) -> Any:
        return fn(p) if isinstance(p, str) and p and not os.path.isabs(p) else p

    out = dict(d)
    if "trace" in out:
        out["trace"] = fix(out["trace"])
    if isinstance(out.get("models"), list):
        models = []
        for m in out["models"]:
            if isinstance(m, dict):
                m = dict(m)
                model = m.get("model")
                if isinstance(model, str) and model.endswith(".json") and model.strip().lower() not in CATALOG:
                    m["model"] = fix(model)  # a config.json beside the workload
                for key in ("prompt_len", "output_len"):
                    spec = m.get(key)
                    if isinstance(spec, dict) and spec.get("dist") == "empirical" and "file" in spec:
                        m[key] = {**spec, "file": fix(spec["file"])}
            models.append(m)
        out["models"] = models
    return out


def load_workload(path: str | os.PathLike[str]) -> Workload:
    """Read and validate a ``workload.json``; bad input raises InputError naming the field.
    Relative paths inside it (``trace``, an empirical length's ``file``, a model's
    ``config.json``) are relative to the workload file's folder."""
    if isinstance(path, Workload):
        return path
    raw = read_json(path, "workload")
    base = Path(path).parent
    return Workload.from_dict(_map_paths(raw, lambda p: os.path.normpath(base / p)))


def input_files(wl: Workload) -> list[Named]:
    """The files a loaded workload reads besides itself (its trace, empirical length
    files, config.json models), as ``(field, path)``: outputs must never replace them."""
    from .lengths import EmpiricalLength

    out: list[Named] = []
    if wl.trace is not None:
        out.append(("trace", wl.trace))
    for i, m in enumerate(wl.models):
        if isinstance(m.model, str) and catalog_name(m.model) is None:  # not a name or alias: a config.json
            out.append((f"models[{i}].model", m.model))
        for role in ("prompt_len", "output_len"):
            spec = getattr(m, role)
            if isinstance(spec, EmpiricalLength):
                out.append((f"models[{i}].{role}.file", spec.file))
    return out


def as_workload(workload: Any, name: str = "workload") -> Any:
    """A workload from a :class:`Workload` (or anything shaped like one), a parsed
    ``workload.json`` dict or a path to one."""
    if isinstance(workload, Workload) or (hasattr(workload, "models") and hasattr(workload, "duration_s")):
        return workload
    if isinstance(workload, dict):
        return Workload.from_dict(workload)
    if isinstance(workload, str | os.PathLike):
        return load_workload(workload)
    raise InputTypeError(f"{name}: expected a Workload, a workload dict or a path to workload.json, "
                         f"got {type(workload).__name__}")


def save_workload(wl: Workload, path: str | os.PathLike[str], *, inputs: Iterable[Named] = ()) -> Path:
    """Write ``wl`` as JSON, atomically, with relative paths rebased onto its folder."""
    if not isinstance(wl, Workload):
        raise InputTypeError(f"wl: expected a Workload, got {type(wl).__name__}")
    target = check_output(path, "out", inputs).parent.resolve()
    d = _map_paths(wl.to_dict(), lambda p: os.path.relpath(Path(p).resolve(), target))
    return write_json_atomic(path, d, inputs=inputs)
