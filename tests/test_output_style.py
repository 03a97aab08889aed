"""One output style: the metrics and their names, absolute SLOs, the table renderer,
friendly model names and SM shares, output files in the format their names say."""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from muxsim.errors import InputError
from muxsim.metrics import flatten, metrics, parse_percentiles, unflatten
from muxsim.tables import render, to_csv


def frame(rows):
    df = pd.DataFrame(rows, columns=["name", "ttft_ms", "tpot_ms", "e2e_ms", "slo_ms", "finished", "finish_s",
                                     "output_len"])
    return df


# name, ttft, tpot, e2e, slo_ms (latency alone), finished, finish_s, output_len
ROWS = [("a", 100.0, 20.0, 1000.0, 500.0, True, 1.0, 10),
        ("a", 600.0, 30.0, 2000.0, 500.0, True, 2.0, 10),
        ("a", 200.0, math.nan, 200.0, 100.0, True, 3.0, 1),  # one token: no TPOT, passes any TPOT target
        ("b", 50.0, 80.0, 900.0, 300.0, True, 4.0, 10),
        ("b", math.nan, math.nan, math.nan, 300.0, False, math.nan, 10)]  # unfinished: misses everything


def test_metrics_golden_with_absolute_targets_and_verdicts():
    targets = {"a": {"ttft_ms": 500.0, "tpot_ms": 50.0, "e2e_ms": None, "target_attainment": 0.5},
               "b": {"ttft_ms": 100.0, "tpot_ms": 50.0, "e2e_ms": None, "target_attainment": 0.5}}
    m = metrics(frame(ROWS), 10.0, [1, 2, 4], targets=targets, target_attainment=0.6, percentiles=(50, 90, 99))
    assert m["requests"] == 5 and m["completed"] == 4
    assert m["offered_rps"] == 0.5 and m["throughput_rps"] == 0.4
    assert m["ttft_ms"]["mean"] == pytest.approx((100 + 600 + 200 + 50) / 4)
    assert m["ttft_ms"]["p50"] == pytest.approx(150.0)
    assert m["tpot_ms"]["mean"] == pytest.approx((20 + 30 + 80) / 3)
    # e2e / slo_ms: 2, 4, 2, 3, unfinished -> within 1x: 0; 2x: 2; 4x: 4
    assert m["slo_attainment"] == {"1": 0.0, "2": 0.4, "4": 0.8}
    slo = m["slo"]
    # ttft: a 100 ok, a 600 miss, a 200 ok, b 50 ok, unfinished miss -> 3/5
    assert slo["ttft_attainment"] == 0.6
    # tpot: 20 ok, 30 ok, none ok, 80 miss, unfinished miss -> 3/5
    assert slo["tpot_attainment"] == 0.6
    assert slo["e2e_attainment"] is None
    # both: rows 0 and 2 -> 2/5
    assert slo["attainment"] == 0.4
    assert slo["met"] is False and slo["target_attainment"] == 0.6
    assert slo["min_scale"] == 4.0  # 0.8 >= 0.6 first at 4x
    assert slo["tpot_ms"] == 50.0 and slo["ttft_ms"] is None  # shared target, differing targets


def test_metrics_without_targets_and_with_no_requests():
    m = metrics(frame(ROWS[:1]), 10.0, [1, 2], percentiles=(50, 99.9))
    assert set(m["ttft_ms"]) == {"mean", "p50", "p99.9"}
    assert m["slo"] == {"target_attainment": 0.99, "ttft_ms": None, "tpot_ms": None, "e2e_ms": None,
                        "ttft_attainment": None, "tpot_attainment": None, "e2e_attainment": None,
                        "attainment": None, "met": None, "min_scale": 2.0}
    empty = metrics(frame([]), 10.0, [1])
    assert empty["requests"] == 0 and empty["ttft_ms"] == {"mean": None, "p50": None, "p90": None, "p99": None}
    assert empty["slo"]["min_scale"] is None


def test_percentiles_are_parsed_and_bounded():
    assert parse_percentiles("95,99.9") == (50, 90, 95, 99, 99.9)
    assert parse_percentiles(None) == (50, 90, 99)
    for bad in ("100", "0", "x"):
        with pytest.raises(InputError, match=r"^--percentiles: "):
            parse_percentiles(bad)


