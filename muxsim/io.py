"""Files in and out, the one place muxsim touches the file system for its users.

Inputs (workloads, plans, traces, profiles, parameters) are untrusted. They are read
only from regular files (a FIFO, a device or a directory is refused before anything is
read, so ``/dev/zero`` or a pipe cannot hang a run), up to a size limit, and JSON is
parsed with its failure modes (nesting too deep, integers of thousands of digits)
turned into :class:`~muxsim.errors.InputError`. Tables (CSV, JSON Lines, gzipped,
xz-compressed or not; decompressed up to a bound by :mod:`muxsim.decode`) keep text
columns as text (``NA``, ``None``, ``nan`` and ``01`` are names, not missing values or
numbers), and no error quotes a file's content: a file that is not a valid table may
be anything.

Outputs are written atomically: the bytes go to a temporary file beside the target,
which then replaces it (``os.replace``), so a file is either whole or untouched. Only a
regular file or a new path is ever replaced. :func:`check_output` refuses, before any
work starts, an empty path, a path ending in a slash, a missing folder, a directory, a
symbolic link, a special file (device, FIFO, socket) and any path that is also an input
(same resolved path, or same file through a hard link). An existing file keeps its
permission bits; a new one gets ``0o666`` less the umask, like any other program's.

Folders (run folders) are built the same way: in a temporary folder beside the target,
renamed into place whole. :func:`check_output_dir` accepts a new name or an empty
folder, and refuses what :func:`check_output` refuses (a trailing slash excepted), a
folder that is not empty, and a folder that is or holds an input. No writer creates a missing
folder above its output.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from muxsim.decode import gunzip, mib, read_parquet, unxz
from muxsim.errors import InputError, InputTypeError
from muxsim.limits import MAX_JSON_BYTES, MAX_TABLE_BYTES

PathLike = str | os.PathLike[str]
Named = tuple[str, PathLike]  # (what the path is called for the user, the path)


# ---- inputs --------------------------------------------------------------------------------
def _as_path(path: Any, what: str, noun: str = "file") -> Path:
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise InputTypeError(f"{what}: expected a {noun} path, got {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise InputError(f"{what}: expected a {noun} path, got {text!r}")
    if "\x00" in text:
        raise InputError(f"{what}: the path holds a NUL character")
    return Path(text)


def _why(e: OSError) -> str:
    return e.strerror or type(e).__name__


def _stat(p: Path, what: str, missing: str, verb: str) -> os.stat_result:
    """``p.stat()``, or an InputError: ``<what>: <missing>`` when nothing is there,
    ``<what>: cannot <verb> <p> (<why>)`` when it cannot be looked at."""
    try:
        return p.stat()
    except FileNotFoundError:
        raise InputError(f"{what}: {missing}") from None
    except OSError as e:
        raise InputError(f"{what}: cannot {verb} {str(p)!r} ({_why(e)})") from None


def check_input(path: Any, what: str, *, limit: int = MAX_JSON_BYTES) -> Path:
    """``path`` as a Path if it names a readable regular file of at most ``limit`` bytes."""
    p = _as_path(path, what)
    _check_regular(_stat(p, what, f"file {str(p)!r} does not exist", "read"), p, what, limit)
    return p


def _check_regular(st: os.stat_result, p: Path, what: str, limit: int) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{what}: {str(p)!r} is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what}: {str(p)!r} is not a regular file (a device, FIFO or socket)")
    if st.st_size > limit:
        raise InputError(f"{what}: {str(p)!r} is larger than the {mib(limit)} MiB a {what} may have")


def read_bytes(path: Any, what: str, *, limit: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (see :func:`check_input`)."""
    p = check_input(path, what, limit=limit)
    try:  # O_NONBLOCK: should the path have become a FIFO since the check, open does not wait
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise InputError(f"{what}: cannot read {str(p)!r} ({_why(e)})") from None
    with os.fdopen(fd, "rb") as f:
        _check_regular(os.fstat(f.fileno()), p, what, limit)
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise InputError(f"{what}: cannot read {str(p)!r} ({_why(e)})") from None
    if len(data) > limit:
        raise InputError(f"{what}: {str(p)!r} is larger than the {mib(limit)} MiB a {what} may have")
    return data


