"""Flex meshes (MuxServe): every unit's prefill and decode jobs run concurrently on SM
shares, as long as the shares of the running jobs fit the overload limit.

:class:`FlexPolicy` is ADBS and its ablations (``FLEX_POLICIES`` in
:mod:`muxsim.policy`). At every wake-up the scheduler:

1. Prefill first: in round-robin order (starting after the last unit that started one),
   or by oldest waiting request (``fcfs``), a unit with waiting requests and no prefill
   running starts a prefill of its oldest requests (up to ``max_prefill_tokens``, its
   batch cap and the KV blocks it may take) at its plan ``prefill_sm``, if that fits
   the overload limit. If nothing fits the blocks, decode runs give back the blocks they
   set aside for later steps and it tries again.
2. A prefill that could run (its oldest request fits) but waits for SMs makes every
   decode run end after its current step, so the scheduler looks again at the step
   boundary; with ``prefill_priority`` (ADBS) no decode starts meanwhile.
3. Decode: in turn (or by oldest request in the batch), each unit with a batch and no
   decode run starts one at its ``decode_sm`` if that fits; before it, its newest
   requests are preempted until the next step's KV blocks fit. If some unit found no
   SMs, the running decodes end after their step, so the units take turns step by step.

After a preemption a unit's prefills wait until one of its requests finishes. With
``quotas`` each unit may hold at most its KV quota; with ``adapt`` (ADBS) every
``adapt_period_s`` a unit whose mean KV use over its last ``adapt_window_steps``
decode steps is at least ``hot_threshold`` of its quota and that has waiting requests
is hot, every other unit offers ``donor_keep`` minus its utilization of its quota
(never blocks in use), and hot units share what was offered in proportion to their
quotas (:func:`adbs_quotas`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from muxsim.limits import blocks_for
from muxsim.policy.common import PolicyBase, initial_quotas, pick_prefill, retry_decode, rotations
from muxsim.policy.decisions import Cut, Decision, Decode, Prefill, ReleaseLookahead, SetQuotas
from muxsim.policy.steady import (
    NoSteadyState,
    SteadyState,
    UnitModel,
    prefill_priority,
    prefills_beside,
)
from muxsim.policy.view import MeshView, UnitView

_NOTHING: tuple[Decision, ...] = ()
_CUT_ALL = Cut()  # every running decode run ends after its step in progress
_INF = float("inf")


@dataclass(frozen=True)
class FlexPolicy(PolicyBase):
    """A flex mesh's scheduler (see the module doc)."""

    prefill_priority: bool = False
    adapt: bool = False
    adapt_period_s: float = 8.0
    adapt_window_steps: int = 500
    hot_threshold: float = 0.9
    donor_keep: float = 0.95
    mode: str = "flex"

    def scheduler(self, mesh: MeshView) -> FlexScheduler:
        return FlexScheduler(self, mesh)

    def steady_state(self, unit: UnitModel) -> SteadyState:
        """This policy's analytic throughput model of a unit (:mod:`muxsim.policy.steady`).
        A unit alone runs as with prefill priority: when its decode step ends nothing else
        holds SMs, so its prefill goes first."""
        if self.prefill_priority or len(unit.members) == 1:
            return prefill_priority(unit)
        decode = sum(m.decode_sm for m in unit.members)
        limit = self.limits.overload
        for m in unit.members:
            if m.prefill_sm + decode > limit + 1e-9:
                raise NoSteadyState(
                    f"a prefill at {m.prefill_sm:.0%} of the SMs does not fit beside decode jobs holding {decode:.0%} "
                    f"(overload limit {limit:.0%}); without prefill priority it would wait until every batch on "
                    f"the mesh drained, which has no steady state to plan for (plan with prefill_sm <= "
                    f"{max(0.0, limit - decode):.2f})")
        return prefills_beside(unit)


