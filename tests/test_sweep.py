"""Sweeps: a grid becomes trials, every backend gives the same table, a killed sweep
resumes without redoing finished trials, a failing trial is recorded, and a bad sweep
file is refused before any work with one line naming the field."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import muxsim as mx
from muxsim.errors import InputError
from muxsim.sweeps import expand, trials_table
from muxsim.sweeps.spec import as_spec, parse_yaml
from tests.hardening import assert_refused, changed, cli, snapshot

TINY = {
    "name": "tiny",
    "base": {"workload": {"kind": "synth", "mix": "2xllama-7b,1xllama-13b", "nodes": 1, "gpus_per_node": 2,
                          "duration": 20, "max_rate": 4}},
    "grid": {"workload.alpha": [0.9, 2.1], "algorithm": ["muxserve", "temporal"],
             "config.flex_policy": ["adbs", "fcfs"]},
}
TINY_YAML = """name: tiny
base:
  workload: {kind: synth, mix: "2xllama-7b,1xllama-13b", nodes: 1, gpus_per_node: 2, duration: 20, max_rate: 4}
grid:
  workload.alpha: [0.9, 2.1]
  algorithm: [muxserve, temporal]
  config.flex_policy: [adbs, fcfs]
"""


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal tables, wall times (``time.*``) aside."""
    keep = [c for c in a.columns if not c.startswith("time.")]
    assert keep == [c for c in b.columns if not c.startswith("time.")]
    pd.testing.assert_frame_equal(a[keep].reset_index(drop=True), b[keep].reset_index(drop=True))


def test_the_grid_expands_in_order_with_every_parameter_a_column(tmp_path):
    trials = expand(as_spec(TINY))
    assert len(trials) == 8 and len({t.id for t in trials}) == 8
    first = trials[0].as_dict()
    assert first["workload.alpha"] == 0.9 and first["algorithm"] == "muxserve" and first["config.flex_policy"] == "adbs"
    assert trials[1].as_dict()["config.flex_policy"] == "fcfs" and trials[2].as_dict()["algorithm"] == "temporal"
    assert first["workload.nodes"] == 1 and first["seed"] == 0  # fixed and default parameters are columns too
    # a trial's id is its inputs: the same trial in another sweep has the same id, another seed another
    again = expand(as_spec({**TINY, "grid": {"workload.alpha": [2.1, 0.9], **{k: v for k, v in TINY["grid"].items()
                                                                             if k != "workload.alpha"}}}))
    assert {t.id for t in again} == {t.id for t in trials}
    other = expand(as_spec({**TINY, "base": {**TINY["base"], "seed": 1}}))
    assert not {t.id for t in other} & {t.id for t in trials}


def test_cases_cross_the_grid_and_duplicates_are_merged():
    spec = {**TINY, "cases": [{"workload.nodes": 1}, {"workload.nodes": 2}, {"workload.nodes": 1}]}
    trials = expand(as_spec(spec))
    assert len(trials) == 16
    assert [t.as_dict()["workload.nodes"] for t in trials] == [1] * 8 + [2] * 8


def test_local_pool_ray_and_in_process_give_identical_tables(tmp_path):
    """The same trials on one process, a pool of two and a local Ray of two CPUs."""
    serial = mx.sweep(TINY, workers=1)
    assert list(serial["status"]) == ["ok"] * 8 and (serial["throughput_rps"] > 0).all()
    pool = mx.sweep(TINY, workers=2)
    same(serial, pool)
    pytest.importorskip("ray")
    ray_table = mx.sweep(TINY, backend="ray", workers=2)
    same(serial, ray_table)
    # the policies were honoured: ADBS and FCFS differ on some trial
    muxserve = serial[serial["algorithm"] == "muxserve"]
    assert (muxserve["ttft_ms.p99"].iloc[::2].to_numpy() != muxserve["ttft_ms.p99"].iloc[1::2].to_numpy()).any()


def test_the_table_is_written_as_parquet_and_a_rerun_redoes_nothing(tmp_path):
    (tmp_path / "s.yaml").write_text(TINY_YAML)
    r = cli("sweep", "s.yaml", "--out-dir", "out", "-q", "--workers", "1", cwd=tmp_path)
    assert r.code == 0, r.err
    assert "8 trials, 8 ok, 0 failed" in r.out
    table = pd.read_parquet(tmp_path / "out" / "results.parquet")
    same(table, mx.sweep(TINY, workers=1))
    before = snapshot(tmp_path / "out" / "trials")
    r = cli("sweep", "s.yaml", "--out-dir", "out", "-q", cwd=tmp_path)
    assert r.code == 0, r.err
    assert changed(before, snapshot(tmp_path / "out" / "trials")) == set()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out" / "results.parquet"), table)


