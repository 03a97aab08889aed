"""Read a Vidur ``data/profiling`` tree: operator, all-reduce and engine-overhead timings.

Vidur (Agrawal et al., MLSys 2024) publishes per-operator GPU timings in this layout
(each CSV plain or xz-compressed, ``.csv.xz``)::

    compute/<gpu>/<org>/<model>/mlp.csv       per (num_tokens, TP): median ms per layer of
                                              each operator of one decoder block
    network/<gpu>_dgx/all_reduce.csv          NCCL all-reduce on an NVSwitch node
    network/<gpu>_pairwise_nvlink/all_reduce.csv   ... on a node NVLinked in pairs
    cpu_overheads/<gpu>/cpu_overheads.csv     the engine's CPU time per decode step

``<gpu>`` is the first part of a catalog name (``a100`` for ``a100-80gb``). A model folder
is matched to a catalog architecture by its shape columns (heads, KV heads, hidden size,
MLP width, gated MLP), ties broken by the folder's name and the vocabulary; a shape that
no catalog entry has becomes an inline architecture (one layer: the timings are per layer).

The tree is input like any other: files are read through :mod:`muxsim.io` (regular files
only, each bounded, ``.xz`` decompressed up to a bound), one GPU's files hold at most
``MAX_TABLE_BYTES`` and ``MAX_PROFILE_ROWS`` rows in all, folders are listed up to
``MAX_VIDUR_ENTRIES`` entries and ``MAX_VIDUR_MODELS`` model folders, and an error names
the file and column, never a cell.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from muxsim.errors import InputError, InputTypeError
from muxsim.gpus import GPUSpec
from muxsim.limits import (
    MAX_BATCH,
    MAX_GPUS_PER_NODE,
    MAX_MESSAGE_BYTES,
    MAX_PROFILE_ROWS,
    MAX_STEP_MS,
    MAX_TABLE_BYTES,
    MAX_TOKENS,
    MAX_VIDUR_ENTRIES,
    MAX_VIDUR_MODELS,
)
from muxsim.models import CATALOG, ModelSpec

# Vidur operator -> the cost model's kernel (see AnalyticCostModel.operator_ms)
OPERATORS = {"input_layernorm": "norm", "post_attention_layernorm": "norm", "attn_pre_proj": "qkv",
             "attn_rope": "rope", "attn_post_proj": "o", "mlp_up_proj": "up", "mlp_act": "act",
             "mlp_down_proj": "down", "add": "add", "emb": "embed"}
SHAPE = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size", "use_gated_mlp")
TOPOLOGY_FOLDERS = {"dgx": "nvswitch", "pairwise_nvlink": "pairwise-nvlink"}
CPU_COMPONENTS = ("schedule_median", "sampler_e2e_median", "prepare_inputs_e2e_median",
                  "process_model_outputs_median", "ray_comm_time_mean")


@dataclass(frozen=True)
class VidurModel:
    folder: str  # "org/model" as in the tree
    spec: ModelSpec
    matched: str  # "catalog" or "inline (shape only)"


@dataclass(frozen=True)
class VidurFiles:
    """The files of one GPU in a Vidur tree (what a fit reads; nothing is read yet)."""

    root: Path
    compute: tuple[tuple[str, Path], ...]  # ("org/model", its mlp.csv[.xz])
    allreduce: tuple[tuple[str, Path], ...]  # (topology, its all_reduce.csv[.xz])
    cpu: Path | None

    def paths(self) -> list[Path]:
        return [*(f for _, f in self.compute), *(f for _, f in self.allreduce), *([self.cpu] if self.cpu else [])]

    def relative(self) -> list[str]:
        """The files as paths under the tree's root, sorted (the provenance's ``files``)."""
        return sorted(str(p.relative_to(self.root)) for p in self.paths())


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:
        return False


def gpu_folders(root: Path) -> list[str]:
    """The GPU folders under ``compute/`` (``a100``, ``h100``, ...)."""
    return [p.name for p in _subfolders(root / "compute", "compute")]


def gpu_folder(root: Path, gpu: GPUSpec) -> str:
    """The compute folder name of ``gpu`` in the tree (``a100`` for ``a100-80gb``)."""
    name = gpu.name.split("-")[0]
    if not _is_dir(root / "compute" / name):
        found = gpu_folders(root)
        raise InputError(f"vidur: no compute/{name}/ folder for {gpu.name} under {str(root)!r} "
                         f"(found: {', '.join(found) or 'none'})")
    return name


def profiling_root(path: str | Path) -> Path:
    """The ``data/profiling`` folder given it or a Vidur checkout holding it."""
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise InputTypeError(f"vidur: expected the path of a folder, got {type(path).__name__}")
    if not os.fspath(path) or "\x00" in os.fspath(path):
        raise InputError(f"vidur: expected the path of a folder, got {os.fspath(path)[:40]!r}")
    p = Path(path)
    for cand in (p, p / "data" / "profiling", p / "profiling"):
        if _is_dir(cand / "compute"):
            return cand
    raise InputError(f"vidur: {str(p)!r} holds no compute/ folder (expected Vidur's data/profiling tree)")


def _subfolders(folder: Path, where: str) -> list[Path]:
    """The folders in ``folder``, sorted; at most MAX_VIDUR_ENTRIES entries are looked at."""
    try:
        with os.scandir(folder) as it:
            entries = list(itertools.islice(it, MAX_VIDUR_ENTRIES + 1))
    except OSError as e:
        raise InputError(f"vidur: cannot list {where}/ ({e.strerror or type(e).__name__})") from None
    if len(entries) > MAX_VIDUR_ENTRIES:
        raise InputError(f"vidur: {where}/ holds more than {MAX_VIDUR_ENTRIES} entries")
    return sorted(Path(e.path) for e in entries if _is_dir(Path(e.path)))


def _csv(folder: Path, stem: str) -> Path | None:
    """``<stem>.csv`` or ``<stem>.csv.xz`` in ``folder`` if either name exists (whatever it
    is: the reader refuses anything but a regular file)."""
    for name in (f"{stem}.csv", f"{stem}.csv.xz"):
        if os.path.lexists(folder / name):
            return folder / name
    return None


def tree_files(path: str | Path, gpu: GPUSpec) -> VidurFiles:
    """The files of ``gpu`` in the Vidur tree at ``path`` (see the module docstring);
    at most MAX_VIDUR_MODELS model folders."""
    root = profiling_root(path)
    g = gpu_folder(root, gpu)
    compute = []
    for org in _subfolders(root / "compute" / g, f"compute/{g}"):
        for folder in _subfolders(org, f"compute/{g}/{org.name}"):
            f = _csv(folder, "mlp")
            if f is not None:
                compute.append((f"{org.name}/{folder.name}", f))
                if len(compute) > MAX_VIDUR_MODELS:
                    raise InputError(f"vidur: more than {MAX_VIDUR_MODELS} model folders under compute/{g}/")
    if not compute:
        raise InputError(f"vidur: no */*/mlp.csv under {str(root / 'compute' / g)!r}")
    allreduce = [(topo, f) for suffix, topo in TOPOLOGY_FOLDERS.items()
                 if (f := _csv(root / "network" / f"{g}_{suffix}", "all_reduce")) is not None]
    return VidurFiles(root, tuple(compute), tuple(allreduce), _csv(root / "cpu_overheads" / g, "cpu_overheads"))


class _Reader:
    """Reads the tree's tables through :mod:`muxsim.io` (regular files only, each bounded,
    ``.xz`` decompression bounded); all files together hold at most MAX_TABLE_BYTES and
    MAX_PROFILE_ROWS rows once decompressed. Errors name the file, never its content."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bytes_left = MAX_TABLE_BYTES
        self.rows_left = MAX_PROFILE_ROWS

    def __call__(self, path: Path, need: list[str], text: tuple[str, ...] = ()) -> pd.DataFrame:
        from muxsim.io import parse_table, read_table_bytes

        what = f"vidur {str(path.relative_to(self.root))!r}"
        if self.bytes_left <= 0:
            raise InputError(f"{what}: the tree holds more than {MAX_TABLE_BYTES >> 20} MiB of tables")
        data = read_table_bytes(path, "vidur file", limit=self.bytes_left)
        self.bytes_left -= len(data)
        df = parse_table(data, path, "vidur file", text)
        self.rows_left -= len(df)
        if self.rows_left < 0:
            raise InputError(f"{what}: the tree holds more than {MAX_PROFILE_ROWS:,} rows")
        missing = [c for c in need if c not in df.columns]
        if missing:
            shown = ", ".join(c if len(c) <= 60 else c[:57] + "..." for c in missing)
            raise InputError(f"{what}: missing column(s) {shown}")
        return df


