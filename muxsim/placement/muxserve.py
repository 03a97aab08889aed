"""MuxServe's enumeration-based greedy placement (and the searches it shares with others).

For every mesh group (see :mod:`muxsim.placement.meshgroups`), LLMs are taken in
descending computation demand (rate x parameters) and each goes to the mesh whose
estimated unit throughput it increases most, subject to memory and the SM overload
limit; ties go to the smaller mesh, then to the unit left less loaded. The group with
the highest total wins; ties go to the one with fewer idle GPUs, then lower peak load,
then lower rate-weighted mean load (with every rate met, these pick the roomiest plan).

Speed: estimates are memoized across groups (groups share most of their greedy
prefixes), empty meshes of one size are tried once, meshes already holding as many LLMs
as the SM limit allows are skipped, and when a cluster has more groups
than ``max_groups`` the enumeration becomes a hill climb over groups (split a mesh in
two halves, or merge two equal meshes) from uniform starting groups.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from muxsim.placement.estimator import Estimator, UnitEstimate
from muxsim.placement.meshgroups import mesh_groups, powers_of_two

FillFn = Callable[[Estimator, list[int], tuple[int, ...]], "GroupFill | None"]


@dataclass(frozen=True)
class GroupFill:
    """The greedy's answer for one mesh group: per mesh, its estimate (None: idle)."""

    sizes: tuple[int, ...]
    units: tuple[UnitEstimate | None, ...]
    total: float

    @property
    def idle_gpus(self) -> int:
        return sum(s for s, u in zip(self.sizes, self.units) if u is None)

    @property
    def load(self) -> float:
        return max((u.load for u in self.units if u is not None), default=0.0)

    @property
    def mean_load(self) -> float:
        """Rate-weighted mean of rate / capacity: the queueing pressure a request meets."""
        parts = [u.weighted_load for u in self.units if u is not None]
        num, den = sum(p[0] for p in parts), sum(p[1] for p in parts)
        return num / den if den > 0 else 0.0

    def key(self) -> tuple[float, int, float, float]:
        """Larger is better: throughput, then fewer idle GPUs, lower peak and mean load."""
        return (round(self.total, 9), -self.idle_gpus, -round(self.load, 6), -round(self.mean_load, 9))


def demand_order(est: Estimator) -> list[int]:
    llms = est.problem.llms
    return sorted(range(len(llms)), key=lambda i: (-llms[i].demand, i))


def greedy_fill(est: Estimator, order: list[int], sizes: tuple[int, ...]) -> GroupFill | None:
    """Place LLMs in ``order`` onto meshes of ``sizes`` by largest estimated gain."""
    members: list[tuple[int, ...]] = [() for _ in sizes]
    units: list[UnitEstimate | None] = [None for _ in sizes]
    most = est.max_colocated
    for i in order:
        best = None
        best_key = None
        tried_empty: set[int] = set()
        for k, size in enumerate(sizes):
            if not members[k]:
                if size in tried_empty:
                    continue
                tried_empty.add(size)
            elif len(members[k]) >= most:
                continue
            u = est.flex((*members[k], i), size)
            if not u.feasible:
                continue
            base = units[k].total if units[k] is not None else 0.0
            key = (round(u.total - base, 9), -size, -round(u.load, 9))
            if best_key is None or key > best_key:
                best, best_key = (k, u), key
        if best is None:
            return None
        k, u = best
        members[k] = u.members
        units[k] = u
    total = sum(u.total for u in units if u is not None)
    return GroupFill(sizes=sizes, units=tuple(units), total=total)


def search_groups(est: Estimator, fill: FillFn, *, max_groups: int = 400,
                  time_limit_s: float | None = None) -> tuple[GroupFill | None, dict[str, object]]:
    """Best group under ``fill``: every group when there are at most ``max_groups``,
    else a hill climb. Returns the best fill and search statistics."""
    p = est.problem
    c = p.cluster
    order = demand_order(est)
    sizes_all = powers_of_two(c.gpus_per_node)
    need = 1
    for i in range(len(p.llms)):
        s = est.min_size(i, sizes_all)
        if s is None:
            return None, {"unplaceable": p.llms[i].name}
        need = max(need, s)
    groups = mesh_groups(c.nodes, c.gpus_per_node, max_meshes=max(len(p.llms), c.nodes), min_largest=need,
                         limit=max_groups)
    start = time.perf_counter()
    stats: dict[str, object] = {}
    best: GroupFill | None = None
    evaluated = 0
    if groups is not None:
        stats["search"] = "enumeration"
        stats["groups"] = len(groups)
        for g in groups:
            if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
                stats["stopped"] = "time limit"
                break
            f = fill(est, order, g)
            evaluated += 1
            if f is not None and (best is None or f.key() > best.key()):
                best = f
    else:
        stats["search"] = "hill-climb"
        best, evaluated = _hill_climb(est, fill, order, need, start, time_limit_s, stats)
    stats["groups_evaluated"] = evaluated
    return best, stats


def _neighbors(sizes: tuple[int, ...], gpus_per_node: int, max_meshes: int, need: int) -> list[tuple[int, ...]]:
    out = set()
    distinct = sorted(set(sizes))
    for s in distinct:  # split one mesh of size s
        if s >= 2 and len(sizes) + 1 <= max_meshes:
            t = list(sizes)
            t.remove(s)
            t += [s // 2, s // 2]
            out.add(tuple(sorted(t, reverse=True)))
        if sizes.count(s) >= 2 and 2 * s <= gpus_per_node:  # merge two of size s
            t = list(sizes)
            t.remove(s)
            t.remove(s)
            t.append(2 * s)
            out.add(tuple(sorted(t, reverse=True)))
    return [g for g in sorted(out) if g[0] >= need]


def _hill_climb(est: Estimator, fill: FillFn, order: list[int], need: int, start: float,
                time_limit_s: float | None, stats: dict[str, object]) -> tuple[GroupFill | None, int]:
    c = est.problem.cluster
    n = max(len(est.problem.llms), c.nodes)  # a node holds at least one mesh
    total = c.nodes * c.gpus_per_node
    seen: dict[tuple[int, ...], GroupFill | None] = {}

    def score(g: tuple[int, ...]) -> GroupFill | None:
        if g not in seen:
            seen[g] = fill(est, order, g)
        return seen[g]

    starts = []
    for s in powers_of_two(c.gpus_per_node):
        if s >= need and total // s <= n:
            starts.append((s,) * (total // s))
    if not starts:
        starts.append((c.gpus_per_node,) * c.nodes)
    best: GroupFill | None = None
    for g in starts:
        cur = score(g)
        cur_g = g
        while True:
            if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
                stats["stopped"] = "time limit"
                break
            step = None
            for h in _neighbors(cur_g, c.gpus_per_node, n, need):
                f = score(h)
                if f is not None and (cur is None or f.key() > cur.key()) and (step is None or f.key() > step[1].key()):
                    step = (h, f)
            if step is None:
                break
            cur_g, cur = step
        if cur is not None and (best is None or cur.key() > best.key()):
            best = cur
    stats["starts"] = len(starts)
    return best, len(seen)
