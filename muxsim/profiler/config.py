"""What to measure: the model, the grid of (phase, batch, seq_len) points, SM shares.

Plain data and validation only (no torch): the command line builds a
:class:`ProfileConfig`, the runner hands its points to worker processes.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from muxsim.errors import InputError
from muxsim.limits import MAX_BATCH, MAX_GPUS_PER_NODE
from muxsim.models import ModelSpec, resolve_model

TINY_NAME = re.compile(r"^tiny-(\d+)l-(\d+)h$")

# Default grids. GPU: the shapes a serving engine meets; CPU: tiny, seconds in total.
GPU_GRID = {
    "prefill_batches": [1, 2, 4, 8, 16],
    "prefill_seq_lens": [64, 128, 256, 512, 1024, 2048],
    "decode_batches": [1, 2, 4, 8, 16, 32, 64, 128, 256],
    "decode_seq_lens": [64, 128, 256, 512, 1024, 2048],
    "max_prefill_tokens": 16384,
}
CPU_GRID = {
    "prefill_batches": [1, 2, 4],
    "prefill_seq_lens": [16, 32, 64],
    "decode_batches": [1, 4, 16],
    "decode_seq_lens": [16, 64, 128],
    "max_prefill_tokens": 256,
}


def tiny_model(name: str) -> ModelSpec:
    """``tiny-<L>l-<H>h``: L layers, hidden H, head_dim 16, MHA, MLP 2H, vocab 256."""
    m = TINY_NAME.match(name)
    if not m:
        raise InputError(f"model: {name!r} is not of the form tiny-<layers>l-<hidden>h")
    layers, hidden = int(m.group(1)), int(m.group(2))
    if layers < 1 or hidden < 16 or hidden % 16:
        raise InputError(f"model: {name!r} needs >= 1 layer and a hidden size that is a multiple of 16")
    return ModelSpec(name, layers=layers, hidden=hidden, heads=hidden // 16, kv_heads=hidden // 16,
                     intermediate=2 * hidden, vocab=256, dtype="float32")


def model_from_arg(text: str) -> tuple[str, ModelSpec]:
    """A catalog name, ``tiny-<L>l-<H>h``, an inline JSON architecture, or a config.json."""
    s = text.strip()
    if TINY_NAME.match(s.lower()):
        spec = tiny_model(s.lower())
        return spec.name, spec
    if s.startswith("{"):
        from muxsim.io import loads_json

        arch = loads_json(s, "model", "the inline architecture")
        spec = resolve_model(arch)
        if not isinstance(arch, dict) or "name" not in arch:
            spec = ModelSpec.from_dict({**arch, "name": f"tiny-{spec.layers}l-{spec.hidden}h"})
        return spec.name, spec
    spec = resolve_model(s)
    return spec.name, spec


def parse_ints(text: str | None, field_name: str, *, lo: int = 1, hi: int | None = None) -> list[int] | None:
    if text is None:
        return None
    if len(str(text)) > 10_000:
        raise InputError(f"{field_name}: the list is too long")
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if len(part) > 20:
                raise ValueError
            v = int(part)
        except ValueError:
            shown = repr(part) if len(part) <= 20 else f"a {len(part)}-character value"
            raise InputError(f"{field_name}: {shown} is not an integer") from None
        if v < lo or (hi is not None and v > hi):
            rng = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise InputError(f"{field_name}: {v} must be {rng}")
        out.append(v)
    if not out:
        raise InputError(f"{field_name}: empty list")
    return sorted(set(out))


def parse_shape(text: str, field_name: str) -> tuple[int, int]:
    """``BxS``: batch x seq_len."""
    parts = str(text).lower().split("x")
    if len(parts) != 2:
        raise InputError(f"{field_name}: expected BATCHxSEQ_LEN such as 4x128, got {text!r}")
    b = parse_ints(parts[0], f"{field_name} batch")
    s = parse_ints(parts[1], f"{field_name} seq_len")
    assert b and s
    return b[0], s[0]


def parse_pairs(text: str, field_name: str) -> list[tuple[int, int]]:
    """``P:D,P:D``: prefill and decode SM percentages."""
    pairs = []
    for part in str(text).split(","):
        bits = part.split(":")
        if len(bits) != 2:
            raise InputError(f"{field_name}: expected PREFILL_SM:DECODE_SM pairs such as 30:70, got {part!r}")
        p = parse_ints(bits[0], f"{field_name} prefill share", hi=100)
        d = parse_ints(bits[1], f"{field_name} decode share", hi=100)
        assert p and d
        pairs.append((p[0], d[0]))
    return pairs


@dataclass(frozen=True)
class Point:
    phase: str
    batch: int
    seq_len: int


@dataclass(frozen=True)
class ProfileConfig:
    model_name: str
    model: ModelSpec
    device: str = "cpu"  # "cpu" | "cuda"
    tp: int = 1
    sm_grid: tuple[int, ...] = (100,)
    prefill_batches: tuple[int, ...] = ()
    prefill_seq_lens: tuple[int, ...] = ()
    decode_batches: tuple[int, ...] = ()
    decode_seq_lens: tuple[int, ...] = ()
    max_prefill_tokens: int = 0
    warmup: int = 3
    repeats: int = 10
    seed: int = 0
    dtype: str = ""  # "" -> the model's dtype on a GPU, float32 on a CPU
    weights: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def points(self) -> list[Point]:
        pts = [Point("prefill", b, s) for b in self.prefill_batches for s in self.prefill_seq_lens
               if b * s <= self.max_prefill_tokens]
        pts += [Point("decode", b, s) for b in self.decode_batches for s in self.decode_seq_lens]
        return pts

    def torch_dtype_name(self) -> str:
        if self.dtype:
            return self.dtype
        return self.model.dtype if self.device == "cuda" else "float32"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d


def make_config(model: str, *, device: str = "cpu", tp: int = 1, sm_grid: list[int] | None = None,
                **grid: Any) -> ProfileConfig:
    name, spec = model_from_arg(model)
    base = GPU_GRID if device == "cuda" else CPU_GRID
    g = {k: grid.get(k) or base[k] for k in base}
    if isinstance(tp, bool) or not isinstance(tp, int) or not 1 <= tp <= MAX_GPUS_PER_NODE:
        raise InputError(f"tp: must be an integer in [1, {MAX_GPUS_PER_NODE}], got {tp!r}")
    if not spec.gated_mlp or spec.parallel_residual:
        raise InputError(f"model: {name} is not LLaMA-shaped (gated MLP, sequential residual); "
                         "the profiler's decoder runs LLaMA-shaped models only")
    for key in ("prefill_batches", "decode_batches"):
        if max(g[key]) > MAX_BATCH:
            raise InputError(f"{key.replace('_', '-')}: {max(g[key])} must be between 1 and {MAX_BATCH}")
    for key in ("prefill_seq_lens", "decode_seq_lens"):
        if max(g[key]) > spec.context_window:
            raise InputError(f"{key.replace('_', '-')}: {max(g[key])} exceeds the {spec.context_window}-token "
                             f"context window of {name}")
    if spec.heads % tp or spec.intermediate % tp:
        raise InputError(f"tp: {tp} must divide the heads ({spec.heads}) and intermediate size "
                         f"({spec.intermediate}) of {name}")
    if tp > spec.kv_heads and tp % spec.kv_heads:
        raise InputError(f"tp: {tp} exceeds the {spec.kv_heads} KV heads of {name} and is not a multiple")
    other = {k: v for k, v in grid.items() if k not in base and v is not None}
    return ProfileConfig(
        model_name=name, model=spec, device=device, tp=tp, sm_grid=tuple(sm_grid or [100]),
        prefill_batches=tuple(g["prefill_batches"]), prefill_seq_lens=tuple(g["prefill_seq_lens"]),
        decode_batches=tuple(g["decode_batches"]), decode_seq_lens=tuple(g["decode_seq_lens"]),
        max_prefill_tokens=int(g["max_prefill_tokens"]), **other,
    )


def catalog_gpu_name(device_name: str, memory_bytes: int = 0) -> str:
    """The GPU catalog name of a CUDA device name (``NVIDIA H100 80GB HBM3`` ->
    ``h100-80gb``); an unknown device gets a lower-case slug of its name."""
    n = device_name.upper()
    gib = memory_bytes / 2**30
    if "H200" in n:
        return "h200-141gb"
    if "H100" in n:
        return "h100-80gb"
    if "A100" in n:
        return "a100-80gb" if gib > 50 or "80GB" in n else "a100-40gb"
    if "L40S" in n:
        return "l40s"
    if "A10G" in n:
        return "a10g"
    if re.search(r"\bA10\b", n):
        return "a10"
    return re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-") or "unknown-gpu"


def memory_bytes(cfg: ProfileConfig) -> float:
    """Bytes a worker holds at its largest point, per rank: weights, the KV cache for
    the largest decode point, and prefill activations (what ``run_rank`` allocates)."""
    spec = cfg.model
    item = 2 if cfg.torch_dtype_name() in ("float16", "bfloat16") else 4
    weights = spec.weight_bytes_per_gpu(cfg.tp) / spec.dtype_bytes * item
    kv_heads = spec.kv_heads_per_gpu(cfg.tp)
    blocks = max([1] + [p.batch * spec.layers * kv_heads * -(-p.seq_len // 32) for p in cfg.points()])
    kv = 2 * blocks * 32 * spec.head_dim * item
    tokens = max([1] + [p.batch * p.seq_len for p in cfg.points() if p.phase == "prefill"])
    act = 2 * tokens * (4 * spec.hidden + spec.q_dim + 2 * spec.kv_dim + 3 * spec.intermediate / cfg.tp) * item
    return float(weights + kv + act)


def available_memory_bytes() -> float:
    """Physical memory of this machine, or less when this process's address space is limited."""
    import os
    import resource

    try:
        phys = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        phys = float("inf")
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return min(phys, float(soft) if soft != resource.RLIM_INFINITY else float("inf"))


