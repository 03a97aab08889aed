"""Flex placement with replicas: MuxServe's multiplexing, where a hot LLM may also run
on several meshes, each replica colocated with other LLMs or alone.

The search works on an :class:`Assignment`: meshes (a size and the LLMs on it) and a
replica count per LLM. A replica of LLM ``i`` among ``r`` is estimated as an LLM of the
same model at ``rate_i / r`` (the simulator routes each request to the replica with the
fewest outstanding, which spreads the rate about evenly), so every mesh is a unit the
estimator already knows how to score (:class:`Replicas` lists those virtual LLMs).

The score of an assignment is, in order: the estimated throughput (each LLM capped at
its rate), then (with ``headroom`` h > 1) capacity counted up to h x each rate, then the
lowest peak load (rate / capacity of the most loaded LLM), then the lowest rate-weighted
mean load, loads in steps of ``LOAD_STEP``. Throughput comes first so that the search
never trades served requests for headroom; with every rate met, it spends GPUs where
they cut queueing most. Each candidate is scored incrementally (only the meshes it
changes are estimated again, from a memo shared by every search over one problem).

:meth:`Search.improve` is a steepest-ascent local search over these moves
(:mod:`~muxsim.placement.moves`), until none raises the score or the move budget
(``MAX_MOVES``, shared by all starts) is spent:

- add a replica of an LLM to a mesh (colocated) or to a new mesh of free GPUs;
- drop a replica;
- move one LLM (or replica) to another mesh, or to a new mesh of any size (a resize);
- swap two LLMs of different meshes;
- merge two meshes of one size into one twice as large, or split one in halves;
- evacuate a mesh (its LLMs relocated one by one where they cost least, its replicas
  dropped) and give its GPUs to an LLM (a new replica, or a larger mesh).

Its starts are the baselines' plans (``spatial``, ``spatial-min``, MuxServe's greedy and
``greedy-memory``), so the result is never rated below any of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from muxsim.placement.estimator import Estimator, UnitEstimate
from muxsim.placement.meshgroups import packs, powers_of_two
from muxsim.placement.moves import Moves
from muxsim.placement.result import Deadline

MAX_REPLICAS = 32  # replicas of one LLM the search considers, at most
MAX_MOVES = 400  # improving moves, at most, over all starts of one search
LOAD_STEP = 0.01  # loads (rate / capacity) are compared in steps of this much

Key = tuple[float, float, float, float]
Contribution = tuple[tuple[int, float, float], ...]  # (LLM, throughput, capacity) per member


class Replicas:
    """The estimator's view of replicas: virtual LLM ``index[(i, r)]`` is one of ``r``
    replicas of LLM ``i``, at ``rate_i / r``; the first ``n`` are the LLMs themselves."""

    def __init__(self, est: Estimator, max_replicas: int = MAX_REPLICAS) -> None:
        p = est.problem
        c = p.cluster
        self.n = n = len(p.llms)
        self.sizes = powers_of_two(c.gpus_per_node)
        self.min_size = [est.min_size(i, self.sizes) or 0 for i in range(n)]
        self.top = [max(1, min(max_replicas, p.usable_gpus // max(1, s))) for s in self.min_size]
        llms = list(p.llms)
        self.index = {(i, 1): i for i in range(n)}
        self.real = list(range(n))
        for i in range(n):
            for r in range(2, self.top[i] + 1):
                self.index[(i, r)] = len(llms)
                self.real.append(i)
                llms.append(replace(p.llms[i], rate=p.llms[i].rate / r))
        self.problem = replace(p, llms=tuple(llms))
        self.est = est.for_problem(self.problem)
        self.rates = [m.rate for m in p.llms]
        self.parts: dict[tuple[int, tuple[int, ...]], Contribution | None] = {}  # (size, members) -> estimate


@dataclass(frozen=True)
class Assignment:
    """Meshes as (size, LLMs on it, sorted), and each LLM's number of replicas."""

    meshes: tuple[tuple[int, tuple[int, ...]], ...]
    reps: tuple[int, ...]

    def canonical(self) -> Assignment:
        return Assignment(tuple(sorted(self.meshes, key=lambda m: (-m[0], m[1]))), self.reps)


