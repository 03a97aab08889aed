"""Run folders through the real command: every file read back, the per-request rows equal
the requests generated, the Parquet columns and dtypes as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from muxsim.sim.results import FRAME_COLUMNS

WORKLOAD = {"cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 2},
            "models": [{"name": "zeta", "model": "llama-7b", "rate": 3.0, "slo": {"ttft_ms": 250}},
                       {"name": "alpha", "model": "meta-llama/Llama-2-7b-hf", "rate": 1.5}],
            "duration_s": 12, "seed": 5, "slo": {"ttft_ms": 400, "tpot_ms": 40, "target_attainment": 0.9}}
PLAN = {"mode": "flex", "algorithm": "manual", "cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 2},
        "meshes": [{"node": 0, "gpus": [0, 1], "units": [{"name": "zeta", "model": "llama-7b", "decode_sm": 0.7},
                                                         {"name": "alpha", "model": "llama-2-7b",
                                                          "decode_sm": 0.3}]}]}
SIMULATE_FILES = {"run.json", "workload.json", "sim_config.json", "plan.json", "summary.json", "requests.parquet",
                  "per_llm.csv", "timeline.parquet"}


def muxsim(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "muxsim.cli.main", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[str, str]:
    wl, plan = tmp_path / "wl.json", tmp_path / "plan.json"
    wl.write_text(json.dumps(WORKLOAD))
    plan.write_text(json.dumps(PLAN))
    return str(wl), str(plan)


def check_requests(df: pd.DataFrame, runs: list[str], expected: pd.DataFrame) -> None:
    assert list(df.columns) == ["run", *FRAME_COLUMNS]
    for col in ("arrival_s", "first_token_s", "finish_s", "ttft_ms", "tpot_ms", "e2e_ms", "slo_ms"):
        assert df[col].dtype == np.float64, col
    for col in ("prompt_len", "output_len", "preemptions"):
        assert df[col].dtype == np.int64, col
    assert df["finished"].dtype == np.bool_
    for col in ("run", "name", "model", "mesh"):
        assert pd.api.types.is_string_dtype(df[col]), col
    assert list(dict.fromkeys(df["run"])) == runs
    for run in runs:
        mine = df[df["run"] == run].reset_index(drop=True)
        # one row per request generated, same arrivals, names and lengths
        pd.testing.assert_frame_equal(mine[["arrival_s", "name", "prompt_len", "output_len"]],
                                      expected.reset_index(drop=True), check_dtype=False)
        fin = mine["finished"].to_numpy()
        assert np.allclose(mine.loc[fin, "e2e_ms"], (mine.loc[fin, "finish_s"] - mine.loc[fin, "arrival_s"]) * 1e3)


def test_simulate_out_dir_writes_a_complete_run_folder(inputs, tmp_path):
    from muxsim.workload import generate_requests, load_workload

    wl, plan = inputs
    out = tmp_path / "run"
    r = muxsim("simulate", plan, wl, "--out-dir", str(out), "--percentiles", "95,99.9")
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}/" in r.stdout
    manifest = json.loads((out / "run.json").read_text())
    files = set(manifest["files"])
    assert SIMULATE_FILES <= files and {f for f in files if f.startswith("figures/")}
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == files  # the manifest is complete
    assert manifest["command"] == "simulate" and manifest["seed"] == 5
    assert manifest["muxsim_version"] == __import__("muxsim").__version__
    assert manifest["runs"] == [{"label": "manual", "algorithm": "manual", "status": "ok", "message": "",
                                 "plan": "plan.json"}]
    # resolved inputs
    assert json.loads((out / "plan.json").read_text())["meshes"][0]["units"][1]["decode_sm"] == 0.3
    saved = load_workload(out / "workload.json")
    assert saved.names() == ["zeta", "alpha"] and saved.slo.ttft_ms == 400
    assert json.loads((out / "sim_config.json").read_text())["flex_policy"] == "adbs"
    # summary.json is the results document, as --format json prints it
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"aggregate", "per_llm", "utilization", "run"}
    assert list(summary["per_llm"]) == ["zeta", "alpha"]  # workload order
    assert set(summary["aggregate"]["ttft_ms"]) == {"mean", "p50", "p90", "p95", "p99", "p99.9"}
    slo = summary["per_llm"]["zeta"]["slo"]
    assert slo["ttft_ms"] == 250 and slo["tpot_ms"] == 40 and slo["target_attainment"] == 0.9
    # requests.parquet: one row per generated request
    reqs = pd.read_parquet(out / "requests.parquet")
    check_requests(reqs, ["manual"], generate_requests(load_workload(wl), seed=5))
    assert summary["aggregate"]["requests"] == len(reqs)
    assert set(reqs["mesh"]) == {"m0"} and set(reqs["model"]) == {"llama-7b", "llama-2-7b"}
    # per_llm.csv: the flat rows of the summary, then the total
    per = pd.read_csv(out / "per_llm.csv")
    assert per["name"].tolist() == ["zeta", "alpha", "total"] and set(per["run"]) == {"manual"}
    assert per.loc[0, "ttft_ms.p99.9"] == pytest.approx(summary["per_llm"]["zeta"]["ttft_ms"]["p99.9"])
    assert per.loc[2, "throughput_rps"] == pytest.approx(summary["aggregate"]["throughput_rps"])
    assert per.loc[1, "slo.attainment"] == pytest.approx(summary["per_llm"]["alpha"]["slo"]["attainment"])
    # timeline.parquet: per mesh, SM and KV use over time, as the summary's utilization
    tl = pd.read_parquet(out / "timeline.parquet")
    assert list(tl.columns) == ["run", "mesh", "t", "sm", "kv"]
    assert all(tl[c].dtype == np.float64 for c in ("t", "sm", "kv"))
    u = summary["utilization"]["meshes"]["m0"]
    assert tl["t"].tolist() == u["t"] and tl["sm"].tolist() == u["sm"] and tl["kv"].tolist() == u["kv"]
    for f in files:
        if f.endswith(".png"):
            assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second run into the same, now full, folder is refused before any work
    again = muxsim("simulate", plan, wl, "--out-dir", str(out))
    assert again.returncode == 2 and again.stderr.startswith("error: --out-dir:") and "not empty" in again.stderr


def test_compare_out_dir_holds_every_algorithm(inputs, tmp_path):
    from muxsim.workload import generate_requests, load_workload

    wl, _ = inputs
    out = tmp_path / "cmp"
    r = muxsim("compare", wl, "--algorithms", "muxserve,spatial", "--out-dir", str(out), "--format", "json",
               "--no-figures")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    summary = json.loads((out / "summary.json").read_text())
    for row in (*doc["rows"], *summary["rows"]):
        row["run"].pop("wall_s")
    assert summary == doc  # --format json prints what summary.json holds
    manifest = json.loads((out / "run.json").read_text())
    assert [x["label"] for x in manifest["runs"]] == ["muxserve", "spatial"]
    assert {"plans/muxserve.json", "plans/spatial.json"} <= set(manifest["files"])
    assert not any(f.startswith("figures/") for f in manifest["files"]) and not (out / "figures").exists()
    assert json.loads((out / "plans" / "spatial.json").read_text())["mode"] == "spatial"
    reqs = pd.read_parquet(out / "requests.parquet")
    check_requests(reqs, ["muxserve", "spatial"], generate_requests(load_workload(wl), seed=0))
    per = pd.read_csv(out / "per_llm.csv")
    assert per["run"].tolist() == ["muxserve"] * 3 + ["spatial"] * 3
    assert per["name"].tolist() == ["zeta", "alpha", "total"] * 2
    tl = pd.read_parquet(out / "timeline.parquet")
    assert list(dict.fromkeys(tl["run"])) == ["muxserve", "spatial"]
    # the reader gives back what was written, and plot redraws the figures elsewhere
    from muxsim.runfolder import read_run_folder

    folder = read_run_folder(out)
    assert list(folder.results()) == ["muxserve", "spatial"]
    assert folder.results()["spatial"]["aggregate"] == summary["rows"][1]["aggregate"]
    figs = tmp_path / "figs"
    p = muxsim("plot", str(out), "--out", str(figs), "--image-format", "svg")
    assert p.returncode == 0, p.stderr
    assert {f.name for f in figs.iterdir()} == {
        f"{n}.svg" for n in ("ttft_cdf", "tpot_cdf", "e2e_cdf", "slo_attainment", "throughput", "compare",
                             "utilization-muxserve", "utilization-spatial", "plan-muxserve", "plan-spatial")}


def test_bad_out_dir_and_failed_runs_leave_nothing(inputs, tmp_path):
    wl, plan = inputs
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = muxsim("simulate", plan, wl, "--out-dir", str(afile))
    assert r.returncode == 2 and "exists and is not a folder" in r.stderr
    out = tmp_path / "never"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**WORKLOAD, "duration_s": -1}))
    r = muxsim("simulate", plan, str(bad), "--out-dir", str(out))
    assert r.returncode == 2 and r.stderr.startswith("error: duration_s")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "bad.json", "plan.json", "wl.json"]
    r = muxsim("simulate", plan, wl, "--out", str(tmp_path / "res.csv"))
    assert r.returncode == 2 and r.stderr.strip() == f"error: --out: '{tmp_path / 'res.csv'}' must end in .json"
    r = muxsim("plot", str(tmp_path))
    assert r.returncode == 2 and "has no run.json" in r.stderr


def test_save_runs_from_python_and_empty_folder_is_used(tmp_path):
    import muxsim as mx
    from muxsim.plan import plan_from_dict
    from muxsim.workload import Workload

    wl = Workload.from_dict(WORKLOAD)
    plan = plan_from_dict(PLAN)
    res = mx.simulate(plan, wl, seed=1)
    (tmp_path / "empty").mkdir()
    folder = mx.save_runs(tmp_path / "empty", wl, [mx.Run("mine", plan, res)], figures=False)
    back = mx.read_run_folder(tmp_path / "empty")
    assert back.manifest["command"] == "simulate" and back.labels == ["mine"]
    assert back.summary["aggregate"] == json.loads(res.to_json())["aggregate"]
    assert len(back.requests) == len(res.to_frame()) and folder.path == tmp_path / "empty"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    again = mx.save_runs(tmp_path / "again", wl, [mx.Run("mine", plan, mx.simulate(plan, wl, seed=1))],
                         figures=False)
    for name in ("requests.parquet", "timeline.parquet", "per_llm.csv", "workload.json", "plan.json", "run.json"):
        assert (again.path / name).read_bytes() == (folder.path / name).read_bytes(), name  # bit for bit
