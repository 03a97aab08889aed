"""What a scheduling policy may read: a read-only view of one mesh.

The simulator's runtime (:class:`muxsim.sim.mesh.Mesh` and its units) implements these
protocols with its own state, so a policy reads live numbers at no copying cost; an
executor fills the same fields from its workers. A policy never writes to a view: it
hands out decisions (:mod:`muxsim.policy.decisions`) and the runtime changes the state.
:class:`MeshState` and its parts are the same view as plain dataclasses, for an
executor to fill from its own bookkeeping (and for tests).

Request ids index the mesh's request table (``requests``); a request's arrival, prompt
and the tokens generated so far are ``requests.arrival[r]``, ``requests.prompt[r]`` and
``requests.gen[r]``; a (re)prefill of it processes ``prompt[r] + gen[r]`` tokens.
KV is counted in head-wise blocks per GPU; a unit's ``BLOCK_TOKENS``-token block costs
``unit.cost_blocks`` of them (:mod:`muxsim.limits`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from muxsim.limits import BLOCK_TOKENS

# kinds of jobs (JobView.kind)
PREFILL_JOB, DECODE_JOB = 0, 1


class JobView(Protocol):
    """A running job: a prefill of some requests, or a run of decode steps."""

    kind: int  # PREFILL_JOB or DECODE_JOB
    sm: float  # its SM share
    unit: UnitView


class UnitView(Protocol):
    """One LLM on the mesh: its queue, its batch and its jobs."""

    idx: int  # position on the mesh (plan order)
    name: str
    waiting: Sequence[int]  # requests waiting for a prefill, oldest first
    run: Mapping[int, None]  # the running batch, in admission order
    pending: Sequence[int]  # prefilled, joining the batch when its running decode run ends
    prefill: JobView | None  # its running prefill job
    decode: JobView | None  # its running decode run
    max_batch: int  # requests it may hold at most (in prefill, pending and running)
    prefill_sm: float  # the plan's SM shares of its jobs
    decode_sm: float
    kv_share: float  # the plan's share of the KV pool
    rate: float  # requests/s it expects (its LLM's rate over the LLM's replicas)
    cost_blocks: int  # head-wise blocks per BLOCK_TOKENS tokens of it
    preempted: bool  # a request of it was preempted since it last finished one

    def in_system(self) -> int:
        """Requests in prefill, pending and running."""
        ...

    def next_step_blocks(self) -> int:
        """Token blocks (of BLOCK_TOKENS) the batch's next decode step adds."""
        ...

    def spare_lookahead(self) -> int:
        """KV blocks its running decode run set aside beyond its first step (0 if none)."""
        ...

    def oldest_running(self) -> float:
        """Arrival time of the oldest request in its batch (``inf`` if none); the
        simulator keeps it only for schedulers that set ``tracks_oldest_running``."""
        ...


class KVView(Protocol):
    """The mesh's KV pool."""

    total: int
    used_total: int
    used: Sequence[int]  # per unit
    quota: Sequence[int]  # per unit (meaningful when ``quotas``)
    quotas: bool

    def limit(self, i: int) -> int:
        """Blocks unit ``i`` may still take (free blocks, and within its quota)."""
        ...


class RequestView(Protocol):
    arrival: Sequence[float]
    prompt: Sequence[int]
    gen: Sequence[int]


class MeshView(Protocol):
    """One mesh, as a policy sees it."""

    units: Sequence[UnitView]
    jobs: Sequence[JobView]  # running jobs, in the order they started
    sm_used: float  # SM shares of the running jobs, summed
    kv: KVView
    requests: RequestView

    @property
    def now(self) -> float:
        """The clock, in seconds."""
        ...


# ---- the view as plain data ----------------------------------------------------------
# What an executor (or a test) fills from its own bookkeeping. A step-level executor sets
# no KV blocks aside for later steps: its ``spare`` is 0.


@dataclass
class JobState:
    kind: int
    sm: float
    unit: UnitState
    rids: list[int] = field(default_factory=list)


@dataclass
class UnitState:
    idx: int
    name: str
    max_batch: int
    prefill_sm: float
    decode_sm: float
    cost_blocks: int
    kv_share: float = 1.0
    rate: float = 0.0
    waiting: deque[int] = field(default_factory=deque)
    run: dict[int, None] = field(default_factory=dict)
    pending: list[int] = field(default_factory=list)
    prefill: JobState | None = None
    decode: JobState | None = None
    preempted: bool = False
    contexts: dict[int, int] = field(default_factory=dict)  # running request -> tokens it holds
    arrival: dict[int, float] = field(default_factory=dict)  # running request -> its arrival
    spare: int = 0  # KV blocks its decode run set aside beyond its first step

    def in_system(self) -> int:
        return len(self.run) + len(self.pending) + (len(self.prefill.rids) if self.prefill is not None else 0)

    def next_step_blocks(self) -> int:
        # the next step adds a token to each request: a new block where the last is full
        return sum(1 for r in self.run if self.contexts[r] % BLOCK_TOKENS == 0)

    def spare_lookahead(self) -> int:
        return self.spare

    def oldest_running(self) -> float:
        return min((self.arrival[r] for r in self.run), default=float("inf"))


@dataclass
class KVState:
    total: int
    used: list[int]
    quota: list[int]
    quotas: bool = False

    @property
    def used_total(self) -> int:
        return sum(self.used)

    def limit(self, i: int) -> int:
        free = self.total - self.used_total
        return max(0, min(free, self.quota[i] - self.used[i])) if self.quotas else free


@dataclass
class RequestState:
    arrival: list[float]
    prompt: list[int]
    gen: list[int]


@dataclass
class MeshState:
    units: list[UnitState]
    kv: KVState
    requests: RequestState
    jobs: list[JobState] = field(default_factory=list)
    now: float = 0.0

    @property
    def sm_used(self) -> float:
        return sum(j.sm for j in self.jobs)
