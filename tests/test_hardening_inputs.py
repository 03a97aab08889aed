"""Bad input of every kind is one line ``error: ...`` naming the field, exit status 2,
no traceback and nothing written: random extremes in every field of workload and plan
files and in numeric flags, special and oversized input files, deep nesting, integers
of thousands of digits; names that look like numbers or missing values round-trip;
errors never quote the content of a file that is not a valid table."""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hardening import (
    SMALL,
    VIDUR_FILES,
    assert_refused,
    bounded,
    changed,
    cli,
    small_workload,
    snapshot,
    vidur_tree,
    workspace,
)

EXTREMES = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1, 2**63, -(2**63), 10**300, -(10**300), "", "x", "NaN", [], {},
                     [1], {"a": 1}]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e18, 1e30, 1e300, -1e300, 5e-324, 1e-300, float("nan"), float("inf"), -float("inf")]),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.text(max_size=30),
)


def _paths(d: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(d, dict):
        for k, v in d.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d[:2]):
            out.append((*prefix, i))
            out += _paths(v, (*prefix, i))
    return out


def _put(d: Any, path: tuple, value: Any) -> None:
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


def _dump(d: Any) -> str:
    return json.dumps(d)  # NaN and Infinity as Python's json writes them: the reader must cope


BASE_WL = json.loads(SMALL.read_text())
BASE_WL["duration_s"] = 5.0
BASE_WL["models"][0]["prompt_len"] = {"dist": "lognormal", "mean": 100.0, "cv": 1.0, "max": 1000}
BASE_WL["models"][1]["output_len"] = {"dist": "uniform", "low": 10, "high": 100}
BASE_WL["models"][2]["rate_schedule"] = [{"start_s": 0.0, "rate": 2.0}, {"start_s": 2.0, "rate": 4.0}]
del BASE_WL["models"][2]["rate"]
BASE_WL["arrivals"] = {"process": "gamma", "cv": 2.0}
WL_PATHS = _paths(BASE_WL)


def _ok_or_refused(r) -> None:
    if r.code != 0:
        assert_refused(r)


def _standard_json(text: str) -> None:
    """Standard JSON: no NaN or Infinity constants (a string may say "NaN")."""
    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def plan_dict(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("plan")
    (d / "wl.json").write_text(_dump(BASE_WL))
    assert cli("plan", "wl.json", "--out", "plan.json", cwd=d).code == 0
    return json.loads((d / "plan.json").read_text())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(WL_PATHS), EXTREMES)
def test_any_value_in_any_workload_field_is_accepted_or_refused_in_one_line(path, value):
    d = copy.deepcopy(BASE_WL)
    _put(d, path, value)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "w.json").write_text(_dump(d))
        before = snapshot(t)
        r = cli("workload", "describe", "w.json", cwd=t)
        _ok_or_refused(r)
        if r.code == 0:  # accepted: it must also generate within bounds
            _ok_or_refused(cli("workload", "requests", "w.json", "--out", "r.csv", "--max-requests", "20000", cwd=t))
        else:
            assert changed(before, snapshot(t)) == set()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data(), EXTREMES)
def test_any_value_in_any_plan_field_is_accepted_or_refused_in_one_line(plan_dict, data, value):
    path = data.draw(st.sampled_from(_paths(plan_dict)))
    d = copy.deepcopy(plan_dict)
    _put(d, path, value)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "w.json").write_text(_dump(BASE_WL))
        (t / "p.json").write_text(_dump(d))
        r = cli("simulate", "p.json", "w.json", "--format", "json", cwd=t)
        _ok_or_refused(r)
        if r.code == 0:
            _standard_json(r.out)
            json.loads(r.out)


