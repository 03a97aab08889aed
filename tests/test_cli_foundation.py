"""`muxsim cost` and `muxsim calibrate` through a real subprocess."""

import json
import subprocess
import sys

import pytest

from tests.test_costmodel import TRUE, synthetic_profile

SM_RANGE = "a share in [0.01, 1] or a percentage in [1%, 100%] (0.5 and 50% both mean half)"


def muxsim(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "muxsim.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_cost_json_prints_latency_and_inputs():
    r = muxsim("cost", "llama-7b", "--gpu", "a100-80gb", "--phase", "decode", "--batch", "8", "--seq-len", "512",
               "--sm", "0.5", "--format", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["latency_ms"] > 0 and out["batch"] == 8 and out["sm"] == 0.5 and out["backend"] == "analytic"
    import muxsim as mx

    assert out["latency_ms"] == mx.cost_model("a100-80gb").decode_ms("llama-7b", 8, 512, sm=0.5)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["llama-9b", "--gpu", "a100-80gb"], "error: model: unknown model 'llama-9b'"),
     (["llama-7b", "--gpu", "b300"], "error: gpu: unknown GPU 'b300'"),
     (["llama-7b", "--gpu", "a100-80gb", "--batch", "0"], "error: --batch: must be in [1, 65536], got '0'"),
     (["llama-7b", "--gpu", "a100-80gb", "--sm", "1.2"], f"error: --sm: must be {SM_RANGE}, got '1.2'"),
     (["llama-7b", "--gpu", "a100-80gb", "--sm", "120%"], f"error: --sm: must be {SM_RANGE}, got '120%'"),
     (["llama-7b", "--gpu", "a100-80gb", "--sm", "0"], f"error: --sm: must be {SM_RANGE}, got '0'"),
     (["llama-7b", "--gpu", "a100-80gb", "--sm", "0.5%"], f"error: --sm: must be {SM_RANGE}, got '0.5%'"),
     (["llama-7b", "--gpu", "a100-80gb", "--sm", "1e-300"], f"error: --sm: must be {SM_RANGE}, got '1e-300'"),
     (["llama-7b", "--gpu", "a100-80gb", "--sm", "half"], "error: --sm: expected a share of the SMs such as 50% or "
                                                          "0.5, got 'half'"),
     (["llama-7b", "--gpu", "a100-80gb", "--sm", "nan"], f"error: --sm: must be {SM_RANGE}, got 'nan'"),
     (["llama-7b", "--gpu", "a100-80gb", "--engine", "turbo"], "error: --engine: unknown preset 'turbo' (known: "
                                                               "vllm-2024-ray, lean, none, datasheet)"),
     (["phi-2", "--gpu", "a100-80gb", "--seq-len", "4096"], "error: --seq-len: 4096 tokens exceed the 2048-token "
                                                            "context window of phi-2")],
)
def test_cost_bad_input_is_one_line_exit_2(args, message):
    base = {"--phase": "prefill", "--batch": "4", "--seq-len": "128"}
    extra = [x for k, v in base.items() if k not in args for x in (k, v)]
    r = muxsim("cost", *args, *extra)
    assert r.returncode == 2
    assert r.stderr.startswith(message), r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_cost_engine_presets_through_every_format():
    import muxsim as mx

    args = ["llama-65b", "--gpu", "a100-80gb", "--phase", "decode", "--batch", "64", "--seq-len", "512", "--tp", "8"]
    got = {}
    for engine in ("vllm-2024-ray", "lean", "none"):
        r = muxsim("cost", *args, "--engine", engine, "--format", "json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["engine"] == engine and "fitted to" in doc["params_source"]
        got[engine] = doc["latency_ms"]
        assert got[engine] == mx.cost_model("a100-80gb", engine=engine).decode_ms("llama-65b", 64, 512, 8)
    assert got["vllm-2024-ray"] > got["lean"] > got["none"]  # the Ray hop and the TP surcharge, then no CPU time
    r = muxsim("cost", *args, "--engine", "lean", "--format", "csv")
    head, row = r.stdout.splitlines()
    assert head == "model,gpu,phase,batch,seq_len,tp,sm,backend,latency_ms" and float(row.split(",")[-1]) == got["lean"]
    r = muxsim("cost", *args)
    assert r.returncode == 0 and "latency_ms" in r.stdout and "parameters: fitted to" in r.stdout
    r = muxsim("cost", "llama-7b", "--gpu", "l40s", "--phase", "decode", "--batch", "1", "--seq-len", "8")
    assert "parameters: scaled from the" in r.stdout  # a GPU without its own fit says so


def test_cost_malformed_config_json(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"hidden_size": 4096,')
    r = muxsim("cost", str(bad), "--gpu", "a100-80gb", "--phase", "decode", "--batch", "1", "--seq-len", "1")
    assert r.returncode == 2 and r.stderr.startswith("error: model:") and "not valid JSON" in r.stderr


def test_calibrate_writes_params_that_cost_uses(tmp_path):
    prof = tmp_path / "prof.csv"
    synthetic_profile(TRUE, models=("llama-7b",), sms=(50, 100)).to_csv(prof, index=False)
    out = tmp_path / "params.json"
    r = muxsim("calibrate", str(prof), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "median" in r.stdout and "held-out" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["gpu"] == "a100-80gb" and doc["params"]["gemm_eff"] == pytest.approx(0.6, rel=0.1)
    assert doc["fit"]["n_eval"] > 0
    r2 = muxsim("cost", "llama-7b", "--gpu", "a100-80gb", "--phase", "prefill", "--batch", "4", "--seq-len",
                "256", "--params", str(out), "--format", "json")
    r3 = muxsim("cost", "llama-7b", "--gpu", "a100-80gb", "--phase", "prefill", "--batch", "4", "--seq-len",
                "256", "--profile", str(prof), "--format", "json")
    assert r2.returncode == 0 and r3.returncode == 0
    fitted, table = json.loads(r2.stdout)["latency_ms"], json.loads(r3.stdout)["latency_ms"]
    assert json.loads(r3.stdout)["backend"] == "table"
    assert fitted == pytest.approx(table, rel=0.06)  # the fit agrees with the measured point


def test_calibrate_bad_profile_writes_nothing(tmp_path):
    prof = tmp_path / "prof.csv"
    prof.write_text("model,gpu,tp,sm_pct,phase,batch,seq_len,latency_ms\nllama-7b,a100-80gb,1,100,prefill,1,128,abc\n")
    out = tmp_path / "params.json"
    r = muxsim("calibrate", str(prof), "--out", str(out))
    assert r.returncode == 2 and "row 1: latency_ms is not a finite number" in r.stderr
    assert not out.exists()
    r = muxsim("calibrate", str(tmp_path / "missing.csv"), "--out", str(out))
    assert r.returncode == 2 and "does not exist" in r.stderr and not out.exists()


def test_help_lists_the_commands():
    r = muxsim("--help")
    assert r.returncode == 0
    for cmd in ("cost", "calibrate"):
        assert cmd in r.stdout


def test_building_the_command_line_loads_neither_pandas_nor_the_simulator_run():
    # --help builds every parser; the heavy modules load only when a command runs
    code = ("import sys; from muxsim.cli.main import build_parser; build_parser(); "
            "print(sorted(m for m in ('pandas', 'muxsim.sim.run', 'scipy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    # and the lazy names still resolve
    out = subprocess.run([sys.executable, "-c", "from muxsim.sim import Results, Simulation, simulate; print('ok')"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
