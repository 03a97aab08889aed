"""The memory model: what a mesh's GPUs hold, and what is left for the KV cache.

Per GPU of a mesh, from the top: a usable fraction of the memory (the rest is left to
the driver and allocator slack), then for every colocated model its weight shard, an
activation reserve for a maximal prefill, and a fixed overhead for each of its
processes (CUDA context, NCCL buffers). What remains is one KV pool shared by all
colocated models, cut into head-wise blocks: a block holds one KV head's K and V for
``BLOCK_TOKENS`` tokens, so models with different layer and head counts draw from the
same pool, and a model's 32-token block costs ``layers x kv_heads_per_gpu`` blocks.

Defaults and their sources (``MemoryParams``):
- ``usable_fraction = 0.90``: vLLM's default ``gpu_memory_utilization``.
- ``activation_tokens = 2048``: the largest prefill a step runs (MuxServe and vLLM's
  default max batched tokens); the reserve is that many tokens of the widest
  intermediate activations of a layer plus the logits of ``activation_seqs`` sequences.
- ``workspace_gib = 1.0``: cuBLAS workspace, CUDA graphs and allocator fragmentation.
- ``process_overhead_gib = 0.8`` for each of ``processes_per_model = 2`` processes (a
  prefill and a decode job): MuxServe measured ~0.8 GB per process.
``MemoryParams.muxserve()`` gives the constants of MuxServe's own estimator (98% of the
memory usable, 6 GB per model, no separate process overhead).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from muxsim.gpus import GiB, GPUSpec, get_gpu
from muxsim.models import ModelSpec, resolve_model

BLOCK_TOKENS = 32

ModelRef = str | dict | ModelSpec


@dataclass(frozen=True)
class MemoryParams:
    usable_fraction: float = 0.90
    activation_tokens: int = 2048
    activation_seqs: int = 256
    activation_gib: float | None = None  # fixed reserve per model; None: from the architecture
    workspace_gib: float = 1.0
    process_overhead_gib: float = 0.8
    processes_per_model: int = 2

    def __post_init__(self) -> None:
        from muxsim.errors import InputError

        checks = {"usable_fraction": (0.0, 1.0), "activation_tokens": (1, 1 << 24), "activation_seqs": (1, 1 << 20),
                  "workspace_gib": (0.0, 1e6), "process_overhead_gib": (0.0, 1e6), "processes_per_model": (0, 64)}
        for k, (lo, hi) in checks.items():
            v = getattr(self, k)
            integer = isinstance(lo, int)
            kind = int if integer else int | float
            if isinstance(v, bool) or not isinstance(v, kind) or not (math.isfinite(v) and lo <= v <= hi) or (
                    k == "usable_fraction" and v == 0):
                raise InputError(f"memory.{k}: must be {'an integer' if integer else 'a number'} in "
                                 f"[{lo:g}, {hi:g}]{' (not 0)' if k == 'usable_fraction' else ''}, got {v!r}")
        v = self.activation_gib
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v)
                                                                                             and 0 <= v <= 1e6)):
            raise InputError(f"memory.activation_gib: must be None or a number in [0, 1e6], got {v!r}")

    @classmethod
    def muxserve(cls) -> MemoryParams:
        """The constants of MuxServe's placement estimator."""
        return cls(usable_fraction=0.98, activation_gib=6.0, workspace_gib=0.0,
                   process_overhead_gib=0.0, processes_per_model=1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MemoryModel:
    def __init__(self, gpu: str | GPUSpec = "a100-80gb", params: MemoryParams | None = None) -> None:
        self.gpu = get_gpu(gpu)
        if params is not None and not isinstance(params, MemoryParams):
            from muxsim.errors import InputTypeError

            raise InputTypeError(f"params: expected MemoryParams, got {type(params).__name__}")
        self.params = params or MemoryParams()

    def __repr__(self) -> str:
        return f"MemoryModel(gpu={self.gpu.name!r}, params={self.params})"

    # ---- per model ---------------------------------------------------------------
    def usable_bytes(self) -> float:
        return self.gpu.memory_bytes * self.params.usable_fraction

    def weight_bytes_per_gpu(self, model: ModelRef, tp: int) -> int:
        return resolve_model(model).weight_bytes_per_gpu(tp)

    def activation_bytes_per_gpu(self, model: ModelRef, tp: int) -> float:
        p = self.params
        if p.activation_gib is not None:
            return p.activation_gib * GiB
        m = resolve_model(model)
        d = m.dtype_bytes
        per_token = d * (2 * m.hidden + (m.q_dim + 2 * m.kv_heads_per_gpu(tp) * m.head_dim * tp) / tp
                         + m.q_dim / tp + 3 * m.intermediate / tp)
        logits = 4.0 * p.activation_seqs * m.vocab / tp
        return p.activation_tokens * per_token + logits + p.workspace_gib * GiB

    def reserved_bytes_per_gpu(self, model: ModelRef, tp: int) -> float:
        """Weights, activation reserve and process overheads of one model, per GPU."""
        p = self.params
        return (self.weight_bytes_per_gpu(model, tp) + self.activation_bytes_per_gpu(model, tp)
                + p.processes_per_model * p.process_overhead_gib * GiB)

    # ---- per mesh ----------------------------------------------------------------
    def kv_pool_bytes_per_gpu(self, units: Iterable[tuple[ModelRef, int]]) -> float:
        """Bytes per GPU left for the shared KV pool (may be <= 0: it does not fit)."""
        return self.usable_bytes() - sum(self.reserved_bytes_per_gpu(m, tp) for m, tp in units)

    def block_bytes(self, models: Sequence[ModelRef]) -> int:
        """Bytes of one head-wise block: K and V of one head for BLOCK_TOKENS tokens.

        Colocated models with different head sizes use the largest (MuxServe requires
        equal head sizes; here a smaller head wastes the rest of its block)."""
        specs = [resolve_model(m) for m in models] or [resolve_model("llama-7b")]
        return 2 * BLOCK_TOKENS * max(s.head_dim * s.dtype_bytes for s in specs)

    def kv_blocks_per_gpu(self, units: Sequence[tuple[ModelRef, int]]) -> int:
        units = list(units)
        pool = self.kv_pool_bytes_per_gpu(units)
        if pool <= 0:
            return 0
        return int(pool // self.block_bytes([m for m, _ in units]))

    @staticmethod
    def blocks_per_token_block(model: ModelRef, tp: int) -> int:
        """Head-wise blocks one BLOCK_TOKENS-token block of this model takes, per GPU."""
        m = resolve_model(model)
        return m.layers * m.kv_heads_per_gpu(tp)

    def kv_capacity_tokens(self, model: ModelRef, tp: int, blocks: float) -> int:
        """Tokens of this model that ``blocks`` head-wise blocks (per GPU) hold."""
        return int(blocks // self.blocks_per_token_block(model, tp)) * BLOCK_TOKENS

    def fits(self, model: ModelRef, tp: int, min_tokens: int = 2048) -> bool:
        """Whether the model alone on ``tp`` GPUs leaves room for ``min_tokens`` of KV."""
        m = resolve_model(model)
        if m.heads % tp:
            return False
        blocks = self.kv_blocks_per_gpu([(m, tp)])
        return self.kv_capacity_tokens(m, tp, blocks) >= min_tokens

    def min_tp(self, model: ModelRef, max_tp: int = 8, min_tokens: int = 2048) -> int | None:
        """Smallest power-of-two mesh on which the model fits alone, or None."""
        tp = 1
        while tp <= max_tp:
            if self.fits(model, tp, min_tokens):
                return tp
            tp *= 2
        return None


def pool_summary(memory: MemoryModel, units: Sequence[tuple[ModelRef, int]]) -> dict[str, float]:
    """Numbers for tables: pool GiB per GPU and blocks."""
    pool = memory.kv_pool_bytes_per_gpu(units)
    return {"pool_gib_per_gpu": pool / GiB, "blocks_per_gpu": float(memory.kv_blocks_per_gpu(units)),
            "block_bytes": float(memory.block_bytes([m for m, _ in units])) if units else math.nan}
