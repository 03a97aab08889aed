"""Requests in flight for one LLM: its queue and its running batch, as counters.

A running request's context is ``base + steps`` where ``steps`` counts the LLM's decode
steps; the batch is kept as the number of requests, the sum of their bases and a
histogram of bases modulo the block size, so the KV blocks the next ``k`` steps need
(:meth:`LLM.blocks_needed`) and the most steps that fit some free blocks
(:meth:`LLM.max_steps_within`) take constant time whatever the batch or the tokens.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from muxsim.limits import BLOCK_TOKENS
from muxsim.limits import blocks_for as _blocks

if TYPE_CHECKING:
    from muxsim.sim.mesh import Job

# request states
WAITING, PREFILL, PENDING, RUNNING, DONE = range(5)


class LLM:
    """Run-time state of one unit (one LLM on its mesh)."""

    def __init__(self, idx: int, unit: Any, spec: Any, cost_blocks: int) -> None:
        self.idx = idx  # index inside its mesh
        self.gid = 0  # index across the simulation (set by the simulation)
        self.unit = unit
        self.name = unit.name
        self.spec = spec
        self.tp = unit.tp
        self.cost_blocks = cost_blocks  # head-wise blocks per BLOCK_TOKENS-token block
        self.max_batch = unit.max_batch
        self.prefill_sm = 1.0  # the plan's SM shares (set by a flex mesh)
        self.decode_sm = 1.0
        self.waiting: deque[int] = deque()
        # the running batch: request -> None in admission order; counters summarize it
        self.run: dict[int, None] = {}
        self.base_sum = 0  # sum of (context - steps)
        self.hist = [0] * BLOCK_TOKENS  # requests by (context - steps) mod BLOCK_TOKENS
        self.held_tb = 0  # token blocks the batch holds at `steps`
        self.steps = 0
        self.finish_heap: list[tuple[int, int]] = []  # (step at which it finishes, request)
        self.arrivals: list[tuple[float, int]] = []  # (arrival, request) of the batch, for FCFS
        self.pending: list[int] = []  # prefilled, joining the batch at the next step boundary
        self.prefill: Job | None = None
        self.decode: Job | None = None
        self.blocked = False  # prefills blocked after a preemption until a request finishes
        self.dec_blocks = 0  # blocks held by the running batch (with look-ahead)
        self.pre_blocks = 0  # blocks held by requests in prefill or pending
        self.window: deque[tuple[int, float]] = deque()  # (steps, blocks in use) for ADBS
        self.window_steps = 0
        self.window_sum = 0.0

    def in_system(self) -> int:
        n = len(self.run) + len(self.pending)
        if self.prefill is not None:
            n += len(self.prefill.rids)
        return n

    def blocks_needed(self, k: int) -> int:
        """Token blocks the batch adds over the next ``k`` decode steps.

        A request holding ``c`` tokens needs ``ceil((c + k) / B) - ceil(c / B)`` more:
        ``k // B`` plus one if ``(c + B - 1) mod B >= B - k mod B``; the requests of
        the second kind are a contiguous (cyclic) range of the residue histogram."""
        if k == 1:  # one step: the requests whose context fills its last block
            return self.hist[-self.steps % BLOCK_TOKENS]
        r = k % BLOCK_TOKENS
        extra = 0
        if r:
            lo = (1 - r - self.steps) % BLOCK_TOKENS  # residue of b = B - r; b = B - 1 is lo + r - 1
            hi = lo + r
            hist = self.hist
            extra = sum(hist[lo:hi]) if hi <= BLOCK_TOKENS else sum(hist[lo:]) + sum(hist[:hi - BLOCK_TOKENS])
        return len(self.run) * (k // BLOCK_TOKENS) + extra

    def max_steps_within(self, free_tb: int, kmax: int) -> int:
        """Most decode steps (<= kmax) whose new token blocks fit ``free_tb``."""
        n = len(self.run)
        q, rest = divmod(free_tb, n)
        if q * BLOCK_TOKENS >= kmax:
            return kmax
        hist = self.hist
        shift = self.steps + BLOCK_TOKENS - 1
        r = 0
        c = 0
        while r < BLOCK_TOKENS - 1:
            c += hist[(BLOCK_TOKENS - 1 - r - shift) % BLOCK_TOKENS]
            if c > rest:
                break
            r += 1
        return min(kmax, q * BLOCK_TOKENS + r)

    def add(self, rid: int, ctx: int) -> None:
        base = ctx - self.steps
        self.run[rid] = None
        self.base_sum += base
        self.hist[base % BLOCK_TOKENS] += 1
        self.held_tb += _blocks(ctx)

    def remove(self, rid: int, base: int) -> int:
        """Drop a request from the batch; returns the token blocks it held."""
        del self.run[rid]
        self.base_sum -= base
        self.hist[base % BLOCK_TOKENS] -= 1
        tb = _blocks(base + self.steps)
        self.held_tb -= tb
        return tb
