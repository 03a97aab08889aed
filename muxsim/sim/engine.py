"""The event loop: one heap, engine-owned sequence numbers, an explicit order for ties.

An event is ``[time_s, order, seq, handler, arg]``. Events at equal times run by
:class:`EventOrder` (completions free resources before arrivals join queues, and both
before the periodic bookkeeping), then in the order they were scheduled (``seq``, a
counter each engine owns). Nothing is global: two engines in one process never
interfere. A handler may schedule more events; cancelled events are skipped when
popped (``cancel`` clears the handler, the heap is never searched).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from enum import IntEnum
from typing import Any

_heappush = heapq.heappush


class EventOrder(IntEnum):
    """Which of several events at the same instant runs first (lower first)."""

    JOB_END = 0  # a prefill or a run of decode steps finishes: frees SMs and KV blocks
    ARRIVAL = 1  # a request joins its model's queue
    PLAN_CHANGE = 2  # a plan change begins, or a unit has loaded its weights
    QUOTA_ADAPT = 3  # ADBS moves KV quota between colocated models
    SAMPLE = 4  # utilization sampling reads state, changes nothing


# An event is a list [time_s, order, seq, handler, arg]: the heap orders events by their
# first three items (seq is unique, so the handler is never compared). Cancelling sets
# the handler to None. A list costs no Python-level constructor, and the simulator
# schedules an event for every job it starts or moves.
Event = list
_TIME, _ORDER, _SEQ, _HANDLER, _ARG = range(5)


class Engine:
    """A discrete-event clock. ``run(until)`` processes events in (time, order, seq) order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[Event] = []
        self._seq = 0
        self.processed = 0

    def schedule(self, time: float, order: EventOrder, handler: Callable[[Any], None], arg: Any = None) -> Event:
        if time < self.now:
            raise ValueError(f"event at {time!r} s is before the current time {self.now!r} s")
        self._seq = seq = self._seq + 1
        ev = [time, order, seq, handler, arg]  # order: an EventOrder (an int)
        _heappush(self._heap, ev)
        return ev

    @staticmethod
    def cancel(ev: Event | None) -> None:
        if ev is not None:
            ev[_HANDLER] = None

    @staticmethod
    def cancelled(ev: Event) -> bool:
        return ev[_HANDLER] is None

    def peek(self) -> float:
        """Time of the next live event (``inf`` when none)."""
        heap = self._heap
        while heap and heap[0][_HANDLER] is None:
            heapq.heappop(heap)
        return heap[0][_TIME] if heap else float("inf")

    def pending(self, order: EventOrder) -> bool:
        """Whether a live event of kind ``order`` is scheduled (a scan of the queue)."""
        return any(ev[_ORDER] == order and ev[_HANDLER] is not None for ev in self._heap)

    def step(self) -> bool:
        """Run the next live event; False when there is none."""
        heap = self._heap
        while heap:
            ev = heapq.heappop(heap)
            handler = ev[_HANDLER]
            if handler is None:
                continue
            self.now = ev[_TIME]
            self.processed += 1
            handler(ev[_ARG])
            return True
        return False

    def run(self, until: float = float("inf")) -> None:
        """Process events with time <= ``until``; the clock ends at the last one run."""
        heap = self._heap
        pop = heapq.heappop
        while heap:
            ev = heap[0]
            handler = ev[3]
            if handler is None:
                pop(heap)
                continue
            time = ev[0]
            if time > until:
                break
            pop(heap)
            self.now = time
            self.processed += 1
            handler(ev[4])
