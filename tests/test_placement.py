"""Placement algorithms: hand-worked answers, mesh groups, and plan validity properties."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from muxsim.errors import InputError
from muxsim.limits import ServingLimits
from muxsim.memory import MemoryModel
from muxsim.placement import ALGORITHMS, place, solve_placement
from muxsim.placement.meshgroups import layout, mesh_groups, node_splits
from muxsim.plan import Plan
from tests.test_placement_fakes import LinearCost, TokenMemory, problem

FAKE = {"cost": LinearCost(), "memory": TokenMemory()}


# ---- mesh groups ------------------------------------------------------------------------
def test_node_splits_of_eight_are_muxserves_ten():
    assert set(node_splits(8)) == {
        (8,), (4, 4), (4, 2, 2), (4, 2, 1, 1), (4, 1, 1, 1, 1), (2, 2, 2, 2), (2, 2, 2, 1, 1),
        (2, 2, 1, 1, 1, 1), (2, 1, 1, 1, 1, 1, 1), (1,) * 8}
    assert node_splits(4) == ((4,), (2, 2), (2, 1, 1), (1, 1, 1, 1))
    assert set(node_splits(6)) == {(4, 2), (4, 1, 1), (2, 2, 2), (2, 2, 1, 1), (2, 1, 1, 1, 1), (1,) * 6}


def test_mesh_groups_of_four_nodes():
    # 715 node combinations; as multisets of mesh sizes, 165 distinct groups
    groups = mesh_groups(4, 8)
    assert len(groups) == 165
    assert all(sum(g) == 32 for g in groups)
    assert len(set(groups)) == len(groups)
    pruned = mesh_groups(4, 8, max_meshes=19, min_largest=4)
    # independent count: (n8, n4, n2, n1) with 8 n8 + 4 n4 + 2 n2 + n1 = 32, at most 19
    # meshes, at least one mesh of 4 or more GPUs
    expect = sum(1 for n8 in range(5) for n4 in range(9) for n2 in range(17)
                 if 8 * n8 + 4 * n4 + 2 * n2 <= 32 and n8 + n4 + n2 + (32 - 8 * n8 - 4 * n4 - 2 * n2) <= 19
                 and n8 + n4 > 0)
    assert len(pruned) == expect
    assert all(len(g) <= 19 and g[0] >= 4 for g in pruned)
    assert mesh_groups(32, 8, max_meshes=100, limit=500) is None  # too many: hill climb


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 8))
def test_every_group_packs_into_nodes(nodes, gpus_per_node):
    for g in mesh_groups(nodes, gpus_per_node):
        places = layout(g, nodes, gpus_per_node)
        used = [(n, x) for n, gpus in places for x in gpus]
        assert len(used) == len(set(used)) == nodes * gpus_per_node


# ---- hand-worked answers on the linear cost model ---------------------------------------
def test_two_equal_models_two_gpus_share_one_mesh():
    # Answers of 100 tokens, a pool that holds 256 requests. Alone on one GPU each reaches
    # at most 1000*256/(100*20 + 10*256) = 56.14 req/s. On one 2-GPU mesh (prefill 5 ms a
    # request, decode 10 ms) a prefill job takes 1 + 60 * 10/1000 = 1.6 requests and stalls
    # the other decode job (2/3 - 1/2) * 10 ms: with b = 256 each gets
    # 1000*256 / (100*10 + 2*(5*256 + 10/6 * 256/1.6)) = 62.5 req/s, so 60 + 60 are met.
    p = problem([60.0, 60.0], gpus_per_node=2, output_len=100.0)
    fake = {"cost": LinearCost(), "memory": TokenMemory(tokens_per_gpu=100_000)}
    res = solve_placement(p, "muxserve", **fake)
    assert res.objective == pytest.approx(120.0)
    assert [m.size for m in res.plan.meshes] == [2]
    assert {u.name for u in res.plan.meshes[0].units} == {"llm-0", "llm-1"}
    spatial = solve_placement(p, "spatial", **fake)
    assert spatial.objective == pytest.approx(2 * 1000 * 256 / 4560)
    assert [m.size for m in spatial.plan.meshes] == [1, 1]


def test_spatial_spends_spare_gpus_where_they_add_most():
    # 95 req/s on a 4-GPU node: alone on one GPU 92.75 req/s, on two 1000*256/(5*256+100)
    # = 185.5, and two replicas of one GPU take 47.5 each: either step serves all 95, a
    # gain of 2.25 req/s for one more GPU, and the tie goes to the replica (listed
    # first). Each replica is then 51% loaded (47.5 / 92.75 > 0.5), so the last GPU
    # becomes a third replica; the cold LLM (1 req/s) keeps one GPU. spatial-min keeps [1, 1].
    p = problem([95.0, 1.0], gpus_per_node=4)
    res = solve_placement(p, "spatial", **FAKE)
    assert sorted((u.name, m.size) for m, u in res.plan.units()) == [("llm-0", 1)] * 3 + [("llm-1", 1)]
    assert res.objective == pytest.approx(96.0)
    assert res.plan.estimate["per_llm"] == {"llm-0": 95.0, "llm-1": 1.0}
    per_unit = res.plan.estimate["per_unit"]
    assert sorted(per_unit) == ["m0", "m1", "m2", "m3"]
    assert sorted(v for d in per_unit.values() for v in d.values()) == pytest.approx([1.0] + [95 / 3] * 3)
    assert res.stats["idle_gpus"] == 0
    low = solve_placement(p, "spatial-min", **FAKE)
    assert [m.size for m in low.plan.meshes] == [1, 1] and low.plan.algorithm == "spatial-min"
    assert low.objective == pytest.approx(1000 * 256 / 2760 + 1.0)


def test_two_light_models_two_gpus_prefer_the_roomier_plan():
    # 10 + 10 req/s are met on [1, 1] and on [2]; on [2] each has more headroom
    # (lower peak load), so the tie goes there.
    p = problem([10.0, 10.0], gpus_per_node=2)
    res = solve_placement(p, "muxserve", **FAKE)
    assert res.objective == pytest.approx(20.0)
    assert [m.size for m in res.plan.meshes] == [2]


def test_one_hot_three_cold_on_a_four_gpu_node():
    # Real cost model: a 7B at 30 req/s needs more than one A100 (about 8 req/s alone);
    # spatial must give each of the four LLMs its own GPU, MuxServe packs the three cold
    # ones together and gives the hot one two GPUs (which, with the per-step cost of
    # driving tensor-parallel workers, serve it about 1.4x faster than one).
    p = problem([30.0, 0.5, 0.5, 0.5], gpus_per_node=4, prompt_len=161, output_len=338)
    mux = solve_placement(p, "muxserve")
    spatial = solve_placement(p, "spatial")
    hot = mux.plan.mesh_of("llm-0")
    assert hot.size >= 2 and [u.name for u in hot.units] == ["llm-0"]
    cold = {mux.plan.mesh_of(n).id for n in ("llm-1", "llm-2", "llm-3")}
    assert len(cold) == 1
    assert [m.size for m in spatial.plan.meshes] == [1, 1, 1, 1]
    assert mux.objective > 1.25 * spatial.objective
    for n in ("llm-1", "llm-2", "llm-3"):
        assert mux.plan.estimate["per_llm"][n] == pytest.approx(0.5)


def test_temporal_keeps_muxserves_colocation():
    p = problem([30.0, 0.5, 0.5, 0.5], gpus_per_node=4, prompt_len=161, output_len=338)
    mux = solve_placement(p, "muxserve").plan
    tem = solve_placement(p, "temporal").plan
    assert tem.mode == "temporal"
    groups = lambda plan: sorted(sorted(u.name for u in m.units) for m in plan.meshes)  # noqa: E731
    assert groups(tem) == groups(mux)
    assert all(u.decode_sm == 1.0 and u.prefill_sm == 1.0 for _, u in tem.units())


def test_greedy_memory_puts_largest_models_on_the_freest_mesh():
    p = problem([1.0, 1.0, 1.0], models=["llama-13b", "llama-7b", "llama-7b"], gpus_per_node=2,
                prompt_len=161, output_len=338)
    res = solve_placement(p, "greedy-memory")
    assert res.success and res.plan.algorithm == "greedy-memory"
    res.plan.verify(memory=MemoryModel("a100-80gb"), limits=ServingLimits())


def test_unservable_workload_names_the_model():
    p = problem([1.0, 1.0], models=["llama-7b", "llama-65b"], gpus_per_node=1)
    for alg in ALGORITHMS:
        with pytest.raises(InputError, match=r"llm-1.*llama-65b"):
            solve_placement(p, alg)
    with pytest.raises(InputError, match="algorithm"):
        solve_placement(p, "nope")


def test_spatial_reports_too_few_gpus():
    res = solve_placement(problem([1.0] * 3, gpus_per_node=2), "spatial", **FAKE)
    assert res.status == "infeasible" and res.plan is None and "3 LLMs" in res.message
    with pytest.raises(InputError, match="spatial"):
        place(problem([1.0] * 3, gpus_per_node=2), "spatial", **FAKE)


def test_large_clusters_switch_to_a_hill_climb():
    p = problem([5.0 / (i + 1) for i in range(12)], nodes=4, gpus_per_node=8)
    res = solve_placement(p, "muxserve", max_groups=10, **FAKE)
    assert res.stats["search"] == "hill-climb"
    assert res.success
    full = solve_placement(p, "muxserve", **FAKE)
    assert full.stats["search"] == "enumeration"
    assert res.objective <= full.objective + 1e-9


# ---- validity of every algorithm's plan across random workloads and clusters -----------
MODELS = ["llama-7b", "llama-13b", "llama-2-7b", "mistral-7b"]


@st.composite
def workloads(draw):
    n = draw(st.integers(1, 6))
    models = [draw(st.sampled_from(MODELS)) for _ in range(n)]
    rates = [draw(st.floats(0.05, 30.0)) for _ in range(n)]
    nodes = draw(st.integers(1, 2))
    gpn = draw(st.sampled_from([2, 4, 8]))
    return problem(rates, models=models, nodes=nodes, gpus_per_node=gpn, prompt_len=161, output_len=338)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads(), st.sampled_from(["muxserve", "greedy-memory", "spatial", "spatial-min", "temporal"]))
def test_plans_are_valid(p, algorithm):
    # room to colocate: the weights take at most half the cluster's memory (six 13B models
    # on two GPUs fit no flex plan either, and the property below is about valid plans)
    mem = MemoryModel(p.cluster.gpu)
    assume(sum(m.spec.weight_bytes() for m in p.llms) <= 0.5 * mem.usable_bytes() * p.cluster.total_gpus)
    res = solve_placement(p, algorithm)
    if res.plan is None:
        assert algorithm.startswith("spatial") and res.status == "infeasible"
        return
    plan = res.plan
    names = [u.name for _, u in plan.units()]
    assert set(names) == {m.name for m in p.llms}  # every LLM placed
    if algorithm != "spatial":  # only the spatial baseline replicates
        assert sorted(names) == sorted(m.name for m in p.llms)
    for m in p.llms:  # replicas run their LLM's model, each on its own mesh
        reps = plan.replicas(m.name)
        assert {u.model for _, u in reps} == {m.model}
        assert len({mesh.id for mesh, _ in reps}) == len(reps)
    plan.verify(memory=MemoryModel(p.cluster.gpu), limits=ServingLimits())
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert plan.normalize() == plan
    est = plan.estimate
    assert est["throughput_rps"] == pytest.approx(res.objective)
    for m in p.llms:
        assert 0 <= est["per_llm"][m.name] <= m.rate + 1e-6
    for mesh in plan.meshes:
        assert sum(u.kv_share for u in mesh.units) <= 1 + 1e-9
        if plan.mode == "flex":
            assert all(0.3 - 1e-9 <= u.decode_sm <= 1.0 for u in mesh.units)
        if plan.mode == "spatial":
            assert len(mesh.units) == 1
