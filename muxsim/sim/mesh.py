"""One mesh at run time: the runtime that carries out its policy's decisions.

The mesh does mechanism only. It holds the units (:class:`~muxsim.sim.batch.LLM`), the
running jobs and their timing (:class:`~muxsim.sim.jobs.JobRunner`) and the KV pool
(:class:`~muxsim.sim.kvcache.KVPool`), and it is the read-only view its scheduler reads
(:class:`muxsim.policy.view.MeshView`). Whenever something changes on the mesh (a
request arrives, a job ends, the policy's periodic tick) it asks the scheduler
(:mod:`muxsim.policy`) and carries out each decision before asking for the next; then,
if the set of running jobs changed, it re-rates them for interference.

What happens without the policy, as a serving engine's workers would do it:

- A prefill job that ends gives each of its requests a token: a request with nothing
  more to generate is done; the others join the unit's batch at its next step boundary:
  at once if the unit has no decode run, else when that run ends (the run is cut after
  its step in progress, since a run covers an unchanged batch).
- A decode run of ``k`` steps (as many as the policy allows, up to the step at which
  the first request of the batch finishes and as far as the KV blocks the steps need
  are free; those are set aside when it starts) advances every request ``k`` tokens;
  the requests that reached their answer's length are done and their blocks freed.
- Requests are counted in the request table (:class:`~muxsim.sim.requests.RequestTable`),
  the only place their state lives.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Any

from muxsim.limits import BLOCK_TOKENS
from muxsim.limits import blocks_for as _blocks
from muxsim.policy.decisions import (
    Cut,
    Decision,
    Decode,
    Preempt,
    Prefill,
    ReleaseLookahead,
    SetQuotas,
)
from muxsim.sim.batch import LLM
from muxsim.sim.jobs import DECODE_JOB, PREFILL_JOB, Job, JobRunner
from muxsim.sim.kvcache import KVPool
from muxsim.sim.requests import RUNNING

_heappush = heapq.heappush
_heappop = heapq.heappop


class Mesh(JobRunner):
    def __init__(self, sim: Any, mesh: Any, llms: list[LLM], total_blocks: int, policy: Any) -> None:
        """``sim``: the :class:`~muxsim.sim.run.Simulation` (its engine, request table,
        step costs and configuration); ``mesh``: the plan's mesh; ``policy``: the
        :mod:`muxsim.policy` policy its scheduler runs."""
        super().__init__()
        self.sim = sim
        self.engine = sim.engine
        self.requests = sim.requests
        self._state = sim.requests.state  # its columns the hot paths read
        self._fin_step = sim.requests.fin_step
        self.costs = sim.costs
        self.id = mesh.id
        self.mesh = mesh
        self.units = llms
        self.policy = policy
        cfg = sim.config
        self.interference_on = cfg.interference_on
        self.interference = cfg.interference
        self.kv = KVPool(total_blocks, len(llms))
        self.preemptions = 0
        self.held: list[Callable[[], None]] = []  # plan changes waiting for the mesh's jobs to end
        self._do = {Prefill: self._prefill, Decode: self._decode, Preempt: self._preempt, Cut: self._cut,
                    ReleaseLookahead: self._release, SetQuotas: self._set_quotas}
        self._start_policy()

    def _start_policy(self) -> None:
        self.scheduler = self.policy.scheduler(self)
        for u in self.units:
            u.track_arrivals = self.scheduler.tracks_oldest_running
        self._carry(self.scheduler.start())

    @property
    def now(self) -> float:
        return self.engine.now

    # ---- carrying out decisions --------------------------------------------------------
    def _carry(self, decisions: Iterable[Decision]) -> None:
        do = self._do
        for d in decisions:
            t = type(d)
            if t is Decode:  # the common decisions called directly (a call site each)
                self._decode(d)
            elif t is Prefill:
                self._prefill(d)
            else:
                do[t](d)
        if self._changed:
            self._changed = False
            self.rerate()

    def _prefill(self, d: Prefill) -> None:
        llm = self.units[d.unit]
        rids = d.rids
        waiting = llm.waiting
        for r in rids:
            if waiting[0] == r:
                waiting.popleft()
            else:
                waiting.remove(r)
        tokens, pairs, blocks = self.requests.start_prefill(rids)
        blocks *= llm.cost_blocks
        self.kv.take(llm.idx, blocks)
        llm.pre_blocks += blocks
        sm = d.sm
        total, kernel, hbm = self.costs.prefill(llm, tokens, len(rids), pairs, sm)
        job = Job(PREFILL_JOB, llm, sm, kernel, hbm)
        job.total = total
        job.end_ms = total
        job.rids = rids
        self._start(job)

    def _decode(self, d: Decode) -> None:
        llm = self.units[d.unit]
        if llm.decode is not None:
            raise RuntimeError(f"unit {llm.name}: a decode run was started with one running")
        cost = llm.cost_blocks
        kv = self.kv
        i = llm.idx
        free = kv.total - kv.used_total  # kv.limit(i), inlined
        if kv.quotas:
            free = max(0, min(free, kv.quota[i] - kv.used[i]))
        free //= cost
        steps = llm.steps
        if not llm.run or llm.hist[-steps % BLOCK_TOKENS] > free:  # llm.next_step_blocks()
            return  # an empty batch, or the next step's blocks are not free: nothing starts
        heap = llm.finish_heap
        state = self._state
        fin_step = self._fin_step
        top = heap[0]
        while state[top[1]] != RUNNING or fin_step[top[1]] != top[0]:  # stale: finished or preempted
            _heappop(heap)
            top = heap[0]
        k = llm.max_steps_within(free, max(1, min(top[0] - steps, d.max_steps)))
        need = llm.blocks_needed(k)
        if need > 0:
            kv.take(i, need * cost)
            llm.dec_blocks += need * cost
        n = len(llm.run)
        sm = d.sm
        job = Job(DECODE_JOB, llm, sm, 0.0, 0.0)
        self.costs.decode(job, n, llm.base_sum + n * steps, k)
        job.last = k - 1
        job.end_ms = job.cum(k)
        job.reserved = need
        # self._start(job), inlined
        now = self.engine.now
        job.seg_start = now
        self.jobs.append(job)
        self.sm_area += self.sm_used * (now - self.sm_t)
        self.sm_t = now
        self.sm_used += sm
        if self.sm_used > self.max_sm_seen:
            self.max_sm_seen = self.sm_used
        llm.decode = job
        self._changed = True

    def _preempt(self, d: Preempt) -> None:
        llm = self.units[d.unit]
        rid = next(reversed(llm.run))
        self.evict(llm, rid)
        llm.waiting.appendleft(rid)
        llm.preempted = True

    def evict(self, llm: LLM, rid: int) -> None:
        """A running request leaves ``llm``'s batch: its KV blocks are freed and it will be
        recomputed, its prompt and the tokens it generated (a preemption)."""
        if llm.decode is not None:
            raise RuntimeError(f"unit {llm.name}: a request evicted while its decode run is in flight")
        req = self.requests
        base = req.base[rid]
        ctx = base + llm.steps
        blocks = llm.remove(rid, base) * llm.cost_blocks
        req.preempted(rid, ctx)
        llm.dec_blocks -= blocks
        self.kv.release(llm.idx, blocks)
        self.preemptions += 1

    def _cut(self, d: Cut) -> None:
        if d.unit is None:
            for job in self.jobs:
                if job.kind == DECODE_JOB:
                    self.truncate(job)
            return
        job = self.units[d.unit].decode
        if job is not None:
            self.truncate(job)

    def _release(self, d: ReleaseLookahead) -> None:
        for job in self.jobs:
            if job.kind == DECODE_JOB:
                self.truncate(job, only_if_excess=True)

    def _set_quotas(self, d: SetQuotas) -> None:
        self.kv.set_quotas(d.quotas, d.enforce)

    # ---- plan changes --------------------------------------------------------------------
    def hold(self, then: Callable[[], None]) -> None:
        """A plan change's barrier: stop asking the policy, end every decode run after its
        step in progress, and once no job runs on the mesh call ``then`` (and any other
        change held meanwhile); then the policy starts over on the mesh's units."""
        self.held.append(then)
        if len(self.held) == 1:
            self._cut(Cut())
            if not self.jobs:
                self._at_barrier()

    def _at_barrier(self) -> None:
        while self.held:
            todo, self.held = self.held, []
            for then in todo:
                then()
        if self.units:
            self._start_policy()
            self._carry(self.scheduler.schedule())

    def reconfigure(self, units: list[LLM], total_blocks: int) -> None:
        """New units and a new KV pool size, with no job running (at a barrier, see
        :meth:`hold`): each unit keeps the blocks it holds."""
        if self.jobs:
            raise RuntimeError(f"mesh {self.id}: reconfigured with jobs running")
        used = {id(u): self.kv.used[u.idx] for u in self.units}
        kv = KVPool(total_blocks, len(units))
        for i, u in enumerate(units):
            u.idx = i
            kv.take(i, used.get(id(u), 0))  # raises if the pool would be oversubscribed
        self.kv = kv
        self.units = units

    # ---- events --------------------------------------------------------------------------
    def on_arrival(self, llm: LLM, rid: int) -> None:
        llm.waiting.append(rid)
        if self.held:
            return
        decisions = self.scheduler.on_arrival(llm)
        if decisions:  # often nothing (an empty tuple): a request joined a queue's tail
            self._carry(decisions)

    def _settle(self) -> None:
        """A job ended while a plan change waits for the mesh's last one."""
        if not self.jobs:
            self._changed = False
            self._at_barrier()
        elif self._changed:
            self._changed = False
            self.rerate()

    def tick(self) -> None:
        """The policy's periodic work (ADBS's quota adaptation)."""
        if not self.held and self.units:
            self._carry(self.scheduler.on_tick())

    def _on_job_end(self, job: Job) -> None:
        job.event = None
        self._finish_job(job)
        llm = job.unit
        if job.kind == PREFILL_JOB:
            self._end_prefill(job)
            if self.held:
                return self._settle()
            decisions = self.scheduler.on_prefill_end(llm)
        else:
            k, held = self._end_decode(job)
            if self.held:
                return self._settle()
            decisions = self.scheduler.on_decode_end(llm, k, held)
        self._carry(decisions)

    def _end_prefill(self, job: Job) -> None:
        now = self.engine.now
        llm = job.unit
        req = self.requests
        done = req.end_prefill(job.rids, now, llm.pending)
        if done:
            prompt = req.prompt
            gen = req.gen
            blocks = sum(_blocks(prompt[rid] + gen[rid] - 1) for rid in done) * llm.cost_blocks
            llm.pre_blocks -= blocks
            self.kv.release(llm.idx, blocks)
            llm.outstanding -= len(done)
            llm.preempted = False
        if llm.decode is not None:
            self.truncate(llm.decode)  # they join when the run ends, after its step in progress
        elif llm.pending:
            self._join_pending(llm)

    def _join_pending(self, llm: LLM) -> None:
        req = self.requests
        arrival = req.arrival
        steps = llm.steps
        track = llm.track_arrivals
        fin_step = req.fin_step
        blocks = 0
        for rid in llm.pending:
            ctx = req.join(rid, steps)
            llm.add(rid, ctx)
            if track:
                _heappush(llm.arrivals, (arrival[rid], rid))
            blocks += _blocks(ctx)
            _heappush(llm.finish_heap, (fin_step[rid], rid))
        blocks *= llm.cost_blocks
        llm.pre_blocks -= blocks
        llm.dec_blocks += blocks
        llm.pending = []

    def _end_decode(self, job: Job) -> tuple[int, int]:
        """Advance the batch ``k`` steps; returns ``k`` and the blocks the batch held at
        its last step."""
        llm = job.unit
        req = self.requests
        k = job.last + 1
        llm.held_tb += llm.blocks_needed(k)
        llm.steps += k
        held_at_last = llm.held_tb * llm.cost_blocks
        heap = llm.finish_heap
        finished = False
        now = self.engine.now
        state = req.state
        fin_step = req.fin_step
        while heap and heap[0][0] <= llm.steps:
            step, rid = _heappop(heap)
            if state[rid] == RUNNING and fin_step[rid] == step:
                llm.remove(rid, req.base[rid])
                req.decoded(rid, now)
                llm.outstanding -= 1
                finished = True
        if finished:
            llm.preempted = False
        held = llm.held_tb * llm.cost_blocks
        if held != llm.dec_blocks:
            self.kv.release(llm.idx, llm.dec_blocks - held)
            llm.dec_blocks = held
        if llm.pending:
            self._join_pending(llm)
        return k, held_at_last

    # ---- sampling -----------------------------------------------------------------------
    def sample(self, interval: float) -> tuple[float, float]:
        """Mean SM share in use since the last sample, and KV pool fraction in use now."""
        now = self.engine.now
        self.sm_area += self.sm_used * (now - self.sm_t)
        self.sm_t = now
        sm = self.sm_area / interval if interval > 0 else self.sm_used
        self.sm_area = 0.0
        kv = self.kv.used_total / self.kv.total if self.kv.total else 0.0
        return sm, kv
