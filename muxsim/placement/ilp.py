"""Exact placement as a mixed-integer program (HiGHS through highspy), used to measure
how far the heuristics are from the best plan the estimator can rate.

What it optimizes over (its message says so): every plan whose meshes each hold a set
of LLMs, where an LLM is either on one mesh (alone or colocated), or has ``r >= 2``
replicas that each run alone on a mesh of their own (the spatial baseline's replicas,
its rate split evenly). Replicas colocated with other LLMs, which ``flex`` may place,
are outside it; so a ``flex`` plan can beat a proven ``ilp`` plan.

Formulation (set partitioning over units, exact for the estimator the greedy uses):

- a column for every candidate unit: a set S of LLMs on a mesh of size k (powers of two
  up to the node size) that the estimator finds feasible, valued F(S, k), its estimated
  throughput (each LLM capped at its rate). Infeasibility is monotone in S, so columns
  are grown level by level from feasible sets only. ``max_unit`` bounds |S|; by default
  it is the most decode jobs a mesh can hold (4), which loses nothing;
- binary z_c per column; binary y[i, r]: LLM i has r >= 2 replicas; integer w[i, r, k]:
  how many of them run on meshes of size k, each valued F({i at rate_i / r}, k);
- every LLM either in exactly one chosen column, or replicated: sum_c z_c + sum_r y[i, r] = 1,
  sum_k w[i, r, k] = r y[i, r];
- integer m[n, k]: meshes of size k on node n, sum_k k m[n, k] <= GPUs per node,
  sum_n m[n, k] = meshes of size k chosen (meshes never span nodes); nodes ordered by
  GPUs used (they are interchangeable);
- maximize the total (+ 1e-6 per GPU used, so equal plans leave no GPU idle).

The time limit covers everything: the warm start (the better of MuxServe's greedy plan
and the spatial plan, handed to HiGHS as its first incumbent), building the columns
(cut short at the limit: then the answer is the best among the columns built), and the
solve (HiGHS stops at what is left). So a time-out returns at least the warm start,
with the gap to HiGHS's bound.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from muxsim.placement.build import build_plan
from muxsim.placement.estimator import Estimator, UnitEstimate
from muxsim.placement.meshgroups import layout, powers_of_two
from muxsim.placement.result import FEASIBLE, INFEASIBLE, OPTIMAL, Deadline, PlacementResult

GPU_TIEBREAK = 1e-6  # req/s per GPU used: breaks ties towards plans without idle GPUs
MAX_REPLICAS = 8  # replicas per LLM the program considers (more if the warm start has them)
WARM_SHARE = 0.25  # of the time limit, at most, for the warm start
SOLVE_SHARE = 0.25  # of the time limit kept for the solve when columns are many
MIN_SOLVE_S = 0.2
SOLVER_SHARE = 0.7  # of the time left, the limit handed to HiGHS
SPACE = "plans whose replicated LLMs run alone on their meshes"


def unit_columns(est: Estimator, max_unit: int, deadline: float | None = None) -> tuple[list[UnitEstimate], bool]:
    """Every feasible unit of at most ``max_unit`` LLMs over every mesh size, smallest
    sets first, less the dominated ones (:func:`undominated`); and whether all were built
    before ``deadline``."""
    n = len(est.problem.llms)
    sizes = powers_of_two(est.problem.cluster.gpus_per_node)
    out: list[UnitEstimate] = []
    level = {s: [u for i in range(n) if (u := est.flex((i,), s)).feasible] for s in sizes}
    width = 1
    complete = True
    while any(level.values()) and complete:
        for s in sizes:
            out.extend(level[s])
        if width >= max_unit:
            break
        nxt: dict[int, list[UnitEstimate]] = {}
        for s in sizes:
            nxt[s] = []
            for u in level[s]:
                for j in range(u.members[-1] + 1, n):
                    if deadline is not None and time.perf_counter() > deadline:
                        complete = False
                        break
                    v = est.flex((*u.members, j), s)
                    if v.feasible:
                        nxt[s].append(v)
        level, width = nxt, width + 1
    return undominated(est, out), complete


def undominated(est: Estimator, cols: list[UnitEstimate]) -> list[UnitEstimate]:
    """The columns worth more than what their LLMs get on the same GPUs otherwise: the
    same set on a mesh half the size, or the set split in two, each part on a mesh half
    the size (or split again). Both fit wherever the unit's mesh fits, so dropping a
    column they match changes no optimum; it keeps the program small (HiGHS's setup
    grows with the columns and does not watch the time limit)."""
    memo: dict[tuple[tuple[int, ...], int], float] = {}

    def f(members: tuple[int, ...], size: int) -> float:
        u = est.flex(members, size)
        return u.total if u.feasible else float("-inf")

    def other(members: tuple[int, ...], size: int) -> float:
        """The best value of ``members`` on ``size`` GPUs other than one mesh of that size."""
        if size < 2:
            return float("-inf")
        half = size // 2
        best = value(members, half)
        first, rest = members[0], members[1:]
        for mask in range((1 << len(rest)) - 1):  # every split in two non-empty parts
            a = (first, *(x for k, x in enumerate(rest) if mask >> k & 1))
            b = tuple(x for k, x in enumerate(rest) if not mask >> k & 1)
            best = max(best, value(a, half) + value(b, half))
        return best

    def value(members: tuple[int, ...], size: int) -> float:
        key = (members, size)
        v = memo.get(key)
        if v is None:
            v = memo[key] = max(f(members, size), other(members, size))
        return v

    return [u for u in cols if u.total > other(u.members, u.size) + 1e-9]


def replica_columns(est: Estimator, max_replicas: int = MAX_REPLICAS) -> list[tuple[int, int, UnitEstimate]]:
    """(LLM, replicas r >= 2, one replica alone on a mesh) for every feasible size."""
    c = est.problem.cluster
    usable = est.problem.usable_gpus
    out = []
    for r in range(2, max_replicas + 1):
        e = est.split(r)
        for i in range(len(est.problem.llms)):
            for s in powers_of_two(c.gpus_per_node):
                if r * s <= usable and est.supports(i, s) and (u := e.dedicated(i, s)).feasible:
                    out.append((i, r, u))
    return out


def _warm_start(est: Estimator, deadline: float | None) -> list[UnitEstimate] | None:
    """The better of MuxServe's greedy plan and the spatial plan (both inside the space)."""
    from muxsim.placement.baselines import spatial_units
    from muxsim.placement.muxserve import greedy_fill, improve_fill, search_groups

    options = []
    left = None if deadline is None else max(1e-3, deadline - time.perf_counter())
    units = spatial_units(est, deadline=Deadline(left))
    if not isinstance(units, str):
        options.append(units)
    left = None if deadline is None else max(1e-3, deadline - time.perf_counter())
    fill, _ = search_groups(est, greedy_fill, refine=improve_fill, time_limit_s=left)
    if fill is not None:
        options.append([u for u in fill.units if u is not None])
    return max(options, key=lambda us: sum(u.total for u in us)) if options else None


