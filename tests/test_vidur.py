"""Vidur-format profiles: reading, model mapping, fitting a known truth back, the CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import muxsim as mx
from muxsim.costmodel import AnalyticParams
from muxsim.costmodel.params import params_from_document
from muxsim.costmodel.vidur import match_model
from muxsim.costmodel.vidur_fit import calibrate_vidur, params_document
from muxsim.errors import InputError
from muxsim.models import CATALOG
from tests.test_cli_foundation import muxsim
from tests.vidurtree import TRUTH, write_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_tree(tmp_path_factory.mktemp("vidur") / "data" / "profiling")


@pytest.fixture(scope="module")
def fitted(tree):
    return mx.calibrate_vidur(tree.parent.parent, "a100-80gb")  # a checkout holding data/profiling


def test_folders_map_to_catalog_architectures_by_shape_then_name():
    llama = {"n_head": 32, "n_kv_head": 32, "n_embd": 4096, "n_expanded_embd": 11008, "vocab_size": 32768,
             "use_gated_mlp": True}
    assert match_model("meta-llama/Llama-2-7b-hf", llama).spec.name == "llama-2-7b"
    assert match_model("huggyllama/llama-7b", llama).spec.name == "llama-7b"
    big = {"n_head": 64, "n_kv_head": 8, "n_embd": 8192, "n_expanded_embd": 28672, "vocab_size": 128256,
           "use_gated_mlp": True}
    assert match_model("meta-llama/Meta-Llama-3-70B", big).spec.name == "llama-3-70b"
    assert match_model("meta-llama/Llama-2-70b-hf", big | {"vocab_size": 32768}).spec.name == "llama-2-70b"
    phi = {"n_head": 32, "n_kv_head": 32, "n_embd": 2560, "n_expanded_embd": 10240, "vocab_size": 51200,
           "use_gated_mlp": False}
    assert match_model("microsoft/phi-2", phi).spec is CATALOG["phi-2"]
    odd = match_model("acme/Odd-1b", llama | {"n_expanded_embd": 12345})
    assert odd.matched.startswith("inline") and odd.spec.intermediate == 12345 and odd.spec.name == "odd-1b"


def test_fit_recovers_the_truth_it_was_generated_from(fitted):
    p = fitted.params
    for name in ("gemm_eff", "gemm_big_eff", "bw_eff", "norm_eff", "rope_eff", "act_eff", "add_eff", "embed_eff"):
        assert getattr(p, name) == pytest.approx(getattr(TRUTH, name), rel=0.03), name
    for name in ("gemm_min_us", "rope_min_us", "add_min_us"):
        assert getattr(p, name) == pytest.approx(getattr(TRUTH, name), rel=0.15), name
    got = {(a.topology, a.tp): a for a in p.allreduce}
    for want in TRUTH.allreduce:
        a = got[(want.topology, want.tp)]
        assert a.latency_us == pytest.approx(want.latency_us, rel=0.05)
        assert a.busbw_gbps == pytest.approx(want.busbw_gbps, rel=0.05)
    rep = fitted.calibration
    assert {m["model"] for m in rep.models} == {"llama-2-7b", "llama-2-13b", "odd-1b"}
    assert rep.in_sample["layer"]["ape_pct"]["p50"] < 1.5  # 1% noise
    # the engine: components summed (schedule + sampler + prepare + process + Ray), TP>1 apart
    ray = rep.engines["vllm-2024-ray"]
    assert ray["step_overhead_ms"] == pytest.approx(0.02 + 0.5 + 0.3 + 0.05 + 0.2, rel=1e-6)
    assert ray["seq_overhead_us"] == pytest.approx((0.016 + 0.006 + 0.015 + 0.005) * 1e3, rel=1e-6)
    assert ray["logit_overhead_ns"] == pytest.approx(1.5e-5 * 1e6, rel=1e-6)
    assert ray["tp_overhead_ms"] == pytest.approx(0.45 + 5.9, rel=1e-6)
    lean = rep.engines["lean"]
    assert lean["tp_overhead_ms"] == 0.0 and lean["step_overhead_ms"] == pytest.approx(0.87, rel=1e-6)


def test_params_document_round_trips_into_the_same_model(fitted, tmp_path):
    doc = params_document(fitted)
    assert set(doc["provenance"]) >= {"source", "files", "fit", "fitted", "analytic", "error_in_sample"}
    assert "compute/a100/meta-llama/Llama-2-7b-hf/mlp.csv.xz" in doc["provenance"]["files"]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    again = mx.cost_model("a100-80gb", params=path)
    assert again.params == fitted.params
    assert again.decode_ms("llama-2-13b", 16, 700, tp=2) == fitted.decode_ms("llama-2-13b", 16, 700, tp=2)


def test_plain_csv_tree_reads_the_same_as_compressed(tmp_path, tree):
    plain = write_tree(tmp_path / "plain", compress=False)
    from muxsim.costmodel.vidur_fit import load_vidur

    a, b = load_vidur(tree, "a100-80gb"), load_vidur(plain, "a100-80gb")
    pd.testing.assert_frame_equal(a.compute, b.compute)
    pd.testing.assert_frame_equal(a.allreduce, b.allreduce)


def test_cli_calibrate_and_fidelity(tree, tmp_path):
    out = tmp_path / "params.json"
    r = muxsim("calibrate", "--vidur", str(tree), "--gpu", "a100-80gb", "--source", "test tree", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "layer (profiled operators + two all-reduces), in sample: median" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["provenance"]["source"] == "test tree" and doc["engine"] == "vllm-2024-ray"
    png = tmp_path / "fid.png"
    r = muxsim("fidelity", "--vidur", str(tree), "--params", str(out), "--plot", str(png), "--format", "json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    s = res["gpus"]["a100-80gb"]
    assert s["layer"]["ape_pct"]["p50"] < 1.5 and {r["tp"] for r in s["by_tp"]} == {1, 2}
    assert {r["group"] for r in s["by_operator"]} == {"gemm", "norm", "rope", "act", "add", "embedding"}
    assert png.read_bytes()[:4] == b"\x89PNG"
    r = muxsim("fidelity", "--vidur", str(tree), "--params", "datasheet")
    assert r.returncode == 0 and "datasheet parameters" in r.stdout and "by operator group" in r.stdout
    assert "ape_pct" in r.stdout and "wrote" not in r.stdout  # a figure only when asked for


def test_fidelity_formats_share_the_house_metric_names(tree):
    """json nests (ape_pct.p50), csv and the text tables flatten with dots, markdown shows
    the text cells: one naming, one renderer."""
    import io

    from muxsim.metrics import flatten

    base = ("fidelity", "--vidur", str(tree), "--gpu", "a100-80gb", "--params", "datasheet")
    doc = json.loads(muxsim(*base, "--format", "json").stdout)["gpus"]["a100-80gb"]
    assert set(doc["layer"]) == {"points", "ape_pct", "bias_pct"} and set(doc["layer"]["ape_pct"]) == {"p50", "p90"}
    rows = pd.read_csv(io.StringIO(muxsim(*base, "--format", "csv").stdout), keep_default_na=False)
    layer = rows[rows["table"] == "layer"].iloc[0]
    assert layer["ape_pct.p50"] == pytest.approx(doc["layer"]["ape_pct"]["p50"], rel=1e-12)
    by_tp = rows[rows["table"] == "by_tp"]
    assert [flatten(r)["bias_pct"] for r in doc["by_tp"]] == pytest.approx(by_tp["bias_pct"].tolist(), rel=1e-12)
    text = muxsim(*base).stdout
    md = muxsim(*base, "--format", "markdown").stdout
    assert "ape_pct" in text and "| group | points | ape_pct.p50 | ape_pct.p90 | bias_pct |" in md
    p50 = f"{doc['layer']['ape_pct']['p50']:.1f}%"
    assert p50 in text.splitlines()[0] and p50 in md.splitlines()[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--gpu", "a100-80gb"], "error: calibrate: give a PROFILE or --vidur DIR"),
     (["--vidur", "{tree}"], "error: --gpu: required with --vidur"),
     (["--vidur", "{tree}", "--gpu", "h100-80gb"], "error: vidur: no compute/h100/ folder for h100-80gb"),
     (["--vidur", "{missing}", "--gpu", "a100-80gb"], "error: vidur: "),
     (["--vidur", "{tree}", "--gpu", "a100-80gb", "--train", "tp == 1"], "error: --train: not with --vidur")],
)
def test_calibrate_vidur_bad_input_is_one_line_exit_2(tree, tmp_path, args, message):
    out = tmp_path / "p.json"
    args = [a.format(tree=tree, missing=tmp_path / "nowhere") for a in args]
    r = muxsim("calibrate", *args, "--out", str(out))
    assert r.returncode == 2 and r.stderr.startswith(message), r.stderr
    assert r.stderr.count("\n") == 1 and not out.exists()


def test_a_file_missing_a_column_names_it(tmp_path):
    root = write_tree(tmp_path / "t", compress=False)
    f = root / "compute" / "a100" / "acme" / "Odd-1b" / "mlp.csv"
    pd.read_csv(f).drop(columns=["num_tokens"]).to_csv(f, index=False)
    with pytest.raises(InputError, match=r"Odd-1b/mlp\.csv': missing column\(s\) num_tokens"):
        calibrate_vidur(root, "a100-80gb")


def test_allreduce_rows_and_engine_presets_are_validated():
    with pytest.raises(InputError, match=r"params\.allreduce\[0\]\.topology: must be one of"):
        AnalyticParams.from_dict({"allreduce": [{"topology": "mesh", "tp": 2, "latency_us": 1, "busbw_gbps": 1}]})
    with pytest.raises(InputError, match=r"params\.allreduce\[0\]\.busbw_gbps: must be in \(0, "):
        AnalyticParams.from_dict({"allreduce": [{"topology": "nvswitch", "tp": 2, "latency_us": 1,
                                                 "busbw_gbps": -3}]})
    with pytest.raises(InputError, match="engine: unknown preset 'turbo'"):
        params_from_document({"params": {}, "engine": "turbo"})
    with pytest.raises(InputError, match=r"params\.gemm_min_us: must be in \[0, "):
        AnalyticParams.from_dict({"gemm_min_us": -1})
    own = params_from_document({"params": {}, "engine": "mine", "engines": {"mine": {"tp_overhead_ms": 2.5}}})
    assert own.tp_overhead_ms == 2.5 and own.step_overhead_ms == AnalyticParams().step_overhead_ms