def _floats(col: pd.Series) -> pd.Series:
    """A column as floats: text that is no number is NaN, an integer too large for a
    float is infinite (both are then refused or left out by the range checks)."""
    try:
        return pd.to_numeric(col, errors="coerce").astype(float)
    except (OverflowError, ValueError, TypeError):
        def one(x: object) -> float:
            try:
                return float(x)  # type: ignore[arg-type]
            except OverflowError:
                return math.inf if not str(x).startswith("-") else -math.inf
            except (TypeError, ValueError):
                return math.nan

        return col.map(one).astype(float)


def _numbers(df: pd.DataFrame, cols: list[str], what: str) -> None:
    """Columns ``cols`` as numbers (in place); a cell that is not one is an error naming
    the column and row, not quoting the cell."""
    for c in cols:
        vals = _floats(df[c])
        bad = vals.isna() & df[c].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{what}: row {i + 1}: {c} is not a number")
        df[c] = vals


def _norm_name(s: str) -> str:
    s = s.lower().split("/")[-1]
    s = re.sub(r"^meta-", "", s)
    return re.sub(r"-(hf|instruct|chat)\b", "", s)


def match_model(folder: str, shape: dict) -> VidurModel:
    """The catalog architecture with ``shape`` (Vidur's shape columns), else an inline one."""
    gated = bool(shape["use_gated_mlp"])
    cands = [m for m in CATALOG.values()
             if (m.heads, m.kv_heads, m.hidden, m.intermediate, m.gated_mlp)
             == (shape["n_head"], shape["n_kv_head"], shape["n_embd"], shape["n_expanded_embd"], gated)]
    if cands:
        want = _norm_name(folder)
        best = max(cands, key=lambda m: (round(difflib.SequenceMatcher(None, want, m.name).ratio(), 6),
                                         m.vocab == shape["vocab_size"], m.name))
        return VidurModel(folder, best, "catalog")
    spec = ModelSpec(name=_norm_name(folder), layers=1, hidden=int(shape["n_embd"]), heads=int(shape["n_head"]),
                     kv_heads=int(shape["n_kv_head"]), intermediate=int(shape["n_expanded_embd"]),
                     vocab=int(shape["vocab_size"]), gated_mlp=gated)
    return VidurModel(folder, spec, "inline (shape only)")


