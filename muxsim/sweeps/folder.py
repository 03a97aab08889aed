"""The sweep folder: where trials are kept as they finish, so that a rerun resumes.

    DIR/sweep.json          the sweep file as read, muxsim's version, the trial ids
    DIR/trials/<id>.json    one finished trial: its parameters and its row
    DIR/results.parquet     the table of the sweep's trials, in trial order

``DIR`` is a new name or an empty folder (checked like every output folder, before any
work), or a folder an earlier run of a sweep left (it holds ``sweep.json``): then the
trials found under ``trials/`` are not run again. Every file is written atomically, so
a killed sweep leaves whole trials behind and nothing half-written.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from muxsim import __version__
from muxsim.errors import InputError
from muxsim.io import (
    Named,
    check_output,
    check_output_dir,
    read_json,
    write_json_atomic,
    write_parquet_atomic,
)

MARKER = "sweep.json"
RESULTS = "results.parquet"
TRIALS = "trials"
_ID = re.compile(r"^[0-9a-f]{16}$")


def _is_sweep_folder(p: Path) -> bool:
    try:
        st = os.lstat(p)
        marker = os.lstat(p / MARKER)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and stat.S_ISREG(marker.st_mode)


class SweepFolder:
    """An output folder of a sweep (see the module docstring)."""

    def __init__(self, path: Any, inputs: Iterable[Named] = ()) -> None:
        inputs = list(inputs)
        p = Path(os.fspath(path)) if isinstance(path, str | os.PathLike) else path
        if isinstance(p, Path) and _is_sweep_folder(p):
            self.path = p
            for what, inp in inputs:
                if Path(os.fspath(inp)).resolve().is_relative_to(p.resolve()):
                    raise InputError(f"--out-dir: {os.fspath(p)!r} holds the {what} input; write it elsewhere")
            self.resumed = True
            for name in (MARKER, RESULTS):  # regular files or new names
                check_output(self.path / name, "--out-dir", inputs)
        else:
            self.path = check_output_dir(path, "--out-dir", inputs)
            self.resumed = False
        self.inputs = inputs

    def create(self) -> None:
        """Make the folder and its trials/ (a folder above it is never created)."""
        for p in (self.path, self.path / TRIALS):
            try:
                os.mkdir(p)
            except FileExistsError:
                st = os.lstat(p)
                if not stat.S_ISDIR(st.st_mode):
                    raise InputError(f"--out-dir: {os.fspath(p)!r} is not a folder") from None
            except OSError as e:
                raise InputError(f"--out-dir: cannot make {os.fspath(p)!r} ({e.strerror})") from None

    def write_marker(self, spec: dict[str, Any], ids: list[str]) -> None:
        write_json_atomic(self.path / MARKER, {"muxsim": __version__, "spec": spec, "trials": ids},
                          what="--out-dir", inputs=self.inputs)

    def finished(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The rows of the trials among ``ids`` that an earlier run finished (a file that
        is not a whole trial record is not a finished trial)."""
        out: dict[str, dict[str, Any]] = {}
        folder = self.path / TRIALS
        if not folder.is_dir() or folder.is_symlink():
            return out
        for tid in ids:
            p = folder / f"{tid}.json"
            try:
                if not stat.S_ISREG(os.lstat(p).st_mode):
                    continue
                doc = read_json(p, f"--out-dir trial {tid}")
            except (OSError, InputError):
                continue
            if isinstance(doc, dict) and doc.get("id") == tid and isinstance(doc.get("row"), dict):
                out[tid] = doc["row"]
        return out

    def save_trial(self, tid: str, params: dict[str, Any], row: dict[str, Any]) -> None:
        assert _ID.match(tid)
        write_json_atomic(self.path / TRIALS / f"{tid}.json", {"id": tid, "params": params, "row": row},
                          what="--out-dir", inputs=self.inputs)

    def save_table(self, df: Any) -> Path:
        return write_parquet_atomic(self.path / RESULTS, df, what="--out-dir", inputs=self.inputs)


def spec_json(spec: Any) -> dict[str, Any]:
    return json.loads(spec.model_dump_json())
