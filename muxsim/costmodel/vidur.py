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
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from muxsim.errors import InputError
from muxsim.gpus import GPUSpec
from muxsim.models import CATALOG, ModelSpec

# Vidur operator -> the cost model's kernel (see AnalyticCostModel.operator_ms)
OPERATORS = {"input_layernorm": "norm", "post_attention_layernorm": "norm", "attn_pre_proj": "qkv",
             "attn_rope": "rope", "attn_post_proj": "o", "mlp_up_proj": "up", "mlp_act": "act",
             "mlp_down_proj": "down", "add": "add", "emb": "embed"}
SHAPE = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size", "use_gated_mlp")
TOPOLOGY_FOLDERS = {"dgx": "nvswitch", "pairwise_nvlink": "pairwise-nvlink"}
MAX_FILES = 256  # bound the work: model folders read per GPU
MAX_ROWS = 1_000_000  # rows per file
CPU_COMPONENTS = ("schedule_median", "sampler_e2e_median", "prepare_inputs_e2e_median",
                  "process_model_outputs_median", "ray_comm_time_mean")


@dataclass(frozen=True)
class VidurModel:
    folder: str  # "org/model" as in the tree
    spec: ModelSpec
    matched: str  # "catalog" or "inline (shape only)"


def gpu_folder(root: Path, gpu: GPUSpec) -> str:
    """The compute folder name of ``gpu`` in the tree (``a100`` for ``a100-80gb``)."""
    name = gpu.name.split("-")[0]
    if not (root / "compute" / name).is_dir():
        found = sorted(p.name for p in (root / "compute").iterdir() if p.is_dir())
        raise InputError(f"vidur: no compute/{name}/ folder for {gpu.name} under {str(root)!r} "
                         f"(found: {', '.join(found) or 'none'})")
    return name


def profiling_root(path: str | Path) -> Path:
    """The ``data/profiling`` folder given it or a Vidur checkout holding it."""
    p = Path(path)
    for cand in (p, p / "data" / "profiling", p / "profiling"):
        if (cand / "compute").is_dir():
            return cand
    raise InputError(f"vidur: {str(p)!r} holds no compute/ folder (expected Vidur's data/profiling tree)")


