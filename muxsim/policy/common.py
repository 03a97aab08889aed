"""What every policy shares: its parameters, prefill admission, decoding with preemption,
and the initial KV quotas."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from muxsim.limits import DEFAULT_LIMITS, ServingLimits, blocks_for
from muxsim.policy.decisions import Decision, Decode, Preempt, SetQuotas
from muxsim.policy.view import MeshView, RequestView, UnitView

ORDERS = ("round-robin", "fcfs")


@dataclass(frozen=True)
class PolicyBase:
    """Parameters every policy has. ``order``: which unit goes first, in turn
    (``round-robin``) or the one with the oldest request (``fcfs``); ``quotas``: per-unit
    KV quotas (else units take blocks first come, first served); ``initial_quota``: the
    quotas start at the plan's ``kv_share`` (``plan``) or in proportion to rate x blocks
    per token block (``rate``, ADBS's rule); ``max_chunk_steps``: decode steps a run may
    take before the policy looks again (the simulator's granularity)."""

    name: str
    order: str = "round-robin"
    quotas: bool = False
    initial_quota: str = "plan"
    max_chunk_steps: int = 512
    limits: ServingLimits = DEFAULT_LIMITS

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"policy {self.name}: order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        if self.initial_quota not in ("plan", "rate"):
            raise ValueError(f"policy {self.name}: initial_quota must be plan or rate, got {self.initial_quota!r}")


class Scheduler(Protocol):
    """What a runtime calls on one mesh's scheduler (``policy.scheduler(view)``). Each
    ``on_*`` returns the decisions to carry out, in order."""

    tick_s: float | None  # the period of on_tick (None: no periodic work)
    tracks_oldest_running: bool  # it reads UnitView.oldest_running (keep that index)

    def start(self) -> Iterable[Decision]: ...  # before anything else: the KV quotas

    def on_arrival(self, unit: UnitView) -> Iterable[Decision]: ...  # a request joined unit.waiting

    def on_prefill_end(self, unit: UnitView) -> Iterable[Decision]: ...

    def on_decode_end(self, unit: UnitView, steps: int, blocks: float) -> Iterable[Decision]: ...

    def on_tick(self) -> Iterable[Decision]: ...

    def schedule(self) -> Iterable[Decision]: ...  # a scheduling round (after a plan change)


def initial_quotas(policy: PolicyBase, mesh: MeshView, quotas: bool) -> SetQuotas:
    """The KV quotas a mesh starts with: every block for a lone unit; otherwise shares
    of the pool by the plan's ``kv_share`` or by rate x blocks per token block."""
    units = mesh.units
    if len(units) == 1:
        shares = [1.0]
    elif policy.initial_quota == "rate":
        weight = [u.rate * u.cost_blocks for u in units]
        total = sum(weight)
        shares = [w / total if total > 0 else 1.0 / len(units) for w in weight]
    else:
        shares = [u.kv_share for u in units]
    kv_total = mesh.kv.total
    return SetQuotas([int(s * kv_total) for s in shares], quotas)


def pick_prefill(unit: UnitView, limit: int, requests: RequestView, max_tokens: int) -> list[int]:
    """The oldest waiting requests of ``unit`` that one prefill takes: while the batch
    has room, their KV blocks fit ``limit`` and their tokens ``max_tokens`` (the first
    request always counts, whatever its length)."""
    room = unit.max_batch - unit.in_system()
    if room <= 0:
        return []
    cost = unit.cost_blocks
    prompt = requests.prompt
    gen = requests.gen
    rids: list[int] = []
    tokens = 0
    blocks = 0
    for rid in unit.waiting:
        length = prompt[rid] + gen[rid]
        b = blocks_for(length) * cost
        if (rids and tokens + length > max_tokens) or blocks + b > limit or len(rids) >= room:
            break
        rids.append(rid)
        tokens += length
        blocks += b
    return rids


def retry_decode(mesh: MeshView, unit: UnitView, d: Decode) -> Iterator[Decision]:
    """When the KV blocks of ``unit``'s next decode step are not free: preempt its
    newest requests until they are (vLLM's recompute preemption), then start ``d`` (a
    decode run of it), unless the batch emptied."""
    kv = mesh.kv
    cost = unit.cost_blocks
    i = unit.idx
    while unit.run and unit.next_step_blocks() > kv.limit(i) // cost:
        yield Preempt(i)
    if unit.run:
        yield d


def prefill_allowed(unit: UnitView) -> bool:
    """A unit may start a prefill when it has waiting requests, no prefill running, and
    has not had a request preempted since it last finished one (unless its batch is
    empty): after a preemption, new requests wait for room."""
    if not unit.waiting or unit.prefill is not None:
        return False
    return not (unit.preempted and (unit.run or unit.pending))


def rotations(units: Sequence[UnitView]) -> list[list[UnitView]]:
    """Every round-robin order: ``rotations[k]`` starts at unit ``k``."""
    units = list(units)
    return [units[i:] + units[:i] for i in range(len(units))]
