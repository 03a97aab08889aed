"""The memory model: what a mesh's GPUs hold, and what is left for the KV cache.

Per GPU of a mesh, from the top: a usable fraction of the memory (the rest is left to
the driver and allocator slack), then for every colocated model its weight shard, an
activation reserve for a maximal prefill, and a fixed overhead for each of its
processes (CUDA context, NCCL buffers). What remains is one KV pool shared by all
colocated models, cut into head-wise blocks: a block holds one KV head's K and V for
``BLOCK_TOKENS`` tokens, so models with different layer and head counts draw from the
same pool, and a model's 32-token block costs ``layers x kv_heads_per_gpu`` blocks.

The reserves and their sources are serving limits (:mod:`muxsim.limits`): the usable
fraction, the per-model workspace and per-process overheads (``MemoryParams``), and the
activation reserve, sized for the largest prefill a step runs (``max_prefill_tokens``
tokens of the widest intermediate activations of a layer) plus the logits of a full
batch (``max_batch`` sequences).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace

from muxsim.errors import InputTypeError
from muxsim.gpus import GiB, GPUSpec, get_gpu
from muxsim.limits import BLOCK_TOKENS, DEFAULT_LIMITS, MemoryParams, ServingLimits
from muxsim.models import ModelSpec, resolve_model

ModelRef = str | dict | ModelSpec

__all__ = ["BLOCK_TOKENS", "MemoryModel", "MemoryParams", "pool_summary"]


class MemoryModel:
    """Memory of one GPU type under ``limits`` (``params``, if given, replaces their
    memory reserves)."""

    def __init__(self, gpu: str | GPUSpec = "a100-80gb", params: MemoryParams | None = None, *,
                 limits: ServingLimits | None = None) -> None:
        self.gpu = get_gpu(gpu)
        if params is not None and not isinstance(params, MemoryParams):
            raise InputTypeError(f"params: expected MemoryParams, got {type(params).__name__}")
        if limits is not None and not isinstance(limits, ServingLimits):
            raise InputTypeError(f"limits: expected ServingLimits, got {type(limits).__name__}")
        limits = limits or DEFAULT_LIMITS
        if params is not None:
            limits = replace(limits, memory=params)
        self.limits = limits
        self.params = limits.memory

    def __repr__(self) -> str:
        return f"MemoryModel(gpu={self.gpu.name!r}, limits={self.limits})"

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
        logits = 4.0 * self.limits.max_batch * m.vocab / tp
        return self.limits.max_prefill_tokens * per_token + logits + p.workspace_gib * GiB

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

    def fits(self, model: ModelRef, tp: int, min_tokens: int | None = None) -> bool:
        """Whether the model alone on ``tp`` GPUs leaves room for ``min_tokens`` of KV
        (default: one maximal prefill, ``limits.max_prefill_tokens``)."""
        if min_tokens is None:
            min_tokens = self.limits.max_prefill_tokens
        m = resolve_model(model)
        if m.heads % tp:
            return False
        blocks = self.kv_blocks_per_gpu([(m, tp)])
        return self.kv_capacity_tokens(m, tp, blocks) >= min_tokens

    def min_tp(self, model: ModelRef, max_tp: int = 8, min_tokens: int | None = None) -> int | None:
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