def test_a_killed_sweep_resumes_without_redoing_finished_trials(tmp_path):
    """Kill the command (SIGKILL) after some trials finished; the rerun runs only the rest
    and the table equals an uninterrupted sweep's."""
    slow = TINY_YAML.replace("duration: 20", "duration: 60")
    (tmp_path / "s.yaml").write_text(slow)
    proc = subprocess.Popen([sys.executable, "-m", "muxsim.cli.main", "sweep", "s.yaml", "--out-dir", "out",
                             "--workers", "1", "-q"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    trials = tmp_path / "out" / "trials"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if trials.is_dir() and len([p for p in trials.iterdir() if p.suffix == ".json"]) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = snapshot(trials)
    done = {k for k in kept if k.endswith(".json")}
    assert 2 <= len(done) < 8, "the sweep finished before it could be killed"
    assert not (tmp_path / "out" / "results.parquet").exists()
    r = cli("sweep", "s.yaml", "--out-dir", "out", "-q", "--workers", "1", cwd=tmp_path)
    assert r.code == 0, r.err
    after = snapshot(trials)
    assert all(after[k] == kept[k] for k in done)  # finished trials untouched, not rerun
    assert len([k for k in after if k.endswith(".json")]) == 8
    table = pd.read_parquet(tmp_path / "out" / "results.parquet")
    same(table, mx.sweep(as_spec(parse_yaml(slow)), workers=1))


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    spec = {**TINY, "grid": {"algorithm": ["spatial", "muxserve"]}}  # spatial needs 3 GPUs of 2
    df = mx.sweep(spec, workers=1, out_dir=tmp_path / "o")
    assert list(df["status"]) == ["error", "ok"]
    assert "spatial" in df["error"].iloc[0] and "\n" not in df["error"].iloc[0]
    assert df["error"].iloc[1] == "" and df["throughput_rps"].iloc[1] > 0
    assert pd.isna(df["throughput_rps"].iloc[0])
    # a rerun skips the failed trial too, unless asked to retry it
    before = snapshot(tmp_path / "o" / "trials")
    mx.sweep(spec, workers=1, out_dir=tmp_path / "o")
    assert changed(before, snapshot(tmp_path / "o" / "trials")) == set()
    mx.sweep(spec, workers=1, out_dir=tmp_path / "o", retry_failed=True)
    assert len(changed(before, snapshot(tmp_path / "o" / "trials"))) == 1


def test_trace_workloads_drift_their_popularity(tmp_path):
    from tests.hardening import AZURE

    log = "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(
        f"2023-11-16 18:{15 + i // 60:02d}:{i % 60:02d}.000,{100 + i % 50},{10 + i % 7}\n" for i in range(600))
    (tmp_path / "az.csv").write_text(log)
    assert AZURE.startswith("TIMESTAMP")
    base = {"workload": {"kind": "trace", "path": str(tmp_path / "az.csv"), "mix": "3xllama-7b", "rate": 5,
                         "alpha": 2.0, "nodes": 1, "gpus_per_node": 4}, "algorithm": "spatial"}
    df = mx.sweep({"base": base, "grid": {"workload.drift_windows": [1, 3]}}, workers=1)
    assert list(df["status"]) == ["ok", "ok"], df["error"].tolist()
    from muxsim.sweeps.run import make_workload
    from muxsim.sweeps.spec import WorkloadParams

    fixed = make_workload(WorkloadParams(**{**base["workload"], "drift_windows": 1}), 0)[1]
    drift = make_workload(WorkloadParams(**{**base["workload"], "drift_windows": 3}), 0)[1]
    assert len(fixed) == len(drift)  # the same requests, other models
    first = fixed["arrival_s"] < fixed["arrival_s"].max() / 3
    assert (fixed["name"][first] == drift["name"][first]).all()  # the first window is unchanged
    late = drift[drift["arrival_s"] > drift["arrival_s"].max() * 0.7]["name"].value_counts()
    assert late.index[0] != "llm-0"  # by the last window another model is the most popular


BAD = [
    ("grid:\n  workload.alpha: [0.7, -1]\nbase: {workload: {mix: 2xllama-7b}}\n", "grid.workload.alpha"),
    ("grid:\n  algorithm: [muxserve, nope]\nbase: {workload: {mix: 2xllama-7b}}\n", "grid.algorithm"),
    ("base: {workload: {mix: 2xllama-7b}}\ngrid:\n  wrkload.alpha: [1]\n", "grid.wrkload.alpha"),
    ("base: {workload: {mix: 2xnope-7b}}\n", "base.workload.mix"),
    ("base: {workload: {mix: 2xllama-7b, kind: file}}\n", "base.workload.path"),
    ("base: {workload: {mix: 2xllama-7b}, config: {flex_policy: lifo}}\n", "base.config.flex_policy"),
    ("base: {workload: {mix: 2xllama-7b}}\ncases:\n  - {config.kv_cache: sideways}\n", "cases[0].config.kv_cache"),
    ("base: {workload: {mix: 2xllama-7b}, place: {max_groups: 0}}\n", "base.place.max_groups"),
    ("base: {workload: {mix: 2xllama-7b}, cost: {engine: warp}}\n", "base.cost.engine"),
    ("base: {workload: {mix: 2xllama-7b, alpha: .nan}}\n", "base.workload.alpha"),
    ("base: {workload: {mix: 2xllama-7b}}\ngrid: {seed: [2023-01-01]}\n", "grid.seed"),
    ("base: {workload: {mix: 2xllama-7b}}\nbogus: 1\n", "bogus"),
    ("base: &a {workload: {mix: 2xllama-7b}}\ncases: [*a]\n", "aliases"),
    ("base: {workload: {mix: 2xllama-7b}\n", "line"),
    ("- just\n- a list\n", "sweep"),
    ("base: {workload: {mix: 2xllama-7b}}\ngrid: {seed: [" + ",".join(map(str, range(200))) + "], "
     "workload.alpha: [" + ",".join(str(i / 10) for i in range(100)) + "]}\n", "--max-trials"),
    ("base: {workload: {kind: trace, mix: 2xllama-7b, rate: 1, path: missing.csv}}\n", "base.workload.path"),
]


@pytest.mark.parametrize(("text", "field"), BAD, ids=[f for _, f in BAD])
def test_a_bad_sweep_file_is_one_line_naming_the_field_and_nothing_is_written(tmp_path, text, field, monkeypatch):
    import muxsim.sweeps.run as run

    (tmp_path / "s.yaml").write_text(text)
    monkeypatch.setattr(run, "trial_metrics", lambda *a: pytest.fail("a trial ran"))
    before = snapshot(tmp_path)
    assert_refused(cli("sweep", "s.yaml", "--out-dir", "out", cwd=tmp_path), field)
    assert changed(before, snapshot(tmp_path)) == set()


@pytest.mark.parametrize(("args", "field"), [
    (["--backend", "slurm"], "--backend"), (["--workers", "0"], "--workers"), (["--address", "auto"], "--address"),
    (["--workers", "100000"], "--workers"), (["--max-trials", "-1"], "--max-trials")])
def test_bad_flags_are_refused(tmp_path, args, field):
    (tmp_path / "s.yaml").write_text(TINY_YAML)
    assert_refused(cli("sweep", "s.yaml", "--out-dir", "out", *args, cwd=tmp_path), field)
    assert not (tmp_path / "out").exists()


def test_a_folder_that_holds_something_else_is_not_a_sweep_folder(tmp_path):
    (tmp_path / "s.yaml").write_text(TINY_YAML)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep")
    before = snapshot(tmp_path)
    assert_refused(cli("sweep", "s.yaml", "--out-dir", "out", cwd=tmp_path), "--out-dir")
    assert changed(before, snapshot(tmp_path)) == set()


@settings(max_examples=40, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                    max_leaves=12))
def test_random_documents_are_a_sweep_or_one_input_error(doc):
    """Whatever a YAML document holds, it becomes trials or one InputError; never a crash."""
    for spec in ({"base": doc}, {"grid": {"workload.alpha": doc if isinstance(doc, list) else [doc]}},
                 {"cases": doc}, doc):
        try:
            trials = expand(as_spec(spec if isinstance(spec, dict) else {"base": {"workload": spec}}))
        except InputError as e:
            assert "\n" not in str(e) and str(e)
            continue
        assert trials and all(isinstance(t.id, str) for t in trials)


