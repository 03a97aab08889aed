"""The executor beyond one device per LLM: replicated LLMs routed by the simulator's own
rule (one :class:`~muxsim.policy.routing.Router`), and tensor-parallel units whose
workers run as gloo process groups over a KV pool sharded head-wise, answering what the
unsharded reference decoder answers."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from muxsim.errors import InputError
from muxsim.policy.routing import Router
from tests import tinyplan

pytest.importorskip("torch")

two_cores = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="a plan of 2 GPUs needs 2 CPU cores")


def test_router_golden_sequence() -> None:
    r = Router()
    # fewest outstanding wins; among ties the turn starts after the last one chosen
    assert [r.pick("x", o) for o in ([0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1], [0, 2, 0], [5, 5, 5])] == [
        0, 1, 2, 0, 2, 0]
    assert r.pick("y", [3, 3]) == 0 and r.pick("x", [0]) == 0  # each LLM has its own turn


@given(st.lists(st.lists(st.integers(0, 3), min_size=3, max_size=3), min_size=1, max_size=30))
def test_router_picks_a_least_loaded_replica_in_turn(loads: list[list[int]]) -> None:
    r = Router()
    last = -1
    for o in loads:
        k = r.pick("x", o)
        assert o[k] == min(o)
        ties = [j for j in range(3) if o[j] == min(o)]
        after = [j for j in ties if j > last]
        assert k == (after[0] if after else ties[0])  # the first tie after the last pick, wrapping
        last = k


def _run(plan_path: Path, wl_path: Path):
    import muxsim as mx
    from muxsim.executor import execute
    from muxsim.plan import load_plan

    plan, wl = load_plan(plan_path), mx.load_workload(wl_path)
    return plan, wl, execute(plan, wl, seed=0), mx.generate_requests(wl, 0)


def _every_request_once_with_the_reference_tokens(ex, reqs, plan_path: Path, wl_path: Path) -> None:
    df = ex.results.to_frame()
    assert ex.status == "completed" and len(df) == len(reqs) > 0 and bool(df["finished"].all())
    assert ex.results.aggregate["completed"] == len(reqs)
    answers = [t[p:] for t, p in zip(ex.tokens, reqs["prompt_len"])]
    assert [len(a) for a in answers] == reqs["output_len"].tolist()
    assert answers == tinyplan.reference_tokens(plan_path, wl_path, 0)


@two_cores
def test_replicated_llm_runs_and_routes_as_the_simulator(tmp_path: Path) -> None:
    import muxsim as mx

    plan_path, wl_path = tinyplan.replicated_case(tmp_path)
    plan, wl, ex, reqs = _run(plan_path, wl_path)
    _every_request_once_with_the_reference_tokens(ex, reqs, plan_path, wl_path)
    meshes = ex.results.to_frame()["mesh"].tolist()
    assert set(meshes) == {"m0", "m1"}
    # arrivals 0.25 s apart find both replicas idle in both: the ties go in turn alike
    assert meshes == mx.simulate(plan, wl, seed=0).to_frame()["mesh"].tolist()


@two_cores
def test_tp2_units_answer_as_the_unsharded_reference(tmp_path: Path) -> None:
    plan_path, wl_path = tinyplan.tp_case(tmp_path)
    _, _, ex, reqs = _run(plan_path, wl_path)
    _every_request_once_with_the_reference_tokens(ex, reqs, plan_path, wl_path)
    assert set(ex.results.per_llm) == {"a", "b"} and all(m["completed"] > 0 for m in ex.results.per_llm.values())


@two_cores
def test_killed_tp_rank_ends_the_run_with_no_orphans(tmp_path: Path) -> None:
    from tests.test_executor import _children, _finish, start_until_ready

    plan, wl = tinyplan.tp_case(tmp_path, duration_s=30.0)
    out = tmp_path / "results.json"
    proc, line = start_until_ready(plan, wl, out)
    assert "ready: 8 workers" in line  # 2 units x (prefill, decode) x 2 ranks
    workers = _children(proc.pid)
    time.sleep(1.0)
    ranks = sorted(p for p in workers if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text())
    assert len(ranks) == 8
    os.kill(ranks[-1], signal.SIGKILL)  # the last started: a decode worker's rank 1
    code, _, doc = _finish(proc, workers, out)
    # the rank's death, or its partner's failed collective: either way that worker
    assert code == 1 and doc["run"]["status"].startswith("worker_failed: mesh m0 b decode worker")
    assert doc["aggregate"]["requests"] > 0


def _fits(plan_dict: dict, backend: str = "local", devices: int = 2) -> None:
    from muxsim.executor.machine import check_fits
    from muxsim.executor.worker import WorkerSpec
    from muxsim.plan import plan_from_dict

    plan = plan_from_dict(plan_dict)
    specs = [WorkerSpec(i, m.id, u.name, role, tinyplan.TINY_A, 0, "", 0, 16, tp=u.tp)
             for i, (m, u, role) in enumerate((m, u, r) for m in plan.meshes for u in m.units
                                              for r in ("prefill", "decode"))]
    pools = {m.id: (16, m.units[0]) for m in plan.meshes}
    check_fits(plan, specs, pools, backend, devices=devices, memory=1 << 30)


def test_machine_rules_for_tp_and_replicas(tmp_path: Path) -> None:
    import json

    tp = json.loads(tinyplan.tp_case(tmp_path)[0].read_text())
    rep = json.loads(tinyplan.replicated_case(tmp_path)[0].read_text())
    _fits(tp)  # tp 2 on 2 devices (cores)
    _fits(rep)
    with pytest.raises(InputError, match=r"^plan.meshes: node 0 needs 2 devices"):
        _fits(tp, devices=1)
    _fits(tp, backend="ray")  # the Ray backend runs tp 2 too (one actor per rank)
    odd = json.loads(json.dumps(tp))
    odd["meshes"][0]["units"][0]["model"] = {**tinyplan.TINY_A, "name": "tiny-3h", "heads": 3, "kv_heads": 3,
                                              "hidden": 48}
    with pytest.raises(InputError, match=r"^plan.meshes\[0\].units\[0\].tp: 2 must divide heads \(3\)"):
        _fits(odd)
