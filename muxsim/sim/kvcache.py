"""The unified head-wise KV cache of one mesh.

One pool of ``total`` blocks per GPU (a block: one KV head, K and V, ``BLOCK_TOKENS``
tokens); a model's ``BLOCK_TOKENS``-token block costs ``layers x kv_heads_per_gpu``
blocks. The pool only counts: blocks taken and released per unit, and the per-unit
quotas its policy sets (:class:`~muxsim.policy.decisions.SetQuotas`). While quotas are
enforced a unit may take at most its quota; otherwise units take blocks first come,
first served. It never hands out more blocks than it has.
"""

from __future__ import annotations

from collections.abc import Sequence

from muxsim.limits import BLOCK_TOKENS

__all__ = ["BLOCK_TOKENS", "KVPool"]


class KVPool:
    def __init__(self, total: int, units: int) -> None:
        self.total = max(0, int(total))
        self.quotas = False
        self.quota = [self.total] * units
        self.used = [0] * units
        self.used_total = 0

    def set_quotas(self, quotas: Sequence[int], enforce: bool) -> None:
        if len(quotas) != len(self.used) or sum(quotas) > self.total:
            raise ValueError(f"KV quotas {list(quotas)} do not fit {len(self.used)} units and {self.total} blocks")
        self.quota = list(quotas)
        self.quotas = enforce

    def limit(self, i: int) -> int:
        """Blocks unit ``i`` may still take."""
        free = self.total - self.used_total
        if self.quotas:
            return max(0, min(free, self.quota[i] - self.used[i]))
        return free

    def take(self, i: int, blocks: int) -> None:
        self.used[i] += blocks
        self.used_total += blocks
        if self.used_total > self.total:
            raise RuntimeError(f"KV pool oversubscribed: {self.used_total} of {self.total} blocks in use")

    def release(self, i: int, blocks: int) -> None:
        self.used[i] -= blocks
        self.used_total -= blocks