def _csv(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.csv", f"{stem}.csv.xz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read(path: Path, need: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, nrows=MAX_ROWS + 1)
    except (OSError, ValueError, UnicodeDecodeError, EOFError, pd.errors.ParserError) as e:
        raise InputError(f"vidur {str(path)!r}: cannot read ({type(e).__name__}: {e})") from None
    if len(df) > MAX_ROWS:
        raise InputError(f"vidur {str(path)!r}: more than {MAX_ROWS} rows")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(f"vidur {str(path)!r}: missing column(s) {', '.join(missing)}")
    return df


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


def read_compute(root: Path, gpu: GPUSpec) -> tuple[pd.DataFrame, list[VidurModel]]:
    """Long table ``model, op, tokens, tp, ms`` (one row per operator and point; the median
    over repeated rows) and the model mapping. ``model`` is the folder (``org/name``)."""
    base = root / "compute" / gpu_folder(root, gpu)
    files = sorted(p for p in base.glob("*/*/") if p.is_dir() and _csv(p, "mlp"))
    if not files:
        raise InputError(f"vidur: no */*/mlp.csv under {str(base)!r}")
    if len(files) > MAX_FILES:
        raise InputError(f"vidur: {len(files)} model folders under {str(base)!r} (at most {MAX_FILES})")
    frames, models = [], []
    need = [*SHAPE, "num_tokens", "num_tensor_parallel_workers", "time_stats.attn_pre_proj.median"]
    for folder in files:
        path = _csv(folder, "mlp")
        df = _read(path, need)
        shapes = df[list(SHAPE)].drop_duplicates()
        if len(shapes) != 1:
            raise InputError(f"vidur {str(path)!r}: {len(shapes)} model shapes in one file (expected 1)")
        name = f"{folder.parent.name}/{folder.name}"
        vm = match_model(name, shapes.iloc[0].to_dict())
        models.append(vm)
        for op in OPERATORS:
            col = f"time_stats.{op}.median"
            if col not in df.columns:
                continue
            d = pd.DataFrame({"model": name, "op": op, "tokens": df["num_tokens"],
                              "tp": df["num_tensor_parallel_workers"], "ms": df[col]})
            frames.append(d)
    out = pd.concat(frames, ignore_index=True)
    for c in ("tokens", "tp", "ms"):
        out[c] = pd.to_numeric(out[c], errors="coerce")
    out = out[np.isfinite(out["ms"]) & (out["ms"] > 0) & (out["tokens"] >= 1) & (out["tp"] >= 1)]
    out = out.groupby(["model", "op", "tokens", "tp"], as_index=False, sort=True)["ms"].median()
    out["tokens"] = out["tokens"].astype(int)
    out["tp"] = out["tp"].astype(int)
    return out, models


def read_allreduce(root: Path, gpu: GPUSpec) -> pd.DataFrame:
    """``topology, tp, bytes, ms`` of single-node all-reduces (median over repeats)."""
    name = gpu.name.split("-")[0]
    frames = []
    for suffix, topo in TOPOLOGY_FOLDERS.items():
        path = _csv(root / "network" / f"{name}_{suffix}", "all_reduce")
        if path is None:
            continue
        df = _read(path, ["size", "num_workers", "devices_per_node", "time_stats.all_reduce.median"])
        one = df[(df["devices_per_node"] == df["num_workers"]) & (df["num_workers"] >= 2)]
        if "collective" in one.columns:
            one = one[one["collective"] == "all_reduce"]
        frames.append(pd.DataFrame({"topology": topo, "tp": one["num_workers"].astype(int),
                                    "bytes": one["size"].astype(float),
                                    "ms": one["time_stats.all_reduce.median"].astype(float)}))
    if not frames:
        return pd.DataFrame(columns=["topology", "tp", "bytes", "ms"])
    out = pd.concat(frames, ignore_index=True)
    out = out[np.isfinite(out["ms"]) & (out["ms"] > 0) & (out["bytes"] > 0)]
    return out.groupby(["topology", "tp", "bytes"], as_index=False, sort=True)["ms"].median()


def read_cpu_overheads(root: Path, gpu: GPUSpec, models: list[VidurModel]) -> pd.DataFrame | None:
    """Engine CPU time per decode step: ``model, vocab, tp, batch`` and the components."""
    path = _csv(root / "cpu_overheads" / gpu.name.split("-")[0], "cpu_overheads")
    if path is None:
        return None
    df = _read(path, ["model_name", "batch_size", "tensor_parallel_degree", *CPU_COMPONENTS])
    known = {m.folder: m.spec for m in models}
    vocab = []
    for name in df["model_name"].astype(str):
        spec = known.get(name)
        if spec is None:
            cands = [m for m in CATALOG.values() if m.name == _norm_name(name)]
            spec = cands[0] if cands else None
        vocab.append(spec.vocab if spec else np.nan)
    out = df[["model_name", "batch_size", "tensor_parallel_degree", *CPU_COMPONENTS]].rename(
        columns={"model_name": "model", "batch_size": "batch", "tensor_parallel_degree": "tp"})
    out["vocab"] = vocab
    return out[np.isfinite(out["vocab"])].reset_index(drop=True)


def allreduce_at(ar: pd.DataFrame, topology: str, tp: int, nbytes: np.ndarray) -> np.ndarray:
    """Measured all-reduce time at ``nbytes`` (linear between measured sizes; NaN outside)."""
    g = ar[(ar["topology"] == topology) & (ar["tp"] == tp)]
    if g.empty:
        return np.full(np.shape(nbytes), np.nan)
    x, y = g["bytes"].to_numpy(), g["ms"].to_numpy()
    out = np.interp(nbytes, x, y)
    return np.where((nbytes >= x[0]) & (nbytes <= x[-1]), out, np.nan)