def test_trials_table_keeps_one_type_per_column():
    trials = expand(as_spec({**TINY, "grid": {"workload.max_rate": [4, 4.5]}}))
    rows = {t.id: {"status": "ok", "error": "", "x": 1 if t.index == 0 else "a"} for t in trials}
    df = trials_table(trials, rows)
    assert df["workload.max_rate"].tolist() == [4.0, 4.5] and df["x"].tolist() == ["1", "a"]
    path = Path(os.devnull)
    assert path.exists()


def test_a_given_plan_is_simulated_as_it_is_and_placement_can_stop_the_trial(tmp_path):
    plan = mx.place(mx.synth_workload("2xllama-7b", alpha=1, max_rate=2, nodes=1, gpus_per_node=2, duration=20),
                    algorithm="spatial")
    from muxsim.plan import save_plan

    save_plan(plan, tmp_path / "p.json")
    (tmp_path / "s.yaml").write_text(
        "base:\n  workload: {mix: 2xllama-7b, alpha: 1, max_rate: 2, nodes: 1, gpus_per_node: 2, duration: 20}\n"
        "  plan: p.json\n  tags: {study: given}\n")  # relative to the sweep file's folder
    df = mx.sweep(tmp_path / "s.yaml", workers=1)
    assert df["status"].iloc[0] == "ok" and df["placement.status"].iloc[0] == "given"
    assert df["plan.mode"].iloc[0] == "spatial" and df["tags.study"].iloc[0] == "given"
    placed = mx.sweep({"base": {"workload": {"mix": "2xllama-7b", "alpha": 1, "max_rate": 2, "nodes": 1,
                                             "gpus_per_node": 2, "duration": 20}, "algorithm": "spatial"}}, workers=1)
    assert df["throughput_rps"].iloc[0] == placed["throughput_rps"].iloc[0]
    only = mx.sweep({"base": {"workload": {"mix": "2xllama-7b", "nodes": 1, "gpus_per_node": 2},
                              "stop_after": "place"}}, workers=1)
    assert only["status"].iloc[0] == "ok" and "throughput_rps" not in only and only["plan.gpus"].iloc[0] == 2
    with pytest.raises(InputError, match="plan"):
        mx.sweep({"base": {"workload": {"mix": "2xllama-7b"}, "plan": str(tmp_path / "p.json"),
                           "algorithm": "spatial"}})


