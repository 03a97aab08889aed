"""MuxServe's enumeration-based greedy placement (and the searches it shares with others).

For every mesh group (see :mod:`muxsim.placement.meshgroups`), LLMs are taken in
descending computation demand (rate x parameters) and each goes to the mesh whose
estimated unit throughput it increases most, subject to memory and the SM overload
limit; ties go to the smaller mesh, then to the unit left less loaded. The group with
the highest total wins; ties go to the one with fewer idle GPUs, then lower peak load,
then lower rate-weighted mean load (with every rate met, these pick the roomiest plan).
Past MuxServe: the greedy places each LLM once and never looks back, so the best
``REFINE_TOP`` groups are refined by a local search (:func:`improve_fill`: move one LLM
to another mesh or swap two) before the best is kept.

Speed: estimates are memoized across groups (groups share most of their greedy
prefixes), empty meshes of one size are tried once, meshes already holding as many LLMs
as the SM limit allows are skipped, a candidate whose rate ceiling
(:meth:`Estimator.ceiling`) cannot beat the best so far is never estimated (this
changes no result: ``tests/test_estimator_search.py``), and when a cluster has more
groups than ``max_groups`` the enumeration becomes a hill climb over groups (split a
mesh in two halves, or merge two equal meshes) from uniform starting groups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from muxsim.placement.estimator import Estimator, UnitEstimate
from muxsim.placement.meshgroups import mesh_groups, node_splits, packs, powers_of_two
from muxsim.placement.result import Deadline, SearchTimeout

REFINE_TOP = 8  # best greedy fills the local search refines

FillFn = Callable[..., "GroupFill | None"]  # (estimator, order, sizes, deadline) -> fill


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


def greedy_fill(est: Estimator, order: list[int], sizes: tuple[int, ...],
                deadline: Deadline | None = None) -> GroupFill | None:
    """Place LLMs in ``order`` onto meshes of ``sizes`` by largest estimated gain
    (SearchTimeout when ``deadline`` passes)."""
    members: list[tuple[int, ...]] = [() for _ in sizes]
    units: list[UnitEstimate | None] = [None for _ in sizes]
    most = est.max_colocated
    # Meshes are tried smallest first (then in order), and the first best in mesh order
    # wins, as in a scan of the meshes in order. A mesh whose gain cannot beat the best
    # so far is not estimated: its gain is at most its rates' sum less its total now, and
    # a larger mesh loses a tie in gain.
    by_size = sorted(range(len(sizes)), key=lambda k: (sizes[k], k))
    for i in order:
        if deadline is not None:
            deadline.check()
        best = None
        best_key = None
        tried_empty: set[int] = set()
        for k in by_size:
            size = sizes[k]
            if not members[k]:
                if size in tried_empty:
                    continue
                tried_empty.add(size)
            elif len(members[k]) >= most:
                continue
            base = units[k].total if units[k] is not None else 0.0
            if best_key is not None:
                bound = round(est.ceiling((*members[k], i)) - base, 9)
                if bound < best_key[0] or (bound == best_key[0] and -size < best_key[1]):
                    continue
            u = est.flex((*members[k], i), size)
            if not u.feasible:
                continue
            key = (round(u.total - base, 9), -size, -round(u.load, 9), -k)
            if best_key is None or key > best_key:
                best, best_key = (k, u), key
        if best is None:
            return None
        k, u = best
        members[k] = u.members
        units[k] = u
    total = sum(u.total for u in units if u is not None)
    return GroupFill(sizes=sizes, units=tuple(units), total=total)


def improve_fill(est: Estimator, fill: GroupFill, *, max_rounds: int = 20,
                 deadline: Deadline | None = None) -> GroupFill:
    """Local search after the greedy, which places each LLM once and never looks back:
    move one LLM to another mesh (an idle one included) or swap two LLMs of different
    meshes, whichever raises the estimated total most, until nothing does (or the
    ``deadline`` passes: the moves made so far are kept)."""
    sizes = fill.sizes
    members = [u.members if u is not None else () for u in fill.units]
    units: list[UnitEstimate | None] = list(fill.units)
    most = est.max_colocated

    def unit(ms: tuple[int, ...], size: int) -> UnitEstimate | None:
        return est.flex(ms, size) if ms else None

    def value(u: UnitEstimate | None) -> float:
        return 0.0 if u is None else u.total

    ceiling = est.ceiling

    def worth(gain_bound: float, best: tuple | None) -> bool:
        """A move whose gain cannot exceed the threshold or the best so far is not
        estimated; it could not be chosen (the choice needs a strictly larger gain)."""
        return gain_bound > 1e-6 and (best is None or gain_bound > best[0])

    for _ in range(max_rounds):
        best = None
        if deadline is not None and deadline.passed():
            break
        for a in range(len(sizes)):
            if deadline is not None and deadline.passed():
                best = None  # a round cut short: keep what the finished rounds gave
                break
            for i in members[a]:
                rest_a = tuple(x for x in members[a] if x != i)
                ua = unit(rest_a, sizes[a])
                if ua is not None and not ua.feasible:
                    continue
                for b in range(len(sizes)):
                    if b == a or (not members[b] and not members[a][1:]):
                        continue  # moving a lone LLM to an idle mesh is a resize, not a move
                    if len(members[b]) < most and worth(value(ua) + ceiling((*members[b], i))
                                                        - value(units[a]) - value(units[b]), best):
                        ub = est.flex((*members[b], i), sizes[b])
                        if ub.feasible:
                            gain = value(ua) + ub.total - value(units[a]) - value(units[b])
                            if gain > 1e-6 and (best is None or gain > best[0]):
                                best = (gain, a, ua, b, ub)
                    for j in members[b] if b > a else ():
                        rest_b = tuple(x for x in members[b] if x != j)
                        if not worth(ceiling((*rest_a, j)) + ceiling((*rest_b, i))
                                     - value(units[a]) - value(units[b]), best):
                            continue
                        va = est.flex((*rest_a, j), sizes[a])
                        vb = est.flex((*rest_b, i), sizes[b])
                        if va.feasible and vb.feasible:
                            gain = va.total + vb.total - value(units[a]) - value(units[b])
                            if gain > 1e-6 and (best is None or gain > best[0]):
                                best = (gain, a, va, b, vb)
        if best is None:
            break
        _, a, ua, b, ub = best
        units[a], units[b] = ua, ub
        members[a] = ua.members if ua is not None else ()
        members[b] = ub.members if ub is not None else ()
    total = sum(u.total for u in units if u is not None)
    return GroupFill(sizes=sizes, units=tuple(units), total=total)


def search_groups(est: Estimator, fill: FillFn, *, max_groups: int = 400, time_limit_s: float | None = None,
                  refine: Callable[[Estimator, GroupFill], GroupFill] | None = None,
                  refine_top: int = REFINE_TOP) -> tuple[GroupFill | None, dict[str, object]]:
    """Best group under ``fill``: every group when there are at most ``max_groups``,
    else a hill climb; with ``refine``, the ``refine_top`` best fills are refined (e.g.
    :func:`improve_fill`) and the best refined one wins. Returns the best fill and
    search statistics."""
    p = est.problem
    c = p.cluster
    deadline = Deadline(time_limit_s)
    order = demand_order(est)
    sizes_all = powers_of_two(c.gpus_per_node)
    need = 1
    for i in range(len(p.llms)):
        s = est.min_size(i, sizes_all)
        if s is None:
            return None, {"unplaceable": p.llms[i].name}
        need = max(need, s)
    stats: dict[str, object] = {}
    best: GroupFill | None = None
    evaluated = 0
    fills: list[GroupFill] = []
    try:
        groups = mesh_groups(c.nodes, c.gpus_per_node, max_meshes=max(len(p.llms), c.nodes), min_largest=need,
                             limit=max_groups, deadline=deadline, capacities=p.node_gpus)
        if groups is not None:
            stats["search"] = "enumeration"
            stats["groups"] = len(groups)
            for g in groups:
                deadline.check()
                f = fill(est, order, g, deadline)
                evaluated += 1
                if f is not None:
                    fills.append(f)
                    if best is None or f.key() > best.key():
                        best = f
        else:
            stats["search"] = "hill-climb"
            seen: dict[tuple[int, ...], GroupFill | None] = {}
            try:
                best = _hill_climb(est, fill, order, need, deadline, stats, seen)
            finally:
                evaluated = len(seen)
            fills = [best] if best is not None else []
    except SearchTimeout:
        stats["stopped"] = "time limit"
        if stats.get("search") == "hill-climb":
            best = max((f for f in seen.values() if f is not None), key=lambda f: f.key(), default=None)
            fills = [best] if best is not None else []
    stats["groups_evaluated"] = evaluated
    if refine is not None and fills:
        fills.sort(key=lambda f: f.key(), reverse=True)
        greedy_total = fills[0].total
        for f in fills[:refine_top]:
            if deadline.passed():
                stats["stopped"] = "time limit"
                break
            r = refine(est, f, deadline=deadline)
            if r.key() > best.key():
                best = r
        stats["refined_gain"] = best.total - greedy_total
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


def _hill_climb(est: Estimator, fill: FillFn, order: list[int], need: int, deadline: Deadline,
                stats: dict[str, object], seen: dict[tuple[int, ...], GroupFill | None]) -> GroupFill | None:
    c = est.problem.cluster
    n = max(len(est.problem.llms), c.nodes)  # a node holds at least one mesh
    caps = est.problem.capacities
    total = sum(caps)

    def score(g: tuple[int, ...]) -> GroupFill | None:
        if g not in seen:
            seen[g] = fill(est, order, g, deadline)
        return seen[g]

    starts = []
    for s in powers_of_two(c.gpus_per_node):
        if s >= need and total // s <= n and packs((s,) * (total // s), caps):
            starts.append((s,) * (total // s))
    if not starts:
        starts.append(tuple(sorted((x for g in caps for x in node_splits(g)[0] if g), reverse=True)))
    best: GroupFill | None = None
    for g in starts:
        cur = score(g)
        cur_g = g
        while True:
            deadline.check()
            step = None
            for h in _neighbors(cur_g, c.gpus_per_node, n, need):
                if est.problem.node_gpus is not None and not packs(h, caps):
                    continue
                f = score(h)
                if f is not None and (cur is None or f.key() > cur.key()) and (step is None or f.key() > step[1].key()):
                    step = (h, f)
            if step is None:
                break
            cur_g, cur = step
        if cur is not None and (best is None or cur.key() > best.key()):
            best = cur
    stats["starts"] = len(starts)
    return best
