"""Jobs and their timing on one mesh: starting and ending them, SM accounting,
interference re-rating, and ending a decode run early.

A prefill job runs a batch of prompts once; a decode job runs ``last + 1`` steps over an
unchanged batch, as one event (its step times are prefix sums from
:class:`~muxsim.sim.costs.StepCosts`). Progress is kept in alone-milliseconds: while
jobs co-run their speeds follow the interference model, and whenever the set of running
jobs changes every job's slowdown is recomputed (:meth:`JobRunner.rerate`) and the ends
that moved are rescheduled. :meth:`JobRunner.truncate` ends a decode run after the step
in progress (a policy's ``Cut``), giving back the KV blocks it had set aside for later
steps.
"""

from __future__ import annotations

from heapq import heappush as _heappush
from typing import Any

from muxsim.interference import slowdown
from muxsim.policy.view import DECODE_JOB, PREFILL_JOB
from muxsim.sim.engine import EventOrder

_JOB_END = int(EventOrder.JOB_END)
_EPS_MS = 1e-9

__all__ = ["DECODE_JOB", "PREFILL_JOB", "Job", "JobRunner"]


class Job:
    """A prefill (one step) or a run of decode steps, with progress in alone-ms."""

    __slots__ = (
        "costs",
        "done",
        "end_ms",
        "event",
        "f",
        "hbm",
        "i0",
        "kernel",
        "kind",
        "last",
        "mix",
        "reserved",
        "rids",
        "seg_start",
        "slow",
        "sm",
        "total",
        "unit",
    )

    def __init__(self, kind: int, unit: Any, sm: float, kernel: float, hbm: float) -> None:
        """``unit``: the :class:`~muxsim.sim.batch.LLM` the job runs for."""
        self.kind = kind
        self.unit = unit
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
        self.reserved = 0  # decode: token blocks set aside for its steps
        self.mix: Any = None  # decode: where its interference inputs are, until computed (kernel < 0)

    def inputs(self) -> None:
        """Set a decode run's kernel fraction and HBM demand from the rows
        :meth:`~muxsim.sim.costs.StepCosts.decode` left (``mix``): those of its middle
        step, interpolated between the integer mean contexts around it."""
        row, mid = self.mix
        f = self.f
        kr = row[1]
        hr = row[2]
        self.kernel = (1.0 - f) * kr[mid] + f * kr[mid + 1]
        self.hbm = (1.0 - f) * hr[mid] + f * hr[mid + 1]

    def cum(self, s: int) -> float:
        """Alone-ms at the end of the first ``s`` steps."""
        if self.costs is None:
            return self.total if s else 0.0
        p = self.costs
        i = self.i0
        f = self.f
        return (1.0 - f) * (p[i + s + 1] - p[i + 1]) + f * (p[i + s + 2] - p[i + 2])


class JobRunner:
    """The running jobs of one mesh and their timing. A subclass provides ``engine``,
    ``kv``, ``interference_on``, ``interference`` and ``_on_job_end``."""

    engine: Any
    kv: Any
    interference_on: bool
    interference: Any

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.sm_used = 0.0
        self.sm_area = 0.0  # integral of the SM share in use over time (s)
        self.sm_t = 0.0
        self.max_sm_seen = 0.0
        self._changed = False  # the set of running jobs changed since the last re-rating

    def _on_job_end(self, job: Job) -> None:  # pragma: no cover - provided by the mesh
        raise NotImplementedError

    def _start(self, job: Job) -> None:
        now = job.seg_start = self.engine.now
        self.jobs.append(job)
        self._changed = True
        self.sm_area += self.sm_used * (now - self.sm_t)
        self.sm_t = now
        self.sm_used += job.sm
        if self.sm_used > self.max_sm_seen:
            self.max_sm_seen = self.sm_used
        if job.kind == PREFILL_JOB:
            job.unit.prefill = job
        else:
            job.unit.decode = job

    def _finish_job(self, job: Job) -> None:
        self.jobs.remove(job)
        self._changed = True
        now = self.engine.now
        self.sm_area += self.sm_used * (now - self.sm_t)
        self.sm_t = now
        self.sm_used -= job.sm
        if job.kind == PREFILL_JOB:
            job.unit.prefill = None
        else:
            job.unit.decode = None

    def _reschedule(self, job: Job) -> None:
        eng = self.engine
        if job.event is not None:
            job.event[3] = None  # Engine.cancel(job.event), inlined
        end = job.seg_start + (job.end_ms - job.done) * job.slow * 1e-3
        now = eng.now
        # eng.schedule(max(end, now), EventOrder.JOB_END, self._on_job_end, job), inlined
        eng._seq = seq = eng._seq + 1
        job.event = ev = [end if end > now else now, _JOB_END, seq, self._on_job_end, job]
        _heappush(eng._heap, ev)

    def rerate(self) -> None:
        """Recompute every running job's slowdown; reschedule the ends that moved."""
        jobs = self.jobs
        if len(jobs) == 1:
            j = jobs[0]
            if j.event is None or j.slow != 1.0:
                if j.event is not None:
                    j.done += (self.engine.now - j.seg_start) * 1e3 / j.slow
                    j.seg_start = self.engine.now
                j.slow = 1.0
                self._reschedule(j)
            return
        if self.interference_on:
            s_tot = 0.0
            d_tot = 0.0
            for j in jobs:
                if j.kernel < 0.0:
                    j.inputs()
                s_tot += j.sm
                d_tot += j.hbm
            params = self.interference
            slows = [slowdown(s_tot, d_tot, j.kernel, j.hbm, params) for j in jobs]
        else:
            slows = [1.0] * len(jobs)
        now = self.engine.now
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
        progress = job.done + (self.engine.now - job.seg_start) * 1e3 / job.slow - _EPS_MS
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
        unit = job.unit
        keep = unit.blocks_needed(lo)
        excess = (job.reserved - keep) * unit.cost_blocks
        if only_if_excess and excess <= 0:
            return False
        job.last = lo - 1
        job.end_ms = job.cum(lo)
        if excess > 0:
            job.reserved = keep
            unit.dec_blocks -= excess
            self.kv.release(unit.idx, excess)
        self._reschedule(job)
        return True
