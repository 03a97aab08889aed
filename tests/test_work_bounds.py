"""Work is bounded before it starts, and nothing loops: huge request counts, model mixes
and searches are refused with a flag to raise the limit; long and stuck runs end; the
placement time limit holds at any cluster size. The CLI cases run as subprocesses
under a memory limit and a timeout."""

from __future__ import annotations

import json

import pytest

import muxsim as mx
import muxsim.sim.run as run
from muxsim.errors import InputError
from muxsim.limits import MAX_SAMPLES, MAX_SEARCH
from muxsim.sim import SimConfig
from tests.hardening import SMALL, assert_refused, bounded, cli, small_workload

ARCH = {"layers": 200, "hidden": 1024, "heads": 8, "kv_heads": 8, "intermediate": 1024, "vocab": 256}


def test_a_million_requests_a_second_is_refused_before_generation(tmp_path):
    d = json.loads(SMALL.read_text())
    d["models"][0]["rate"] = 1e6
    (tmp_path / "w.json").write_text(json.dumps(d))
    assert cli("plan", str(SMALL), "--out", "p.json", cwd=tmp_path).code == 0
    r = bounded("simulate", "p.json", "w.json", cwd=tmp_path, timeout=60)
    assert_refused(r, "requests", "--max-requests")
    r = cli("simulate", "p.json", "w.json", "--max-requests", "1", cwd=tmp_path)
    assert_refused(r, "limit of 1")


def test_a_billion_llm_mix_is_refused(tmp_path):
    r = bounded("workload", "synth", "--mix", "1000000000xllama-7b", "--alpha", "1", "--max-rate", "1",
                "--out", "s.json", cwd=tmp_path, timeout=60)
    assert_refused(r, "mix")
    assert not (tmp_path / "s.json").exists()


def test_requests_spread_over_ten_million_seconds(tmp_path):
    wl = small_workload(tmp_path, duration_s=1e7)
    d = json.loads(wl.read_text())
    for m in d["models"]:
        m["rate"] = 1e-5  # ~400 requests over 1e7 s
    wl.write_text(json.dumps(d))
    assert cli("plan", "wl.json", "--out", "p.json", cwd=tmp_path).code == 0
    r = bounded("simulate", "p.json", "wl.json", "--format", "json", cwd=tmp_path, timeout=90)
    assert r.code == 0, r.err
    res = json.loads(r.out)
    assert res["aggregate"]["completed"] == res["aggregate"]["requests"] > 300
    for mesh in res["utilization"]["meshes"].values():
        assert len(mesh["t"]) <= MAX_SAMPLES
        assert all(b > a for a, b in zip(mesh["t"], mesh["t"][1:]))  # time never goes backwards


def test_idle_adapt_rounds_that_sleep_change_no_result(monkeypatch):
    """Sleeping through adapt rounds while every adapt mesh is idle is exactly the same
    run as taking them (same results, same event count)."""
    wl = mx.load_workload(SMALL)
    wl = wl.model_copy(update={"models": tuple(m.model_copy(update={"rate": m.rate / 20}) for m in wl.models),
                               "duration_s": 400.0})
    plan = mx.place(wl)
    sleeping = mx.simulate(plan, wl, seed=3).to_dict()
    monkeypatch.setattr(run, "_idle", lambda mesh: False)
    awake = mx.simulate(plan, wl, seed=3).to_dict()
    for r in (sleeping, awake):
        r["run"].pop("wall_s")
    assert sleeping == awake
    assert sleeping["aggregate"]["requests"] > 50


