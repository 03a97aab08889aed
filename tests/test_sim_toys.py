"""Toy cost and memory models and a stand-in workload for the simulator's tests.

ToyCost: a step takes ``a + c * kv_tokens`` ms of HBM traffic (weights and KV) plus
``b * tokens / sm`` ms of compute; nothing else. ToyMemory: a fixed pool of blocks and
one block per 32-token block of every model. Both are small enough to work timelines
out by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from muxsim.plan import plan_from_dict

TINY = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 4, "intermediate": 128, "vocab": 256}


@dataclass
class ToyCost:
    a: float = 1.0
    b: float = 0.01
    c: float = 0.0

    def forward_terms(self, model: Any, tokens: Any, seqs: Any, attn_pairs: Any, kv_tokens: Any,
                      tp: int = 1, sm: Any = 1.0) -> tuple[np.ndarray, ...]:
        t = np.asarray(tokens, dtype=float)
        kv = np.asarray(kv_tokens, dtype=float)
        compute = self.b * t / np.asarray(sm, dtype=float) + 0 * kv
        memory = self.a + self.c * kv + 0 * t
        zero = np.zeros_like(compute)
        return compute, memory, zero, zero, compute + memory

    def forward_ms(self, model: Any, tokens: Any, seqs: Any, attn_pairs: Any, kv_tokens: Any,
                   tp: int = 1, sm: Any = 1.0) -> Any:
        return self.forward_terms(model, tokens, seqs, attn_pairs, kv_tokens, tp, sm)[-1]


@dataclass
class ToyMemory:
    blocks: int = 1000
    per_token_block: int = 1

    def kv_blocks_per_gpu(self, units: Any) -> int:
        return self.blocks

    def blocks_per_token_block(self, model: Any, tp: int) -> int:
        return self.per_token_block


@dataclass
class Entry:
    name: str
    model: Any = field(default_factory=lambda: dict(TINY))
    rate: float = 1.0


@dataclass
class SLO:
    scales: tuple[float, ...] = (1, 2, 4, 8, 16)


@dataclass
class StandIn:
    """The few workload fields the simulator reads."""

    models: list[Entry]
    duration_s: float = 1.0
    slo: SLO = field(default_factory=SLO)
    seed: int = 0


def make_plan(meshes: list[list[dict[str, Any]]], mode: str) -> Any:
    """meshes: per mesh a list of unit dicts (name plus optional fields); one GPU each."""
    out = []
    for i, units in enumerate(meshes):
        us = []
        for u in units:
            d = {"model": dict(TINY), "tp": 1, "prefill_sm": 1.0, "decode_sm": 1.0,
                 "kv_share": 1.0 / len(units), "max_batch": 256}
            d.update(u)
            us.append(d)
        out.append({"id": f"m{i}", "node": 0, "gpus": [i], "units": us})
    return plan_from_dict({"version": 1, "mode": mode, "cluster": {"gpu": "a100-80gb", "nodes": 1,
                                                                    "gpus_per_node": 8}, "meshes": out})


def requests(rows: list[tuple[float, str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["arrival_s", "name", "prompt_len", "output_len"])
