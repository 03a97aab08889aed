"""One mesh at run time: its LLMs, their prefill and decode jobs, its KV pool.

Requests live in the :class:`~muxsim.sim.run.Simulation`'s per-request lists; a mesh
touches a request only when it arrives, is admitted to a prefill, emits its first
token, is preempted or finishes. Decode progress is a counter per LLM (``steps``): a
running request's context is ``base + steps``. The batch is summarized by counters
(number of requests, sum of bases, a histogram of bases modulo the block size), so the
KV blocks a run of ``k`` steps needs and the time it takes are closed-form sums
(:mod:`muxsim.sim.batch`, :class:`~muxsim.sim.costs.StepCosts`): a run of decode steps
over an unchanged batch is one job, one event.

Jobs. A prefill job runs a batch of prompts once. A decode job runs ``last + 1``
steps; it ends early (:meth:`Mesh.truncate`, at the end of the step in progress) when
something the step-level scheduler would notice happens: a prefill of its LLM
completes (new requests join), a prefill waits for SMs, decode jobs contend for SMs, a
request arrives at a mesh taking turns. While jobs co-run their speeds follow the
interference model; whenever the set of running jobs changes, every job's slowdown is
recomputed and its end rescheduled (progress is kept in alone-milliseconds).

Modes.
- ``flex`` (MuxServe): each LLM's prefill and decode jobs run concurrently at the
  plan's SM shares while the shares of running jobs fit the overload limit; prefills
  first, in round-robin (or FCFS) order, KV quotas (:mod:`muxsim.sim.kvcache`).
- ``spatial`` and ``temporal``: one job at a time owns the whole mesh (vLLM's
  iteration-level scheduling: a prefill of admissible waiting requests first, else a
  decode step over the running batch); with several LLMs (temporal) the next
  iteration goes to the LLM with the oldest request (FCFS) or the next in turn.
- Out of KV blocks: the batch's newest requests are preempted (recomputed later) and
  the LLM's prefills are blocked until one of its requests finishes.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

from muxsim.sim.batch import LLM, PENDING, PREFILL, RUNNING, WAITING, _blocks
from muxsim.sim.engine import EventOrder
from muxsim.sim.interference import slowdown
from muxsim.sim.kvcache import BLOCK_TOKENS, KVPool

if TYPE_CHECKING:
    from muxsim.sim.run import Simulation

PREFILL_JOB, DECODE_JOB = 0, 1
_JOB_END = int(EventOrder.JOB_END)
_EPS_MS = 1e-9


class Job:
    """A prefill (one step) or a run of decode steps, with progress in alone-ms."""

    __slots__ = (
        "costs",
        "done",
        "end_ms",
        "event",
        "f",
        "hbm",
        "held0",
        "i0",
        "kernel",
        "kind",
        "last",
        "llm",
        "reserved",
        "rids",
        "seg_start",
        "slow",
        "sm",
        "total",
    )

    def __init__(self, kind: int, llm: LLM, sm: float, kernel: float, hbm: float) -> None:
        self.kind = kind
        self.llm = llm
        self.sm = sm
        self.kernel = kernel
        self.hbm = hbm
        self.last = 0  # the job ends after step `last` (0-based)
        self.total = 0.0  # prefill: alone-ms
        self.end_ms = 0.0  # alone-ms at the end of step `last`
        self.costs: memoryview | None = None  # decode: prefix sums of step times by mean context
        self.i0 = 0
        self.f = 0.0
        self.done = 0.0  # alone-ms done before seg_start
        self.seg_start = 0.0
        self.slow = 1.0
        self.event: Any = None
        self.rids: list[int] = []
        self.held0 = 0
        self.reserved = 0

    def cum(self, s: int) -> float:
        """Alone-ms at the end of the first ``s`` steps."""
        if self.costs is None:
            return self.total if s else 0.0
        p = self.costs
        i = self.i0
        f = self.f
        return (1.0 - f) * (p[i + s + 1] - p[i + 1]) + f * (p[i + s + 2] - p[i + 2])


class Mesh:
    def __init__(self, sim: Simulation, mesh: Any, llms: list[LLM], total_blocks: int, mode: str) -> None:
        self.sim = sim
        self.id = mesh.id
        self.mesh = mesh
        self.llms = llms
        self.mode = mode
        cfg = sim.config
        self.cfg = cfg
        if mode == "flex":
            pol = cfg.flex
            self.order = pol.order
            self.prefill_priority = pol.prefill_priority
            self.adapt_on = pol.adapt and len(llms) > 1
            quotas = pol.quotas
            self.limit = cfg.limits.overload
        else:
            self.order = cfg.temporal_policy if mode == "temporal" else "fcfs"
            self.prefill_priority = False
            self.adapt_on = False
            quotas = cfg.kv_cache == "static" and len(llms) > 1
            self.limit = 1.0
        if len(llms) == 1:
            shares = [1.0]
        elif cfg.initial_quota == "rate":  # ADBS: rate x blocks per token block
            weight = [sim.unit_rate(x) * x.cost_blocks for x in llms]
            total = sum(weight)
            shares = [w / total if total > 0 else 1.0 / len(llms) for w in weight]
        else:
            shares = [x.unit.kv_share for x in llms]
        self.pool = KVPool(total_blocks, shares, quotas)
        self._rotations = [llms[i:] + llms[:i] for i in range(len(llms))]  # round-robin orders
        self.max_chunk_steps = cfg.max_chunk_steps
        self.interference_on = cfg.interference_on
        self.interference = cfg.interference
        if mode == "flex":
            for x in llms:  # the plan's SM shares, read at every scheduling decision
                x.prefill_sm = x.unit.prefill_sm
                x.decode_sm = x.unit.decode_sm
        self.jobs: list[Job] = []
        self.sm_used = 0.0
        self.rr_prefill = 0
        self.rr_decode = 0
        self.sm_area = 0.0  # integral of the SM share in use over time (s)
        self.sm_t = 0.0
        self.max_sm_seen = 0.0
        self.preemptions = 0

    # ---- jobs and their timing --------------------------------------------------------
    def _sm_change(self, delta: float) -> None:
        now = self.sim.engine.now
        self.sm_area += self.sm_used * (now - self.sm_t)
        self.sm_t = now
        self.sm_used += delta
        if self.sm_used > self.max_sm_seen:
            self.max_sm_seen = self.sm_used

    def _start(self, job: Job) -> None:
        job.seg_start = self.sim.engine.now
        self.jobs.append(job)
        self._sm_change(job.sm)
        if job.kind == PREFILL_JOB:
            job.llm.prefill = job
        else:
            job.llm.decode = job

    def _finish_job(self, job: Job) -> None:
        self.jobs.remove(job)
        self._sm_change(-job.sm)
        if job.kind == PREFILL_JOB:
            job.llm.prefill = None
        else:
            job.llm.decode = None

    def _reschedule(self, job: Job) -> None:
        eng = self.sim.engine
        if job.event is not None:
            job.event.cancelled = True
        end = job.seg_start + (job.end_ms - job.done) * job.slow * 1e-3
        now = eng.now
        job.event = eng.schedule(end if end > now else now, _JOB_END, self._on_job_end, job)

    def rerate(self) -> None:
        """Recompute every running job's slowdown; reschedule the ends that moved."""
        jobs = self.jobs
        if len(jobs) == 1:
            j = jobs[0]
            if j.event is None or j.slow != 1.0:
                if j.event is not None:
                    j.done += (self.sim.engine.now - j.seg_start) * 1e3 / j.slow
                    j.seg_start = self.sim.engine.now
                j.slow = 1.0
                self._reschedule(j)
            return
        if self.interference_on:
            s_tot = 0.0
            d_tot = 0.0
            for j in jobs:
                s_tot += j.sm
                d_tot += j.hbm
            params = self.interference
            slows = [slowdown(s_tot, d_tot, j.kernel, j.hbm, params) for j in jobs]
        else:
            slows = [1.0] * len(jobs)
        now = self.sim.engine.now
        for j, s in zip(jobs, slows):
            if j.event is None:
                j.slow = s
                self._reschedule(j)
            elif s != j.slow:
                j.done += (now - j.seg_start) * 1e3 / j.slow
                j.seg_start = now
                j.slow = s
                self._reschedule(j)

    def truncate(self, job: Job, only_if_excess: bool = False) -> bool:
        """End a decode job after the step in progress and release its look-ahead blocks
        (with ``only_if_excess``: only if that frees blocks). True if it was cut."""
        if job.kind != DECODE_JOB or job.last == 0:
            return False
        progress = job.done + (self.sim.engine.now - job.seg_start) * 1e3 / job.slow - _EPS_MS
        if job.cum(job.last) < progress:  # already in its last step
            return False
        lo, hi = 1, job.last + 1  # smallest s with cum(s) >= progress lies in [lo, hi]
        p = job.costs
        if p is not None:  # Job.cum, inlined
            i1 = job.i0 + 1
            i2 = i1 + 1
            f = job.f
            g = 1.0 - f
            a1 = p[i1]
            a2 = p[i2]
            while lo < hi:
                mid = (lo + hi) // 2
                if g * (p[i1 + mid] - a1) + f * (p[i2 + mid] - a2) >= progress:
                    hi = mid
                else:
                    lo = mid + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if job.cum(mid) >= progress:
                hi = mid
            else:
                lo = mid + 1
        if lo > job.last:
            return False
        llm = job.llm
        keep = llm.blocks_needed(lo)
        excess = (job.reserved - keep) * llm.cost_blocks
        if only_if_excess and excess <= 0:
            return False
        job.last = lo - 1
        job.end_ms = job.cum(lo)
        if excess > 0:
            job.reserved = keep
            llm.dec_blocks -= excess
            self.pool.release(llm.idx, excess)
        self._reschedule(job)
        return True

    # ---- events ------------------------------------------------------------------------
    def on_arrival(self, llm: LLM, rid: int) -> None:
        waiting = llm.waiting
        waiting.append(rid)
        if len(waiting) > 1:
            # the queue's head was already considered at the last event on this mesh and
            # nothing has changed since: a request joining the tail changes no decision
            return
        if self.mode == "flex":
            self.schedule()
        elif self.jobs:
            job = self.jobs[0]
            if job.kind == DECODE_JOB and (job.llm is llm or self.order == "round-robin"):
                self.truncate(job)
        else:
            self.schedule()
        self.rerate()

    def _on_job_end(self, job: Job) -> None:
        job.event = None
        self._finish_job(job)
        if job.kind == PREFILL_JOB:
            self._end_prefill(job)
        else:
            self._end_decode(job)
        if self.mode == "flex":
            self._schedule_flex()
        else:
            self._schedule_turns()
        self.rerate()

    def _end_prefill(self, job: Job) -> None:
        sim = self.sim
        now = sim.engine.now
        llm = job.llm
        gen = sim.gen
        for rid in job.rids:
            gen[rid] += 1
            if sim.first[rid] != sim.first[rid]:  # NaN: this is the first token
                sim.first[rid] = now
            if gen[rid] >= sim.output[rid]:
                blocks = _blocks(sim.prompt[rid] + gen[rid] - 1) * llm.cost_blocks
                llm.pre_blocks -= blocks
                self.pool.release(llm.idx, blocks)
                sim.complete(rid, now)
                llm.blocked = False
            else:
                sim.state[rid] = PENDING
                llm.pending.append(rid)
        if llm.decode is not None:
            self.truncate(llm.decode)

    def _join_pending(self, llm: LLM) -> None:
        sim = self.sim
        blocks = 0
        for rid in llm.pending:
            ctx = sim.prompt[rid] + sim.gen[rid] - 1
            sim.base[rid] = ctx - llm.steps
            llm.add(rid, ctx)
            if self.order == "fcfs":
                heapq.heappush(llm.arrivals, (sim.arrival[rid], rid))
            blocks += _blocks(ctx)
            sim.state[rid] = RUNNING
            fin = llm.steps + sim.output[rid] - sim.gen[rid]
            sim.fin_step[rid] = fin
            heapq.heappush(llm.finish_heap, (fin, rid))
        blocks *= llm.cost_blocks
        llm.pre_blocks -= blocks
        llm.dec_blocks += blocks
        llm.pending = []

    def _end_decode(self, job: Job) -> None:
        sim = self.sim
        llm = job.llm
        k = job.last + 1
        llm.held_tb += llm.blocks_needed(k)
        llm.steps += k
        if self.adapt_on:  # blocks the batch held at its last step
            self._record_window(llm, k, llm.held_tb * llm.cost_blocks)
        heap = llm.finish_heap
        finished = False
        now = sim.engine.now
        while heap and heap[0][0] <= llm.steps:
            step, rid = heapq.heappop(heap)
            if sim.state[rid] == RUNNING and sim.fin_step[rid] == step:
                llm.remove(rid, sim.base[rid])
                sim.gen[rid] = sim.output[rid]
                sim.complete(rid, now)
                finished = True
        if finished:
            llm.blocked = False
        held = llm.held_tb * llm.cost_blocks
        if held != llm.dec_blocks:
            self.pool.release(llm.idx, llm.dec_blocks - held)
            llm.dec_blocks = held

    def _record_window(self, llm: LLM, steps: int, blocks: float) -> None:
        llm.window.append((steps, blocks))
        llm.window_steps += steps
        llm.window_sum += steps * blocks
        limit = self.cfg.adapt_window_steps
        while llm.window and llm.window_steps - llm.window[0][0] >= limit:
            s, b = llm.window.popleft()
            llm.window_steps -= s
            llm.window_sum -= s * b

    def adapt(self) -> None:
        """ADBS: move KV quota from idle models to hot ones with backlog."""
        pool = self.pool
        util = []
        for llm in self.llms:
            q = pool.quota[llm.idx]
            used = llm.window_sum / llm.window_steps if llm.window_steps else float(pool.used[llm.idx])
            util.append(used / q if q > 0 else 1.0)
        backlog = [bool(x.waiting) for x in self.llms]
        pool.adapt(util, backlog, self.cfg.hot_threshold, self.cfg.donor_keep)
        self.schedule()
        self.rerate()

    # ---- scheduling -------------------------------------------------------------------
    def schedule(self) -> None:
        if self.mode == "flex":
            self._schedule_flex()
        else:
            self._schedule_turns()

    def _ordered(self, start: int) -> list[LLM]:
        llms = self.llms
        if len(llms) == 1:
            return llms
        return self._rotations[start % len(llms)]

    def _oldest_waiting(self, llm: LLM) -> float:
        return self.sim.arrival[llm.waiting[0]] if llm.waiting else float("inf")

    def _oldest_running(self, llm: LLM) -> float:
        arr = self.sim.arrival
        heap = llm.arrivals  # (arrival, request) of the batch, stale entries dropped lazily
        run = llm.run
        while heap and heap[0][1] not in run:
            heapq.heappop(heap)
        best = heap[0][0] if heap else float("inf")
        for r in llm.pending:
            if arr[r] < best:
                best = arr[r]
        return best

    @staticmethod
    def _prefill_allowed(llm: LLM) -> bool:
        if not llm.waiting or llm.prefill is not None:
            return False
        return not (llm.blocked and (llm.run or llm.pending))

    def _schedule_flex(self) -> None:
        if self.order == "fcfs":
            pre_order = sorted(self.llms, key=lambda x: (self._oldest_waiting(x), x.idx))
        else:
            rot = self._rotations  # self._ordered, inlined
            pre_order = rot[self.rr_prefill % len(rot)]
        limit = self.limit + 1e-9
        want = False
        for llm in pre_order:
            # _prefill_allowed, inlined
            if not llm.waiting or llm.prefill is not None or (llm.blocked and (llm.run or llm.pending)):
                continue
            if self.sm_used + llm.prefill_sm > limit:
                want = want or self._admissible(llm)
                continue
            rids = self._pick_prefill(llm)
            if not rids and self._release_lookahead():
                rids = self._pick_prefill(llm)
            if rids:
                self._start_prefill(llm, rids, llm.prefill_sm)
                self.rr_prefill = llm.idx + 1
        if want:
            # the step-level scheduler looks again at every step boundary
            for job in self.jobs:
                if job.kind == DECODE_JOB:
                    self.truncate(job)
            if self.prefill_priority:
                return
        if self.order == "fcfs":
            dec_order = sorted(self.llms, key=lambda x: (self._oldest_running(x), x.idx))
        else:
            rot = self._rotations
            dec_order = rot[self.rr_decode % len(rot)]
        starved = False
        for llm in dec_order:
            if llm.decode is not None or not (llm.run or llm.pending):
                continue
            if self.sm_used + llm.decode_sm > limit:
                starved = True
                continue
            if self._start_decode(llm, self.max_chunk_steps, llm.decode_sm):
                self.rr_decode = llm.idx + 1
        if starved:  # decode jobs take turns step by step
            for job in self.jobs:
                if job.kind == DECODE_JOB:
                    self.truncate(job)

    def _admissible(self, llm: LLM) -> bool:
        """Whether the oldest waiting request would fit the batch and the KV blocks."""
        if llm.in_system() >= llm.max_batch:
            return False
        rid = llm.waiting[0]
        need = _blocks(self.sim.prompt[rid] + self.sim.gen[rid]) * llm.cost_blocks
        excess = 0
        if llm.decode is not None:
            excess = (llm.decode.reserved - llm.blocks_needed(1)) * llm.cost_blocks
        return need <= self.pool.limit(llm.idx) + max(0, excess)

    def _release_lookahead(self) -> bool:
        """Cut running decode jobs to their current step when that frees look-ahead blocks."""
        cut = False
        for job in self.jobs:
            if job.kind == DECODE_JOB:
                cut = self.truncate(job, only_if_excess=True) or cut
        return cut

    def _schedule_turns(self) -> None:
        if self.jobs:
            return
        llms = self.llms
        if len(llms) == 1:
            candidates = llms
        elif self.order == "fcfs":
            def oldest(x: LLM) -> float:
                w = self._oldest_waiting(x) if self._prefill_allowed(x) else float("inf")
                return min(w, self._oldest_running(x))
            candidates = sorted(llms, key=lambda x: (oldest(x), x.idx))
        else:
            candidates = self._ordered(self.rr_decode)
        for llm in candidates:
            if self._prefill_allowed(llm):
                rids = self._pick_prefill(llm)
                if rids:
                    self._start_prefill(llm, rids, 1.0)
                    self.rr_decode = llm.idx + 1
                    return
            if llm.run or llm.pending:
                steps = self.cfg.max_chunk_steps
                if self.order == "round-robin" and any(
                        x is not llm and (x.waiting or x.run or x.pending) for x in llms):
                    steps = 1
                if self._start_decode(llm, steps, 1.0):
                    self.rr_decode = llm.idx + 1
                    return

    def _pick_prefill(self, llm: LLM) -> list[int]:
        sim = self.sim
        room = llm.max_batch - llm.in_system()
        if room <= 0:
            return []
        limit = self.pool.limit(llm.idx)
        max_tokens = self.cfg.limits.max_prefill_tokens
        cost = llm.cost_blocks
        rids: list[int] = []
        tokens = 0
        blocks = 0
        for rid in llm.waiting:
            length = sim.prompt[rid] + sim.gen[rid]
            b = _blocks(length) * cost
            if (rids and tokens + length > max_tokens) or blocks + b > limit or len(rids) >= room:
                break
            rids.append(rid)
            tokens += length
            blocks += b
        for _ in rids:
            llm.waiting.popleft()
        return rids

    def _start_prefill(self, llm: LLM, rids: list[int], sm: float) -> None:
        sim = self.sim
        tokens = 0
        pairs = 0
        blocks = 0
        state = sim.state
        for r in rids:
            length = sim.prompt[r] + sim.gen[r]
            tokens += length
            pairs += length * (length + 1) // 2
            blocks += _blocks(length)
            state[r] = PREFILL
        blocks *= llm.cost_blocks
        self.pool.take(llm.idx, blocks)
        llm.pre_blocks += blocks
        total, kernel, hbm = sim.costs.prefill(llm, tokens, len(rids), pairs, sm)
        job = Job(PREFILL_JOB, llm, sm, kernel, hbm)
        job.total = total
        job.end_ms = total
        job.rids = rids
        self._start(job)

    def _preempt_tail(self, llm: LLM) -> None:
        sim = self.sim
        rid = next(reversed(llm.run))
        base = sim.base[rid]
        ctx = base + llm.steps
        blocks = llm.remove(rid, base) * llm.cost_blocks
        sim.gen[rid] = ctx - sim.prompt[rid] + 1
        sim.state[rid] = WAITING
        sim.preempt[rid] += 1
        llm.dec_blocks -= blocks
        self.pool.release(llm.idx, blocks)
        llm.waiting.appendleft(rid)
        llm.blocked = True
        self.preemptions += 1

    def _start_decode(self, llm: LLM, max_steps: int, sm: float) -> bool:
        """Start a run of up to ``max_steps`` decode steps; False when the batch is empty."""
        if llm.pending:
            self._join_pending(llm)
        cost = llm.cost_blocks
        pool = self.pool
        hist = llm.hist
        while llm.run:
            free = pool.limit(llm.idx) // cost
            if hist[-llm.steps % BLOCK_TOKENS] <= free:  # llm.blocks_needed(1)
                break
            self._preempt_tail(llm)
        if not llm.run:
            return False
        sim = self.sim
        heap = llm.finish_heap
        state = sim.state
        fin_step = sim.fin_step
        while state[heap[0][1]] != RUNNING or fin_step[heap[0][1]] != heap[0][0]:
            heapq.heappop(heap)
        k = llm.max_steps_within(free, max(1, min(heap[0][0] - llm.steps, max_steps)))
        need = llm.blocks_needed(k)
        if need > 0:
            pool.take(llm.idx, need * cost)
            llm.dec_blocks += need * cost
        n = len(llm.run)
        job = Job(DECODE_JOB, llm, sm, 0.0, 0.0)
        sim.costs.decode(job, n, llm.base_sum + n * llm.steps, k)
        job.last = k - 1
        job.end_ms = job.cum(k)
        job.held0 = llm.held_tb
        job.reserved = need
        # self._start(job), inlined
        now = sim.engine.now
        job.seg_start = now
        self.jobs.append(job)
        self.sm_area += self.sm_used * (now - self.sm_t)
        self.sm_t = now
        self.sm_used += sm
        if self.sm_used > self.max_sm_seen:
            self.max_sm_seen = self.sm_used
        llm.decode = job
        return True

    # ---- sampling ---------------------------------------------------------------------
    def sample(self, interval: float) -> tuple[float, float]:
        """Mean SM share in use since the last sample, and KV pool fraction in use now."""
        now = self.sim.engine.now
        self.sm_area += self.sm_used * (now - self.sm_t)
        self.sm_t = now
        sm = self.sm_area / interval if interval > 0 else self.sm_used
        self.sm_area = 0.0
        kv = self.pool.used_total / self.pool.total if self.pool.total else 0.0
        return sm, kv
