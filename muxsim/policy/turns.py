"""Meshes whose jobs take whole-mesh turns: ``temporal`` (colocated units take turns)
and ``spatial`` (one unit alone: vLLM's continuous batching).

One job at a time owns every SM. At each wake-up with the mesh idle, the scheduler picks
the unit to run next: the one holding the oldest request (``fcfs``: its oldest waiting
request if it may prefill, or the oldest in its batch), or the next in turn
(``round-robin``). That unit runs a prefill of its admissible waiting requests if it
has any (prefill first, as vLLM), else a run of decode steps over its batch (after
preempting its newest requests until the next step's KV blocks fit). With
``round-robin`` and other units holding work, a decode run is one step, so the turn
passes every step; with ``fcfs`` it runs until a request of it finishes, or one of its
requests arrives (a prefill may then go first). A request arriving at an idle mesh
starts a turn at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from muxsim.policy.common import (
    PolicyBase,
    initial_quotas,
    pick_prefill,
    prefill_allowed,
    retry_decode,
    rotations,
)
from muxsim.policy.decisions import Cut, Decision, Decode, Prefill
from muxsim.policy.steady import SteadyState, UnitModel, prefill_priority, turns
from muxsim.policy.view import DECODE_JOB, MeshView, UnitView

_NOTHING: tuple[Decision, ...] = ()
_INF = float("inf")


@dataclass(frozen=True)
class TurnsPolicy(PolicyBase):
    """A temporal or spatial mesh's scheduler (see the module doc)."""

    mode: str = "temporal"

    def scheduler(self, mesh: MeshView) -> TurnsScheduler:
        return TurnsScheduler(self, mesh)

    def steady_state(self, unit: UnitModel) -> SteadyState:
        """This policy's analytic throughput model of a unit (:mod:`muxsim.policy.steady`):
        one unit alone batches continuously (prefill first); colocated ones take turns."""
        if self.mode == "spatial":
            return prefill_priority(unit)
        return turns(unit)


class TurnsScheduler:
    """One mesh's turn-taking scheduler (see :class:`muxsim.policy.flex.FlexScheduler`
    for the shape of the ``on_*`` methods)."""

    tick_s = None  # no periodic work

    def __init__(self, policy: TurnsPolicy, mesh: MeshView) -> None:
        self.policy = policy
        self.mesh = mesh
        self.units = list(mesh.units)
        self.max_tokens = policy.limits.max_prefill_tokens
        self.max_steps = policy.max_chunk_steps
        self.fcfs = policy.order == "fcfs"
        self.tracks_oldest_running = self.fcfs and len(self.units) > 1
        self._rotations = rotations(self.units)
        # decisions are values: one of each per unit
        self._decode = [(Decode(u.idx, self.max_steps, 1.0),) for u in self.units]
        self._step = [(Decode(u.idx, 1, 1.0),) for u in self.units]
        self._cut = [(Cut(u.idx),) for u in self.units]
        self.rr = 0

    def start(self) -> Iterator[Decision]:
        yield initial_quotas(self.policy, self.mesh, self.policy.quotas and len(self.units) > 1)

    def on_arrival(self, unit: UnitView) -> Iterator[Decision] | tuple[Decision, ...]:
        if len(unit.waiting) > 1:
            return _NOTHING  # its head was considered at the last wake-up
        jobs = self.mesh.jobs
        if not jobs:
            return self.schedule()
        job = jobs[0]
        if job.kind == DECODE_JOB and (job.unit is unit or not self.fcfs):
            return self._cut[job.unit.idx]  # a prefill may go next at the step boundary
        return _NOTHING

    def schedule(self, *_: object, rest: list[UnitView] | None = None) -> Iterable[Decision]:
        """One scheduling round, also what the scheduler does when a job ends
        (``on_prefill_end(unit)``, ``on_decode_end(unit, steps, blocks)``): the job of
        the first candidate with work, a prefill, else a decode run. A tuple of one
        decision; a generator where requests must be preempted first, since that may
        empty the batch and pass the turn on to the candidates ``rest``."""
        mesh = self.mesh
        if mesh.jobs:
            return _NOTHING
        units = self.units
        if rest is not None:
            candidates = rest
        elif len(units) == 1:
            candidates = units
        elif self.fcfs:
            arrival = mesh.requests.arrival

            def oldest(x: UnitView) -> float:
                w = arrival[x.waiting[0]] if prefill_allowed(x) else _INF
                return min(w, x.oldest_running())

            candidates = sorted(units, key=lambda x: (oldest(x), x.idx))
        else:
            rot = self._rotations
            candidates = rot[self.rr % len(rot)]
        kv = mesh.kv
        for u in candidates:
            # prefill_allowed(u), inlined
            if u.waiting and u.prefill is None and not (u.preempted and (u.run or u.pending)):
                rids = pick_prefill(u, kv.limit(u.idx), mesh.requests, self.max_tokens)
                if rids:
                    self.rr = u.idx + 1
                    return (Prefill(u.idx, rids, 1.0),)
            if u.run or u.pending:
                d = self._decode[u.idx]
                if not self.fcfs and any(x is not u and (x.waiting or x.run or x.pending) for x in units):
                    d = self._step[u.idx]  # others hold work: the turn passes every step
                if u.next_step_blocks() > kv.limit(u.idx) // u.cost_blocks:
                    return self._make_room(candidates, candidates.index(u), d[0])
                self.rr = u.idx + 1
                return d
        return _NOTHING

    def _make_room(self, candidates: list[UnitView], pos: int, d: Decision) -> Iterator[Decision]:
        u = candidates[pos]
        yield from retry_decode(self.mesh, u, d)
        if u.decode is not None:
            self.rr = u.idx + 1
        else:  # every request was preempted: the next candidate's turn
            yield from self.schedule(rest=candidates[pos + 1:])

    on_prefill_end = schedule
    on_decode_end = schedule
    on_tick = schedule
