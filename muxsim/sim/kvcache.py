"""The unified head-wise KV cache of one mesh.

One pool of ``total`` blocks per GPU (a block: one KV head, K and V, ``BLOCK_TOKENS``
tokens); a model's ``BLOCK_TOKENS``-token block costs ``layers x kv_heads_per_gpu``
blocks. With quotas on, a model may hold at most its quota (initially its plan
``kv_share`` of the pool); ADBS moves quota from idle to hot models (:meth:`adapt`).
Without quotas, models take blocks first come, first served. The static variant is
quotas without adaptation: fixed partitions.
"""

from __future__ import annotations

from collections.abc import Sequence

from muxsim.limits import BLOCK_TOKENS

__all__ = ["BLOCK_TOKENS", "KVPool"]


class KVPool:
    def __init__(self, total: int, shares: Sequence[float], quotas: bool) -> None:
        self.total = max(0, int(total))
        self.quotas = quotas
        self.quota = [int(s * self.total) for s in shares]
        self.used = [0] * len(shares)
        self.used_total = 0

    def limit(self, i: int) -> int:
        """Blocks model ``i`` may still take."""
        free = self.total - self.used_total
        if self.quotas:
            return max(0, min(free, self.quota[i] - self.used[i]))
        return free

    def take(self, i: int, blocks: int) -> None:
        self.used[i] += blocks
        self.used_total += blocks

    def release(self, i: int, blocks: int) -> None:
        self.used[i] -= blocks
        self.used_total -= blocks

    def adapt(self, utilization: Sequence[float], backlog: Sequence[bool], hot_threshold: float,
              donor_keep: float) -> list[int]:
        """ADBS quota adaptation. A model whose utilization (mean blocks in use over the
        recent decode steps / quota) is >= ``hot_threshold`` and that has waiting
        requests is hot; every other model offers ``donor_keep - utilization`` of its
        quota (never blocks in use). Hot models share what was offered in proportion
        to their quotas. Returns the change of each quota (sums to zero)."""
        n = len(self.quota)
        hot = [utilization[i] >= hot_threshold and backlog[i] for i in range(n)]
        if not any(hot) or all(hot):
            return [0] * n
        offer = [0] * n
        for i in range(n):
            if not hot[i]:
                want = int(max(0.0, donor_keep - utilization[i]) * self.quota[i])
                offer[i] = max(0, min(want, self.quota[i] - self.used[i]))
        pot = sum(offer)
        if pot == 0:
            return [0] * n
        hot_idx = [i for i in range(n) if hot[i]]
        weights = [max(1, self.quota[i]) for i in hot_idx]
        wsum = sum(weights)
        delta = [-o for o in offer]
        given = 0
        for i, w in zip(hot_idx, weights):
            g = pot * w // wsum
            delta[i] += g
            given += g
        delta[hot_idx[0]] += pot - given
        for i in range(n):
            self.quota[i] += delta[i]
        return delta
