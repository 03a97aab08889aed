"""Hugging Face LLaMA tensor names and shapes, and safetensors headers: torch-free.

What a checkpoint must hold for a :class:`~muxsim.models.ModelSpec` (``full_shapes``)
and what a ``.safetensors`` file says it holds (``read_header``), so that a weights
folder is checked in the parent process before any worker starts (``muxsim profile
--weights``). ``muxsim_kernels.weights`` reads the tensors themselves.

A safetensors file is an 8-byte little-endian header length ``n``, ``n`` bytes of JSON
(tensor name -> ``{"dtype", "shape", "data_offsets": [begin, end]}``, offsets relative
to the end of the header) and the raw tensors.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from muxsim.models import ModelSpec

ITEM_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4}
MAX_HEADER_BYTES = 100 << 20


def _layer(i: int, name: str) -> str:
    return f"model.layers.{i}.{name}"


def full_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    h, qd, kd, i = spec.hidden, spec.q_dim, spec.kv_dim, spec.intermediate
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (spec.vocab, h)}
    for layer in range(spec.layers):
        shapes[_layer(layer, "input_layernorm.weight")] = (h,)
        shapes[_layer(layer, "self_attn.q_proj.weight")] = (qd, h)
        shapes[_layer(layer, "self_attn.k_proj.weight")] = (kd, h)
        shapes[_layer(layer, "self_attn.v_proj.weight")] = (kd, h)
        if spec.qkv_bias:
            for p in "qkv":
                shapes[_layer(layer, f"self_attn.{p}_proj.bias")] = (qd if p == "q" else kd,)
        shapes[_layer(layer, "self_attn.o_proj.weight")] = (h, qd)
        shapes[_layer(layer, "post_attention_layernorm.weight")] = (h,)
        shapes[_layer(layer, "mlp.gate_proj.weight")] = (i, h)
        shapes[_layer(layer, "mlp.up_proj.weight")] = (i, h)
        shapes[_layer(layer, "mlp.down_proj.weight")] = (h, i)
    shapes["model.norm.weight"] = (h,)
    if not spec.tie_embeddings:
        shapes["lm_head.weight"] = (spec.vocab, h)
    return shapes


def read_header(path: str | Path) -> tuple[dict[str, dict[str, Any]], int]:
    """The tensors a safetensors file holds (name -> dtype, shape, data_offsets) and
    where its data begins; ValueError when the header is malformed or points outside
    the file."""
    p = Path(path)
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{p.name}: not a safetensors file (no header)")
        (n,) = struct.unpack("<Q", head)
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise ValueError(f"{p.name}: not a safetensors file (header length {n})")
        try:
            header = json.loads(f.read(n))
        except (ValueError, RecursionError):
            raise ValueError(f"{p.name}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{p.name}: not a safetensors file (header is not an object)")
    data = size - 8 - n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        ok = (isinstance(meta, dict) and meta.get("dtype") in ITEM_BYTES and isinstance(meta.get("shape"), list)
              and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in meta["shape"])
              and isinstance(meta.get("data_offsets"), list) and len(meta["data_offsets"]) == 2
              and all(isinstance(o, int) and not isinstance(o, bool) for o in meta["data_offsets"]))
        if not ok:
            raise ValueError(f"{p.name}: tensor {name[:80]!r} has a malformed header entry")
        a, b = meta["data_offsets"]
        if not 0 <= a <= b <= data or b - a != math.prod(meta["shape"]) * ITEM_BYTES[meta["dtype"]]:
            raise ValueError(f"{p.name}: tensor {name[:80]!r} lies outside the file or has the wrong size")
        out[name] = meta
    return out, 8 + n


def check_weights_dir(path: str | Path, spec: ModelSpec) -> list[Path]:
    """The ``*.safetensors`` files of a folder, checked (headers only) to hold every
    tensor ``spec`` needs at its shape; ValueError naming the first problem."""
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        raise ValueError(f"no *.safetensors files in {str(path)!r}")
    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        if not f.is_file():
            raise ValueError(f"{f.name} is not a regular file")
        header, _ = read_header(f)
        shapes.update({k: tuple(v["shape"]) for k, v in header.items()})
    want = full_shapes(spec)
    missing = sorted(set(want) - set(shapes))
    if missing:
        raise ValueError(f"{str(path)!r} lacks {missing[0]} (and {len(missing) - 1} more)")
    for name, shape in want.items():
        if shapes[name] != shape:
            raise ValueError(f"{name} has shape {shapes[name]}, the model needs {shape}")
    return files