def test_bad_arguments_in_python_leave_no_folder(tmp_path, monkeypatch):
    import importlib.util

    for kw in ({"workers": 0}, {"backend": "x"}, {"address": "auto"}, {"max_trials": 0}):
        with pytest.raises(InputError):
            mx.sweep(TINY, out_dir=tmp_path / "o", **kw)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(InputError, match="Ray is not installed"):
        mx.sweep(TINY, backend="ray", out_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_options_pass_through_to_placement_simulation_and_cost():
    base = {"workload": {"mix": "2xllama-7b", "nodes": 1, "gpus_per_node": 2, "duration": 20, "max_rate": 2},
            "simulate": {"percentiles": [95]}, "cost": {"engine": "lean"}, "place": {"refine_top": 2}}
    df = mx.sweep({"base": base}, workers=1)
    assert df["status"].iloc[0] == "ok", df["error"].iloc[0]
    assert "ttft_ms.p95" in df and df["cost.engine"].iloc[0] == "lean" and df["place.refine_top"].iloc[0] == 2
    default = mx.sweep({"base": {k: v for k, v in base.items() if k != "cost"}}, workers=1)
    assert df["ttft_ms.p99"].iloc[0] != default["ttft_ms.p99"].iloc[0]  # the engine preset was used
    for section, key in (("place", "cost"), ("simulate", "requests"), ("cost", "gpu"), ("simulate", "nope")):
        with pytest.raises(InputError, match=f"{section}.{key}"):
            mx.sweep({"base": {**base, section: {key: 1}}})


def test_capacity_section_runs_the_capacity_search_with_the_trials_cost_and_config():
    base = {"workload": {"mix": "2xllama-7b", "alpha": 0.9, "nodes": 1, "gpus_per_node": 4, "duration": 30,
                         "max_rate": 4}, "algorithm": "spatial", "capacity": {"target": 0.9, "max_gpus": 4}}
    df = mx.sweep({"base": base}, workers=1)
    assert df["status"].iloc[0] == "ok", df["error"].iloc[0]
    direct = mx.capacity(mx.synth_workload(mix="2xllama-7b", alpha=0.9, nodes=1, gpus_per_node=4, duration=30, max_rate=4),
                         "spatial", target=0.9, max_gpus=4)
    assert df["capacity.gpus"].iloc[0] == direct.gpus and df["capacity.attainment"].iloc[0] == direct.attainment
    for key in ("cost", "config", "algorithm"):  # the trial's own sections set these
        with pytest.raises(InputError, match=rf"capacity\.{key}"):
            mx.sweep({"base": {**base, "capacity": {key: 1}}})
    with pytest.raises(InputError, match=r"capacity\.nope"):
        mx.sweep({"base": {**base, "capacity": {"nope": 1}}})
