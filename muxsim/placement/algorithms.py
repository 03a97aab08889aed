"""Each placement algorithm: plain data (problem, estimator, options) -> PlacementResult."""

from __future__ import annotations

import time
from typing import Any

from muxsim.placement.baselines import memory_fill, spatial_units, temporal_units
from muxsim.placement.build import build_plan
from muxsim.placement.estimator import Estimator
from muxsim.placement.flex import MAX_MOVES, Replicas, Search, baseline_starts, plan_of, search_from
from muxsim.placement.muxserve import REFINE_TOP, greedy_fill, improve_fill, search_groups
from muxsim.placement.result import FEASIBLE, INFEASIBLE, Deadline, PlacementResult


def _from_fill(est: Estimator, fill: Any, stats: dict[str, Any], *, algorithm: str, mode: str,
               start: float) -> PlacementResult:
    stats = {**stats, "estimator_calls": est.calls, "placement_s": time.perf_counter() - start}
    if fill is None:
        why = stats.get("unplaceable")
        msg = f"{why} fits no mesh of the cluster" if why else "no mesh group holds every LLM"
        if stats.get("stopped") == "time limit" and not why:
            msg = "the time limit passed before any mesh group was filled"
        return PlacementResult(INFEASIBLE, msg, None, float("-inf"), stats)
    units = [u for u in fill.units if u is not None]
    if mode == "temporal":
        units = temporal_units(est, fill)
    plan = build_plan(est.problem, units, algorithm=algorithm, mode=mode, policy=est.policies[mode].name,
                      limits=est.limits)
    stats["mesh_sizes"] = list(fill.sizes)
    stats["idle_gpus"] = fill.idle_gpus
    objective = float(plan.estimate["throughput_rps"])
    return PlacementResult(FEASIBLE, f"best of {stats.get('groups_evaluated', 0)} mesh group(s)", plan,
                           objective, stats)


def muxserve(est: Estimator, *, max_groups: int = 400, time_limit_s: float | None = None,
             refine_top: int = REFINE_TOP) -> PlacementResult:
    """MuxServe's enumeration greedy; the ``refine_top`` best fills get a local search (0: none)."""
    start = time.perf_counter()
    fill, stats = search_groups(est, greedy_fill, max_groups=max_groups, time_limit_s=time_limit_s,
                                refine=improve_fill if refine_top > 0 else None, refine_top=refine_top)
    return _from_fill(est, fill, stats, algorithm="muxserve", mode="flex", start=start)


def temporal(est: Estimator, *, max_groups: int = 400, time_limit_s: float | None = None) -> PlacementResult:
    start = time.perf_counter()
    fill, stats = search_groups(est, greedy_fill, max_groups=max_groups, time_limit_s=time_limit_s)
    return _from_fill(est, fill, stats, algorithm="temporal", mode="temporal", start=start)


def greedy_memory(est: Estimator, *, max_groups: int = 400, time_limit_s: float | None = None) -> PlacementResult:
    start = time.perf_counter()
    fill, stats = search_groups(est, memory_fill, max_groups=max_groups, time_limit_s=time_limit_s)
    return _from_fill(est, fill, stats, algorithm="greedy-memory", mode="flex", start=start)


def spatial(est: Estimator, *, spend_spare: bool = True, algorithm: str = "spatial",
            time_limit_s: float | None = None) -> PlacementResult:
    start = time.perf_counter()
    units = spatial_units(est, spend_spare=spend_spare, deadline=Deadline(time_limit_s))
    stats: dict[str, Any] = {"estimator_calls": est.calls}
    if isinstance(units, str):
        stats["placement_s"] = time.perf_counter() - start
        return PlacementResult(INFEASIBLE, units, None, float("-inf"), stats)
    plan = build_plan(est.problem, units, algorithm=algorithm, mode="spatial", policy=est.policies["spatial"].name,
                      limits=est.limits)
    used = sum(u.size for u in units)
    stats.update(mesh_sizes=sorted((u.size for u in units), reverse=True),
                 idle_gpus=est.problem.usable_gpus - used, placement_s=time.perf_counter() - start)
    return PlacementResult(FEASIBLE, "one dedicated mesh per LLM", plan,
                           float(plan.estimate["throughput_rps"]), stats)


def spatial_min(est: Estimator, *, time_limit_s: float | None = None) -> PlacementResult:
    return spatial(est, spend_spare=False, algorithm="spatial-min", time_limit_s=time_limit_s)


def flex(est: Estimator, *, max_groups: int = 400, time_limit_s: float | None = None,
         max_moves: int = MAX_MOVES) -> PlacementResult:
    """MuxServe's multiplexing with replicas: a local search (:mod:`~muxsim.placement.flex`)
    from every baseline's plan, the best kept."""
    start = time.perf_counter()
    deadline = Deadline(time_limit_s)
    starts = baseline_starts(est, max_groups, deadline)
    stats: dict[str, Any] = {}
    if not starts:
        return _from_fill(est, None, stats, algorithm="flex", mode="flex", start=start)
    search = Search(Replicas(est))
    stats["baselines_rps"] = {name: round(search.score(a).total, 6) for name, a in starts.items()}
    found = search_from(search, starts, max_moves=max_moves, deadline=deadline, stats=stats)
    best = found[0]
    plan = plan_of(search, best.a, "flex")
    stats.update(origin=best.start, replicas=sum(best.a.reps) - len(best.a.reps),
                 estimator_calls=est.calls + search.est.calls,
                 mesh_sizes=sorted((s for s, _ in best.a.meshes), reverse=True),
                 idle_gpus=est.problem.usable_gpus - sum(s for s, _ in best.a.meshes),
                 placement_s=time.perf_counter() - start)
    return PlacementResult(FEASIBLE, f"local search from the {best.start} plan", plan,
                           float(plan.estimate["throughput_rps"]), stats)
