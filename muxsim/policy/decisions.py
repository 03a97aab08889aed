"""What a scheduling policy decides: plain slotted objects a runtime carries out.

A scheduler hands its decisions out as an iterable (a generator wherever a decision
depends on the effect of the one before); the runtime carries each out before taking
the next, so that what the policy reads next (free SMs, free KV blocks, the batch)
already reflects it. ``unit`` is the unit's index on
its mesh (:attr:`UnitView.idx <muxsim.policy.view.UnitView>`).

=====================  ==============================================================
decision               what the runtime does
=====================  ==============================================================
``Prefill``            start a prefill job of ``rids`` (taken from the unit's waiting
                       queue, oldest first) at SM share ``sm``; their KV blocks are
                       taken now
``Decode``             start decoding the unit's batch at SM share ``sm`` for at most
                       ``max_steps`` steps; the runtime may stop sooner (a request
                       finishes, the KV blocks of further steps are not free) and wakes
                       the policy when the run ends. If even the next step's KV blocks
                       are not free, nothing starts (the unit's ``decode`` stays
                       ``None``): the policy may preempt and try again
``Preempt``            preempt the newest request of the unit's batch: its KV blocks
                       are freed, it goes back to the head of the waiting queue and is
                       recomputed (prompt and tokens so far) by a later prefill
``Cut``                end the unit's running decode run after the step in progress
                       (``unit=None``: every running decode run, in start order)
``ReleaseLookahead``   end every running decode run after its step in progress where
                       that frees KV blocks the run had set aside for later steps
``SetQuotas``          per-unit KV quotas in blocks; with ``enforce`` false the quotas
                       are only recorded and units take blocks first come, first served
=====================  ==============================================================

Decisions are values (plain slotted dataclasses, never changed once made): a policy may
hand out the same object again.

A step-level executor (one decode step per call) has nothing to do for ``Cut`` and
``ReleaseLookahead``: it looks again at every step anyway; the simulator runs several
decode steps as one event and needs to know when the policy would look again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Prefill:
    unit: int
    rids: list[int]
    sm: float


@dataclass(slots=True)
class Decode:
    unit: int
    max_steps: int
    sm: float


@dataclass(slots=True)
class Preempt:
    unit: int


@dataclass(slots=True)
class Cut:
    unit: int | None = None


@dataclass(slots=True)
class ReleaseLookahead:
    pass


@dataclass(slots=True)
class SetQuotas:
    quotas: list[int]
    enforce: bool = True


Decision = Prefill | Decode | Preempt | Cut | ReleaseLookahead | SetQuotas
