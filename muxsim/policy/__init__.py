"""Scheduling policies, each defined once: plain code that reads a read-only view of
one mesh (:mod:`muxsim.policy.view`) and hands out decisions
(:mod:`muxsim.policy.decisions`).

The simulator's runtime asks a mesh's scheduler what to do whenever something changes
on the mesh (a request arrives, a job ends, a periodic tick) and carries the decisions
out; an executor can fill the same view from live workers and call the same code.

A policy is a frozen dataclass (its parameters); ``policy.scheduler(mesh)`` makes the
per-mesh scheduler (:class:`~muxsim.policy.common.Scheduler`) that holds its state (whose
turn it is, ADBS's statistics), and ``policy.steady_state(unit)`` is its analytic
throughput model (:mod:`muxsim.policy.steady`). The
registries below are keyed by name (the command line's choices); each serves one plan
``mode``:

- flex (MuxServe; :mod:`~muxsim.policy.flex`): ``adbs`` (round-robin, prefill
  priority, KV quotas adapted every few seconds), ``static-quota`` (the same, quotas
  fixed), ``round-robin`` and ``fcfs`` (no prefill priority, no quotas);
- temporal (:mod:`~muxsim.policy.turns`): whole-mesh turns, ``fcfs`` or
  ``round-robin``;
- spatial: ``continuous``, vLLM's continuous batching of one unit alone.
"""

from __future__ import annotations

from muxsim.policy.common import ORDERS, PolicyBase, Scheduler
from muxsim.policy.flex import FlexPolicy, FlexScheduler, adbs_quotas
from muxsim.policy.turns import TurnsPolicy, TurnsScheduler

FLEX_POLICIES: dict[str, FlexPolicy] = {
    "adbs": FlexPolicy("adbs", "round-robin", quotas=True, prefill_priority=True, adapt=True),
    "static-quota": FlexPolicy("static-quota", "round-robin", quotas=True, prefill_priority=True),
    "round-robin": FlexPolicy("round-robin", "round-robin"),
    "fcfs": FlexPolicy("fcfs", "fcfs"),
}
TEMPORAL_POLICIES: dict[str, TurnsPolicy] = {
    "fcfs": TurnsPolicy("fcfs", "fcfs"),
    "round-robin": TurnsPolicy("round-robin", "round-robin"),
}
SPATIAL_POLICIES: dict[str, TurnsPolicy] = {"continuous": TurnsPolicy("continuous", "fcfs", mode="spatial")}
# plan mode -> its policies
POLICIES: dict[str, dict[str, FlexPolicy] | dict[str, TurnsPolicy]] = {
    "flex": FLEX_POLICIES, "temporal": TEMPORAL_POLICIES, "spatial": SPATIAL_POLICIES}

__all__ = ["FLEX_POLICIES", "ORDERS", "POLICIES", "SPATIAL_POLICIES", "TEMPORAL_POLICIES", "FlexPolicy",
           "FlexScheduler", "PolicyBase", "Scheduler", "TurnsPolicy", "TurnsScheduler", "adbs_quotas"]
