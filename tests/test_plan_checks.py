"""A plan is checked against the workload it runs with before anything runs: cluster,
names, models (architectures), TP degrees, SM shares against the simulator's overload
limit; GPU names are normalized the same way in plans and workloads."""

from __future__ import annotations

import copy
import json

import pytest

import muxsim as mx
from muxsim.errors import InputError
from muxsim.plan import plan_from_dict
from muxsim.plancheck import check_plan_workload
from muxsim.sim import SimConfig
from tests.hardening import assert_refused, bounded, cli, small_workload


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("pair")
    small_workload(d)
    assert cli("plan", "wl.json", "--out", "plan.json", cwd=d).code == 0
    return json.loads((d / "wl.json").read_text()), json.loads((d / "plan.json").read_text())


def _units(plan):
    return [u for m in plan["meshes"] for u in m["units"]]


def _run(tmp_path, wl, plan, monkeypatch):
    (tmp_path / "w.json").write_text(json.dumps(wl))
    (tmp_path / "p.json").write_text(json.dumps(plan))
    import muxsim.sim.run as run

    monkeypatch.setattr(run.Simulation, "run", lambda self: pytest.fail("the run started"))
    return cli("simulate", "p.json", "w.json", cwd=tmp_path)


def test_another_model_under_the_same_name(tmp_path, pair, monkeypatch):
    wl, plan = copy.deepcopy(pair)
    name = _units(plan)[0]["name"]
    for m in wl["models"]:
        if m["name"] == name:
            m["model"] = "llama-30b" if m["model"] != "llama-30b" else "llama-7b"
    assert_refused(_run(tmp_path, wl, plan, monkeypatch), "plan.meshes[0].units[0].model", repr(name))


@pytest.mark.parametrize("cluster", [{"gpu": "a100-80gb", "nodes": 4, "gpus_per_node": 8},
                                     {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 2},
                                     {"gpu": "h100-80gb", "nodes": 1, "gpus_per_node": 4}])
def test_another_cluster(tmp_path, pair, monkeypatch, cluster):
    wl, plan = copy.deepcopy(pair)
    plan["cluster"] = cluster
    r = _run(tmp_path, wl, plan, monkeypatch)
    assert_refused(r)  # a plan too big for its own cluster fails its own checks first
    assert ("plan.cluster" in r.err and "workload's cluster" in r.err) or "is outside node" in r.err


def test_names_missing_or_extra(tmp_path, pair, monkeypatch):
    wl, plan = copy.deepcopy(pair)
    _units(plan)[0]["name"] = "stranger"
    assert_refused(_run(tmp_path, wl, plan, monkeypatch), "plan: LLM(s)")


def test_decode_shares_past_the_overload_limit(tmp_path, pair, monkeypatch):
    wl, plan = copy.deepcopy(pair)
    mesh = next(m for m in plan["meshes"] if len(m["units"]) > 1)
    for u in mesh["units"]:
        u["decode_sm"] = 1.0
    limit = SimConfig().limits.overload  # the simulator's own limit, not a copy of it
    assert_refused(_run(tmp_path, wl, plan, monkeypatch), "decode_sm sums to 2", f"overload limit {limit:g}")
    with pytest.raises(InputError, match="overload limit"):
        mx.simulate(plan, mx.load_workload(tmp_path / "w.json"))


@pytest.mark.parametrize(("field", "value", "named"), [("decode_sm", 1e-300, "decode_sm"),
                                                        ("prefill_sm", 0.0, "prefill_sm"),
                                                        ("max_batch", 10**30, "max_batch"),
                                                        ("kv_share", float("nan"), "kv_share")])
def test_unit_values_out_of_range(tmp_path, pair, monkeypatch, field, value, named):
    wl, plan = copy.deepcopy(pair)
    _units(plan)[0][field] = value
    assert_refused(_run(tmp_path, wl, plan, monkeypatch), named)


def test_tp_the_model_cannot_take(pair):
    wl, plan = copy.deepcopy(pair)
    wl["cluster"]["gpus_per_node"] = 4
    d = {**plan, "meshes": [{"id": "m0", "node": 0, "gpus": [0, 1, 2],
                             "units": [{"name": m["name"], "model": m["model"], "tp": 3, "decode_sm": 0.3,
                                        "kv_share": 0.25} for m in wl["models"]]}]}
    with pytest.raises(InputError, match=r"tp: 3 does not divide"):
        check_plan_workload(plan_from_dict(d), mx.Workload.from_dict(wl))


def test_gpu_names_are_normalized_alike(tmp_path, pair):
    wl, plan = copy.deepcopy(pair)
    wl["cluster"]["gpu"] = " A100-80GB"
    plan["cluster"]["gpu"] = "a100-80GB "
    (tmp_path / "w.json").write_text(json.dumps(wl))
    (tmp_path / "p.json").write_text(json.dumps(plan))
    assert mx.load_workload(tmp_path / "w.json").cluster.gpu == "a100-80gb"
    assert mx.load_plan(tmp_path / "p.json").cluster.gpu == "a100-80gb"
    r = cli("simulate", "p.json", "w.json", "--format", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    assert cli("plan", "w.json", "--format", "json", cwd=tmp_path).out.count('"a100-80gb"') == 1


def test_a_mismatch_through_the_real_command(tmp_path, pair):
    """In a subprocess under a memory limit and a timeout, the first mismatch and nothing run."""
    wl, plan = copy.deepcopy(pair)
    plan["cluster"]["gpu"] = "h100-80gb"
    (tmp_path / "w.json").write_text(json.dumps(wl))
    (tmp_path / "p.json").write_text(json.dumps(plan))
    assert_refused(bounded("simulate", "p.json", "w.json", "--out", "r.json", cwd=tmp_path), "plan.cluster")
    assert not (tmp_path / "r.json").exists()
