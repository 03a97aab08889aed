"""The event engine: tie order, cancellation, independence of engines."""

from __future__ import annotations

import pytest

from muxsim.sim.engine import Engine, EventOrder


def test_simultaneous_events_run_by_order_then_scheduling_sequence() -> None:
    eng = Engine()
    log: list[tuple[float, str]] = []

    def rec(tag: str) -> None:
        log.append((eng.now, tag))

    eng.schedule(1.0, EventOrder.SAMPLE, rec, "sample")
    eng.schedule(1.0, EventOrder.ARRIVAL, rec, "arrival-1")
    eng.schedule(1.0, EventOrder.QUOTA_ADAPT, rec, "adapt")
    eng.schedule(1.0, EventOrder.JOB_END, rec, "job-end")
    eng.schedule(1.0, EventOrder.ARRIVAL, rec, "arrival-2")
    eng.schedule(0.5, EventOrder.SAMPLE, rec, "early")
    eng.run()
    assert log == [(0.5, "early"), (1.0, "job-end"), (1.0, "arrival-1"), (1.0, "arrival-2"),
                   (1.0, "adapt"), (1.0, "sample")]


def test_handlers_schedule_more_events_and_cancel() -> None:
    eng = Engine()
    log: list[float] = []

    def tick(n: int) -> None:
        log.append(eng.now)
        if n:
            eng.schedule(eng.now + 1.0, EventOrder.JOB_END, tick, n - 1)

    eng.schedule(0.0, EventOrder.JOB_END, tick, 3)
    doomed = eng.schedule(2.5, EventOrder.ARRIVAL, log.append, -1.0)
    eng.cancel(doomed)
    eng.run()
    assert log == [0.0, 1.0, 2.0, 3.0]
    assert eng.processed == 4


def test_run_until_stops_before_later_events_and_past_is_refused() -> None:
    eng = Engine()
    log: list[float] = []
    for t in (1.0, 2.0, 3.0):
        eng.schedule(t, EventOrder.ARRIVAL, log.append, t)
    eng.run(until=2.0)
    assert log == [1.0, 2.0]
    assert eng.peek() == 3.0
    with pytest.raises(ValueError):
        eng.schedule(1.5, EventOrder.ARRIVAL, log.append, 0.0)


def test_two_engines_do_not_share_sequence_or_clock() -> None:
    a, b = Engine(), Engine()
    order_a: list[str] = []
    order_b: list[str] = []
    a.schedule(1.0, EventOrder.ARRIVAL, order_a.append, "a1")
    b.schedule(1.0, EventOrder.ARRIVAL, order_b.append, "b1")
    a.schedule(1.0, EventOrder.ARRIVAL, order_a.append, "a2")
    b.schedule(1.0, EventOrder.ARRIVAL, order_b.append, "b2")
    a.run()
    assert order_a == ["a1", "a2"] and order_b == [] and b.now == 0.0
    b.run()
    assert order_b == ["b1", "b2"]