FLAGS = {  # command prefix -> {flag: valid value}
    ("cost", "llama-7b", "--gpu", "a100-80gb", "--phase", "decode"):
        {"--batch": "4", "--seq-len": "128", "--tp": "1", "--sm": "0.5"},
    ("plan", "wl.json", "--algorithm", "spatial"): {"--time-limit": "5"},
    ("plan", "wl.json", "--algorithm", "flex-slo"):
        {"--budget": "1", "--score-horizon": "2", "--score-seed": "9", "--slo-scale": "8"},
    ("capacity", "wl.json", "--algorithm", "spatial"): {"--target": "0.5", "--max-gpus": "2", "--seed": "0"},
    ("compare", "wl.json", "--algorithms", "spatial", "--capacity"): {"--target": "0.5", "--max-gpus": "2"},
    ("simulate", "plan.json", "wl.json"): {"--seed": "0", "--drain": "10", "--max-requests": "100000"},
    ("workload", "synth", "--mix", "2xllama-7b", "--out", "o.json"):
        {"--alpha": "1", "--max-rate": "2", "--nodes": "1", "--gpus-per-node": "2", "--duration": "10",
         "--seed": "0", "--drift-windows": "2"},
    ("workload", "synth", "--mix", "2xllama-7b", "--out", "o.json", "--arrivals", "gamma", "--alpha", "1",
     "--max-rate", "2"): {"--cv": "2"},
    ("calibrate", "prof.csv", "--out", "o.json"): {"--holdout": "0.2", "--seed": "0"},
    ("cost", "llama-65b", "--gpu", "h100-80gb", "--phase", "prefill", "--engine", "lean"):
        {"--batch": "2", "--seq-len": "256", "--tp": "8", "--sm": "50%"},
}
BAD_NUMBERS = ["nan", "inf", "-inf", "-1", "0", "1e-300", "1e300", "9" * 30, "9" * 5000, "", "x", "0x10", "1e999"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(FLAGS)), st.data())
def test_numeric_flags_are_bounded(prefix, data):
    flags = FLAGS[prefix]
    flag = data.draw(st.sampled_from(sorted(flags)))
    value = data.draw(st.sampled_from(BAD_NUMBERS))
    argv = list(prefix)
    for f, v in flags.items():
        argv += [f, value if f == flag else v]
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        workspace(t)
        r = cli(*argv, cwd=t)
        _ok_or_refused(r)
        if r.code == 2 and value not in ("-1", "0", "1e-300", "1e300") and not r.err.startswith("error: --seq-len"):
            assert flag in r.err, r.err


POLICY_FLAGS = ["--flex-policy", "--temporal-policy", "--kv-cache", "--initial-quota"]
POLICY_COMMANDS = [("plan", "wl.json", "--out", "o.json"), ("simulate", "plan.json", "wl.json", "--out", "o.json"),
                   ("compare", "wl.json", "--algorithms", "spatial", "--out-dir", "o")]


@pytest.mark.parametrize("prefix", POLICY_COMMANDS, ids=lambda p: p[0])
@pytest.mark.parametrize("flag", POLICY_FLAGS)
def test_policy_flags_take_only_their_names(tmp_path, prefix, flag):
    # plan, simulate and compare share the simulator's policy flags; a name that is not
    # a policy (or a huge, empty or unprintable one) is one line naming the flag, before any work
    workspace(tmp_path)
    before = snapshot(tmp_path)
    for value in ("lottery", "", "x" * 5000, "adbs\n", "ADBS"):
        r = cli(*prefix, flag, value, cwd=tmp_path)
        assert_refused(r, flag)
        assert changed(before, snapshot(tmp_path)) == set()


def test_a_placed_plan_records_its_policy_and_limits_so_the_fuzz_covers_them(plan_dict):
    assert plan_dict["policy"] == "adbs" and set(plan_dict["limits"]) == {"overload", "max_prefill_tokens",
                                                                         "max_batch", "memory"}
    assert ("limits", "memory", "usable_fraction") in _paths(plan_dict)


@pytest.mark.parametrize("case", ["fifo", "directory", "device", "deep", "bigint", "huge", "binary", "empty"])
def test_special_and_oversized_input_files(tmp_path, case):
    p = tmp_path / "in.json"
    if case == "fifo":
        os.mkfifo(p)  # reading it would wait forever
    elif case == "directory":
        p.mkdir()
    elif case == "device":
        p = Path("/dev/zero")  # reading it would never end
    elif case == "deep":
        p.write_text("[" * 100_000 + "]" * 100_000)
    elif case == "bigint":
        p.write_text('{"cluster": {"gpu": "a100-80gb"}, "seed": ' + "9" * 5000 + "}")
    elif case == "huge":
        with open(p, "wb") as f:
            f.truncate(17 << 20)
    elif case == "binary":
        p.write_bytes(bytes(range(256)) * 4)
    else:
        p.write_text("")
    for argv in (["workload", "describe", p], ["simulate", p, p], ["plan", p],
                 ["cost", "llama-7b", "--gpu", "a100-80gb", "--phase", "decode", "--batch", "1", "--seq-len", "1",
                  "--params", p]):
        assert_refused(cli(*argv, cwd=tmp_path))