@dataclass
class Scored:
    a: Assignment
    parts: list[Contribution]
    totals: list[float]  # per mesh
    t: list[float]  # per LLM: throughput
    c: list[float]  # per LLM: capacity
    hosts: list[list[int]]  # per LLM: its meshes
    key: Key
    total: float  # estimated throughput
    prim: float  # what the key ranks first (the throughput, or capacity up to headroom x rate)
    wsum: float  # sum over LLMs of rate x load
    loads: list[tuple[float, int]]  # (load, LLM), highest first


class Search(Moves):
    """Scores assignments and improves them (see the module doc)."""

    def __init__(self, rx: Replicas, headroom: float = 1.0) -> None:
        self.rx = rx
        self.headroom = headroom
        self.est = rx.est
        c = rx.problem.cluster
        self.gpn = c.gpus_per_node
        self.caps = rx.problem.capacities
        self.total_gpus = sum(self.caps)
        self.rates = rx.rates
        self.rate_sum = sum(self.rates) or 1.0
        self.most = rx.est.max_colocated
        self._contrib = rx.parts
        self._packs: dict[tuple[int, ...], bool] = {}

    # ---- scoring ---------------------------------------------------------------------
    def vkey(self, members: tuple[int, ...], reps: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        idx = self.rx.index
        return tuple(sorted(idx[(i, reps[i])] for i in members))

    def unit(self, size: int, members: tuple[int, ...], reps: tuple[int, ...]) -> UnitEstimate:
        return self.est.flex(self.vkey(members, reps), size)

    def _part(self, size: int, v: tuple[int, ...]) -> Contribution | None:
        k = (size, v)
        if k not in self._contrib:
            u = self.est.flex(v, size)
            real = self.rx.real
            self._contrib[k] = (tuple((real[x], t, c) for x, t, c in zip(u.members, u.throughput, u.capacity))
                                if u.feasible else None)
        return self._contrib[k]

    def packs(self, sizes: list[int]) -> bool:
        if sum(sizes) > self.total_gpus:
            return False
        key = tuple(sorted(sizes, reverse=True))
        v = self._packs.get(key)
        if v is None:
            v = self._packs[key] = packs(key, self.caps)
        return v

    def _key(self, total: float, prim: float, wsum: float, peak: float) -> Key:
        # loads are estimates good to a few percent: a move must lower one by LOAD_STEP
        return (round(total, 6), round(prim, 6), -round(peak / LOAD_STEP), -round(wsum / self.rate_sum / LOAD_STEP))

    def _load(self, i: int, cap: float) -> float:
        r = self.rates[i]
        return 0.0 if r <= 0 else (r / cap if cap > 0 else math.inf)

    def score(self, a: Assignment) -> Scored | None:
        n = self.rx.n
        t, c = [0.0] * n, [0.0] * n
        parts, totals = [], []
        hosts: list[list[int]] = [[] for _ in range(n)]
        for k, (size, members) in enumerate(a.meshes):
            p = self._part(size, self.vkey(members, a.reps))
            if p is None:
                return None
            parts.append(p)
            totals.append(sum(x for _, x, _ in p))
            for i, x, y in p:
                t[i] += x
                c[i] += y
                hosts[i].append(k)
        if not self.packs([s for s, _ in a.meshes]):
            return None
        loads = sorted(((self._load(i, c[i]), i) for i in range(n)), key=lambda x: (-x[0], x[1]))
        total = sum(t)
        prim = total if self.headroom == 1.0 else sum(self._room(i, c[i]) for i in range(n))
        wsum = sum(self.rates[i] * ld for ld, i in loads if ld > 0)
        return Scored(a, parts, totals, t, c, hosts, self._key(total, prim, wsum, loads[0][0] if loads else 0.0),
                       total, prim, wsum, loads)

    def _room(self, i: int, cap: float) -> float:
        """Capacity of LLM i counted up to ``headroom`` x its rate."""
        return min(self.headroom * self.rates[i], cap)

    def attempt(self, cur: Scored, changed: dict[int, tuple[int, ...]], added: list[tuple[int, tuple[int, ...]]],
                reps_delta: dict[int, int], *, cut: bool = True) -> Key | None:
        """The score after changing mesh k's LLMs to ``changed[k]`` (empty: the mesh goes),
        adding meshes ``added`` and setting replica counts ``reps_delta``; None when
        infeasible or (with ``cut``) when it cannot beat ``cur`` on throughput."""
        a = cur.a
        reps = a.reps if not reps_delta else tuple(reps_delta.get(i, r) for i, r in enumerate(a.reps))
        touched = set(changed)
        for x in reps_delta:
            touched.update(cur.hosts[x])
        new_sets = [(a.meshes[k][0], changed.get(k, a.meshes[k][1])) for k in sorted(touched)]
        new_sets += added
        vkeys = [(s, self.vkey(m, reps)) for s, m in new_sets if m]
        lost = sum(cur.totals[k] for k in touched)
        if cut:
            ceiling = self.est.ceiling
            if sum(ceiling(v) for _, v in vkeys) - lost < -1e-7:
                return None
        if added or any(not changed[k] for k in changed):
            sizes = [s for k, (s, _) in enumerate(a.meshes) if k not in changed or changed[k]]
            if not self.packs(sizes + [s for s, _ in added]):
                return None
        dt: dict[int, float] = {}
        dc: dict[int, float] = {}
        for k in touched:
            for i, x, y in cur.parts[k]:
                dt[i] = dt.get(i, 0.0) - x
                dc[i] = dc.get(i, 0.0) - y
        for s, v in vkeys:
            p = self._part(s, v)
            if p is None:
                return None
            for i, x, y in p:
                dt[i] = dt.get(i, 0.0) + x
                dc[i] = dc.get(i, 0.0) + y
        total = cur.total + sum(dt.values())
        if self.headroom == 1.0:
            prim = total
        else:
            prim = cur.prim + sum(self._room(i, cur.c[i] + d) - self._room(i, cur.c[i]) for i, d in dc.items())
        wsum = cur.wsum
        peak = 0.0
        for i, d in dc.items():
            new = self._load(i, cur.c[i] + d)
            wsum += self.rates[i] * (new - self._load(i, cur.c[i]))
            peak = max(peak, new)
        for ld, i in cur.loads:  # the highest load among LLMs left as they were
            if i not in dc:
                peak = max(peak, ld)
                break
        return self._key(total, prim, wsum, peak)

    @staticmethod
    def apply(a: Assignment, changed: dict[int, tuple[int, ...]], added: list[tuple[int, tuple[int, ...]]],
              reps_delta: dict[int, int]) -> Assignment:
        meshes = [(s, changed.get(k, m)) for k, (s, m) in enumerate(a.meshes)]
        meshes = [(s, tuple(sorted(m))) for s, m in meshes + list(added) if m]
        reps = tuple(reps_delta.get(i, r) for i, r in enumerate(a.reps))
        return Assignment(tuple(meshes), reps)

    # ---- moves -----------------------------------------------------------------------
    def improve(self, a: Assignment, *, max_moves: int = MAX_MOVES, deadline: Deadline | None = None,
                stats: dict[str, Any] | None = None) -> Scored | None:
        cur = self.score(a)
        if cur is None:
            return None
        moves = 0
        while moves < max_moves:
            if deadline is not None and deadline.passed():
                if stats is not None:
                    stats["stopped"] = "time limit"
                break
            best: tuple[Key, Assignment] | None = None
            for focus in self.focus(cur):  # the next few LLMs only when none of these gains
                best = self._best_move(cur, focus)
                if best is not None:
                    break
            if best is None:
                break
            nxt = self.score(best[1])
            if nxt is None or nxt.key <= cur.key:
                break
            cur = nxt
            moves += 1
        if stats is not None:
            stats["moves"] = stats.get("moves", 0) + moves
        return cur

    def _best_move(self, cur: Scored, focus: list[int]) -> tuple[Key, Assignment] | None:
        """The move that raises the score most among those helping ``focus`` (None: none does)."""
        best: tuple[Key, Assignment] | None = None
        for ch, ad, rd in self.moves(cur, focus):
            key = self.attempt(cur, ch, ad, rd)
            if key is not None and key > cur.key and (best is None or key > best[0]):
                best = (key, self.apply(cur.a, ch, ad, rd))
        for k in self._to_evacuate(cur, focus):
            ev = self._evacuate(cur, k)
            if ev is None:
                continue
            for ch, ad, rd in self._gifts(ev, cur.a.meshes[k], focus):
                key = self.attempt(ev, ch, ad, rd)
                if key is not None and key > cur.key and (best is None or key > best[0]):
                    best = (key, self.apply(ev.a, ch, ad, rd))
        return best

def from_units(units: list[UnitEstimate], real: list[int] | None = None, n: int | None = None) -> Assignment:
    """An assignment from unit estimates (``real`` maps their member indices to LLMs)."""
    meshes = []
    count: dict[int, int] = {}
    for u in units:
        ms = tuple(sorted(real[i] if real is not None else i for i in u.members))
        meshes.append((u.size, ms))
        for i in ms:
            count[i] = count.get(i, 0) + 1
    size = n if n is not None else (max(count) + 1 if count else 0)
    return Assignment(tuple(meshes), tuple(count.get(i, 1) for i in range(size)))


def to_units(search: Search, a: Assignment) -> list[UnitEstimate]:
    return [search.unit(s, m, a.reps) for s, m in a.meshes]


@dataclass(frozen=True)
class Found:
    """A local search's answer: where it started, the assignment and its score."""

    start: str
    a: Assignment
    total: float  # estimated throughput
    key: Key


def baseline_starts(est: Estimator, max_groups: int = 400, deadline: Deadline | None = None) -> dict[str, Assignment]:
    """The baselines' plans as assignments: ``spatial``, ``spatial-min``, MuxServe's
    greedy (with its local search) and ``greedy-memory``, those that exist (each
    within what is left of ``deadline``)."""
    from muxsim.placement.baselines import memory_fill, spatial_units
    from muxsim.placement.muxserve import greedy_fill, improve_fill, search_groups

    n = len(est.problem.llms)
    starts: dict[str, Assignment] = {}
    for name, spend in (("spatial", True), ("spatial-min", False)):
        units = spatial_units(est, spend_spare=spend, deadline=deadline)
        if not isinstance(units, str):
            starts[name] = from_units(units, n=n)
    for name, fill_fn, refine in (("muxserve", greedy_fill, improve_fill), ("greedy-memory", memory_fill, None)):
        left = None if deadline is None else deadline.left()
        fill, _ = search_groups(est, fill_fn, max_groups=max_groups, refine=refine, time_limit_s=left)
        if fill is not None:
            starts[name] = from_units([u for u in fill.units if u is not None], n=n)
    return starts


def search_from(search: Search, starts: dict[str, Assignment], *, max_moves: int = MAX_MOVES,
                deadline: Deadline | None = None, stats: dict[str, Any] | None = None) -> list[Found]:
    """:meth:`Search.improve` from every distinct start, the best rated first, sharing
    ``max_moves`` (a start left without moves stays as it is); the results best first
    (ties: start order)."""
    found: list[Found] = []
    seen: set[Assignment] = set()
    scored = [(s, name) for name, a in starts.items() if (s := search.score(a)) is not None]
    stats = {} if stats is None else stats
    for s, name in sorted(scored, key=lambda x: x[0].key, reverse=True):
        if s.a.canonical() in seen:
            continue
        seen.add(s.a.canonical())
        left = max_moves - stats.get("moves", 0)
        got = search.improve(s.a, max_moves=left, deadline=deadline, stats=stats) if left > 0 else s
        if got is not None:
            found.append(Found(name, got.a, got.total, got.key))
    return sorted(found, key=lambda f: f.key, reverse=True)


def plan_of(search: Search, a: Assignment, algorithm: str) -> Any:
    """The plan of an assignment: ``flex`` mode, or ``spatial`` when no mesh is shared."""
    from muxsim.placement.build import build_plan

    mode = "flex" if any(len(m) > 1 for _, m in a.meshes) else "spatial"
    est = search.est
    return build_plan(search.rx.problem, to_units(search, a), algorithm=algorithm, mode=mode,
                      policy=est.policies[mode].name, limits=est.limits)