def read_text(path: Any, what: str, *, limit: int = MAX_JSON_BYTES) -> str:
    data = read_bytes(path, what, limit=limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{what}: {str(path)!r} is not UTF-8 text") from None


def loads_json(text: str | bytes, what: str, where: str | None = None) -> Any:
    """Parse JSON; every way it can fail is an InputError naming ``what`` (and ``where``,
    the file). ``NaN`` and ``Infinity`` parse (as Python's json reads them) and are then
    refused by the schema, which names the field."""
    src = f"{where!r} is not valid JSON" if where else "not valid JSON"
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{what}: {src} (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise InputError(f"{what}: {src} (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as e:  # integers of thousands of digits
        first = str(e).split(";")[0].split(":")[0]
        raise InputError(f"{what}: {src} ({first})") from None


def read_json(path: Any, what: str) -> Any:
    """Load a JSON document (a regular file of at most ``MAX_JSON_BYTES``)."""
    return loads_json(read_bytes(path, what), what, str(path))


# ---- tables ----------------------------------------------------------------------------
def read_table(path: str | Path, what: str, text_columns: Sequence[str] = ()) -> Any:
    """A CSV (``.csv``, ``.csv.gz``, ``.csv.xz``, anything not named otherwise), JSON
    Lines (``.jsonl``, ``.ndjson``, either compressed) or Parquet (``.parquet``) file as
    a DataFrame; ``text_columns`` are read as strings. Missing, unreadable, special,
    oversized or empty files raise :class:`InputError` naming ``what``."""
    return parse_table(read_table_bytes(path, what), path, what, text_columns)


def read_table_bytes(path: str | Path, what: str, *, limit: int = MAX_TABLE_BYTES) -> bytes:
    """The bytes of a table file, ``.gz`` and ``.xz`` decompressed: at most ``limit``
    bytes read and at most ``limit`` once decompressed (a decompression bomb stops there)."""
    data = read_bytes(path, what, limit=limit)
    p = Path(path)
    if p.name.endswith(".gz"):
        data = gunzip(data, p, what, limit)
    elif p.name.endswith(".xz"):
        data = unxz(data, p, what, limit)
    return data


def parse_table(data: bytes, path: str | Path, what: str, text_columns: Sequence[str] = ()) -> Any:
    """The table in ``data`` (see :func:`read_table`; ``path`` names its format)."""
    import pandas as pd  # only tables need it; `muxsim --help` stays light

    p = Path(path)
    jsonl = p.name.removesuffix(".gz").removesuffix(".xz").endswith((".jsonl", ".ndjson"))
    try:
        if p.name.endswith(".parquet"):
            table = read_parquet(data, p, what)
            for c in text_columns:
                if c in table.columns:
                    table[c] = table[c].astype(str)
        elif jsonl:
            table = pd.read_json(io.BytesIO(data), lines=True, precise_float=True, dtype=False)
        else:
            table = pd.read_csv(io.BytesIO(data), dtype={c: str for c in text_columns}, keep_default_na=False)
    except InputError:
        raise
    except pd.errors.EmptyDataError:
        raise InputError(f"{what}: file {str(p)!r} is empty") from None
    except (OSError, ValueError, UnicodeDecodeError, RecursionError, OverflowError, pd.errors.ParserError):
        # pandas' messages can quote the file; say only that it is not a table
        kind = "JSON Lines" if jsonl else "CSV"
        raise InputError(f"{what}: cannot read {str(p)!r} as {kind}") from None
    if len(table) == 0:
        raise InputError(f"{what}: file {str(p)!r} has no rows")
    table.columns = [str(c) for c in table.columns]
    return table


# ---- outputs -------------------------------------------------------------------------------
def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        sa, sb = a.stat(), b.stat()
    except (OSError, ValueError):
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _check_folder(folder: Path, what: str) -> None:
    """The folder an output goes into exists, is a folder and may be written in
    (muxsim never creates a missing folder above an output)."""
    st = _stat(folder, what, f"folder {str(folder)!r} does not exist", "use folder")
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{what}: {str(folder)!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{what}: cannot write in folder {str(folder)!r}")


def _lstat(p: Path, what: str) -> os.stat_result | None:
    try:
        return os.lstat(p)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise InputError(f"{what}: cannot use {str(p)!r} ({_why(e)})") from None


def _refuse_link_or_special(st: os.stat_result, text: str, what: str, folder: bool) -> None:
    kind = "new or empty folders" if folder else "regular files"
    if stat.S_ISLNK(st.st_mode):
        raise InputError(f"{what}: {text!r} is a symbolic link; muxsim replaces only {kind}")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        what_it_is = "is a device, FIFO or socket" if folder else "is not a regular file (a device, FIFO or socket)"
        raise InputError(f"{what}: {text!r} {what_it_is}; muxsim replaces only {kind}")


def _below(q: Path, p: Path) -> bool:
    """``q`` is ``p`` or lies below it (paths resolved, links followed)."""
    rq, rp = os.path.realpath(q), os.path.realpath(p)
    return rq == rp or rq.startswith(rp.rstrip(os.sep) + os.sep)


def check_output(path: Any, what: str = "out", inputs: Iterable[Named] = ()) -> Path:
    """``path`` as a Path if muxsim may write there (see the module docstring); raises
    :class:`InputError` naming ``what`` otherwise. Run before the work starts."""
    p = _as_path(path, what)
    text = os.fspath(path)
    if text.endswith(("/", os.sep)) or p.name in ("", ".", ".."):
        raise InputError(f"{what}: {text!r} names a directory; give a file name")
    _check_folder(p.parent, what)
    st = _lstat(p, what)
    if st is not None:
        _refuse_link_or_special(st, text, what, folder=False)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{what}: {text!r} is a directory; give a file name")
    for in_what, in_path in inputs:
        if in_path is None:
            continue
        q = Path(os.fspath(in_path))
        if _same_file(p, q):
            raise InputError(f"{what}: {text!r} is also the {in_what}; write the output elsewhere")
    return p


def check_output_dir(path: Any, what: str = "--out-dir", inputs: Iterable[Named] = ()) -> Path:
    """``path`` as a folder muxsim may build (a run folder): a new name in an existing
    folder, or an empty folder. Refused like a file (:func:`check_output`): an empty
    path, ``.`` and ``..``, a missing folder above it (never created), a symbolic link, a
    regular or special file; and a folder that is not empty, or that is or holds an
    input. A trailing slash is allowed. Run before the work starts."""
    p = _as_path(path, what, "folder")
    text = os.fspath(path)
    if p.name in ("", ".", ".."):
        raise InputError(f"{what}: {text!r} names no new folder; give a folder's name")
    _check_folder(p.parent, what)
    for in_what, in_path in inputs:
        if in_path is not None and _below(Path(os.fspath(in_path)), p):
            raise InputError(f"{what}: {text!r} is or holds the {in_what}; write the run folder elsewhere")
    st = _lstat(p, what)
    if st is not None:
        _refuse_link_or_special(st, text, what, folder=True)
        if not stat.S_ISDIR(st.st_mode):
            raise InputError(f"{what}: {text!r} exists and is not a folder")
        try:
            empty = next(os.scandir(p), None) is None
        except OSError as e:
            raise InputError(f"{what}: cannot use {text!r} ({_why(e)})") from None
        if not empty:
            raise InputError(f"{what}: {text!r} is not empty (give a new folder, or empty this one)")
    return p


def check_outputs(outputs: Sequence[Named], inputs: Iterable[Named] = (), dirs: Sequence[Named] = ()) -> list[Path]:
    """:func:`check_output` for each file ``(what, path)`` of ``outputs`` and
    :func:`check_output_dir` for each folder of ``dirs`` (None paths skipped); no two
    outputs the same file, and no file inside an output folder."""
    inputs = [(w, p) for w, p in inputs if p is not None]
    folders = [(w, p) for w, p in dirs if p is not None]
    for what, path in folders:
        check_output_dir(path, what, inputs)
    done: list[Named] = []
    out = []
    for what, path in outputs:
        if path is None:
            continue
        out.append(check_output(path, what, [*inputs, *done]))
        for dir_what, folder in folders:
            if _below(Path(os.fspath(path)), Path(os.fspath(folder))):
                raise InputError(f"{what}: {os.fspath(path)!r} lies in the {dir_what} folder; write it elsewhere")
        done.append((what, path))
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _mode_for(st: os.stat_result | None) -> int:
    return stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask()


def write_bytes_atomic(path: PathLike, data: bytes, *, what: str = "out", inputs: Iterable[Named] = ()) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place
    (``path`` checked again by :func:`check_output`)."""
    p = check_output(path, what, inputs)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        st = None
    mode = _mode_for(st)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise InputError(f"{what}: cannot write {str(p)!r} ({_why(e)})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, p)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise InputError(f"{what}: cannot write {str(p)!r} ({_why(e)})") from None
        raise
    return p


def write_text_atomic(path: PathLike, text: str, *, what: str = "out", inputs: Iterable[Named] = ()) -> Path:
    """Write ``text`` (UTF-8) atomically; see :func:`write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode("utf-8"), what=what, inputs=inputs)


def finite_json(obj: Any) -> Any:
    """``obj`` with every float that is not finite replaced by None (JSON ``null``):
    standard JSON has no NaN or Infinity, and muxsim never writes them."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    return obj


def dumps_json(obj: Any, indent: int | None = 2) -> str:
    """JSON text of ``obj`` as muxsim prints and writes it: standard JSON only."""
    try:
        return json.dumps(obj, indent=indent, allow_nan=False)
    except ValueError:
        return json.dumps(finite_json(obj), indent=indent, allow_nan=False)


def write_json_atomic(path: PathLike, obj: Any, *, what: str = "out", inputs: Iterable[Named] = ()) -> Path:
    return write_text_atomic(path, dumps_json(obj) + "\n", what=what, inputs=inputs)


def write_parquet_atomic(path: PathLike, df: Any, *, what: str = "out", inputs: Iterable[Named] = ()) -> Path:
    """Write a pandas DataFrame as Parquet (pyarrow, no index), whole or not at all."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), sink)
    return write_bytes_atomic(path, sink.getvalue().to_pybytes(), what=what, inputs=inputs)


def write_dir_atomic(path: PathLike, fill: Callable[[Path], None], *, what: str = "--out-dir",
                     inputs: Iterable[Named] = ()) -> Path:
    """Build a folder: ``fill(tmp)`` writes into a fresh folder beside ``path``, which is
    then renamed into place, so the folder appears whole or not at all. ``path`` is
    checked again by :func:`check_output_dir` (new or empty; the folder above it is
    never created). The folder's mode follows the umask, like ``mkdir``."""
    import shutil

    p = check_output_dir(path, what, inputs)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent))
    except OSError as e:
        raise InputError(f"{what}: cannot write {str(p)!r} ({_why(e)})") from None
    try:
        st = _lstat(p, what)  # an empty folder's mode is kept, like a file's
        os.chmod(tmp, stat.S_IMODE(st.st_mode) if st is not None else 0o777 & ~_umask())
        fill(tmp)
        os.replace(tmp, p)  # over an empty folder, or a new name; a folder filled meanwhile fails
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise InputError(f"{what}: cannot write {str(p)!r} ({_why(e)})") from None
        raise
    return p
