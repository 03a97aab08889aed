"""The profiler: configuration and files (no torch), then the real pipeline on a CPU."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from muxsim.errors import InputError
from muxsim.profiler import config as pc
from muxsim.profiler import mps, runner, schema

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs torch")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "muxsim.cli.main", *args], capture_output=True,
                          text=True, timeout=300)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---- configuration ---------------------------------------------------------------------

def test_tiny_model_names():
    spec = pc.tiny_model("tiny-2l-64h")
    assert (spec.layers, spec.hidden, spec.heads, spec.head_dim, spec.intermediate) == (2, 64, 4, 16, 128)
    name, spec2 = pc.model_from_arg('{"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64, "vocab": 50}')
    assert name == "tiny-1l-32h" and spec2.vocab == 50
    assert pc.model_from_arg("llama-7b")[0] == "llama-7b"
    with pytest.raises(InputError, match=r"model: .*multiple of 16"):
        pc.tiny_model("tiny-2l-40h")


def test_grid_points_respect_the_prefill_token_cap():
    cfg = pc.make_config("tiny-1l-32h", device="cpu", prefill_batches=[1, 4], prefill_seq_lens=[16, 128],
                         decode_batches=[2], decode_seq_lens=[8, 9], max_prefill_tokens=200)
    pts = [(p.phase, p.batch, p.seq_len) for p in cfg.points()]
    assert pts == [("prefill", 1, 16), ("prefill", 1, 128), ("prefill", 4, 16),
                   ("decode", 2, 8), ("decode", 2, 9)]
    assert cfg.torch_dtype_name() == "float32"
    assert pc.make_config("llama-7b", device="cuda").torch_dtype_name() == "float16"


@pytest.mark.parametrize("text,field,msg", [
    ("0,50", "sm-grid", "0 must be between 1 and 100"),
    ("50,abc", "sm-grid", "'abc' is not an integer"),
    ("101", "sm-grid", "101 must be between 1 and 100"),
])
def test_parse_ints_names_the_field(text, field, msg):
    with pytest.raises(InputError, match=f"^{field}: {msg}"):
        pc.parse_ints(text, field, hi=100)


def test_parse_pairs_and_shapes():
    assert pc.parse_pairs("30:70,50:50", "colocate") == [(30, 70), (50, 50)]
    assert pc.parse_shape("4x128", "colocate-decode") == (4, 128)
    with pytest.raises(InputError, match=r"^colocate: expected"):
        pc.parse_pairs("30-70", "colocate")
    with pytest.raises(InputError, match=r"^colocate-prefill: expected"):
        pc.parse_shape("4", "colocate-prefill")


def test_tp_must_divide_the_model():
    with pytest.raises(InputError, match=r"^tp: 3 must divide"):
        pc.make_config("llama-7b", device="cuda", tp=3)


@pytest.mark.parametrize("name,mem,want", [
    ("NVIDIA H100 80GB HBM3", 80 << 30, "h100-80gb"),
    ("NVIDIA H200", 141 << 30, "h200-141gb"),
    ("NVIDIA A100-SXM4-40GB", 40 << 30, "a100-40gb"),
    ("NVIDIA A100-SXM4-80GB", 80 << 30, "a100-80gb"),
    ("NVIDIA L40S", 46 << 30, "l40s"),
    ("NVIDIA A10G", 23 << 30, "a10g"),
    ("NVIDIA A10", 23 << 30, "a10"),
    ("Tesla V100-SXM2-16GB", 16 << 30, "tesla-v100-sxm2-16gb"),
])
def test_catalog_gpu_names(name, mem, want):
    assert pc.catalog_gpu_name(name, mem) == want


# ---- SM control --------------------------------------------------------------------------

def test_sm_env_sets_the_share_only_when_enforced(monkeypatch):
    monkeypatch.setenv("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", "12")
    assert mps.sm_env(40, True)["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "40"
    assert "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE" not in mps.sm_env(100, True)
    assert "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE" not in mps.sm_env(40, False)


def test_mps_missing_binary_is_reported(monkeypatch):
    monkeypatch.setattr(mps.shutil, "which", lambda _: None)
    status = mps.ensure_mps()
    assert not status.available and not status.started_here and "not found" in status.reason


def test_without_mps_only_full_gpu_shares_are_measured(monkeypatch, capsys):
    cfg = pc.make_config("llama-7b", device="cuda", sm_grid=[40, 100])
    monkeypatch.setattr(mps, "ensure_mps", lambda start=True: mps.MPSStatus(False, False, "no daemon"))
    measure, skipped, enforced, _, control = runner._sm_plan(cfg, "auto")
    assert (measure, skipped, enforced, control) == ([100], [40], False, "none")
    assert "sm_pct 40 not measured" in capsys.readouterr().err
    with pytest.raises(InputError, match=r"^sm-grid: shares below 100 need MPS"):
        runner._sm_plan(cfg, "require")
    monkeypatch.setattr(mps, "ensure_mps", lambda start=True: mps.MPSStatus(True, True, "started"))
    assert runner._sm_plan(cfg, "auto")[:3] == ([40, 100], [], True)


# ---- files ---------------------------------------------------------------------------------

def test_profile_file_round_trips_and_defines_tiny_models(tmp_path):
    spec = pc.tiny_model("tiny-1l-32h")
    rows = [schema.ProfileRow("tiny-1l-32h", "cpu", 1, 100, "decode", 2, 16, 0.5, "measured", "x", "2026-01-01"),
            schema.ProfileRow("tiny-1l-32h", "cpu", 1, 50, "prefill", 1, 32, 1.25, "measured", "x", "2026-01-01")]
    out = schema.write_profile(tmp_path / "p.csv", rows, {"tiny-1l-32h": spec}, {"note": 1})
    back = read_csv(out)
    assert list(back[0]) == schema.PROFILE_COLUMNS
    assert schema.ProfileRow.from_dict({**back[1], "tp": 1, "sm_pct": 50, "batch": 1, "seq_len": 32,
                                        "latency_ms": 1.25, "sm_enforced": False}) == rows[1]
    side = json.loads((tmp_path / "p.models.json").read_text())
    assert side["tiny-1l-32h"]["hidden"] == 32 and "name" not in side["tiny-1l-32h"]
    from muxsim.costmodel import load_profile

    df = load_profile(out)
    assert df["spec"].iloc[0] == spec
    # catalog models need no sidecar
    schema.write_profile(tmp_path / "q.csv", rows[:1], {"llama-7b": pc.model_from_arg("llama-7b")[1]})
    assert not (tmp_path / "q.models.json").exists()


# ---- the real pipeline on a CPU --------------------------------------------------------------

GRID = ["--prefill-batches", "1,2", "--prefill-seq-lens", "8,33", "--decode-batches", "1,3",
        "--decode-seq-lens", "5,40", "--repeats", "3", "--warmup", "1"]


@needs_torch
def test_cpu_profile_and_interference_end_to_end(tmp_path):
    """One real run: the grid, then one co-location pair; calibrate accepts the profile."""
    out, inter = tmp_path / "cpu.csv", tmp_path / "cpu-i.csv"
    r = cli("profile", "--model", "tiny-2l-32h", "--device", "cpu", "--out", str(out), *GRID,
            "--interference", str(inter), "--colocate", "50:50", "--colocate-prefill", "1x32",
            "--colocate-decode", "4x32", "--colocate-duration", "0.3", "--format", "json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["rows"] == 8 and summary["gpu"] == "cpu" and summary["sm_control"] == "cpu-threads"
    assert summary["interference_rows"] == 1
    rows = read_csv(out)
    assert {(x["phase"], x["batch"], x["seq_len"]) for x in rows} == {
        (ph, b, s) for ph, bs, ss in [("prefill", "12", ["8", "33"]), ("decode", "13", ["5", "40"])]
        for b in bs for s in ss}
    for x in rows:
        assert x["model"] == "tiny-2l-32h" and x["gpu"] == "cpu" and x["tp"] == "1"
        assert x["sm_pct"] == "100" and x["source"] == "measured" and x["sm_enforced"] == "false"
        assert float(x["latency_ms"]) > 0 and x["device"] and x["date"][:2] == "20"
    meta = json.loads((tmp_path / "cpu.meta.json").read_text())
    assert meta["backend"] == "reference" and meta["statistic"] == "median" and meta["rounds"] == 3
    import muxsim as mx

    cm = mx.calibrate(str(out), gpu="cpu")
    assert cm.decode_ms(pc.tiny_model("tiny-2l-32h"), batch=3, seq_len=40) > 0

    assert json.loads((tmp_path / "cpu-i.models.json").read_text())["tiny-2l-32h"]["layers"] == 2
    irows = read_csv(inter)
    assert list(irows[0]) == schema.INTERFERENCE_COLUMNS and len(irows) == 1
    x = irows[0]
    assert (x["prefill_sm_pct"], x["decode_sm_pct"], x["sm_enforced"]) == ("50", "50", "false")
    assert (x["prefill_batch"], x["prefill_seq_len"], x["decode_batch"], x["decode_seq_len"]) == ("1", "32", "4", "32")
    for phase in ("prefill", "decode"):
        alone, both = float(x[f"{phase}_alone_ms"]), float(x[f"{phase}_colocated_ms"])
        assert alone > 0 and both > 0
        assert float(x[f"{phase}_slowdown"]) == pytest.approx(both / alone, rel=1e-4)


BAD = [
    (["--sm-grid", "0,50"], "error: --sm-grid: must be a share in [0.01, 1] or a percentage in [1%, 100%] "
                            "(0.5 and 50% both mean half), got '0'"),
    (["--sm-grid", "0.5%"], "error: --sm-grid: must be a share in [0.01, 1] or a percentage in [1%, 100%]"),
    (["--sm-grid", "33.3%"], "error: --sm-grid: 33.3% is not a whole percentage"),
    (["--model", "tiny-2l-40h"], "error: model: 'tiny-2l-40h' needs"),
    (["--model", "no-such-model"], "error: model: unknown model 'no-such-model'"),
    (["--decode-batches", "x"], "error: decode-batches: 'x' is not an integer"),
    (["--interference", "i.csv", "--colocate", "50"], "error: colocate: expected"),
    (["--repeats", "0"], "error: --repeats: must be in [1, 100000], got '0'"),
    (["--rounds", "0"], "error: --rounds: must be in [1, 1000], got '0'"),
    (["--weights", "no/such/dir"], "error: weights: 'no/such/dir' is not a directory"),
]


@pytest.mark.parametrize("args,msg", BAD)
def test_bad_input_exits_2_with_one_line_and_no_file(tmp_path, capsys, args, msg):
    from muxsim.cli.main import main

    out = tmp_path / "p.csv"
    code = main(["profile", "--model", "tiny-1l-32h", "--device", "cpu", "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(msg) and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


def test_bad_input_through_the_real_command(tmp_path):
    r = cli("profile", "--model", "tiny-1l-32h", "--device", "cpu", "--out", str(tmp_path / "p.csv"),
            "--sm-grid", "50,200")
    assert r.returncode == 2 and r.stderr.startswith("error: --sm-grid: must be a share in [0.01, 1]")
    assert r.stderr.endswith("got '200'\n")
    assert not list(tmp_path.iterdir())


def test_cuda_without_a_gpu_is_bad_input(tmp_path, capsys, monkeypatch):
    from muxsim.cli.main import main

    monkeypatch.setattr(runner, "cuda_devices", lambda: 0)
    code = main(["profile", "--model", "tiny-1l-32h", "--device", "cuda", "--out", str(tmp_path / "p.csv")])
    assert code == 2 and capsys.readouterr().err.startswith("error: device: cuda requested but no CUDA")
    monkeypatch.setattr(runner, "cuda_devices", lambda: 1)
    code = main(["profile", "--model", "tiny-1l-32h", "--tp", "2", "--device", "cuda", "--out",
                 str(tmp_path / "p.csv")])
    assert code == 2 and capsys.readouterr().err == "error: tp: 2 needs 2 GPUs, this machine has 1\n"
    monkeypatch.setattr(runner, "cuda_memory_bytes", lambda: 80 << 30)
    code = main(["profile", "--model", "llama-2-70b", "--device", "cuda", "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: tp: llama-2-70b holds 128.") and "(raise --tp)" in err
    assert not list(tmp_path.iterdir())


FAKE_CONTROL = """#!/bin/sh
# a stand-in for nvidia-cuda-mps-control: -d starts, 'quit' stops, queries answer
state="$CUDA_MPS_PIPE_DIRECTORY/fake-daemon"
if [ "$1" = "-d" ]; then touch "$state"; exit 0; fi
read cmd
if [ ! -e "$state" ]; then echo "Cannot find MPS control daemon process"; exit 1; fi
if [ "$cmd" = "quit" ]; then rm "$state"; fi
exit 0
"""


def test_mps_daemon_is_started_in_a_private_directory_and_stopped(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / mps.CONTROL
    tool.write_text(FAKE_CONTROL)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.delenv("CUDA_MPS_PIPE_DIRECTORY", raising=False)
    monkeypatch.delenv("CUDA_MPS_LOG_DIRECTORY", raising=False)
    assert not mps.ensure_mps(start=False).available
    status = mps.ensure_mps(start=True)
    assert status.available and status.started_here and status.pipe_dir
    env = mps.sm_env(30, True)
    assert env["CUDA_MPS_PIPE_DIRECTORY"] == status.pipe_dir  # workers find the daemon
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "30"
    assert Path(status.pipe_dir, "fake-daemon").exists()
    mps.stop_mps(status)
    assert not Path(status.pipe_dir).exists()
    assert "CUDA_MPS_PIPE_DIRECTORY" not in mps.sm_env(30, True)


def test_cli_and_kernel_package_import_without_torch():
    code = ("import sys, muxsim.cli.main as m, muxsim.profiler, muxsim_kernels, muxsim_kernels.cache; "
            "m.build_parser(); bad = [x for x in ('torch', 'triton') if x in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


@pytest.mark.gpu
def test_gpu_profile_end_to_end(tmp_path):
    """On a CUDA machine: a tiny model through the Triton kernels, two SM shares."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    out = tmp_path / "gpu.csv"
    r = cli("profile", "--model", "tiny-2l-128h", "--device", "cuda", "--sm-grid", "50,100", "--out", str(out),
            "--prefill-batches", "1,4", "--prefill-seq-lens", "64,256", "--decode-batches", "1,16",
            "--decode-seq-lens", "64,1024", "--format", "json")
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "gpu.meta.json").read_text())
    assert meta["backend"] == "triton" and meta["timer"] == "cuda events"
    rows = read_csv(out)
    shares = {x["sm_pct"] for x in rows}
    assert shares == ({"50", "100"} if meta["sm_control"] == "mps" else {"100"})
    assert meta["skipped_sm_pct"] == ([] if meta["sm_control"] == "mps" else [50])
    assert all(float(x["latency_ms"]) > 0 and x["gpu"] != "cpu" for x in rows)
    assert len([x for x in rows if x["sm_pct"] == "100"]) == 8