def test_samples_stay_below_the_limit_and_keep_the_mean(monkeypatch):
    monkeypatch.setattr(run, "MAX_SAMPLES", 40)
    wl = mx.load_workload(SMALL)
    plan = mx.place(wl)
    res = mx.simulate(plan, wl, seed=0, config=SimConfig(sample_interval_s=0.5))
    for mesh in res.utilization["meshes"].values():
        assert len(mesh["t"]) < 40
    assert res.utilization["interval_s"] >= 0.5 * 8  # halved at least three times over ~180 s
    full = mx.simulate(plan, wl, seed=0, config=SimConfig(sample_interval_s=0.5))
    assert full.aggregate == res.aggregate  # sampling never changes what users see


@pytest.mark.parametrize("drain", ["inf", "1e9"])
def test_a_request_that_never_fits_the_kv_pool_never_loops(tmp_path, drain):
    wl = {"cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 1}, "duration_s": 10,
          "models": [{"name": "fat", "model": ARCH, "rate": 1, "prompt_len": {"dist": "fixed", "value": 500_000},
                      "output_len": {"dist": "fixed", "value": 10}},
                     {"name": "ok", "model": ARCH, "rate": 2, "prompt_len": {"dist": "fixed", "value": 100},
                      "output_len": {"dist": "fixed", "value": 10}}]}
    plan = {"cluster": wl["cluster"], "mode": "flex", "meshes": [{"id": "m0", "node": 0, "gpus": [0], "units": [
        {"name": n, "model": ARCH, "tp": 1, "decode_sm": 0.5, "kv_share": 0.5} for n in ("fat", "ok")]}]}
    (tmp_path / "w.json").write_text(json.dumps(wl))
    (tmp_path / "p.json").write_text(json.dumps(plan))
    r = bounded("simulate", "p.json", "w.json", "--drain", drain, "--format", "json", cwd=tmp_path, timeout=60)
    assert r.code == 0, r.err
    res = json.loads(r.out)
    fat, ok = res["per_llm"]["fat"], res["per_llm"]["ok"]
    assert fat["completed"] == 0 and fat["requests"] > 0  # reported unfinished, never dropped
    assert ok["completed"] == ok["requests"] > 0


def test_requests_past_the_context_window_are_refused_or_cut(tmp_path):
    wl = small_workload(tmp_path)
    d = json.loads(wl.read_text())
    d["models"][0]["prompt_len"] = {"dist": "lognormal", "mean": 1500.0, "cv": 1.0}  # tail past 2048
    wl.write_text(json.dumps(d))
    assert cli("plan", "wl.json", "--out", "p.json", cwd=tmp_path).code == 0
    assert_refused(cli("simulate", "p.json", "wl.json", cwd=tmp_path), "context window of llama-7b", "--truncate")
    r = cli("simulate", "p.json", "wl.json", "--truncate", "--format", "json", cwd=tmp_path)
    assert r.code == 0 and r.err.startswith("warning: ") and r.err.count("\n") == 1, r.err
    d["models"][0]["prompt_len"] = {"dist": "fixed", "value": 10_000_000}
    wl.write_text(json.dumps(d))
    assert_refused(cli("workload", "describe", "wl.json", cwd=tmp_path), "models[0].prompt_len.value")
    d["models"][0]["prompt_len"] = {"dist": "fixed", "value": 300_000}
    wl.write_text(json.dumps(d))
    assert_refused(cli("workload", "describe", "wl.json", cwd=tmp_path), "models[0]", "context window")


def test_truncation_in_python_keeps_every_request():
    wl = mx.load_workload(SMALL)
    reqs = mx.generate_requests(wl, seed=0)
    reqs.loc[0, "prompt_len"] = 5000
    plan = mx.place(wl)
    with pytest.raises(InputError, match="request 0 of"):
        mx.simulate(plan, wl, requests=reqs)
    with pytest.warns(mx.InputWarning, match="cut to fit"):
        res = mx.simulate(plan, wl, requests=reqs, truncate=True)
    frame = res.to_frame()
    assert len(frame) == len(reqs) and frame.prompt_len.iloc[0] + frame.output_len.iloc[0] <= 2048


