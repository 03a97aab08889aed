"""Tiny stand-ins with hand-computable numbers for placement tests (helpers, no tests)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from muxsim.models import resolve_model
from muxsim.placement.problem import LLM, Problem
from muxsim.plan import Cluster


class LinearCost:
    """prefill_ms = ``prefill_per_seq`` x batch / tp; decode_ms = ``decode_step`` / tp,
    whatever the SM share. No ``forward_terms``: the estimator sees no interference."""

    def __init__(self, prefill_per_seq: float = 10.0, decode_step: float = 20.0) -> None:
        self.prefill_per_seq = prefill_per_seq
        self.decode_step = decode_step

    def prefill_ms(self, model, batch, seq_len, tp=1, sm=1.0):
        return self.prefill_per_seq * np.asarray(batch, dtype=float) / tp

    def decode_ms(self, model, batch, seq_len, tp=1, sm=1.0):
        return np.full(np.shape(batch), self.decode_step / tp)


@dataclass
class TokenMemory:
    """Each GPU holds ``tokens_per_gpu`` KV tokens minus ``weight_tokens`` per colocated
    model (per GPU: a model's weights split over tp GPUs); one block = one token."""

    tokens_per_gpu: int = 10_000
    weight_tokens: int = 1_000

    def _weights(self, units):
        return sum(self.weight_tokens * resolve_model(m).param_count() / resolve_model("llama-7b").param_count() / tp for m, tp in units)

    def kv_pool_bytes_per_gpu(self, units):
        return self.tokens_per_gpu - self._weights(list(units))

    def kv_blocks_per_gpu(self, units):
        return max(0, int(self.kv_pool_bytes_per_gpu(units)))

    def kv_capacity_tokens(self, model, tp, blocks):
        return int(blocks)

    @staticmethod
    def blocks_per_token_block(model, tp):
        return 32  # one block per token: a 32-token block costs 32


def problem(rates, model="llama-7b", *, nodes=1, gpus_per_node=2, prompt_len=10.0, output_len=10.0,
            models=None):
    models = models or [model] * len(rates)
    llms = tuple(LLM(name=f"llm-{i}", model=m, spec=resolve_model(m), rate=float(r),
                     prompt_len=prompt_len, output_len=output_len) for i, (m, r) in enumerate(zip(models, rates)))
    return Problem(llms=llms, cluster=Cluster("a100-80gb", nodes, gpus_per_node))
