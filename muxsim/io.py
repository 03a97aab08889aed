"""Atomic output: a file is either written whole or not at all."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to a temporary file beside ``path`` and rename it into place."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """Load JSON, turning a missing file or bad JSON into an InputError naming ``what``."""
    from muxsim.errors import InputError

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what}: file {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{what}: {str(p)!r} is a directory") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{what}: cannot read {str(p)!r} ({e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{what}: {str(p)!r} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def write_dir_atomic(path: str | os.PathLike[str], fill: Callable[[Path], None]) -> Path:
    """Build a folder: ``fill(tmp)`` writes into a fresh folder beside ``path``, which is
    then renamed into place (``path`` must be new or an empty folder), so the folder
    appears whole or not at all. The folder's mode follows the umask, like ``mkdir``."""
    import shutil

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent))
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)
        fill(tmp)
        os.replace(tmp, p)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return p


def write_parquet_atomic(path: str | os.PathLike[str], df: Any) -> Path:
    """Write a pandas DataFrame as Parquet (pyarrow, no index), whole or not at all."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), sink)
    return write_bytes_atomic(path, sink.getvalue().to_pybytes())