def read_tree(files: VidurFiles) -> tuple[pd.DataFrame, list[VidurModel], pd.DataFrame, pd.DataFrame | None]:
    """(compute, models, all-reduce, CPU overheads) of one GPU's files (see the read_* below)."""
    read = _Reader(files.root)
    compute, models = read_compute(files, read)
    return compute, models, read_allreduce(files, read), read_cpu_overheads(files, read, models)


def read_compute(files: VidurFiles, read: _Reader) -> tuple[pd.DataFrame, list[VidurModel]]:
    """Long table ``model, op, tokens, tp, ms`` (one row per operator and point; the median
    over repeated rows) and the model mapping. ``model`` is the folder (``org/name``)."""
    frames, models = [], []
    need = [*SHAPE, "num_tokens", "num_tensor_parallel_workers", "time_stats.attn_pre_proj.median"]
    for name, path in files.compute:
        df = read(path, need)
        what = f"vidur {str(path.relative_to(files.root))!r}"
        _numbers(df, [*SHAPE, "num_tokens", "num_tensor_parallel_workers"], what)
        shapes = df[list(SHAPE)].drop_duplicates()
        if len(shapes) != 1:
            raise InputError(f"{what}: {len(shapes)} model shapes in one file (expected 1)")
        shape = shapes.iloc[0].to_dict()
        for k in SHAPE:
            v = shape[k]
            if not (math.isfinite(v) and float(v).is_integer() and 0 <= v <= 1 << 30):
                raise InputError(f"{what}: {k} must be a whole number, got {v:.6g}")
            shape[k] = int(v)
        models.append(match_model(name, shape))
        for op in OPERATORS:
            col = f"time_stats.{op}.median"
            if col not in df.columns:
                continue
            frames.append(pd.DataFrame({"model": name, "op": op, "tokens": df["num_tokens"],
                                        "tp": df["num_tensor_parallel_workers"],
                                        "ms": _floats(df[col])}))
    out = pd.concat(frames, ignore_index=True)
    ok = (np.isfinite(out["ms"]) & (out["ms"] > 0) & (out["tokens"] >= 1) & (out["tokens"] <= MAX_TOKENS)
          & (out["tp"] >= 1) & (out["tp"] <= MAX_GPUS_PER_NODE))
    out = out[ok & (out["tokens"] == np.rint(out["tokens"])) & (out["tp"] == np.rint(out["tp"]))]
    out = out.groupby(["model", "op", "tokens", "tp"], as_index=False, sort=True)["ms"].median()
    out["tokens"] = out["tokens"].astype(int)
    out["tp"] = out["tp"].astype(int)
    return out, models