class FlexScheduler:
    """One flex mesh's scheduler: the policy's state (turns, ADBS windows) and its
    decisions at every wake-up. Each ``on_*`` method returns decisions to carry out in
    order (a generator reads the view as it stands after the previous one)."""

    def __init__(self, policy: FlexPolicy, mesh: MeshView) -> None:
        self.policy = policy
        self.mesh = mesh
        self.units = list(mesh.units)
        self.limit = policy.limits.overload + 1e-9  # SM shares of running jobs may sum to this
        self.max_tokens = policy.limits.max_prefill_tokens
        self.max_steps = policy.max_chunk_steps
        self.fcfs = policy.order == "fcfs"
        self.tracks_oldest_running = self.fcfs
        self.priority = policy.prefill_priority
        self.adapt = policy.adapt and len(self.units) > 1
        self.tick_s = policy.adapt_period_s if self.adapt else None
        self._rotations = rotations(self.units)
        self._decode = [Decode(u.idx, self.max_steps, u.decode_sm) for u in self.units]  # decisions are values
        self.rr_prefill = 0
        self.rr_decode = 0
        n = len(self.units)
        self._window: list[deque[tuple[int, float]]] = [deque() for _ in range(n)]  # (steps, blocks in use)
        self._window_steps = [0] * n
        self._window_sum = [0.0] * n
        if not self.adapt:  # nothing to record: a decode end is a scheduling round
            self.on_decode_end = self.schedule  # type: ignore[method-assign]

    # ---- wake-ups ----------------------------------------------------------------------
    def start(self) -> Iterator[Decision]:
        yield initial_quotas(self.policy, self.mesh, self.policy.quotas)

    def on_arrival(self, unit: UnitView) -> Iterator[Decision] | tuple[Decision, ...]:
        if len(unit.waiting) > 1:
            # the queue's head was already considered at the last wake-up and nothing
            # has changed since: a request joining the tail changes no decision
            return _NOTHING
        return self.schedule()

    def on_decode_end(self, unit: UnitView, steps: int, blocks: float) -> Iterator[Decision]:
        """``steps`` decode steps ended holding ``blocks`` KV blocks at the last one."""
        if self.adapt:
            i = unit.idx
            w = self._window[i]
            w.append((steps, blocks))
            self._window_steps[i] += steps
            self._window_sum[i] += steps * blocks
            most = self.policy.adapt_window_steps
            while w and self._window_steps[i] - w[0][0] >= most:
                s, b = w.popleft()
                self._window_steps[i] -= s
                self._window_sum[i] -= s * b
        return self.schedule()

    def on_tick(self) -> Iterator[Decision]:
        """ADBS: move KV quota from idle units to hot ones with waiting requests."""
        kv = self.mesh.kv
        util = []
        for u in self.units:
            i = u.idx
            q = kv.quota[i]
            used = self._window_sum[i] / self._window_steps[i] if self._window_steps[i] else float(kv.used[i])
            util.append(used / q if q > 0 else 1.0)
        backlog = [bool(u.waiting) for u in self.units]
        quota = adbs_quotas(kv.quota, kv.used, util, backlog, self.policy.hot_threshold, self.policy.donor_keep)
        if quota != list(kv.quota):
            yield SetQuotas(quota)
        yield from self.schedule()

    # ---- one scheduling round ----------------------------------------------------------
    def schedule(self, *_: object) -> Iterator[Decision]:
        """One scheduling round (also what a prefill's end calls for:
        ``on_prefill_end(unit)``)."""
        mesh = self.mesh
        kv = mesh.kv
        limit = self.limit
        if self.fcfs:
            arrival = mesh.requests.arrival
            order = sorted(self.units, key=lambda x: (arrival[x.waiting[0]] if x.waiting else _INF, x.idx))
        else:
            rot = self._rotations
            order = rot[self.rr_prefill % len(rot)]
        want = False
        for u in order:
            if not u.waiting or u.prefill is not None or (u.preempted and (u.run or u.pending)):
                continue
            if mesh.sm_used + u.prefill_sm > limit:
                want = want or self._admissible(u)
                continue
            rids = pick_prefill(u, kv.limit(u.idx), mesh.requests, self.max_tokens)
            if not rids:
                yield ReleaseLookahead()
                rids = pick_prefill(u, kv.limit(u.idx), mesh.requests, self.max_tokens)
            if rids:
                yield Prefill(u.idx, rids, u.prefill_sm)
                self.rr_prefill = u.idx + 1
        if want:
            # the step-level scheduler looks again at every step boundary
            yield _CUT_ALL
            if self.priority:
                return
        if self.fcfs:
            order = sorted(self.units, key=lambda x: (x.oldest_running(), x.idx))
        else:
            rot = self._rotations
            order = rot[self.rr_decode % len(rot)]
        starved = False
        for u in order:
            if u.decode is not None or not (u.run or u.pending):
                continue
            if mesh.sm_used + u.decode_sm > limit:
                starved = True
                continue
            yield self._decode[u.idx]
            if u.decode is None:  # its next step's KV blocks are not free
                yield from retry_decode(mesh, u, self._decode[u.idx])
            if u.decode is not None:
                self.rr_decode = u.idx + 1
        if starved:  # decode jobs take turns step by step
            yield _CUT_ALL

    on_prefill_end = schedule

    def _admissible(self, u: UnitView) -> bool:
        """Whether the oldest waiting request would fit the batch and the KV blocks."""
        if u.in_system() >= u.max_batch:
            return False
        req = self.mesh.requests
        rid = u.waiting[0]
        need = blocks_for(req.prompt[rid] + req.gen[rid]) * u.cost_blocks
        return need <= self.mesh.kv.limit(u.idx) + max(0, u.spare_lookahead())


def adbs_quotas(quota: Sequence[int], used: Sequence[int], utilization: Sequence[float],
                backlog: Sequence[bool], hot_threshold: float, donor_keep: float) -> list[int]:
    """ADBS quota adaptation. A unit whose utilization (mean blocks in use over its
    recent decode steps / quota) is >= ``hot_threshold`` and that has waiting requests
    is hot; every other unit offers ``donor_keep - utilization`` of its quota (never
    blocks in use). Hot units share what was offered in proportion to their quotas (the
    rounding remainder goes to the first). Returns the new quotas (same sum)."""
    n = len(quota)
    hot = [utilization[i] >= hot_threshold and backlog[i] for i in range(n)]
    if not any(hot) or all(hot):
        return list(quota)
    offer = [0] * n
    for i in range(n):
        if not hot[i]:
            want = int(max(0.0, donor_keep - utilization[i]) * quota[i])
            offer[i] = max(0, min(want, quota[i] - used[i]))
    pot = sum(offer)
    if pot == 0:
        return list(quota)
    hot_idx = [i for i in range(n) if hot[i]]
    weights = [max(1, quota[i]) for i in hot_idx]
    wsum = sum(weights)
    new = [quota[i] - offer[i] for i in range(n)]
    given = 0
    for i, w in zip(hot_idx, weights):
        g = pot * w // wsum
        new[i] += g
        given += g
    new[hot_idx[0]] += pot - given
    return new
