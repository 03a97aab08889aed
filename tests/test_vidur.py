"""Vidur-format profiles: reading, model mapping, fitting a known truth back, the CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import muxsim as mx
from muxsim.costmodel import AnalyticCostModel, AnalyticParams
from muxsim.costmodel.fidelity import adds_timed
from muxsim.costmodel.params import AllReduceFit, params_from_document
from muxsim.costmodel.vidur import OPERATORS, match_model
from muxsim.costmodel.vidur_fit import STRUCTURE, calibrate_vidur, params_document
from muxsim.errors import InputError
from muxsim.models import CATALOG
from tests.test_cli_foundation import muxsim

TOKENS = [1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048]
TRUTH = replace(AnalyticParams(**STRUCTURE), gemm_eff=0.68, gemm_big_eff=0.77, bw_eff=0.8, gemm_min_us=5.0,
                norm_eff=0.36, norm_min_us=1.0, norm_row_ns=0.3, rope_eff=0.45, rope_min_us=2.3, act_eff=0.5,
                act_min_us=2.0, add_eff=0.93, add_min_us=1.1, embed_eff=0.15, embed_min_us=2.5,
                allreduce=(AllReduceFit("nvswitch", 2, 45.0, 170.0), AllReduceFit("pairwise-nvlink", 2, 40.0, 190.0)))
SHAPES = {"meta-llama/Llama-2-7b-hf": "llama-2-7b", "meta-llama/Llama-2-13b-hf": "llama-2-13b",
          "acme/Odd-1b": {"layers": 1, "hidden": 2048, "heads": 16, "kv_heads": 4, "intermediate": 5504, "vocab": 1000}}


def write_tree(root, noise=0.01, compress=True, seed=0):
    """A small Vidur tree whose timings come from TRUTH (times 1 +- noise)."""
    rng = np.random.default_rng(seed)
    truth = AnalyticCostModel("a100-80gb", TRUTH)
    ext = ".csv.xz" if compress else ".csv"
    for folder, model in SHAPES.items():
        spec = mx.resolve_model(model)
        rows = []
        for tp in (1, 2):
            ops = truth.operator_ms(spec, np.array(TOKENS, float), tp)
            for i, t in enumerate(TOKENS):
                row = {"n_head": spec.heads, "n_kv_head": spec.kv_heads, "n_embd": spec.hidden,
                       "n_expanded_embd": spec.intermediate, "vocab_size": spec.vocab, "use_gated_mlp": True,
                       "num_tokens": t, "num_tensor_parallel_workers": tp}
                for op, kernel in OPERATORS.items():
                    ms = ops[kernel][i] * (adds_timed(spec) if kernel == "add" else 1)
                    row[f"time_stats.{op}.median"] = round(float(ms * math.exp(rng.normal(0, noise))), 6)
                rows.append(row)
        d = root / "compute" / "a100" / folder
        d.mkdir(parents=True)
        pd.DataFrame(rows).to_csv(d / f"mlp{ext}", index=False)
    for topo, suffix in (("nvswitch", "dgx"), ("pairwise-nvlink", "pairwise_nvlink")):
        node = AnalyticCostModel(replace(truth.gpu, node_topology=topo), TRUTH)
        sizes = np.unique(np.geomspace(2048, 64 << 20, 60).astype(int))
        ms = node.allreduce_ms(2, sizes) * np.exp(rng.normal(0, noise, len(sizes)))
        d = root / "network" / f"a100_{suffix}"
        d.mkdir(parents=True)
        pd.DataFrame({"size": sizes, "num_workers": 2, "devices_per_node": 2, "collective": "all_reduce",
                      "time_stats.all_reduce.median": ms}).to_csv(d / f"all_reduce{ext}", index=False)
    rows = []
    for model, tp, vocab in (("meta-llama/Llama-2-7b-hf", 1, 32000), ("acme/Odd-1b", 2, 1000)):
        for b in (8, 16, 32, 64, 128):
            rows.append({"model_name": model, "batch_size": b, "tensor_parallel_degree": tp,
                         "schedule_median": 0.02 + 0.016 * b, "sampler_e2e_median": 0.5 + 1.5e-5 * b * vocab,
                         "prepare_inputs_e2e_median": 0.3 + 0.006 * b + (0.45 if tp > 1 else 0),
                         "process_model_outputs_median": 0.05 + 0.015 * b,
                         "ray_comm_time_mean": 0.2 + 0.005 * b + (5.9 if tp > 1 else 0)})
    d = root / "cpu_overheads" / "a100"
    d.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(d / f"cpu_overheads{ext}", index=False)
    return root


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