def read_allreduce(files: VidurFiles, read: _Reader) -> pd.DataFrame:
    """``topology, tp, bytes, ms`` of single-node all-reduces (median over repeats)."""
    frames = []
    for topo, path in files.allreduce:
        df = read(path, ["size", "num_workers", "devices_per_node", "time_stats.all_reduce.median"], ("collective",))
        _numbers(df, ["size", "num_workers", "devices_per_node"], f"vidur {str(path.relative_to(files.root))!r}")
        ms = _floats(df["time_stats.all_reduce.median"])
        one = (df["devices_per_node"] == df["num_workers"]) & (df["num_workers"] >= 2) \
            & (df["num_workers"] <= MAX_GPUS_PER_NODE) & (df["num_workers"] == np.rint(df["num_workers"]))
        if "collective" in df.columns:
            one &= df["collective"] == "all_reduce"
        frames.append(pd.DataFrame({"topology": topo, "tp": df.loc[one, "num_workers"].astype(int),
                                    "bytes": df.loc[one, "size"].astype(float), "ms": ms[one].astype(float)}))
    if not frames:
        return pd.DataFrame(columns=["topology", "tp", "bytes", "ms"])
    out = pd.concat(frames, ignore_index=True)
    out = out[np.isfinite(out["ms"]) & (out["ms"] > 0) & np.isfinite(out["bytes"]) & (out["bytes"] > 0)
              & (out["bytes"] <= MAX_MESSAGE_BYTES)]
    return out.groupby(["topology", "tp", "bytes"], as_index=False, sort=True)["ms"].median()


def read_cpu_overheads(files: VidurFiles, read: _Reader, models: list[VidurModel]) -> pd.DataFrame | None:
    """Engine CPU time per decode step: ``model, vocab, tp, batch`` and the components."""
    if files.cpu is None:
        return None
    cols = ["batch_size", "tensor_parallel_degree", *CPU_COMPONENTS]
    df = read(files.cpu, ["model_name", *cols], ("model_name",))
    _numbers(df, cols, f"vidur {str(files.cpu.relative_to(files.root))!r}")
    known = {m.folder: m.spec for m in models}
    vocab = []
    for name in df["model_name"].astype(str):
        spec = known.get(name)
        if spec is None:
            cands = [m for m in CATALOG.values() if m.name == _norm_name(name)]
            spec = cands[0] if cands else None
        vocab.append(spec.vocab if spec else np.nan)
    out = df[["model_name", *cols]].rename(
        columns={"model_name": "model", "batch_size": "batch", "tensor_parallel_degree": "tp"})
    out["vocab"] = vocab
    ok = np.isfinite(out["vocab"]) & (out["batch"] >= 1) & (out["batch"] <= MAX_BATCH) & (out["tp"] >= 1) \
        & (out["tp"] <= MAX_GPUS_PER_NODE)
    for c in CPU_COMPONENTS:
        ok &= np.isfinite(out[c]) & (out[c] >= 0) & (out[c] <= MAX_STEP_MS)
    return out[ok].reset_index(drop=True)


def allreduce_at(ar: pd.DataFrame, topology: str, tp: int, nbytes: np.ndarray) -> np.ndarray:
    """Measured all-reduce time at ``nbytes`` (linear between measured sizes; NaN outside)."""
    g = ar[(ar["topology"] == topology) & (ar["tp"] == tp)]
    if g.empty:
        return np.full(np.shape(nbytes), np.nan)
    x, y = g["bytes"].to_numpy(), g["ms"].to_numpy()
    out = np.interp(nbytes, x, y)
    return np.where((nbytes >= x[0]) & (nbytes <= x[-1]), out, np.nan)
