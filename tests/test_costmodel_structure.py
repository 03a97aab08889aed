"""The analytic model's structure: a step is its kernels, collectives and engine overhead."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import muxsim as mx
from muxsim.costmodel import AnalyticCostModel, AnalyticParams, default_params
from muxsim.costmodel.params import FITTED, engine_preset
from muxsim.gpus import CATALOG as GPUS
from muxsim.models import resolve_model

CM = AnalyticCostModel("a100-80gb")


@pytest.mark.parametrize(("model", "tp", "tokens", "seqs"), [("llama-2-7b", 1, 1, 1), ("llama-2-7b", 2, 3000, 6),
                                                            ("llama-2-70b", 8, 64, 64), ("phi-2", 1, 512, 2)])
def test_a_step_is_layers_of_kernels_plus_head_collectives_and_engine(model, tp, tokens, seqs):
    spec = resolve_model(model)
    pairs, kv = tokens * 300.0, tokens * 300.0
    ops = CM.operator_ms(spec, tokens, tp, attn_pairs=pairs, kv_tokens=kv)
    step = CM.forward_terms(spec, tokens, seqs, pairs, kv, tp)
    layer = (ops["qkv"] + ops["o"] + ops["up"] + ops["down"] + spec.norms_per_layer * ops["norm"] + ops["rope"]
             + ops["kv_write"] + ops["act"] + 2 * ops["add"] + ops["attention"])
    head = ops["embed"] + ops["norm"] + float(CM.operator_ms(spec, seqs, tp)["lm_head"])
    comm = float(step.comm_ms)
    want = spec.layers * layer + head + comm + float(CM.overhead_ms(spec, seqs, tp))
    assert float(step.total_ms) == pytest.approx(float(want), rel=1e-12)
    if tp > 1:  # two all-reduces a layer, one after the embedding, and the logits gather
        assert comm > (2 * spec.layers + 1) * float(ops["all_reduce"])
    else:
        assert comm == 0.0
    # the attention core grows with its query-key pairs and KV reads; nothing else does
    more = CM.forward_terms(spec, tokens, seqs, 10 * pairs, 10 * kv, tp)
    assert float(more.total_ms) > float(step.total_ms)
    assert float(more.overhead_ms) == float(step.overhead_ms) and float(more.comm_ms) == comm


def test_small_kernels_cost_their_minimum_and_large_ones_their_bytes():
    ops = CM.operator_ms("llama-2-7b", np.array([1.0, 2.0, 65536.0]), 1)
    p = CM.params
    assert ops["add"][0] == pytest.approx(p.add_min_us * 1e-3, rel=0.02)
    assert ops["qkv"][0] > p.gemm_min_us * 1e-3
    big = 3 * 2 * 4096 * 65536 / (CM.gpu.hbm_bw * p.add_eff) * 1e3
    assert ops["add"][2] == pytest.approx(big, rel=0.01)
    # a skinny GEMM streams its weights: two tokens cost what one does (to 0.1%)
    assert ops["qkv"][0] < ops["qkv"][1] < 1.001 * ops["qkv"][0]


def test_pairwise_nvlink_nodes_cross_pcie_beyond_two_gpus():
    pair = AnalyticCostModel(replace(GPUS["a100-80gb"], node_topology="pairwise-nvlink"))
    size = 16 << 20
    assert float(pair.allreduce_ms(2, size)) == pytest.approx(float(CM.allreduce_ms(2, size)), rel=0.35)
    assert float(pair.allreduce_ms(4, size)) > 4 * float(CM.allreduce_ms(4, size))
    # no measured row for PCIe-only GPUs: the datasheet link at comm_eff
    l40s = AnalyticCostModel("l40s")
    p = l40s.params
    want = p.comm_latency_us * 1e-3 + 2 * 1 / 2 * size / (GPUS["l40s"].pcie_bw * p.comm_eff) * 1e3
    assert float(l40s.allreduce_ms(2, size)) == pytest.approx(want, rel=1e-12)


def test_engine_presets_order_and_tp_surcharge():
    ray, lean, none = (AnalyticCostModel("a100-80gb", engine=e) for e in ("vllm-2024-ray", "lean", "none"))
    for tp in (1, 2, 8):
        a, b, c = (float(m.overhead_ms("llama-2-70b" if tp > 1 else "llama-2-7b", 32, tp)) for m in (ray, lean, none))
        assert a > b > c == 0.0
    surcharge = float(ray.overhead_ms("llama-2-13b", 32, 2)) - float(ray.overhead_ms("llama-2-13b", 32, 1))
    assert surcharge == pytest.approx(engine_preset("vllm-2024-ray")["tp_overhead_ms"])
    # the overhead grows with the batch and the vocabulary (sampling)
    assert float(ray.overhead_ms("llama-3-8b", 64, 1)) > float(ray.overhead_ms("llama-2-7b", 64, 1)) > \
        float(ray.overhead_ms("llama-2-7b", 8, 1))
    assert mx.cost_model("a100-80gb").params == ray.params  # the default is MuxServe's engine


def test_every_catalog_gpu_has_labelled_defaults():
    for name, gpu in GPUS.items():
        params, source = default_params(name)
        if name in FITTED:
            assert source.startswith("fitted to ") and params.allreduce
        elif name == "cpu":
            assert params == AnalyticParams() and "datasheet" in source
        else:
            assert source.startswith("scaled from the ") and "fit" in source
        cm = AnalyticCostModel(gpu)
        assert cm.params_source == source
        assert np.isfinite(cm.decode_ms("llama-7b", 4, 100))
    assert default_params("h200-141gb")[1].startswith("scaled from the h100-80gb fit")
    assert default_params("a10g")[1].startswith("scaled from the a100-80gb fit")


def test_newer_gpus_and_fitted_defaults_are_faster_where_the_datasheet_says():
    h100, h200 = AnalyticCostModel("h100-80gb"), AnalyticCostModel("h200-141gb")
    assert h200.decode_ms("llama-2-70b", 64, 2000, tp=4) < h100.decode_ms("llama-2-70b", 64, 2000, tp=4)
    assert h100.prefill_ms("llama-2-7b", 4, 1024) < CM.prefill_ms("llama-2-7b", 4, 1024)