def test_arrivals_far_away(tmp_path):
    for when, ok in ((1e300, False), (1e8, True)):
        (tmp_path / "t.csv").write_text(f"arrival_s,name,prompt_len,output_len\n{when},llm-0,10,10\n")
        d = {"cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 1}, "duration_s": 1e9,
             "models": [{"name": "llm-0", "model": "llama-7b"}], "arrivals": {"process": "trace"}, "trace": "t.csv"}
        (tmp_path / "w.json").write_text(json.dumps(d))
        r = cli("plan", "w.json", "--out", "p.json", cwd=tmp_path)
        if not ok:
            assert_refused(r, "trace", "arrival_s")
            continue
        assert r.code == 0, r.err
        r = bounded("simulate", "p.json", "w.json", "--drain", "inf", "--format", "json", cwd=tmp_path, timeout=60)
        assert r.code == 0, r.err
        assert json.loads(r.out)["aggregate"]["completed"] == 1


def test_placement_honours_its_time_limit_on_an_absurd_cluster(tmp_path):
    d = {"cluster": {"gpu": "a100-80gb", "nodes": 1024, "gpus_per_node": 128}, "duration_s": 10,
         "models": [{"name": f"l{i}", "model": "llama-7b", "rate": 1.0} for i in range(8)]}
    (tmp_path / "w.json").write_text(json.dumps(d))
    r = bounded("compare", "w.json", "--algorithms", "muxserve,ilp,spatial", "--time-limit", "0.5", "--format", "json",
                cwd=tmp_path, timeout=60)
    assert r.code == 0, r.err
    rows = {row["algorithm"]: row for row in json.loads(r.out)["rows"]}
    spatial = rows["spatial"]["aggregate"]
    assert spatial["completed"] == spatial["requests"] > 0
    d["cluster"]["gpus_per_node"] = 100_000
    (tmp_path / "w.json").write_text(json.dumps(d))
    assert_refused(cli("plan", "w.json", cwd=tmp_path), "cluster.gpus_per_node")


def test_a_search_too_large_for_no_time_limit_is_refused(tmp_path):
    n = int(MAX_SEARCH**0.5) + 2
    d = {"cluster": {"gpu": "a100-80gb", "nodes": 64, "gpus_per_node": 8}, "duration_s": 10,
         "models": [{"name": f"l{i}", "model": "llama-7b", "rate": 1.0} for i in range(n)]}
    (tmp_path / "w.json").write_text(json.dumps(d))
    assert_refused(cli("plan", "w.json", cwd=tmp_path), "--time-limit")


@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, '{"seed": ' + "9" * 5000 + "}"])
def test_deep_nesting_and_huge_integers_in_a_subprocess(tmp_path, body):
    (tmp_path / "w.json").write_text(body)
    assert_refused(bounded("workload", "describe", "w.json", cwd=tmp_path, timeout=60), "workload")


def test_profiler_arguments_are_checked_before_any_worker(tmp_path, monkeypatch):
    import muxsim.profiler.runner as runner

    monkeypatch.setattr(runner, "_launch", lambda *a, **k: pytest.fail("a worker started"))
    base = ["profile", "--model", "tiny-1l-16h", "--device", "cpu", "--out", "p.csv"]
    assert_refused(cli(*base, "--decode-seq-lens", "99999999999", cwd=tmp_path), "decode-seq-lens")
    assert_refused(cli(*base, "--decode-seq-lens", "1000000", "--decode-batches", "65536", cwd=tmp_path), "profile")
    (tmp_path / "w").mkdir()
    assert_refused(cli(*base, "--weights", "w", cwd=tmp_path), "weights")
    (tmp_path / "w" / "a.safetensors").write_bytes(b"\xff" * 16)
    assert_refused(cli(*base, "--weights", "w", cwd=tmp_path), "weights")
    assert_refused(cli(*base, "--weights", "nope", cwd=tmp_path), "weights")
    assert not (tmp_path / "p.csv").exists()
