"""Exact placement as a mixed-integer program (PuLP; HiGHS when highspy is installed,
CBC otherwise), used to measure the greedy's optimality gap.

Formulation (set partitioning over units, exact for the estimator the greedy uses):

- a column for every candidate unit: a set S of LLMs on a mesh of size k (powers of two
  up to the node size) that the estimator finds feasible, i.e. within memory and the SM
  overload limit with its chosen decode SM shares; its value is F(S, k), the unit's
  estimated throughput (each LLM capped at its rate). Infeasibility is monotone in S
  (more LLMs never free memory or SMs), so columns are grown level by level from
  feasible sets only. ``max_unit`` bounds |S|; by default it is the most decode jobs a
  mesh can hold (4: 0.3 of the SMs each within the 120% limit), which loses nothing.
  A smaller one makes the answer exact among plans with meshes of at most that many.
- binary z_c per column; every LLM in exactly one chosen column;
- integer m[n, k]: meshes of size k on node n, with sum_k k m[n, k] <= GPUs per node and
  sum_n m[n, k] = number of chosen columns of size k (meshes never span nodes).
- maximize sum_c F_c z_c (+ 1e-6 per GPU used, so equal plans leave no GPU idle).

The co-tenancy interaction that a per-LLM assignment model would have to linearize is
tabulated exactly in F(S, k) instead; the price is the number of columns.
A time limit returns the best plan found with the solver's bound (status ``feasible``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from muxsim.placement.build import build_plan
from muxsim.placement.estimator import Estimator, UnitEstimate
from muxsim.placement.meshgroups import powers_of_two
from muxsim.placement.result import (
    FEASIBLE,
    INFEASIBLE,
    OPTIMAL,
    Deadline,
    PlacementResult,
    SearchTimeout,
)

GPU_TIEBREAK = 1e-6  # req/s per GPU used: breaks ties towards plans without idle GPUs


def unit_columns(est: Estimator, max_unit: int, deadline: Deadline | None = None) -> list[UnitEstimate]:
    """Every feasible unit of at most ``max_unit`` LLMs, over every mesh size
    (SearchTimeout once ``deadline`` passes)."""
    n = len(est.problem.llms)
    out = []
    for size in powers_of_two(est.problem.cluster.gpus_per_node):
        level = []
        for i in range(n):
            if deadline is not None:
                deadline.check()
            u = est.flex((i,), size)
            if u.feasible:
                level.append(u)
        while level:
            out.extend(level)
            if len(level[0].members) >= max_unit:
                break
            nxt = []
            for u in level:
                if deadline is not None:
                    deadline.check()
                for j in range(u.members[-1] + 1, n):
                    v = est.flex((*u.members, j), size)
                    if v.feasible:
                        nxt.append(v)
            level = nxt
    return out


def _variable_maker(prob: Any) -> Any:
    """``prob.add_variable`` where PuLP has it (3.x+), else the ``LpVariable`` constructor."""
    import pulp

    if hasattr(prob, "add_variable"):
        return lambda name, lo, hi, cat: prob.add_variable(name, lo, hi, cat=cat)
    return lambda name, lo, hi, cat: pulp.LpVariable(name, lowBound=lo, upBound=hi, cat=cat)


def _solver(time_limit_s: float | None) -> tuple[Any, str]:
    import pulp

    highs = pulp.HiGHS(msg=False, timeLimit=time_limit_s)
    if highs.available():
        return highs, "HiGHS"
    return pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s), "CBC"


def solve_ilp(est: Estimator, *, time_limit_s: float | None = 60.0, max_unit: int | None = None) -> PlacementResult:
    import pulp

    start = time.perf_counter()
    deadline = Deadline(time_limit_s)
    p = est.problem
    c = p.cluster
    n = len(p.llms)
    if max_unit is None:  # a flex mesh holds at most this many decode jobs: exact
        max_unit = min(n, est.max_colocated)
    try:
        cols = unit_columns(est, max_unit, deadline)
    except SearchTimeout:
        return PlacementResult(INFEASIBLE, "the time limit passed while listing unit columns", None, float("-inf"),
                               {"placement_s": time.perf_counter() - start, "estimator_calls": est.calls})
    prob = pulp.LpProblem("placement", pulp.LpMaximize)
    var = _variable_maker(prob)
    z = [var(f"z{k}", 0, 1, "Binary") for k in range(len(cols))]
    sizes = powers_of_two(c.gpus_per_node)
    m = {(node, s): var(f"m_{node}_{s}", 0, c.gpus_per_node // s, "Integer")
         for node in range(c.nodes) for s in sizes}
    # among plans of equal throughput prefer the one that leaves fewer GPUs idle
    prob += pulp.lpSum((u.total + GPU_TIEBREAK * u.size) * zk for u, zk in zip(cols, z))
    by_llm: list[list[Any]] = [[] for _ in range(n)]
    for u, zk in zip(cols, z):
        for i in u.members:
            by_llm[i].append(zk)
    for i in range(n):
        prob += pulp.lpSum(by_llm[i]) == 1, f"place_{i}"
    for node in range(c.nodes):
        prob += pulp.lpSum(s * m[node, s] for s in sizes) <= c.gpus_per_node, f"node_{node}"
    for s in sizes:
        prob += (pulp.lpSum(m[node, s] for node in range(c.nodes))
                 == pulp.lpSum(zk for u, zk in zip(cols, z) if u.size == s)), f"meshes_{s}"
    for node in range(1, c.nodes):  # nodes are interchangeable: order them by GPUs used
        prob += (pulp.lpSum(s * m[node, s] for s in sizes)
                 <= pulp.lpSum(s * m[node - 1, s] for s in sizes)), f"symmetry_{node}"
    built = time.perf_counter()
    if deadline.passed():
        return PlacementResult(INFEASIBLE, "the time limit passed while building the program", None, float("-inf"),
                               {"placement_s": built - start, "columns": len(cols), "estimator_calls": est.calls})
    solver, solver_name = _solver(deadline.left())
    with _quiet_stdout():  # highspy prints a banner on stdout whatever msg says
        prob.solve(solver)
    solve_s = time.perf_counter() - built
    stats: dict[str, Any] = {"columns": len(cols), "max_unit": max_unit, "solver": solver_name,
                             "build_s": built - start, "solve_s": solve_s, "estimator_calls": est.calls}
    bound = _bound(prob, solver_name)
    status_text = pulp.LpStatus[prob.status]
    chosen = [u for u, zk in zip(cols, z) if zk.varValue is not None and zk.varValue > 0.5]
    placed = sorted(i for u in chosen for i in u.members)
    if prob.status != pulp.LpStatusOptimal or placed != list(range(n)):
        stats["placement_s"] = time.perf_counter() - start
        return PlacementResult(INFEASIBLE, f"solver status {status_text}: no plan places every LLM "
                               f"(units of at most {max_unit} LLMs)", None, float("-inf"), stats)
    plan = build_plan(p, chosen, algorithm="ilp", mode="flex", policy=est.policies["flex"].name, limits=est.limits)
    objective = float(sum(u.total for u in chosen))
    proven = _proven_optimal(prob, solver_name)
    if bound is None:
        bound = objective if proven else None
    stats.update(bound=bound, gap=None if bound is None else max(0.0, bound - objective) / max(abs(bound), 1e-9),
                 mesh_sizes=sorted((u.size for u in chosen), reverse=True),
                 placement_s=time.perf_counter() - start)
    restricted = f" among meshes of at most {max_unit} LLMs" if max_unit < min(n, est.max_colocated) else ""
    if proven:
        return PlacementResult(OPTIMAL, f"proven{restricted}: {solver_name}, {len(cols)} unit columns",
                               plan, objective, stats)
    return PlacementResult(FEASIBLE, f"time limit: best found{restricted}, bound {bound}", plan, objective, stats)


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


def _bound(prob: Any, solver_name: str) -> float | None:
    if solver_name != "HiGHS" or getattr(prob, "solverModel", None) is None:
        return None
    try:
        b = prob.solverModel.getInfo().mip_dual_bound
    except Exception:  # an older highspy without the field
        return None
    return None if b != b or abs(b) == float("inf") else -float(b)  # PuLP hands HiGHS -objective


def _proven_optimal(prob: Any, solver_name: str) -> bool:
    if solver_name == "HiGHS":
        import highspy

        return prob.solverModel.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return prob.sol_status == 1  # pulp.LpSolutionOptimal