def solve_ilp(est: Estimator, *, time_limit_s: float | None = 60.0, max_unit: int | None = None,
              replicas: bool = True) -> PlacementResult:
    start = time.perf_counter()
    deadline = None if time_limit_s is None else start + time_limit_s
    p = est.problem
    n = len(p.llms)
    if max_unit is None:  # a flex mesh holds at most this many decode jobs: exact
        max_unit = min(n, est.max_colocated)
    restricted = max_unit < min(n, est.max_colocated)
    space = (SPACE if replicas else "plans without replicas") + (
        f", meshes of at most {max_unit} LLMs" if restricted else "")
    # the time limit covers it all: a quarter at most for the warm start, then the
    # columns until what is kept for pruning them, the model and the solve
    warm = _warm_start(est, None if deadline is None else start + WARM_SHARE * time_limit_s)
    most = max((sum(1 for v in warm if v.members == u.members) for u in warm), default=1) if warm else 1
    reps = replica_columns(est, max(MAX_REPLICAS, most)) if replicas else []
    cols, complete = unit_columns(est, max_unit, None if deadline is None else
                                  deadline - max(MIN_SOLVE_S, SOLVE_SHARE * time_limit_s))
    stats: dict[str, Any] = {"max_unit": max_unit, "replicas": replicas, "columns_complete": complete,
                             "optimal_among": space}
    inc = _incumbent(warm, cols, reps, max_unit)
    if inc is None:
        warm = None
    built = time.perf_counter()
    stats.update(columns=len(cols), replica_columns=len(reps), build_s=built - start)
    # the bound is the solver's over the columns built (when they are all), else the offered load
    left = None if deadline is None else deadline - built
    sol = None
    if left is None or left > MIN_SOLVE_S / 4:
        model = _Model(est, cols, reps)
        x0 = model.start(*inc, warm) if inc is not None and warm is not None else None
        # HiGHS overruns a limit by its setup (it does not watch the clock there): ask for less
        sol = model.solve(None if left is None else left * SOLVER_SHARE, x0)
        stats.update(solver="HiGHS", solve_s=time.perf_counter() - built)
    stats["estimator_calls"] = est.calls
    if sol is None or sol["chosen"] is None:
        if warm is None:
            stats["placement_s"] = time.perf_counter() - start
            why = "time limit before a solution" if sol is None or sol["timed_out"] else "no plan places every LLM"
            return PlacementResult(INFEASIBLE, f"{why} ({space})", None, float("-inf"), stats)
        chosen, bound, proven = warm, None, False
    else:
        chosen, bound, proven = sol["chosen"], sol["bound"], sol["proven"] and complete
        if warm is not None and sum(u.total for u in warm) > sum(u.total for u in chosen) + 1e-9:
            # HiGHS stopped on an incumbent below the warm start (it may drop a start it
            # cannot complete in time): the warm start is the answer, never less
            chosen, proven = warm, False
            stats["warm_start_kept"] = True
    plan = build_plan(p, chosen, algorithm="ilp", mode="flex", policy=est.policies["flex"].name, limits=est.limits)
    objective = float(sum(u.total for u in chosen))
    if not complete:
        bound = None  # a bound over the columns built says nothing of the others
    # no plan serves more than is offered: a bound whatever the columns
    offered = p.total_rate
    bound = offered if bound is None else min(bound, offered)
    proven = proven or objective >= offered * (1 - 1e-9) - 1e-9
    gap = max(0.0, bound - objective) / max(abs(bound), 1e-9)
    stats.update(bound=bound, gap=gap, warm_start_rps=None if warm is None else sum(u.total for u in warm),
                 mesh_sizes=sorted((u.size for u in chosen), reverse=True), placement_s=time.perf_counter() - start)
    if proven:
        how = ("every rate carried" if objective >= offered * (1 - 1e-9) - 1e-9
               else f"HiGHS, {len(cols) + len(reps)} columns")
        return PlacementResult(OPTIMAL, f"optimal among {space}: {how}", plan, objective, stats)
    built_ = "" if complete else f" while building the columns ({len(cols)} built)"
    return PlacementResult(FEASIBLE, f"time limit{built_}: best found among {space}, gap {gap:.2%} to the bound "
                           f"{bound:.4g} req/s", plan, objective, stats)


