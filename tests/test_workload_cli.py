"""``muxsim workload ...`` end to end: real subprocesses for the main paths, the in-process
entry point for the many bad-input cases (same code, quicker)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from muxsim.cli.main import main
from muxsim.workload import load_workload, read_trace

from .test_workload_trace import CODE, CONV, azure_fixture


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "muxsim.cli.main", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def test_synth_then_describe_json(tmp_path, capsys):
    out = tmp_path / "wl.json"
    r = run("workload", "synth", "--mix", "2xllama-7b,llama-13b", "--alpha", "2", "--max-rate", "9",
            "--nodes", "1", "--gpus-per-node", "4", "--duration", "50", "--seed", "3", "--out", out)
    assert r.returncode == 0, r.stderr
    wl = load_workload(out)
    assert [wl.rate_of(n) for n in wl.names()] == [9.0, 9 * 2**-2, 9 * 3**-2]
    assert wl.seed == 3 and wl.cluster.total_gpus == 4
    assert main(["workload", "describe", str(out), "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert list(d["per_llm"]) == ["llm-0", "llm-1", "llm-2"]  # keyed by name, in workload order
    assert d["per_llm"]["llm-0"]["prompt_len"]["p99"] >= d["per_llm"]["llm-0"]["prompt_len"]["p50"]
    assert d["total"]["rate_rps"] == pytest.approx(9 + 9 / 4 + 1)


def test_from_trace_maps_two_azure_logs_and_replays(tmp_path):
    conv = azure_fixture(tmp_path / "conv.csv", CONV)
    code = azure_fixture(tmp_path / "code.csv", CODE)
    (tmp_path / "out").mkdir()
    r = run("workload", "from-trace", conv, code, "--model", "llama-3-8b", "--model", "mistral-7b",
            "--name", "chat", "--name", "coder", "--time-scale", "0.5", "--nodes", "1", "--out", "out/az.json",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "az.trace.csv").exists()
    raw = json.loads((tmp_path / "out" / "az.json").read_text())
    assert raw["trace"] == "az.trace.csv" and raw["arrivals"] == {"process": "trace"}
    wl = load_workload(tmp_path / "out" / "az.json")
    reqs = read_trace(tmp_path / "out" / "az.trace.csv")
    assert len(reqs) == len(CONV) + len(CODE)
    assert reqs.loc[reqs["name"] == "chat", "prompt_len"].tolist() == [row[2] for row in CONV]
    assert reqs.loc[reqs["name"] == "coder", "prompt_len"].tolist() == [row[2] for row in CODE]
    assert wl.rate_of("chat") == pytest.approx(len(CONV) / wl.duration_s)
    assert wl.duration_s > reqs["arrival_s"].max()
    # the reverse direction: a synthetic workload's requests written as a trace
    assert main(["workload", "requests", str(tmp_path / "out" / "az.json"), "--out", str(tmp_path / "again.jsonl")]) == 0
    pd.testing.assert_frame_equal(read_trace(tmp_path / "again.jsonl"), reqs, check_exact=True)


def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "wl.json"
    r = run("workload", "synth", "--mix", "2xllama-7b", "--alpha", "1", "--max-rate", "-4", "--out", out)
    assert r.returncode == 2
    assert r.stderr == "error: --max-rate: must be in (0, 1000000], got '-4'\n" and r.stdout == ""
    assert not out.exists()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"cluster": {"gpu": "a100-80gb"}, "duration_s": 5,
                               "models": [{"name": "a", "model": "llama-7b", "rate": 1},
                                          {"name": "b", "model": "llama-7b", "rate": -1}]}))
    r = run("workload", "describe", bad)
    assert r.returncode == 2 and r.stderr == "error: models[1].rate: must be > 0, got -1\n"


@pytest.mark.parametrize(("args", "message"), [
    (["synth", "--mix", "2xllama-7b", "--alpha", "1", "--max-rate", "4", "--arrivals", "gamma"],
     "error: cv: --arrivals gamma needs --cv"),
    (["synth", "--mix", "2xllama-7b", "--alpha", "1", "--max-rate", "4", "--cv", "2"],
     "error: cv: only --arrivals gamma takes --cv"),
    (["synth", "--mix", "2xfoo", "--alpha", "1", "--max-rate", "4"], "error: mix[0]: unknown model 'foo'"),
    (["synth", "--mix", "2xllama-7b", "--alpha", "nan", "--max-rate", "4"], "error: --alpha: must be a finite number"),
    (["synth", "--mix", "2xllama-7b", "--alpha", "1", "--max-rate", "4", "--gpu", "v100"],
     "error: cluster.gpu: unknown GPU 'v100'"),
    (["from-trace", "MISSING.csv", "--model", "llama-7b"], "error: trace 'MISSING.csv': file 'MISSING.csv' does not exist"),
    (["from-trace", "CONV", "CODE", "--model", "llama-7b", "--model", "llama-7b", "--model", "llama-7b"],
     "error: model: give --model once, or once per trace (2), not 3 times"),
    (["from-trace", "CONV", "--model", "llama-7b", "--name", "a", "--name", "b"],
     "error: name: give --name once per trace (1), not 2 times"),
    (["from-trace", "CONV", "--model", "llama-99b"], "error: models[0].model: unknown model 'llama-99b'"),
    (["from-trace", "CONV", "--model", "llama-7b", "--time-scale", "0"], "error: --time-scale: must be in (0, 1000000000]"),
    (["from-trace", "CONV", "CODE", "--model", "llama-7b", "--name", "a", "--name", "a"],
     "error: models[1].name: duplicate name 'a'"),
    (["from-trace", "EMPTY", "--model", "llama-7b"], "error: trace 'EMPTY': file 'EMPTY' is empty"),
    (["describe", "NOPE.json"], "error: workload: file 'NOPE.json' does not exist"),
])
def test_bad_cli_arguments(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    azure_fixture(tmp_path / "CONV", CONV)
    azure_fixture(tmp_path / "CODE", CODE)
    (tmp_path / "EMPTY").write_text("")
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["workload", *args, "--out", "o.json"] if args[0] != "describe" else ["workload", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(message) and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_from_trace_split_and_rate_in_process(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rows = [(15 + i // 60, float(i % 60), 10 + i, 5 + i) for i in range(600)]  # one request a second
    azure_fixture(tmp_path / "conv.csv", rows)
    code = main(["workload", "from-trace", "conv.csv", "--split", "3", "--alpha", "1", "--model", "llama-7b",
                 "--rate", "10", "--seed", "1", "--out", "wl.json"])
    assert code == 0, capsys.readouterr().err
    wl = load_workload("wl.json")
    reqs = read_trace("wl.trace.csv")
    assert len(reqs) == 600 and wl.names() == ["llm-0", "llm-1", "llm-2"]
    assert reqs["prompt_len"].tolist() == list(range(10, 610))  # order kept through the split
    assert reqs["arrival_s"].iloc[-1] == pytest.approx(59.9, abs=1e-9)  # 599 gaps of 1 s now 0.1 s each
    assert wl.duration_s == pytest.approx(60.0) and wl.total_rate() == pytest.approx(10.0)
    share = reqs["name"].value_counts(normalize=True)
    weights = [1, 1 / 2, 1 / 3]
    for i, w in enumerate(weights):  # multinomial shares within 5 sigma of (i+1)^-1 / H_3
        p = w / sum(weights)
        assert abs(share[f"llm-{i}"] - p) <= 5 * (p * (1 - p) / 600) ** 0.5
    again = main(["workload", "from-trace", "conv.csv", "--split", "3", "--model", "llama-7b",
                  "--rate", "10", "--seed", "1", "--out", "wl2.json"])
    assert again == 0
    pd.testing.assert_frame_equal(read_trace("wl2.trace.csv"), reqs, check_exact=True)  # same seed, same split
    assert main(["workload", "from-trace", "conv.csv", "--rate", "5", "--time-scale", "2", "--model", "llama-7b",
                 "--out", "x.json"]) == 2
    assert capsys.readouterr().err.endswith("error: rate: give --rate or --time-scale, not both\n")
    assert main(["workload", "from-trace", "conv.csv", "conv.csv", "--split", "2", "--model", "llama-7b",
                 "--out", "x.json"]) == 2
    assert "error: split: spreads one trace over N >= 1 models (got 2 trace(s), N=2)" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