@pytest.mark.parametrize("name", ["NA", "None", "nan", "NaN", "null", "01", "1e3", "N/A", "#N/A", "TRUE", "-"])
def test_names_that_look_like_numbers_or_missing_values_round_trip(tmp_path, name):
    (tmp_path / "log.csv").write_text("arrival_s,prompt_len,output_len\n0,10,5\n1,12,6\n2,14,7\n")
    r = cli("workload", "from-trace", "log.csv", "--model", "llama-7b", "--name", name, "--out", "wl.json",
            cwd=tmp_path)
    assert r.code == 0, r.err
    r = cli("workload", "describe", "wl.json", "--format", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    assert list(json.loads(r.out)["per_llm"]) == [name]  # keyed by name, in workload order
    assert cli("workload", "requests", "wl.json", "--out", "again.jsonl", cwd=tmp_path).code == 0
    assert {json.loads(line)["name"] for line in (tmp_path / "again.jsonl").read_text().splitlines()} == {name}


SECRET = "root:x:0:0:hunter2:/root:/bin/bash"


@pytest.mark.parametrize("body", [f"{SECRET}\nline2\n", f"a,b\n{SECRET},1\n",
                                  f"arrival_s,name,prompt_len,output_len\n{SECRET},x,1,1\n",
                                  f"arrival_s,name,prompt_len,output_len\n0,x,{SECRET},1\n"])
def test_errors_never_quote_a_file_that_is_not_a_valid_table(tmp_path, body):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret.txt").write_text(body)
    trace = small_workload(tmp_path, trace="data/secret.txt", arrivals={"process": "trace"})
    empirical = json.loads(SMALL.read_text())
    empirical["models"][0]["prompt_len"] = {"dist": "empirical", "file": "data/secret.txt", "column": "x"}
    (tmp_path / "emp.json").write_text(json.dumps(empirical))
    for wl in (trace.name, "emp.json"):
        r = cli("workload", "describe", wl, cwd=tmp_path)
        assert_refused(r)
        assert "hunter2" not in r.err and "root" not in r.err
    for argv in (["workload", "from-trace", "data/secret.txt", "--model", "llama-7b", "--out", "o.json"],
                 ["calibrate", "data/secret.txt", "--out", "o.json"]):
        r = cli(*argv, cwd=tmp_path)
        assert_refused(r)
        assert "hunter2" not in r.err


def test_paths_in_a_workload_are_relative_to_it(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "t.csv").write_text("arrival_s,name,prompt_len,output_len\n0,llm-0,5,5\n")
    d = json.loads(SMALL.read_text())
    d["models"] = d["models"][:1]
    d.update(trace="t.csv", arrivals={"process": "trace"}, duration_s=1.0)
    (sub / "wl.json").write_text(json.dumps(d))
    (tmp_path / "t.csv").write_text("not a trace")  # beside the caller: never read
    r = cli("workload", "describe", "sub/wl.json", cwd=tmp_path)
    assert r.code == 0, r.err


def test_no_json_output_holds_nan_or_infinity(tmp_path):
    small_workload(tmp_path)
    assert cli("plan", "wl.json", "--out", "p.json", cwd=tmp_path).code == 0
    for argv in (["simulate", "p.json", "wl.json", "--format", "json", "--drain", "0"],
                 ["cost", "llama-7b", "--gpu", "a100-80gb", "--phase", "prefill", "--batch", "65536",
                  "--seq-len", "2048", "--sm", "0.01", "--format", "json"],
                 ["workload", "describe", "wl.json", "--format", "json"]):
        r = cli(*argv, cwd=tmp_path)
        assert r.code == 0, r.err
        _standard_json(r.out)
        json.loads(r.out)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), st.sampled_from(["", "LEAN", " lean", "vllm", "none\n", "x" * 5000])))
def test_engine_names_are_presets_or_refused(name):
    argv = ["cost", "llama-7b", "--gpu", "a100-80gb", "--phase", "decode", "--batch", "1", "--seq-len", "8",
            "--engine", name]
    r = cli(*argv)
    if name in ("vllm-2024-ray", "lean", "none", "datasheet"):
        assert r.code == 0, r.err
    else:
        assert_refused(r, "--engine")
        assert len(r.err) < 400  # a long name is cut, not echoed whole


VIDUR_COLUMNS = {  # a file of the test tree -> columns whose cells get extreme values
    VIDUR_FILES[0]: ["n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size", "use_gated_mlp", "num_tokens",
                     "num_tensor_parallel_workers", "time_stats.attn_pre_proj.median", "time_stats.add.median"],
    VIDUR_FILES[3]: ["size", "num_workers", "devices_per_node", "time_stats.all_reduce.median", "collective"],
    VIDUR_FILES[5]: ["model_name", "batch_size", "tensor_parallel_degree", "schedule_median", "ray_comm_time_mean"],
}
CELLS = st.one_of(st.sampled_from(["", "nan", "inf", "-inf", "-1", "0", "1e300", "1e-300", "9" * 400, "x", "True",
                                   "NA", "None", "1.5", "1e18", "2"]),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.integers(min_value=-(10**40), max_value=10**40).map(str))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(VIDUR_COLUMNS)), st.data(), CELLS, st.booleans())
