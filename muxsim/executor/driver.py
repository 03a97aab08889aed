"""The driver of one mesh: the simulator's policy against live workers.

A :class:`MeshDriver` holds the mesh's state as the plain view of
:mod:`muxsim.policy.view` (:class:`~muxsim.policy.view.MeshState`), asks the mesh's
scheduler, made by the same policy object the simulator uses
(``SimConfig.policy(plan.mode)``), what to do whenever something changes (an arrival,
a job's end, the policy's tick), and carries each decision out on the workers: a
``Prefill`` sends the requests' tokens (prompt and tokens so far) to the unit's prefill
worker, a ``Decode`` one decode step of the batch to its decode worker. The executor
is step-level: every decode job is one step, so ``Cut`` and ``ReleaseLookahead`` have
nothing to do, and the policy is asked again after every step.

The driver owns the mesh's KV pool bookkeeping: a :class:`~muxsim_kernels.cache.BlockAllocator`
over the pool the workers share and a block table per request, handed to the workers
with each job. Its view counts the same head-wise blocks the simulator counts
(``layers x KV heads`` per 32-token block) against the same pool size, so the policy
reads the numbers it reads in the simulator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from muxsim_kernels.cache import BlockAllocator, SequenceBlocks, stack_tables

from muxsim.limits import blocks_for
from muxsim.policy.decisions import Cut, Decode, Preempt, Prefill, ReleaseLookahead, SetQuotas
from muxsim.policy.view import (
    DECODE_JOB,
    PREFILL_JOB,
    JobState,
    KVState,
    MeshState,
    RequestState,
    UnitState,
)


@dataclass
class Ledger:
    """Every request of the run: the table the policies read and what was measured."""

    names: list[str]
    arrival: list[float]
    prompt_len: list[int]
    output_len: list[int]
    tokens: list[list[int]]  # prompt token ids, then the generated ones
    view: RequestState = field(init=False)
    first: list[float] = field(init=False)
    finish: list[float] = field(init=False)
    preemptions: list[int] = field(init=False)
    mesh: list[str] = field(init=False)
    arrived: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        n = len(self.names)
        self.view = RequestState(list(self.arrival), list(self.prompt_len), [0] * n)
        self.first = [math.nan] * n
        self.finish = [math.nan] * n
        self.preemptions = [0] * n
        self.mesh = [""] * n

    @property
    def done(self) -> int:
        return sum(1 for x in self.finish if not math.isnan(x))


@dataclass(frozen=True)
class UnitInfo:
    """A unit as the driver needs it: its plan entry, architecture and workers."""

    unit: Any  # muxsim.plan.Unit
    layers: int
    kv_heads: int  # per GPU
    rate: float
    prefill_wid: int
    decode_wid: int


Submit = Callable[[int, str, int, dict[str, Any]], None]  # (worker id, kind, job id, payload)


class MeshDriver:
    def __init__(self, mesh_id: str, units: list[UnitInfo], policy: Any, total_blocks: int, pool_blocks: int,
                 ledger: Ledger, clock: Callable[[], float], job_ids: Iterator[int],
                 submit: Submit | None = None) -> None:
        self.id = mesh_id
        self.info = units
        self.ledger = ledger
        self.submit = submit  # set before the first arrival
        self.clock = clock
        self.job_ids = job_ids
        n = len(units)
        self.state = MeshState(
            units=[UnitState(i, x.unit.name, x.unit.max_batch, x.unit.prefill_sm, x.unit.decode_sm,
                             x.layers * x.kv_heads, x.unit.kv_share, x.rate) for i, x in enumerate(units)],
            kv=KVState(total_blocks, [0] * n, [0] * n), requests=ledger.view)
        self.alloc = BlockAllocator(pool_blocks)
        self.seqs: dict[int, SequenceBlocks] = {}
        self.jobs: dict[int, JobState] = {}  # job id -> job
        self.started: dict[int, float] = {}  # job id -> when it was sent
        # per kind of job: jobs, seconds in the workers' forward passes, seconds from send to answer
        self.job_stats = {k: [0, 0.0, 0.0] for k in ("prefill", "decode")}
        self.preemptions = 0
        self.outstanding = [0] * n  # per unit: requests routed here, not finished (what routing reads)
        self.samples: dict[str, list[float]] = {"t": [], "sm": [], "kv": []}
        self.scheduler = policy.scheduler(self.state)
        self.next_tick = self.scheduler.tick_s
        self._carry(self.scheduler.start())

    # ---- events -------------------------------------------------------------------------
    def on_arrival(self, unit_idx: int, rid: int) -> None:
        self.ledger.mesh[rid] = self.id
        self.outstanding[unit_idx] += 1
        u = self.state.units[unit_idx]
        u.waiting.append(rid)
        self._carry(self.scheduler.on_arrival(u))

    def tick(self, now: float) -> None:
        """The policy's periodic work, when due (ADBS's quota adaptation)."""
        if self.next_tick is not None and now >= self.next_tick:
            self.next_tick = now + self.scheduler.tick_s
            self._carry(self.scheduler.on_tick())

    def on_done(self, job_id: int, tokens: list[int], seconds: float = 0.0) -> None:
        job = self.jobs.pop(job_id)
        self.state.jobs.remove(job)
        u = job.unit
        now = self._now()
        stats = self.job_stats["prefill" if job.kind == PREFILL_JOB else "decode"]
        stats[0] += 1
        stats[1] += seconds
        stats[2] += now - self.started.pop(job_id)
        led = self.ledger
        gen = led.view.gen
        if job.kind == PREFILL_JOB:
            u.prefill = None
            for rid, t in zip(job.rids, tokens):
                self._emit(rid, t, now)
                if gen[rid] >= led.output_len[rid]:
                    self._finish(u, rid, now)
                else:
                    u.pending.append(rid)
            if u.decode is None:
                self._join(u)
            self._carry(self.scheduler.on_prefill_end(u))
        else:
            u.decode = None
            held = sum(self._blocks(rid) for rid in u.run)
            for rid, t in zip(job.rids, tokens):
                self._emit(rid, t, now)
                u.contexts[rid] += 1
                if gen[rid] >= led.output_len[rid]:
                    del u.run[rid]
                    del u.contexts[rid]
                    u.arrival.pop(rid, None)
                    self._finish(u, rid, now)
            self._join(u)
            self._carry(self.scheduler.on_decode_end(u, 1, held))

    # ---- carrying out decisions -----------------------------------------------------------
    def _now(self) -> float:
        self.state.now = self.clock()
        return self.state.now

    def _carry(self, decisions: Iterable[Any]) -> None:
        self._now()
        for d in decisions:
            t = type(d)
            if t is Prefill:
                self._prefill(d)
            elif t is Decode:
                self._decode(d)
            elif t is Preempt:
                self._preempt(d)
            elif t is SetQuotas:
                self.state.kv.quota = list(d.quotas)
                self.state.kv.quotas = d.enforce
            elif t not in (Cut, ReleaseLookahead):  # nothing to do step by step
                raise RuntimeError(f"mesh {self.id}: unknown decision {d!r}")

    def _blocks(self, rid: int) -> int:
        seq = self.seqs[rid]
        return seq.table.size

    def _take(self, u: UnitState, rid: int, tokens: int) -> None:
        seq = self.seqs.setdefault(rid, SequenceBlocks(self.info[u.idx].layers, self.info[u.idx].kv_heads))
        before = seq.table.size
        seq.reserve(self.alloc, tokens)
        self.state.kv.used[u.idx] += seq.table.size - before

    def _free(self, u: UnitState, rid: int) -> None:
        seq = self.seqs.pop(rid)
        self.state.kv.used[u.idx] -= seq.table.size
        seq.release(self.alloc)

    def _prefill(self, d: Prefill) -> None:
        u = self.state.units[d.unit]
        led = self.ledger
        gen = led.view.gen
        for rid in d.rids:
            u.waiting.remove(rid)
        lengths = [led.prompt_len[r] + gen[r] for r in d.rids]
        for rid, n in zip(d.rids, lengths):
            self._take(u, rid, n)
        job = JobState(PREFILL_JOB, d.sm, u, list(d.rids))
        u.prefill = job
        payload = {"tokens": [led.tokens[r][:n] for r, n in zip(d.rids, lengths)],
                   "tables": stack_tables([self.seqs[r] for r in d.rids])}
        self._start(job, self.info[u.idx].prefill_wid, "prefill", payload)

    def _decode(self, d: Decode) -> None:
        u = self.state.units[d.unit]
        if u.decode is not None:
            raise RuntimeError(f"unit {u.name}: a decode step was started with one running")
        kv = self.state.kv
        if not u.run or u.next_step_blocks() > kv.limit(u.idx) // u.cost_blocks:
            return  # an empty batch, or the next step's blocks are not free: nothing starts
        rids = list(u.run)
        for rid in rids:
            self._take(u, rid, u.contexts[rid] + 1)
        job = JobState(DECODE_JOB, d.sm, u, rids)
        u.decode = job
        led = self.ledger
        payload = {"tokens": [led.tokens[r][-1] for r in rids], "positions": [u.contexts[r] for r in rids],
                   "tables": stack_tables([self.seqs[r] for r in rids])}
        self._start(job, self.info[u.idx].decode_wid, "decode", payload)

    def _preempt(self, d: Preempt) -> None:
        u = self.state.units[d.unit]
        rid = next(reversed(u.run))
        del u.run[rid]
        del u.contexts[rid]
        u.arrival.pop(rid, None)
        self._free(u, rid)
        u.waiting.appendleft(rid)
        u.preempted = True
        self.ledger.preemptions[rid] += 1
        self.preemptions += 1

    def _start(self, job: JobState, wid: int, kind: str, payload: dict[str, Any]) -> None:
        job_id = next(self.job_ids)
        self.jobs[job_id] = job
        self.started[job_id] = self.clock()
        self.state.jobs.append(job)
        self.submit(wid, kind, job_id, payload)

    # ---- request bookkeeping ----------------------------------------------------------------
    def _emit(self, rid: int, token: int, now: float) -> None:
        led = self.ledger
        led.tokens[rid].append(token)
        led.view.gen[rid] += 1
        if math.isnan(led.first[rid]):
            led.first[rid] = now

    def _finish(self, u: UnitState, rid: int, now: float) -> None:
        self._free(u, rid)
        self.outstanding[u.idx] -= 1
        self.ledger.finish[rid] = now
        u.preempted = False

    def _join(self, u: UnitState) -> None:
        """Prefilled requests join the batch (at a step boundary: no decode running)."""
        led = self.ledger
        for rid in u.pending:
            u.run[rid] = None
            u.contexts[rid] = led.prompt_len[rid] + led.view.gen[rid] - 1
            u.arrival[rid] = led.arrival[rid]
        u.pending = []

    def sample(self, now: float) -> None:
        kv = self.state.kv
        self.samples["t"].append(now)
        self.samples["sm"].append(self.state.sm_used)
        self.samples["kv"].append(kv.used_total / kv.total if kv.total else 0.0)


def pool_bound(units: list[UnitInfo], longest: dict[str, int]) -> int:
    """Head-wise blocks a mesh's units can hold at most at once: each its batch cap of its
    longest request. The pool the workers map is the smaller of this and the plan's pool
    (what a tiny model on a CPU never fills is never allocated)."""
    return sum(x.unit.max_batch * blocks_for(longest.get(x.unit.name, 1)) * x.layers * x.kv_heads for x in units)
