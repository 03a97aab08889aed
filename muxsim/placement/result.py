"""What every placement algorithm returns: a status, a message, a plan and its score."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from muxsim.plan import Plan

# status values, in the spirit of scipy.optimize.milp
OPTIMAL = "optimal"  # the algorithm's answer is proven optimal for its objective (ILP)
FEASIBLE = "feasible"  # a valid plan; heuristic, or an ILP stopped by its time limit
INFEASIBLE = "infeasible"  # no valid plan exists (or none was found)


@dataclass(frozen=True)
class PlacementResult:
    """``plan`` is None only when ``status`` is ``infeasible``; ``objective`` is the
    estimated aggregate throughput (requests/s, each LLM capped at its rate). ``status``
    is about the search (``optimal`` only where proven); ``verdict`` is about the load:
    ``meets load`` or ``overloaded: ...`` naming each LLM the plan does not carry and its
    bottleneck, with ``per_llm`` (rate, estimate, replicas, carried, bottleneck) by name
    (:mod:`muxsim.placement.verdict`)."""

    status: str
    message: str
    plan: Plan | None
    objective: float
    stats: dict[str, Any] = field(default_factory=dict)
    verdict: str = ""
    per_llm: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.plan is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "success": self.success,
            "message": self.message,
            "verdict": self.verdict,
            "objective": self.objective,
            "placement_s": self.stats.get("placement_s"),
            "per_llm": self.per_llm,
            "stats": self.stats,
            "plan": None if self.plan is None else self.plan.to_dict(),
        }


class SearchTimeout(Exception):
    """A search reached its time limit (caught by the algorithm, which keeps its best)."""


class Deadline:
    """``time_limit_s`` seconds from now (None: never). Searches call :meth:`check` in
    their loops, so that a time limit holds whatever the size of the cluster."""

    def __init__(self, time_limit_s: float | None) -> None:
        self.end = None if time_limit_s is None else time.perf_counter() + time_limit_s

    def passed(self) -> bool:
        return self.end is not None and time.perf_counter() > self.end

    def check(self) -> None:
        if self.end is not None and time.perf_counter() > self.end:
            raise SearchTimeout

    def left(self) -> float | None:
        """Seconds left (never below a millisecond), None without a limit."""
        return None if self.end is None else max(1e-3, self.end - time.perf_counter())
