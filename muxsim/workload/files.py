"""Reading and writing ``workload.json``.

Relative paths inside a workload file (``trace``, an empirical length's ``file``) are
relative to the workload file's folder; loaded workloads hold them relative to the
current folder, and saving rewrites them relative to the new file's folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from muxsim.io import read_json, write_json_atomic

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
                for key in ("prompt_len", "output_len"):
                    spec = m.get(key)
                    if isinstance(spec, dict) and spec.get("dist") == "empirical" and "file" in spec:
                        m[key] = {**spec, "file": fix(spec["file"])}
            models.append(m)
        out["models"] = models
    return out


def load_workload(path: str | os.PathLike[str]) -> Workload:
    """Read and validate a ``workload.json``; bad input raises InputError naming the field."""
    base = Path(path).parent
    raw = read_json(path, "workload")
    return Workload.from_dict(_map_paths(raw, lambda p: os.path.normpath(base / p)))


def save_workload(wl: Workload, path: str | os.PathLike[str]) -> Path:
    """Write ``wl`` as JSON, atomically, with relative paths rebased onto its folder."""
    target = Path(path).parent.resolve()
    d = _map_paths(wl.to_dict(), lambda p: os.path.relpath(Path(p).resolve(), target))
    return write_json_atomic(path, d)