def test_any_value_in_a_vidur_file_is_fitted_or_refused_in_one_line(name, data, cell, every_row):
    import pandas as pd

    column = data.draw(st.sampled_from(VIDUR_COLUMNS[name]))
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        vidur_tree(t)
        df = pd.read_csv(t / name, dtype=str, keep_default_na=False)
        if every_row:
            df[column] = cell
        else:
            df.loc[data.draw(st.integers(0, len(df) - 1)), column] = cell
        df.to_csv(t / name, index=False)
        before = snapshot(t)
        r = cli("fidelity", "--vidur", "vid", "--format", "json", cwd=t)
        _ok_or_refused(r)
        if r.code == 0:
            _standard_json(r.out)
            json.loads(r.out)
        r = cli("calibrate", "--vidur", "vid", "--gpu", "a100-80gb", "--out", "p.json", cwd=t)
        _ok_or_refused(r)
        after = snapshot(t)
        assert changed(before, after) == ({"p.json"} if r.code == 0 else set())
        if r.code == 0:
            assert cli("cost", "llama-7b", "--gpu", "a100-80gb", "--phase", "decode", "--batch", "1", "--seq-len",
                       "8", "--params", "p.json", cwd=t).code == 0


@pytest.mark.parametrize("case", ["fifo", "directory", "device", "binary", "not-xz", "truncated-xz", "xz-bomb",
                                  "tree-too-big", "too-many-models", "secret", "empty"])
def test_special_files_in_a_vidur_tree_are_refused_naming_them(tmp_path, case, monkeypatch):
    import lzma

    import muxsim.costmodel.vidur as vidur

    vidur_tree(tmp_path)
    mlp = tmp_path / VIDUR_FILES[0]
    secret = "root:x:0:0:hunter2:/root:/bin/bash"
    if case == "fifo":
        mlp.unlink()
        os.mkfifo(mlp)  # reading it would wait forever
    elif case == "directory":
        mlp.unlink()
        mlp.mkdir()
    elif case == "device":
        mlp.unlink()
        mlp.symlink_to("/dev/zero")  # reading it would never end
    elif case == "binary":
        mlp.write_bytes(bytes(range(256)) * 64)
    elif case == "not-xz":
        mlp.unlink()
        (mlp.parent / "mlp.csv.xz").write_text(f"{secret}\n")
    elif case == "truncated-xz":
        mlp.unlink()
        (mlp.parent / "mlp.csv.xz").write_bytes(lzma.compress(b"a,b\n" * 10000)[:200])
    elif case == "xz-bomb":  # 4 MiB of zeros in a few hundred bytes, with the limit at 1 MiB
        monkeypatch.setattr(vidur, "MAX_TABLE_BYTES", 1 << 20)
        mlp.unlink()
        (mlp.parent / "mlp.csv.xz").write_bytes(lzma.compress(bytes(4 << 20)))
    elif case == "tree-too-big":  # every file is fine, all together are too many bytes
        monkeypatch.setattr(vidur, "MAX_TABLE_BYTES", sum((tmp_path / f).stat().st_size for f in VIDUR_FILES[:2]))
    elif case == "too-many-models":
        monkeypatch.setattr(vidur, "MAX_VIDUR_MODELS", 2)
    elif case == "secret":
        lines = mlp.read_text().splitlines()
        mlp.write_text("\n".join([lines[0], secret + "," * lines[0].count(","), *lines[2:]]) + "\n")
    else:
        mlp.write_text("")
    before = snapshot(tmp_path)
    for argv in (["calibrate", "--vidur", "vid", "--gpu", "a100-80gb", "--out", "p.json"],
                 ["fidelity", "--vidur", "vid", "--plot", "f.png"]):
        r = cli(*argv, cwd=tmp_path)
        assert_refused(r, "vid")
        assert "hunter2" not in r.err and "root" not in r.err
        if case not in ("too-many-models", "tree-too-big", "xz-bomb"):
            assert "Llama-2-7b-hf/mlp.csv" in r.err, r.err  # the file is named
    assert changed(before, snapshot(tmp_path)) == set()


def test_a_fifo_in_a_vidur_tree_in_a_bounded_subprocess(tmp_path):
    """Through the real command, under a memory limit and a timeout: nothing waits on a
    FIFO where a measurement file should be."""
    vidur_tree(tmp_path)
    (tmp_path / VIDUR_FILES[3]).unlink()
    os.mkfifo(tmp_path / VIDUR_FILES[3])
    r = bounded("calibrate", "--vidur", "vid", "--gpu", "a100-80gb", "--out", "p.json", cwd=tmp_path, timeout=60)
    assert_refused(r, "all_reduce.csv", "FIFO")
    assert not (tmp_path / "p.json").exists()
