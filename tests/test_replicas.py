"""Replicas: one LLM's name on several meshes. Plans accept them, the simulator routes
each request to the replica with the fewest outstanding, and the spatial baseline uses
them where they add more throughput per GPU than a larger mesh."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muxsim.errors import InputError
from muxsim.plan import plan_from_dict, plan_table
from muxsim.sim import simulate
from muxsim.sim.run import Simulation
from tests.test_sim_toys import TINY, Entry, StandIn, ToyCost, ToyMemory, make_plan, requests

MS = 1e-3


def test_a_plan_may_replicate_an_llm_on_several_meshes():
    plan = make_plan([[{"name": "x"}], [{"name": "x"}], [{"name": "y"}]], "spatial")
    assert [m.id for m, _ in plan.replicas("x")] == ["m0", "m1"]
    assert plan.mesh_of("x").id == "m0"
    plan.verify(workload=StandIn([Entry("x"), Entry("y")]))
    assert plan_from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_a_name_twice_on_one_mesh_or_replicas_of_different_models_are_rejected():
    with pytest.raises(InputError, match=r"plan.meshes\[0\].units\[1\].name: 'x' is placed twice on this mesh"):
        make_plan([[{"name": "x"}, {"name": "x"}]], "flex")
    other = dict(TINY, layers=4)
    with pytest.raises(InputError, match=r"plan.meshes\[1\].units\[0\].model: a replica of 'x' must run its model"):
        make_plan([[{"name": "x"}], [{"name": "x", "model": other}]], "spatial")


def test_plan_table_shows_each_replicas_share():
    plan = make_plan([[{"name": "x"}], [{"name": "x"}]], "spatial")
    plan = plan_from_dict({**plan.to_dict(), "estimate": {"throughput_rps": 9.0, "per_llm": {"x": 9.0},
                                                          "per_unit": {"m0": {"x": 5.0}, "m1": {"x": 4.0}}}})
    rows = plan_table(plan, rates={"x": 10.0}).splitlines()[3:5]  # after the group line, header and rule
    assert [r.split()[-2:] for r in rows] == [["5", "5"], ["4", "5"]]


def _sim(plan, names, rows):
    sim = Simulation(plan, StandIn([Entry(n) for n in names]), requests(rows), 0, cost=ToyCost(), memory=ToyMemory())
    sim.run()
    return sim


def test_requests_go_to_the_replica_with_fewest_outstanding_ties_in_turn():
    # Two replicas of x. Requests of 100 prompt + 101 output tokens take 2 + 100 * 1.01 =
    # 103 ms alone. At 0, 1 and 2 ms three arrive: the first two tie at 0 outstanding and
    # go in turn (m0, m1); the third finds one on each and, the turn being m0's again,
    # goes there. At 500 ms all are done: a tie again, and the turn is m1's.
    plan = make_plan([[{"name": "x"}], [{"name": "x"}]], "spatial")
    rows = [(0.0, "x", 100, 101), (1 * MS, "x", 100, 101), (2 * MS, "x", 100, 101), (0.5, "x", 100, 101)]
    sim = _sim(plan, ["x"], rows)
    assert [sim.mesh_of[sim.req_llm[r].gid].id for r in range(4)] == ["m0", "m1", "m0", "m1"]
    assert [u.outstanding for u in sim.llms] == [0, 0]
    df = sim.results().to_frame()
    # the first on m1 runs alone: prefill 2 ms, then 100 steps of 1.01 ms
    assert df.iloc[1].ttft_ms == pytest.approx(2.0)
    assert df.iloc[1].e2e_ms == pytest.approx(2.0 + 100 * 1.01)
    assert sim.results().per_llm.keys() == {"x"}


def test_replicas_halve_the_queueing_of_one_mesh():
    # 40 requests at once, one mesh whose batch holds 10: four waves. Two replicas: two.
    one = make_plan([[{"name": "x", "max_batch": 10}]], "spatial")
    two = make_plan([[{"name": "x", "max_batch": 10}], [{"name": "x", "max_batch": 10}]], "spatial")
    rows = [(0.0, "x", 50, 20)] * 40
    e2e_one = _sim(one, ["x"], rows).results().aggregate["e2e_ms"]["p99"]
    e2e_two = _sim(two, ["x"], rows).results().aggregate["e2e_ms"]["p99"]
    assert e2e_two < 0.6 * e2e_one


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 4), st.lists(st.tuples(st.floats(0, 2), st.integers(1, 300), st.integers(1, 200)),
                                    min_size=1, max_size=60))
def test_every_request_is_served_once_and_load_is_spread(replicas, reqs):
    plan = make_plan([[{"name": "x", "max_batch": 8}] for _ in range(replicas)], "spatial")
    rows = sorted((a, "x", p, o) for a, p, o in reqs)
    sim = _sim(plan, ["x"], rows)
    res = sim.results()
    assert res.aggregate["requests"] == len(rows) == res.aggregate["completed"]
    assert [u.outstanding for u in sim.llms] == [0] * replicas  # every routed request finished where it went
    counts = [sum(1 for r in range(len(rows)) if sim.req_llm[r].gid == g) for g in range(replicas)]
    assert sum(counts) == len(rows)
    # shortest queue, ties in turn: the first requests go to distinct replicas (an idle
    # replica always beats a busy one, and among idle ones the turn moves on)
    assert min(counts) > 0 or len(rows) < replicas


def test_simulation_with_replicas_is_deterministic():
    plan = make_plan([[{"name": "x"}], [{"name": "x"}], [{"name": "y"}]], "spatial")
    wl = StandIn([Entry("x", rate=20.0), Entry("y", rate=5.0)], duration_s=5.0)
    rows = [(k * 0.05, "x", 30 + k % 7, 10 + k % 5) for k in range(100)] + [(k * 0.2, "y", 40, 12) for k in range(25)]
    a = simulate(plan, wl, 0, cost=ToyCost(), memory=ToyMemory(), requests=requests(rows)).to_dict()
    b = simulate(plan, wl, 0, cost=ToyCost(), memory=ToyMemory(), requests=requests(rows)).to_dict()
    a["run"].pop("wall_s"), b["run"].pop("wall_s")
    assert a == b


def test_spatial_plan_with_replicas_through_the_cli(tmp_path):
    # A hot 7B and a cold one on a 4-GPU node: the hot one gets three one-GPU replicas
    # (more per GPU than TP 2), simulated end to end.
    wl = {"cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 4},
          "models": [{"name": "hot", "model": "llama-7b", "rate": 40.0},
                     {"name": "cold", "model": "llama-7b", "rate": 1.0}],
          "duration_s": 120, "seed": 0}
    (tmp_path / "wl.json").write_text(json.dumps(wl))
    cmd = [sys.executable, "-m", "muxsim.cli.main", "plan", str(tmp_path / "wl.json"), "--algorithm", "spatial",
           "--format", "json", "--out", str(tmp_path / "plan.json")]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    plan = json.loads((tmp_path / "plan.json").read_text())
    hot = [m for m in plan["meshes"] if m["units"][0]["name"] == "hot"]
    assert [len(m["gpus"]) for m in hot] == [1, 1, 1]
    assert set(plan["estimate"]["per_unit"]) == {m["id"] for m in plan["meshes"]}
    out = subprocess.run([sys.executable, "-m", "muxsim.cli.main", "simulate", str(tmp_path / "plan.json"),
                          str(tmp_path / "wl.json"), "--format", "json"], check=True, capture_output=True, text=True)
    res = json.loads(out.stdout)
    assert set(res["per_llm"]) == {"hot", "cold"}
    assert res["aggregate"]["completed"] == res["aggregate"]["requests"]
    # three replicas serve what the estimate says (33.5 req/s of 40; simulated 33.25), within 5%
    # (a 120 s run: in a short one the ramp-up of ~10 s requests weighs)
    assert res["per_llm"]["hot"]["throughput_rps"] == pytest.approx(plan["estimate"]["per_llm"]["hot"], rel=0.05)
