"""A small Vidur ``data/profiling`` tree with timings from a known cost model (the tests
of Vidur reading and fitting, and the hardening tests, build it)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

import muxsim as mx
from muxsim.costmodel import AnalyticCostModel, AnalyticParams
from muxsim.costmodel.fidelity import adds_timed
from muxsim.costmodel.params import AllReduceFit
from muxsim.costmodel.vidur import OPERATORS
from muxsim.costmodel.vidur_fit import STRUCTURE

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