def _incumbent(warm: list[UnitEstimate] | None, cols: list[UnitEstimate], reps: list[tuple[int, int, UnitEstimate]],
               max_unit: int) -> tuple[list[int], dict[int, int]] | None:
    """The warm start as the program's variables: indices of its units among the columns
    (missing ones appended to ``cols``) and counts of its replica columns; None when it
    lies outside the program's space."""
    if warm is None:
        return None
    count: dict[int, int] = {}
    for u in warm:
        for i in u.members:
            count[i] = count.get(i, 0) + 1
    where = {(u.members, u.size): k for k, u in enumerate(cols)}
    rep_at = {(i, r, u.size): k for k, (i, r, u) in enumerate(reps)}
    z: list[int] = []
    w: dict[int, int] = {}
    for u in warm:
        r = count[u.members[0]]
        if r >= 2:
            k = rep_at.get((u.members[0], r, u.size))
            if len(u.members) > 1 or k is None:
                return None
            w[k] = w.get(k, 0) + 1
            continue
        if len(u.members) > max_unit:
            return None
        key = (u.members, u.size)
        if key not in where:
            where[key] = len(cols)
            cols.append(u)
        z.append(where[key])
    return z, w


class _Model:
    """The program above as HiGHS arrays: columns z, w, y, m in that order."""

    def __init__(self, est: Estimator, cols: list[UnitEstimate], reps: list[tuple[int, int, UnitEstimate]]) -> None:
        c = est.problem.cluster
        self.cols, self.reps, self.cluster = cols, reps, c
        self.caps = caps = est.problem.capacities
        self.n = n = len(est.problem.llms)
        self.sizes = sizes = powers_of_two(c.gpus_per_node)
        self.levels = sorted({(i, r) for i, r, _ in reps})
        nz, nw, ny = len(cols), len(reps), len(self.levels)
        self.oz, self.ow, self.oy, self.om = 0, nz, nz + nw, nz + nw + ny
        self.ncol = self.om + c.nodes * len(sizes)
        cost = np.zeros(self.ncol)
        lo, hi = np.zeros(self.ncol), np.ones(self.ncol)
        cost[:nz] = [u.total + GPU_TIEBREAK * u.size for u in cols]
        cost[nz:nz + nw] = [u.total + GPU_TIEBREAK * u.size for _, _, u in reps]
        hi[nz:nz + nw] = [r for _, r, _ in reps]
        for node in range(c.nodes):
            for j, s in enumerate(sizes):
                hi[self.m(node, j)] = caps[node] // s
        self.cost, self.lo, self.hi = cost, lo, hi
        rows: list[tuple[float, float, dict[int, float]]] = []
        level_at = {lv: k for k, lv in enumerate(self.levels)}
        place: list[dict[int, float]] = [{} for _ in range(n)]  # one column, or replicas
        for k, u in enumerate(cols):
            for i in u.members:
                place[i][k] = 1.0
        for (i, _), k in level_at.items():
            place[i][self.oy + k] = 1.0
        rows += [(1.0, 1.0, row) for row in place]
        copies: list[dict[int, float]] = [{self.oy + k: -float(r)} for k, (_, r) in enumerate(self.levels)]
        for q, (i, r, _) in enumerate(reps):  # r replicas
            copies[level_at[(i, r)]][self.ow + q] = 1.0
        rows += [(0.0, 0.0, row) for row in copies]
        for node in range(c.nodes):
            rows.append((-math.inf, caps[node], {self.m(node, j): float(s) for j, s in enumerate(sizes)}))
        meshes: list[dict[int, float]] = [{self.m(node, j): 1.0 for node in range(c.nodes)} for j in range(len(sizes))]
        for k, u in enumerate(cols):
            meshes[sizes.index(u.size)][k] = -1.0
        for q, (_, _, u) in enumerate(reps):
            meshes[sizes.index(u.size)][self.ow + q] = -1.0
        rows += [(0.0, 0.0, row) for row in meshes]
        for node in range(1, c.nodes):  # nodes of one capacity are interchangeable: order them
            if caps[node] != caps[node - 1]:
                continue
            row = {self.m(node, j): float(s) for j, s in enumerate(sizes)}
            for j, s in enumerate(sizes):
                row[self.m(node - 1, j)] = -float(s)
            rows.append((-math.inf, 0.0, row))
        self.rows = rows

    def m(self, node: int, j: int) -> int:
        return self.om + node * len(self.sizes) + j

    def start(self, z: list[int], w: dict[int, int], warm: list[UnitEstimate]) -> np.ndarray:
        x = np.zeros(self.ncol)
        x[z] = 1.0
        for k, v in w.items():
            x[self.ow + k] = v
            i, r, _ = self.reps[k]
            x[self.oy + self.levels.index((i, r))] = 1.0
        c = self.cluster
        places = layout([u.size for u in warm], c.nodes, c.gpus_per_node, self.caps)
        used = [0] * c.nodes
        per = [[0] * len(self.sizes) for _ in range(c.nodes)]
        for u, (node, _) in zip(warm, places):
            per[node][self.sizes.index(u.size)] += 1
            used[node] += u.size
        # nodes of one capacity in order of GPUs used, as the symmetry rows want
        order = sorted(range(c.nodes), key=lambda nd: (self.caps[nd], -used[nd], nd), reverse=False)
        slots = sorted(range(c.nodes), key=lambda nd: (self.caps[nd], nd))
        for slot, node in zip(slots, order):
            for j in range(len(self.sizes)):
                x[self.m(slot, j)] = per[node][j]
        return x

    def solve(self, time_limit_s: float | None, x0: np.ndarray | None) -> dict[str, Any]:
        import highspy

        with _quiet_stdout():  # highspy prints a banner on stdout whatever the options say
            return self._solve(highspy, time_limit_s, x0)

    def _solve(self, highspy: Any, time_limit_s: float | None, x0: np.ndarray | None) -> dict[str, Any]:
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        if time_limit_s is not None:
            h.setOptionValue("time_limit", max(0.01, float(time_limit_s)))
        inf = highspy.kHighsInf
        h.addVars(self.ncol, self.lo, self.hi)
        idx = np.arange(self.ncol, dtype=np.int32)
        h.changeColsCost(self.ncol, idx, -self.cost)  # HiGHS minimizes
        h.changeColsIntegrality(self.ncol, idx, np.array([highspy.HighsVarType.kInteger] * self.ncol))
        starts, index, value, lower, upper = [], [], [], [], []
        for lo, hi, row in self.rows:
            starts.append(len(index))
            index.extend(row)
            value.extend(row.values())
            lower.append(-inf if lo == -math.inf else lo)
            upper.append(hi)
        h.addRows(len(self.rows), np.array(lower), np.array(upper), len(index), np.array(starts, dtype=np.int32),
                  np.array(index, dtype=np.int32), np.array(value, dtype=float))
        if x0 is not None:
            sol = highspy.HighsSolution()
            sol.col_value = x0.tolist()
            sol.value_valid = True
            h.setSolution(sol)
        h.run()
        status = h.getModelStatus()
        info = h.getInfo()
        x = np.asarray(h.getSolution().col_value)
        has = info.primal_solution_status == 2 and len(x) == self.ncol  # kSolutionStatusFeasible
        chosen = None
        if has:
            chosen = [u for k, u in enumerate(self.cols) if x[k] > 0.5]
            for q, (_, _, u) in enumerate(self.reps):
                chosen += [u] * round(x[self.ow + q])
            if {i for u in chosen for i in u.members} != set(range(self.n)):
                chosen = None
        bound = info.mip_dual_bound
        bound = None if not math.isfinite(bound) else -float(bound)
        return {"chosen": chosen, "bound": bound, "proven": status == highspy.HighsModelStatus.kOptimal,
                "timed_out": status == highspy.HighsModelStatus.kTimeLimit}


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
