"""The exact ILP: optimal against brute force on instances small enough to enumerate."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muxsim.errors import InputError
from muxsim.placement import solve_placement
from muxsim.placement.estimator import Estimator
from muxsim.placement.meshgroups import layout, powers_of_two
from muxsim.placement.result import FEASIBLE, OPTIMAL
from tests.test_placement_fakes import LinearCost, TokenMemory, problem


def set_partitions(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in set_partitions(rest):
        for k in range(len(part)):
            yield [*part[:k], [first, *part[k]], *part[k + 1:]]
        yield [[first], *part]


def brute_force(est: Estimator) -> float:
    """Best total over every grouping of the LLMs and every mesh size per group that
    packs into the cluster's nodes."""
    c = est.problem.cluster
    sizes = powers_of_two(c.gpus_per_node)
    best = float("-inf")
    for part in set_partitions(list(range(len(est.problem.llms)))):
        for assign in itertools.product(sizes, repeat=len(part)):
            if sum(assign) > c.nodes * c.gpus_per_node:
                continue
            units = [est.flex(tuple(sorted(g)), s) for g, s in zip(part, assign)]
            if not all(u.feasible for u in units):
                continue
            try:
                layout(list(assign), c.nodes, c.gpus_per_node)
            except InputError:
                continue
            best = max(best, sum(u.total for u in units))
    return best


def test_set_partitions_count_bell_numbers():
    assert [sum(1 for _ in set_partitions(list(range(n)))) for n in range(6)] == [1, 1, 2, 5, 15, 52]


@settings(max_examples=5, deadline=None)
@given(st.lists(st.floats(1.0, 120.0), min_size=2, max_size=4), st.sampled_from([(1, 4), (2, 2), (1, 2)]))
def test_ilp_matches_brute_force(rates, cluster):
    nodes, gpn = cluster
    p = problem(rates, nodes=nodes, gpus_per_node=gpn)
    res = solve_placement(p, "ilp", cost=LinearCost(), memory=TokenMemory(), replicas=False)
    expect = brute_force(Estimator(p, LinearCost(), TokenMemory()))
    assert res.status == OPTIMAL and "without replicas" in res.message
    assert res.objective == pytest.approx(expect, rel=1e-6, abs=1e-6)
    # the greedy never beats the optimum; with replicas the program can only do better,
    # and never worse than the spatial baseline (whose replicas run alone)
    greedy = solve_placement(p, "muxserve", cost=LinearCost(), memory=TokenMemory())
    assert greedy.objective <= res.objective + 1e-4  # plan estimates are rounded to 1e-6 per LLM
    more = solve_placement(p, "ilp", cost=LinearCost(), memory=TokenMemory())
    spatial = solve_placement(p, "spatial", cost=LinearCost(), memory=TokenMemory())
    assert more.status == OPTIMAL and "replicated LLMs run alone" in more.message
    assert more.objective >= max(res.objective, spatial.objective) - 1e-4


def test_ilp_on_the_real_cost_model_is_optimal_and_places_everyone():
    p = problem([12.0, 3.0, 1.0], models=["llama-7b", "llama-13b", "llama-7b"], nodes=1, gpus_per_node=4,
                prompt_len=161, output_len=338)
    res = solve_placement(p, "ilp", replicas=False)
    assert res.status == OPTIMAL and res.success
    assert res.stats["gap"] == pytest.approx(0.0, abs=1e-4)
    assert res.objective == pytest.approx(brute_force(Estimator(p, *_real(p))), rel=1e-6)
    assert sorted(u.name for _, u in res.plan.units()) == ["llm-0", "llm-1", "llm-2"]


def _real(p):
    from muxsim.costmodel import cost_model
    from muxsim.memory import MemoryModel

    return cost_model(p.cluster.gpu), MemoryModel(p.cluster.gpu)


def test_time_limit_returns_best_found_with_a_bound():
    p = problem([40.0 / (i + 1) for i in range(8)], nodes=2, gpus_per_node=8, prompt_len=161, output_len=338)
    res = solve_placement(p, "ilp", time_limit_s=0.01, max_unit=3)
    assert res.status in (OPTIMAL, FEASIBLE, "infeasible")
    if res.status == FEASIBLE:
        assert res.stats["bound"] is None or res.stats["bound"] >= res.objective - 1e-6
        assert "time limit" in res.message


def test_max_unit_restricts_columns():
    p = problem([1.0, 1.0, 1.0], nodes=1, gpus_per_node=1)
    # three light LLMs must share the single GPU: impossible with units of two
    res = solve_placement(p, "ilp", cost=LinearCost(), memory=TokenMemory(), max_unit=2)
    assert res.status == "infeasible" and res.plan is None
    res = solve_placement(p, "ilp", cost=LinearCost(), memory=TokenMemory())
    assert res.status == OPTIMAL and res.objective == pytest.approx(3.0)


def test_time_limit_counts_the_model_build_on_24_llms():
    # 24 LLMs: tens of thousands of candidate units. The limit covers the warm start, the
    # columns and the solve; a time-out returns at least the warm start, with its gap.
    import time

    rates = [60.0 / (i + 1) ** 0.5 for i in range(24)]
    models = ["llama-7b"] * 16 + ["llama-13b"] * 4 + ["llama-30b"] * 2 + ["llama-65b"] * 2
    p = problem(rates, models=models, nodes=4, gpus_per_node=8, prompt_len=161, output_len=338)
    t0 = time.perf_counter()
    res = solve_placement(p, "ilp", time_limit_s=2.0)
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0 + 2.0  # the limit, plus setting up the estimator and a loaded machine's jitter
    assert res.success and res.status in (OPTIMAL, FEASIBLE)
    assert res.objective >= res.stats["warm_start_rps"] - 1e-4
    assert 0.0 <= res.stats["gap"] <= 1.0 and res.stats["bound"] >= res.objective - 1e-6
    assert "replicated LLMs run alone" in res.message
    if res.status == FEASIBLE:
        assert "time limit" in res.message and "gap" in res.message