def test_flatten_names_are_the_nested_paths():
    d = {"ttft_ms": {"p99": 1.0, "p99.9": 2.0}, "slo_attainment": {"1.5": 0.5}, "requests": 3}
    flat = flatten(d)
    assert flat == {"ttft_ms.p99": 1.0, "ttft_ms.p99.9": 2.0, "slo_attainment.1.5": 0.5, "requests": 3}
    assert unflatten(flat) == d


def test_renderer_aligns_groups_and_formats_numbers_for_people():
    rows = [{"name": "llm-0", "n": 19958, "x.mean": 19958.3, "x.p99": 0.9981, "ok": True, "gone": None, "w": 0.001},
            {"name": "llm-10", "n": 5, "x.mean": 193.25, "x.p99": 1.0, "ok": False, "gone": None, "w": 7.25}]
    text = render(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["x"]
    assert lines[1].split() == ["name", "n", "mean", "p99", "ok", "gone", "w"]
    assert lines[3].split() == ["llm-0", "19,958", "19,958", "0.998", "yes", "-", "0.0010"]
    assert lines[4].split() == ["llm-10", "5", "193", "1.000", "no", "-", "7.25"]  # w: too spread for one format
    assert "e+" not in text
    assert lines[1].index("mean") + 4 == lines[3].index("19,958", 10) + 6 == lines[4].index(" 193 ") + 4  # right
    assert lines[1].index("ok") == lines[3].index("yes") == lines[4].index("no")  # text left-aligned
    csv = to_csv(rows)
    assert csv.splitlines()[1] == "llm-0,19958,19958.3,0.9981,True,,0.001"
    zeros = render([{"slo_attainment.1": 0.0, "slo_attainment.2": 0.25}, {"slo_attainment.1": 0.0,
                                                                           "slo_attainment.2": 0.5}])
    assert zeros.splitlines()[3].split() == ["0.000", "0.250"]  # a column of zeros, not 0.000000


def test_results_list_models_in_workload_order_not_plan_or_string_order():
    import muxsim as mx
    from muxsim.plan import plan_from_dict
    from muxsim.workload import Workload

    names = ["llm-2", "llm-10", "llm-1"]
    wl = Workload.from_dict({"cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 1},
                             "models": [{"name": n, "model": "llama-7b", "rate": 0.5} for n in names],
                             "duration_s": 5})
    plan = plan_from_dict({"cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 1},
                           "meshes": [{"gpus": [0], "units": [{"name": n, "model": "llama-7b", "decode_sm": 0.3,
                                                               "kv_share": 0.3} for n in sorted(names)]}]})
    res = mx.simulate(plan, wl)
    assert list(res.per_llm) == names
    assert [r["name"] for r in res.rows()] == [*names, "total"]
    assert list(res.run["models"]) == names


@pytest.mark.parametrize(("alias", "name"), [("meta-llama/Llama-2-7b-hf", "llama-2-7b"),
                                             ("META-LLAMA/LLAMA-2-70B-CHAT-HF", "llama-2-70b"),
                                             ("huggyllama/llama-30b", "llama-30b"),
                                             ("meta-llama/Llama-3.1-8B-Instruct", "llama-3-8b"),
                                             ("Qwen/Qwen2.5-72B-Instruct", "qwen2.5-72b"),
                                             ("llama2-13b", "llama-2-13b"), ("Mistral-7B", "mistral-7b")])
def test_hugging_face_ids_and_aliases_resolve_to_catalog_models(alias, name):
    from muxsim.models import ALIASES, CATALOG, resolve_model

    assert alias.lower() in ALIASES or alias.lower() in CATALOG
    assert resolve_model(alias) is CATALOG[name]


def test_an_unknown_model_suggests_the_close_one():
    from muxsim.models import resolve_model

    with pytest.raises(InputError, match=r"unknown model 'llama2-7' \(did you mean 'llama2-7b'\?"):
        resolve_model("llama2-7")


@pytest.mark.parametrize(("text", "share"), [("50%", 0.5), ("0.5", 0.5), ("50", 0.5), ("100%", 1.0), ("1", 1.0),
                                             ("12.5%", 0.125)])
def test_sm_shares_in_one_convention(text, share):
    from muxsim.cli.common import parse_sm_share

    assert parse_sm_share(text, "--sm") == share


@pytest.mark.parametrize("text", ["0", "1.5", "150%", "-10%", "abc", "inf", "0.001", "0.5%", "1e-300", "x" * 100])
def test_sm_shares_out_of_range_are_refused(text):
    from muxsim.cli.common import parse_sm_share

    with pytest.raises(InputError, match=r"^--sm: "):
        parse_sm_share(text, "--sm")


def test_cost_sm_takes_percent_and_fraction_alike():
    def cost(sm):
        r = subprocess.run([sys.executable, "-m", "muxsim.cli.main", "cost", "meta-llama/Llama-2-7b-hf", "--gpu",
                            "a100-80gb", "--phase", "decode", "--batch", "8", "--seq-len", "512", "--sm", sm,
                            "--format", "json"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    a, b = cost("50%"), cost("0.5")
    assert a["latency_ms"] == b["latency_ms"] and a["sm"] == b["sm"] == 0.5


def test_trace_files_are_written_in_the_format_their_name_says(tmp_path):
    from muxsim.workload import read_trace, write_trace

    df = pd.DataFrame({"arrival_s": [0.1, 0.25], "name": ["a", "b"], "prompt_len": [3, 4], "output_len": [5, 6]})
    for name in ("t.csv", "t.csv.gz", "t.jsonl", "t.jsonl.gz", "t.parquet"):
        write_trace(df, tmp_path / name)
        back = read_trace(tmp_path / name)
        pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert gzip.decompress((tmp_path / "t.csv.gz").read_bytes()).startswith(b"arrival_s,name")
    assert (tmp_path / "t.parquet").read_bytes()[:4] == b"PAR1"
    for name in ("t.txt", "t.xlsx", ".parquet"):
        with pytest.raises(InputError, match=r"^out: .* must end in \.csv, \.csv\.gz, \.jsonl"):
            write_trace(df, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["t.csv", "t.csv.gz", "t.jsonl", "t.jsonl.gz", "t.parquet"])


def test_workload_requests_honours_parquet_and_refuses_unknown_suffixes(tmp_path):
    wl = tmp_path / "wl.json"
    wl.write_text(json.dumps({"cluster": {"gpu": "a100-80gb"}, "duration_s": 5,
                              "models": [{"name": "a", "model": "llama-7b", "rate": 2.0}]}))

    def run(out):
        return subprocess.run([sys.executable, "-m", "muxsim.cli.main", "workload", "requests", str(wl), "--out",
                               str(tmp_path / out)], capture_output=True, text=True, timeout=60)

    assert run("r.parquet").returncode == 0
    from muxsim.workload import generate_requests, load_workload

    got = pd.read_parquet(tmp_path / "r.parquet")
    pd.testing.assert_frame_equal(got, generate_requests(load_workload(wl)), check_dtype=False)
    bad = run("r.xls")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --out:") and not (tmp_path / "r.xls").exists()


def test_absolute_slos_validate_and_resolve_per_model():
    from muxsim.workload import Workload

    base = {"cluster": {"gpu": "a100-80gb"}, "duration_s": 5,
            "models": [{"name": "a", "model": "llama-7b", "rate": 1.0, "slo": {"ttft_ms": 200}},
                       {"name": "b", "model": "llama-7b", "rate": 1.0}],
            "slo": {"ttft_ms": 500, "tpot_ms": 50}}
    t = Workload.from_dict(base).slo_targets()
    assert t == {"a": {"ttft_ms": 200, "tpot_ms": 50, "e2e_ms": None, "target_attainment": 0.99},
                 "b": {"ttft_ms": 500, "tpot_ms": 50, "e2e_ms": None, "target_attainment": 0.99}}
    with pytest.raises(InputError, match=r"^slo.ttft_ms: "):
        Workload.from_dict({**base, "slo": {"ttft_ms": -1}})
    with pytest.raises(InputError, match=r"^models\[0\].slo.tpot_s: "):
        Workload.from_dict({**base, "models": [{**base["models"][0], "slo": {"tpot_s": 1}}]})
    assert np.isfinite(Workload.from_dict(base).to_dict()["slo"]["ttft_ms"])
