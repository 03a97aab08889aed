"""Decoder weights: Hugging Face LLaMA tensor names, random or read from safetensors.

Names follow ``LlamaForCausalLM``: ``model.embed_tokens.weight``,
``model.layers.{i}.input_layernorm.weight``, ``model.layers.{i}.self_attn.{q,k,v,o}_proj.weight``
(Q/K/V biases when the model has them), ``model.layers.{i}.post_attention_layernorm.weight``,
``model.layers.{i}.mlp.{gate,up,down}_proj.weight``, ``model.norm.weight``, ``lm_head.weight``.

Tensor parallelism (Megatron): Q, gate and up are split by rows, O and down by columns,
K and V by KV head (replicated when ``tp`` exceeds the KV heads), the LM head by
vocabulary rows when ``tp`` divides it; embeddings and norms are replicated.
The safetensors format is read and written here directly (an 8-byte header length, a
JSON header, raw little-endian tensors), so no extra dependency is needed.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from muxsim_kernels.names import check_weights_dir, full_shapes, read_header

from muxsim.models import ModelSpec

Weights = dict[str, torch.Tensor]


def _ranges(spec: ModelSpec, tp: int, rank: int) -> dict[str, tuple[int, int, int]]:
    """For each sharded tensor kind: (dim, start, stop) of this rank's slice."""
    d = spec.head_dim
    qh = spec.heads // tp
    kvh = max(1, spec.kv_heads // tp)
    kv0 = (rank * spec.kv_heads // tp) if tp <= spec.kv_heads else rank // (tp // spec.kv_heads)
    inter = spec.intermediate // tp
    out = {
        "q": (0, rank * qh * d, (rank + 1) * qh * d),
        "kv": (0, kv0 * d, (kv0 + kvh) * d),
        "o": (1, rank * qh * d, (rank + 1) * qh * d),
        "gate_up": (0, rank * inter, (rank + 1) * inter),
        "down": (1, rank * inter, (rank + 1) * inter),
    }
    if spec.vocab % tp == 0:
        v = spec.vocab // tp
        out["lm_head"] = (0, rank * v, (rank + 1) * v)
    return out


def check_shardable(spec: ModelSpec, tp: int) -> None:
    if spec.heads % tp or spec.intermediate % tp:
        raise ValueError(f"tp: {tp} must divide heads ({spec.heads}) and intermediate ({spec.intermediate})")
    if tp > spec.kv_heads and tp % spec.kv_heads:
        raise ValueError(f"tp: {tp} exceeds kv_heads ({spec.kv_heads}) and is not a multiple of it")


def _kind(name: str) -> str | None:
    if name.endswith(("q_proj.weight", "q_proj.bias")):
        return "q"
    if name.endswith(("k_proj.weight", "k_proj.bias", "v_proj.weight", "v_proj.bias")):
        return "kv"
    if name.endswith("o_proj.weight"):
        return "o"
    if name.endswith(("gate_proj.weight", "up_proj.weight")):
        return "gate_up"
    if name.endswith("down_proj.weight"):
        return "down"
    if name == "lm_head.weight":
        return "lm_head"
    return None


def local_shapes(spec: ModelSpec, tp: int = 1, rank: int = 0) -> dict[str, tuple[int, ...]]:
    check_shardable(spec, tp)
    ranges = _ranges(spec, tp, rank)
    out = {}
    for name, shape in full_shapes(spec).items():
        kind = _kind(name)
        if kind in ranges:
            dim, a, b = ranges[kind]
            shape = tuple(b - a if k == dim else s for k, s in enumerate(shape))
        out[name] = shape
    return out


def shard_weights(full: Weights, spec: ModelSpec, tp: int, rank: int) -> Weights:
    """This rank's slices of full (unsharded) weights."""
    check_shardable(spec, tp)
    ranges = _ranges(spec, tp, rank)
    out = {}
    for name, t in full.items():
        kind = _kind(name)
        if kind in ranges:
            dim, a, b = ranges[kind]
            t = t.narrow(dim, a, b - a).contiguous()
        out[name] = t
    return out


def random_weights(spec: ModelSpec, *, seed: int = 0, dtype: torch.dtype = torch.float32,
                   device: str = "cpu", tp: int = 1, rank: int = 0) -> Weights:
    """Random weights of this rank's shapes, scaled so activations stay O(1):
    projections ~ N(0, 1/fan_in), embeddings ~ N(0, 1), norms ~ 1 + N(0, 0.1^2)."""
    gen = torch.Generator(device=device).manual_seed(seed * 1009 + rank)
    out = {}
    for name, shape in local_shapes(spec, tp, rank).items():
        t = torch.randn(shape, generator=gen, device=device, dtype=torch.float32 if device == "cpu" else dtype)
        if name.endswith("norm.weight"):
            t = 1.0 + 0.1 * t
        elif len(shape) == 2 and name != "model.embed_tokens.weight":
            t = t * shape[1] ** -0.5
        elif name.endswith(".bias"):
            t = t * 0.1
        out[name] = t.to(dtype)
    return out


# ---- safetensors -----------------------------------------------------------------------

_ST_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "F64": torch.float64, "I64": torch.int64, "I32": torch.int32}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}


def read_safetensors(path: str | Path) -> Weights:
    header, start = read_header(path)
    data = Path(path).read_bytes()
    body = memoryview(data)[start:]
    out = {}
    for name, meta in header.items():
        a, b = meta["data_offsets"]
        dtype = _ST_DTYPES[meta["dtype"]]
        t = torch.frombuffer(bytearray(body[a:b]), dtype=dtype) if b > a else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(meta["shape"])
    return out


def write_safetensors(path: str | Path, tensors: Weights) -> None:
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(head)) + head + b"".join(chunks))


def load_weights_dir(path: str | Path, spec: ModelSpec, *, dtype: torch.dtype, device: str = "cpu",
                     tp: int = 1, rank: int = 0) -> Weights:
    """Every ``*.safetensors`` file of a directory, checked against ``spec``'s shapes."""
    try:
        files = check_weights_dir(path, spec)
    except ValueError as e:
        raise ValueError(f"weights: {e}") from None
    full: Weights = {}
    for f in files:
        full.update(read_safetensors(f))
    full = {k: full[k] for k in full_shapes(spec)}
    return {k: v.to(device=device, dtype=dtype) for k, v in shard_weights(full, spec, tp, rank).items()}