def check_config(cfg: ProfileConfig, shapes: list[tuple[int, int]] = ()) -> None:
    """What can be checked before a worker starts: the weights folder (headers only),
    the co-location ``shapes`` (batch, seq_len) against the context window and, on a
    CPU, that the largest point fits half the memory."""
    from dataclasses import replace

    for b, s in shapes:
        if b > MAX_BATCH or s > cfg.model.context_window:
            raise InputError(f"colocate: {b}x{s} needs a batch of at most {MAX_BATCH} and at most "
                             f"{cfg.model.context_window} tokens per sequence")
    if shapes:
        (pb, ps), (db, ds) = shapes
        cfg = replace(cfg, prefill_batches=(*cfg.prefill_batches, pb), prefill_seq_lens=(*cfg.prefill_seq_lens, ps),
                      decode_batches=(*cfg.decode_batches, db), decode_seq_lens=(*cfg.decode_seq_lens, ds),
                      max_prefill_tokens=max(cfg.max_prefill_tokens, pb * ps))
    if cfg.weights is not None:
        from pathlib import Path

        from muxsim_kernels.names import check_weights_dir

        if not Path(cfg.weights).is_dir():
            raise InputError(f"weights: {cfg.weights!r} is not a directory")
        try:
            check_weights_dir(cfg.weights, cfg.model)
        except (ValueError, OSError) as e:
            raise InputError(f"weights: {e}") from None
    if cfg.device == "cpu":
        need, have = memory_bytes(cfg), available_memory_bytes()
        if need > 0.5 * have:
            raise InputError(f"profile: the largest point needs about {need / 2**30:.3g} GiB (weights, KV cache "
                             f"and activations), more than half of the {have / 2**30:.3g} GiB available; "
                             "shrink the batches, sequence lengths or model")
