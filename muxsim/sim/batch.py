"""One unit at run time (one LLM on its mesh): its queue and its running batch, as
counters, and what the policy may read of it (it implements
:class:`muxsim.policy.view.UnitView`).

A running request's context is ``base + steps`` where ``steps`` counts the unit's decode
steps; the batch is kept as the number of requests, the sum of their bases and a
histogram of bases modulo the block size, so the KV blocks the next ``k`` steps need
(:meth:`LLM.blocks_needed`) and the most steps that fit some free blocks
(:meth:`LLM.max_steps_within`) take constant time whatever the batch or the tokens.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any

from muxsim.limits import BLOCK_TOKENS
from muxsim.limits import blocks_for as _blocks

_INF = float("inf")


class LLM:
    """Run-time state of one unit (one LLM on its mesh)."""

    # slots: fixed-offset attributes (the hot loop reads them at every event)
    __slots__ = ("arrivals", "base_sum", "cost_blocks", "dec_blocks", "decode", "decode_sm", "finish_heap", "gid",
                 "held_tb", "hist", "idx", "incoming", "kv_share", "leaving", "load_s", "loading", "max_batch", "name",
                 "outstanding", "pending", "pre_blocks", "preempted", "prefill", "prefill_sm", "rate", "ready_s", "run",
                 "spec", "steps", "tp", "track_arrivals", "unit", "waiting")

    def __init__(self, idx: int, unit: Any, spec: Any, cost_blocks: int, rate: float = 0.0) -> None:
        self.idx = idx  # index inside its mesh
        self.gid = 0  # index across the simulation (set by the simulation)
        self.unit = unit
        self.name = unit.name
        self.spec = spec
        self.tp = unit.tp
        self.cost_blocks = cost_blocks  # head-wise blocks per BLOCK_TOKENS-token block
        self.max_batch = unit.max_batch
        self.prefill_sm = getattr(unit, "prefill_sm", 1.0)  # the plan's SM shares
        self.decode_sm = getattr(unit, "decode_sm", 1.0)
        self.kv_share = getattr(unit, "kv_share", 1.0)
        self.rate = rate  # requests/s it expects
        self.waiting: deque[int] = deque()
        # the running batch: request -> None in admission order; counters summarize it
        self.run: dict[int, None] = {}
        self.base_sum = 0  # sum of (context - steps)
        self.hist = [0] * BLOCK_TOKENS  # requests by (context - steps) mod BLOCK_TOKENS
        self.held_tb = 0  # token blocks the batch holds at `steps`
        self.steps = 0
        self.finish_heap: list[tuple[int, int]] = []  # (step at which it finishes, request)
        self.track_arrivals = False  # keep `arrivals` (a policy reads oldest_running)
        self.arrivals: list[tuple[float, int]] = []  # (arrival, request) of the batch, stale dropped lazily
        self.pending: list[int] = []  # prefilled, joining the batch when its decode run ends
        self.prefill: Any = None  # its running prefill job (muxsim.sim.jobs.Job)
        self.decode: Any = None  # its running decode run
        self.preempted = False  # a request was preempted since it last finished one
        self.dec_blocks = 0  # blocks held by the running batch (with look-ahead)
        self.pre_blocks = 0  # blocks held by requests in prefill or pending
        self.outstanding = 0  # requests routed here, not finished
        self.loading = False  # a plan change placed it here and its weights are loading
        self.leaving = False  # a plan change takes it off its mesh
        self.load_s = 0.0  # how long its weights take to load
        self.ready_s = 0.0  # when they had loaded
        self.incoming: list[tuple[int, int]] = []  # (request, context) migrated here while it loaded

    # ---- what a policy reads (UnitView) ----------------------------------------------
    def in_system(self) -> int:
        n = len(self.run) + len(self.pending)
        if self.prefill is not None:
            n += len(self.prefill.rids)
        return n

    def next_step_blocks(self) -> int:
        return self.hist[-self.steps % BLOCK_TOKENS]

    def spare_lookahead(self) -> int:
        d = self.decode
        if d is None:
            return 0
        return (d.reserved - self.hist[-self.steps % BLOCK_TOKENS]) * self.cost_blocks

    def oldest_running(self) -> float:
        heap = self.arrivals  # (arrival, request) of the batch, stale entries dropped lazily
        run = self.run
        while heap and heap[0][1] not in run:
            heapq.heappop(heap)
        return heap[0][0] if heap else _INF

    # ---- the batch as counters -------------------------------------------------------
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