@needs_torch
def test_cpu_tensor_parallel_profile_runs_two_ranks(tmp_path):
    out = tmp_path / "tp.csv"
    r = cli("profile", "--model", "tiny-1l-32h", "--device", "cpu", "--tp", "2", "--out", str(out),
            "--prefill-batches", "1", "--prefill-seq-lens", "8", "--decode-batches", "2",
            "--decode-seq-lens", "40", "--repeats", "2", "--warmup", "1", "--rounds", "1")
    assert r.returncode == 0, r.stderr
    rows = read_csv(out)
    assert [(x["tp"], x["phase"]) for x in rows] == [("2", "prefill"), ("2", "decode")]
    assert all(float(x["latency_ms"]) > 0 for x in rows)


@needs_torch
def test_a_failing_worker_is_reported_not_hidden(tmp_path, capsys, monkeypatch):
    procs, out = runner._launch({"tp": 1}, dict(os.environ), tmp_path, "broken")  # no model: worker fails
    with pytest.raises(runner.WorkerError, match=r"profiler worker broken \(rank 0\) exited with status 1"):
        runner._finish(procs, out, "broken")
    from muxsim.cli.main import main

    def boom(*a, **k):
        raise runner.WorkerError("profiler worker sm_pct=100 (rank 0) exited with status 1")

    monkeypatch.setattr(runner, "run_profile", boom)
    code = main(["profile", "--model", "tiny-1l-32h", "--device", "cpu", "--out", str(tmp_path / "p.csv")])
    assert code == 1 and capsys.readouterr().err.startswith("error: profiler worker sm_pct=100")
    assert not (tmp_path / "p.csv").exists()
