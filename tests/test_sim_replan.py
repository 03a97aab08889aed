"""Plan changes while the simulation runs (:mod:`muxsim.sim.replan`): a model moved from
one mesh to another, a replica added on idle GPUs, shares changed; every request stays
accounted for, a moved model serves nothing while its weights load, and memory is never
oversubscribed."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from muxsim.errors import InputError, InputTypeError
from muxsim.gpus import get_gpu
from muxsim.models import resolve_model
from muxsim.plan import plan_from_dict
from muxsim.sim import SimConfig
from muxsim.sim.engine import EventOrder
from muxsim.sim.requests import DONE, PREFILL, RUNNING
from muxsim.sim.run import Simulation
from muxsim.workload import Workload, generate_requests

CLUSTER = {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 4}


def plan(meshes, mode="flex"):
    """meshes: per mesh (gpus, [(name, decode_sm)]); 7B units, prefills at full SMs."""
    out = []
    for i, (gpus, units) in enumerate(meshes):
        out.append({"id": f"m{i}", "node": 0, "gpus": gpus, "units": [
            {"name": n, "model": "llama-7b", "tp": len(gpus), "prefill_sm": 1.0, "decode_sm": d,
             "kv_share": round(1.0 / len(units) - 1e-6, 6)} for n, d in units]})
    return plan_from_dict({"version": 1, "mode": mode, "cluster": CLUSTER, "meshes": out})


def workload(rates, duration=12.0):
    return Workload.from_dict({"cluster": CLUSTER, "duration_s": duration, "seed": 0,
                               "models": [{"name": n, "model": "llama-7b", "rate": r} for n, r in rates.items()]})


def check(sim, seen):
    """Invariants at one event; ``seen`` collects what the test asserts at the end."""
    for mesh in sim.meshes:
        kv = mesh.kv
        assert 0 <= kv.used_total <= kv.total and kv.used_total == sum(kv.used)
        for u in mesh.units:
            assert not u.loading
    for llm in sim.llms:
        if llm.loading:
            # a unit loading its weights is on no mesh and nothing of it runs
            assert all(llm not in m.units for m in sim.meshes)
            assert llm.prefill is None and llm.decode is None and not llm.run
            seen["loading"].append(sim.engine.now)
    req = sim.requests
    for rid, llm in enumerate(sim.req_llm):
        if llm is not None and llm.loading:
            assert req.state[rid] not in (PREFILL, RUNNING)


def run_with_change(p0, p1, wl, at, config=None):
    sim = Simulation(p0, wl, generate_requests(wl, seed=0), 0, config=config)
    sim.change_plan(at, p1)
    sim.start()
    seen = {"loading": []}
    t = 0.0
    while sim.engine.peek() <= sim.end_s and sim.engine.step():
        assert sim.engine.now >= t  # time never goes backwards
        t = sim.engine.now
        check(sim, seen)
    return sim, sim.results(), seen


def test_moving_a_model_between_meshes_mid_run():
    wl = workload({"a": 3.0, "b": 3.0, "c": 2.0})
    before = plan([([0], [("a", 0.6), ("b", 0.6)]), ([1], [("c", 1.0)])])
    after = plan([([0], [("a", 1.0)]), ([1], [("b", 0.6), ("c", 0.6)])])
    sim, res, seen = run_with_change(before, after, wl, at=5.0)
    df = res.to_frame()
    # every request is accounted for, each once
    assert res.aggregate["requests"] == len(df) == len(sim.requests)
    assert res.aggregate["completed"] + res.run["unfinished"] == len(df)
    assert all((s == DONE) == f for s, f in zip(sim.requests.state, df.finished))
    done = df[df.finished]
    assert (done.first_token_s >= done.arrival_s).all() and (done.finish_s >= done.first_token_s).all()
    assert [u.outstanding for u in sim.llms] == [0] * len(sim.llms)
    # b's weights came over NVLink from GPU 0 (same node): the shard over the link
    spec = resolve_model("llama-7b")
    load = spec.weight_bytes_per_gpu(1) / get_gpu("a100-80gb").nvlink_bw
    new_b = next(u for u in sim.by_name["b"])
    assert new_b.load_s == pytest.approx(load)
    assert seen["loading"] and seen["loading"][0] >= 5.0 and max(seen["loading"]) >= new_b.ready_s
    # it loaded after m1's barrier at the change, which waits for one step at most
    assert 5.0 + load <= new_b.ready_s <= 5.0 + load + 0.2
    assert sim.mesh_of[new_b.gid].id == "m1" and [u.name for u in sim.meshes[1].units] == ["b", "c"]
    assert [u.name for u in sim.meshes[0].units] == ["a"]
    # b's requests after the load were served on m1; none of b was served while it loaded
    b = df[df.name == "b"]
    late = b[b.arrival_s > 5.0 + load + 0.5]
    assert late.finished.all()
    assert not ((b.first_token_s > new_b.ready_s - load + 0.2) & (b.first_token_s < new_b.ready_s)).any()
    assert res.aggregate["completed"] > 0.9 * len(df)


def test_a_replica_on_idle_gpus_and_new_shares():
    wl = workload({"a": 6.0, "b": 2.0}, duration=10.0)
    before = plan([([0], [("a", 0.6), ("b", 0.6)])])
    # a gets a second replica on GPU 1 (its weights over NVLink from GPU 0, same node), and
    # the decode shares on m0 change
    after = plan([([0], [("a", 0.5), ("b", 0.7)]), ([1], [("a", 1.0)])])
    sim, res, seen = run_with_change(before, after, wl, at=4.0)
    assert seen["loading"] and min(seen["loading"]) >= 4.0
    assert [m.id for m in sim.meshes] == ["m0", "m1"]
    assert [u.decode_sm for u in sim.meshes[0].units] == [0.5, 0.7]
    assert len(sim.by_name["a"]) == 2
    df = res.to_frame()
    assert res.aggregate["completed"] + res.run["unfinished"] == len(df)
    # after the replica came up, requests of a went to both
    routed = {sim.mesh_of[u.gid].id for rid, u in enumerate(sim.req_llm)
              if u is not None and u.name == "a" and sim.requests.arrival[rid] > 5.0}
    assert routed == {"m0", "m1"}
    assert set(res.utilization["meshes"]) == {"m0", "m1"}


def test_moving_a_model_evicts_its_running_requests_and_recomputes_them():
    wl = workload({"a": 2.0, "b": 8.0}, duration=8.0)
    before = plan([([0], [("a", 0.6), ("b", 0.6)])])
    after = plan([([0], [("a", 1.0)]), ([1], [("b", 1.0)])])
    sim = Simulation(before, wl, generate_requests(wl, seed=0), 0)
    sim.change_plan(4.0, after)
    sim.start()
    while sim.engine.peek() <= 4.0 and sim.engine.step():
        pass
    old_b = next(u for u in sim.meshes[0].units if u.name == "b")
    running = len(old_b.run)
    assert running > 0
    sim.engine.run(until=sim.end_s)
    res = sim.results()
    assert res.run["preemptions"] >= running  # each running request of b was evicted, recomputed on m1
    assert res.aggregate["completed"] + res.run["unfinished"] == res.aggregate["requests"]
    assert not old_b.run and not old_b.waiting and old_b.outstanding == 0


def test_bad_plan_changes_are_refused():
    wl = workload({"a": 1.0, "b": 1.0}, duration=2.0)
    p0 = plan([([0], [("a", 1.0)]), ([1], [("b", 1.0)])])
    sim = Simulation(p0, wl, generate_requests(wl, seed=0), 0)
    with pytest.raises(InputError, match="keeps each mesh's GPUs"):
        sim.change_plan(1.0, plan([([0, 1], [("a", 0.5), ("b", 0.5)])]))
    with pytest.raises(InputError, match="mode"):
        sim.change_plan(1.0, plan([([0], [("a", 1.0)]), ([1], [("b", 1.0)])], mode="temporal"))
    with pytest.raises(InputError, match="not placed"):
        sim.change_plan(1.0, plan([([0], [("a", 1.0)])]))
    # every argument checked like any public function's: the error names it
    same = plan([([0], [("a", 0.5)]), ([1], [("b", 1.0)])])
    for at_s, what in (("1", InputTypeError), (None, InputTypeError), (True, InputTypeError),
                       (float("nan"), InputError), (float("inf"), InputError), (-1.0, InputError), (1e300, InputError)):
        with pytest.raises(what, match="at_s"):
            sim.change_plan(at_s, same)
    with pytest.raises(InputTypeError, match="migrate"):
        sim.change_plan(1.0, same, migrate="yes")
    with pytest.raises(InputTypeError, match="plan"):
        sim.change_plan(1.0, None)
    with pytest.raises(InputError, match=r"plan.meshes\[0\].units\[0\].decode_sm"):
        sim.change_plan(1.0, {**same.to_dict(), "meshes": [{**same.meshes[0].to_dict(), "units": [
            {**same.meshes[0].units[0].to_dict(), "decode_sm": 2.0}]}, same.meshes[1].to_dict()]})
    with pytest.raises(InputError, match="overload limit"):  # the simulator's limits hold for the new plan too
        sim.change_plan(1.0, plan([([0], [("a", 0.7), ("b", 0.7)])]))
    assert not sim.engine.pending(EventOrder.PLAN_CHANGE)  # nothing refused was scheduled


@pytest.mark.parametrize("mode,decode", [("temporal", 1.0), ("flex", 0.6)])
def test_plan_changes_under_other_modes_and_policies_keep_accounting(mode, decode):
    wl = workload({"a": 4.0, "b": 4.0, "c": 1.0}, duration=8.0)
    before = plan([([0], [("a", decode), ("b", decode)]), ([1], [("c", 1.0)])], mode=mode)
    after = plan([([0], [("a", 1.0)]), ([1], [("b", decode), ("c", decode)])], mode=mode)
    config = SimConfig(flex_policy="static-quota", temporal_policy="round-robin", kv_cache="static")
    sim, res, seen = run_with_change(before, after, wl, at=3.0, config=config)
    assert res.aggregate["completed"] + res.run["unfinished"] == res.aggregate["requests"]
    assert seen["loading"]
    assert [[u.name for u in m.units] for m in sim.meshes] == [["a"], ["b", "c"]]
    df = res.to_frame()
    late = df[(df["name"] == "b") & (df["arrival_s"] > 4.0)]
    assert len(late) and late.finished.all()  # b serves again after its move


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_plan_changes_keep_every_invariant(data):
    from tests.test_sim_toys import TINY, Entry, StandIn, ToyCost, ToyMemory, requests

    mode = data.draw(st.sampled_from(["flex", "temporal"]))
    names = ["x", "y", "z"]

    def draw_plan():
        # each LLM on mesh 0 or mesh 1 (one GPU each); shares drawn
        where = [data.draw(st.integers(0, 1)) for _ in names]
        meshes = []
        for m in (0, 1):
            here = [n for n, w in zip(names, where) if w == m]
            if here:
                units = [{"name": n, "model": dict(TINY), "tp": 1, "prefill_sm": data.draw(st.sampled_from([0.5, 1.0])),
                          "decode_sm": data.draw(st.sampled_from([0.3, 0.5, 1.0])) if mode == "flex" else 1.0,
                          "kv_share": round(1.0 / len(here) - 1e-6, 6), "max_batch": data.draw(st.integers(2, 8))}
                         for n in here]
                meshes.append({"id": f"m{m}", "node": 0, "gpus": [m], "units": units})
        if mode == "flex":
            for m in meshes:  # within the overload limit
                while sum(u["decode_sm"] for u in m["units"]) > 1.2:
                    for u in m["units"]:
                        u["decode_sm"] = 0.3
        return plan_from_dict({"version": 1, "mode": mode, "cluster": CLUSTER, "meshes": meshes})

    p0, p1 = draw_plan(), draw_plan()
    rows = [(data.draw(st.floats(0, 0.3)), data.draw(st.sampled_from(names)), data.draw(st.integers(1, 90)),
             data.draw(st.integers(1, 60))) for _ in range(data.draw(st.integers(0, 30)))]
    cfg = SimConfig(flex_policy=data.draw(st.sampled_from(["adbs", "fcfs"])), adapt_period_s=0.01, drain_s=2.0,
                    sample_interval_s=0.05, max_chunk_steps=data.draw(st.sampled_from([1, 512])))
    wl = StandIn([Entry(n) for n in names], duration_s=0.3)
    sim = Simulation(p0, wl, requests(rows), 0, cost=ToyCost(), memory=ToyMemory(blocks=data.draw(st.integers(4, 40))),
                     config=cfg)
    sim.change_plan(data.draw(st.floats(0, 0.3)), p1, migrate=data.draw(st.booleans()))
    sim.start()
    seen = {"loading": []}
    t = 0.0
    while sim.engine.peek() <= sim.end_s and sim.engine.step():
        assert sim.engine.now >= t
        t = sim.engine.now
        check(sim, seen)
    res = sim.results()
    assert res.aggregate["requests"] == len(rows)
    assert res.aggregate["completed"] + res.run["unfinished"] == len(rows)
    assert all((s == DONE) == f for s, f in zip(sim.requests.state, res.to_frame().finished))
    if res.aggregate["completed"] == len(rows):
        assert all(m.kv.used_total == 0 for m in sim.meshes)
        assert [u.outstanding for u in sim.llms] == [0] * len(sim.llms)


def test_moving_a_model_with_its_kv_keeps_what_its_requests_generated():
    wl = workload({"a": 2.0, "b": 6.0}, duration=8.0)
    before = plan([([0], [("a", 0.6), ("b", 0.6)])])
    after = plan([([0], [("a", 1.0)]), ([1], [("b", 1.0)])])
    out = {}
    for migrate in (False, True):
        sim = Simulation(before, wl, generate_requests(wl, seed=0), 0)
        sim.change_plan(4.0, after, migrate=migrate)
        sim.start()
        while sim.engine.peek() <= 4.0 and sim.engine.step():
            pass
        moved = list(next(u for u in sim.meshes[0].units if u.name == "b").run)
        seen = {"loading": []}
        while sim.engine.peek() <= sim.end_s and sim.engine.step():
            check(sim, seen)
        res = sim.results()
        assert res.aggregate["completed"] + res.run["unfinished"] == res.aggregate["requests"]
        assert [u.outstanding for u in sim.llms] == [0] * len(sim.llms)
        out[migrate] = (moved, res.to_frame(), res.run["preemptions"])
    (moved, evicted, n_evicted), (moved_kv, migrated, n_migrated) = out[False], out[True]
    assert moved == moved_kv and len(moved) > 0
    # evicted: every running request of b recomputed (a preemption each); migrated: their KV
    # moved along (over NVLink, while b's weights load) and nothing recomputed
    assert n_evicted >= len(moved) and n_migrated < n_evicted
    assert (migrated.loc[moved, "preemptions"] == 0).all() and (evicted.loc[moved, "preemptions"] >= 1).all()
    assert (migrated.loc[moved, "finish_s"] <= evicted.loc[moved, "finish_s"] + 1e-9).all()
