"""Traces: importing Azure-format logs, merging several onto models, replaying, writing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from muxsim.errors import InputError
from muxsim.workload import (
    Workload,
    generate_requests,
    merge_logs,
    read_request_log,
    read_trace,
    synth_workload,
    write_trace,
)

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def azure_fixture(path, rows):
    """Write an Azure-format log (TIMESTAMP with 7 fractional digits, as the real ones)."""
    lines = [f"2023-11-16 18:{m:02d}:{s:010.7f},{p},{o}\n" for m, s, p, o in rows]
    path.write_text(AZURE_HEADER + "".join(lines))
    return path


CONV = [(15, 46.68059, 374, 44), (15, 50.9951690, 396, 109), (15, 51.2224670, 879, 55),
        (15, 51.2224670, 91, 16), (16, 0.5, 2000, 0), (17, 3.25, 12, 300)]
CODE = [(15, 47.0, 4808, 10), (15, 51.2224670, 3180, 8), (16, 10.125, 110, 27)]


def test_azure_log_keeps_count_order_and_gaps(tmp_path):
    log = read_request_log(azure_fixture(tmp_path / "conv.csv", CONV))
    assert len(log) == len(CONV)
    assert log["prompt_len"].tolist() == [r[2] for r in CONV]
    assert log["output_len"].tolist() == [44, 109, 55, 16, 1, 300]  # 0 generated tokens counts as 1
    t = log["t_s"].to_numpy() - log["t_s"].iloc[0]
    expected = np.array([m * 60 + s for m, s, _, _ in CONV]) - (15 * 60 + 46.68059)
    np.testing.assert_allclose(t, expected, atol=1e-6)


def test_merge_maps_logs_onto_models_on_one_clock(tmp_path):
    conv = read_request_log(azure_fixture(tmp_path / "conv.csv", CONV))
    code = read_request_log(azure_fixture(tmp_path / "code.csv", CODE))
    reqs = merge_logs([conv, code], ["chat", "coder"], time_scale=0.5)
    assert len(reqs) == len(CONV) + len(CODE)
    assert reqs["arrival_s"].iloc[0] == 0.0 and reqs["arrival_s"].is_monotonic_increasing
    # each log's own order survives, and ties keep log order (chat before coder)
    assert reqs.loc[reqs["name"] == "chat", "prompt_len"].tolist() == [r[2] for r in CONV]
    assert reqs.loc[reqs["name"] == "coder", "prompt_len"].tolist() == [r[2] for r in CODE]
    tie = reqs[np.isclose(reqs["arrival_s"], (51.2224670 - 46.68059) * 0.5)]
    assert tie["name"].tolist() == ["chat", "chat", "coder"]
    # time scaling halves every gap: the code log's first request came 0.31941 s after conv's
    first_code = reqs.loc[reqs["name"] == "coder", "arrival_s"].iloc[0]
    assert first_code == pytest.approx((47.0 - 46.68059) * 0.5, abs=1e-6)
    last = reqs["arrival_s"].iloc[-1]
    assert last == pytest.approx(((17 * 60 + 3.25) - (15 * 60 + 46.68059)) * 0.5, abs=1e-6)


def test_numeric_time_columns_and_other_names(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("timestamp,input_tokens,output_tokens\n10.0,5,6\n11.5,7,8\n")
    log = read_request_log(path)
    assert log["t_s"].tolist() == [10.0, 11.5] and log["prompt_len"].tolist() == [5, 7]


@pytest.mark.parametrize(("content", "message"), [
    (None, r"^trace: file '.*log\.csv' does not exist$"),
    ("", r"^trace: file '.*log\.csv' is empty$"),
    (AZURE_HEADER, r"^trace: file '.*log\.csv' has no rows$"),
    ("when,ContextTokens,GeneratedTokens\n1,2,3\n", r"^trace: no time column \(looked for arrival_s"),
    ("TIMESTAMP,Tokens,GeneratedTokens\n1,2,3\n", r"^trace: no prompt-length column"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,2,3\n", r"^trace: column TIMESTAMP holds neither"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n1,2.5,3\n", r"^trace: ContextTokens on row 1 must be a whole number"),
])
def test_bad_logs_are_refused(tmp_path, content, message):
    path = tmp_path / "log.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_request_log(path)


def test_merge_argument_checks():
    log = pd.DataFrame({"t_s": [0.0], "prompt_len": [1], "output_len": [1]})
    with pytest.raises(InputError, match=r"^time_scale: must be > 0, got 0"):
        merge_logs([log], ["a"], time_scale=0)
    with pytest.raises(InputError, match=r"^names: 2 name\(s\) for 1 log\(s\)$"):
        merge_logs([log], ["a", "b"])


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_generated_requests_written_as_a_trace_replay_exactly(tmp_path, suffix):
    wl = synth_workload("3xllama-7b", alpha=1.0, max_rate=20, nodes=1, duration=30, seed=4)
    df = generate_requests(wl)
    path = write_trace(df, tmp_path / f"reqs.{suffix}")
    pd.testing.assert_frame_equal(read_trace(path), df, check_exact=True)
    d = wl.to_dict()
    d.update(arrivals={"process": "trace"}, trace=str(path))
    for m in d["models"]:
        del m["rate"]  # a trace workload may leave rates to the trace
    replay = Workload.from_dict(d)
    pd.testing.assert_frame_equal(generate_requests(replay, seed=99), df, check_exact=True)
    for name in replay.names():
        mine = df[df["name"] == name]
        assert replay.rate_of(name) == pytest.approx(len(mine) / 30)
        assert replay.mean_prompt_len(name) == pytest.approx(mine["prompt_len"].mean())
        assert replay.mean_output_len(name) == pytest.approx(mine["output_len"].mean())


def test_trace_replay_sorts_and_cuts_to_the_duration(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,name,prompt_len,output_len\n5,b,1,2\n1,a,3,4\n5,a,5,6\n12,a,7,8\n")
    wl = Workload.from_dict({
        "cluster": {"gpu": "a100-80gb"}, "duration_s": 10, "arrivals": {"process": "trace"},
        "trace": str(path), "models": [{"name": "a", "model": "llama-7b"}, {"name": "b", "model": "llama-7b"}],
    })
    df = generate_requests(wl)
    assert df["arrival_s"].tolist() == [1.0, 5.0, 5.0]
    assert df["name"].tolist() == ["a", "b", "a"]  # ties keep file order
    assert df["prompt_len"].tolist() == [3, 1, 5]
    assert wl.rate_of("a") == pytest.approx(2 / 10)  # filled from the trace's first 10 s


def test_write_trace_needs_the_columns(tmp_path):
    with pytest.raises(InputError, match=r"^requests: lack column\(s\) name, output_len$"):
        write_trace(pd.DataFrame({"arrival_s": [0.0], "prompt_len": [1]}), tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_trace_model_without_requests_needs_a_rate(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,name,prompt_len,output_len\n1,a,3,4\n")
    d = {"cluster": {"gpu": "a100-80gb"}, "duration_s": 10, "arrivals": {"process": "trace"}, "trace": str(path),
         "models": [{"name": "a", "model": "llama-7b"}, {"name": "idle", "model": "llama-7b"}]}
    with pytest.raises(InputError, match=r"^models\[1\]\.rate: no request of 'idle' arrives in the trace before "
                                         r"duration_s \(10 s\); give its rate$"):
        Workload.from_dict(d)
    d["models"][1]["rate"] = 0.5
    wl = Workload.from_dict(d)
    assert wl.rate_of("idle") == 0.5 and wl.rate_of("a") == pytest.approx(0.1)
    assert (generate_requests(wl)["name"] == "a").all()


def test_import_logs_in_python(tmp_path):
    from muxsim.workload import import_logs, load_workload, save_workload

    conv = azure_fixture(tmp_path / "conv.csv", CONV)
    code = azure_fixture(tmp_path / "code.csv", CODE)
    wl, reqs = import_logs([conv, code], ["llama-3-8b"], ["chat", "coder"], time_scale=2.0,
                           cluster={"gpu": "h100-80gb", "nodes": 1, "gpus_per_node": 2},
                           trace_path=tmp_path / "t.csv")
    assert len(reqs) == len(CONV) + len(CODE) and [m.model for m in wl.models] == ["llama-3-8b", "llama-3-8b"]
    span = (17 * 60 + 3.25) - (15 * 60 + 46.68059)
    last = reqs["arrival_s"].iloc[-1]
    assert last == pytest.approx(2 * span, abs=1e-6)
    assert wl.duration_s == pytest.approx(last + last / (len(reqs) - 1))
    write_trace(reqs, tmp_path / "t.csv")
    save_workload(wl, tmp_path / "wl.json")
    back = load_workload(tmp_path / "wl.json")
    assert back == Workload.from_dict(wl.to_dict())
    pd.testing.assert_frame_equal(generate_requests(back), reqs, check_exact=True)
    with pytest.raises(InputError, match=r"^duration: no request of 'coder' arrives within 0.2 s$"):
        import_logs([conv, code], ["llama-7b"], ["chat", "coder"], duration=0.2)
