"""What a scheduling policy may read: a read-only view of one mesh.

The simulator's runtime (:class:`muxsim.sim.mesh.Mesh` and its units) implements these
protocols with its own state, so a policy reads live numbers at no copying cost; an
executor fills the same fields from its workers. A policy never writes to a view: it
hands out decisions (:mod:`muxsim.policy.decisions`) and the runtime changes the state.

Request ids index the mesh's request table (``requests``); a request's arrival, prompt
and the tokens generated so far are ``requests.arrival[r]``, ``requests.prompt[r]`` and
``requests.gen[r]``; a (re)prefill of it processes ``prompt[r] + gen[r]`` tokens.
KV is counted in head-wise blocks per GPU; a unit's ``BLOCK_TOKENS``-token block costs
``unit.cost_blocks`` of them (:mod:`muxsim.limits`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

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
        """Arrival time of the oldest request in its batch (``inf`` if none); only for
        policies that declare ``tracks_oldest_running``."""
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
