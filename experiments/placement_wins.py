"""Placement against the strong spatial baseline: the paper's five synthetic workloads at
max rate 40 and 50, and a realistic multi-model trace (the Azure LLM inference
conversation log spread over 16 models of mixed sizes by power-law popularity).

For every workload each algorithm plans, the simulator scores the plan (seed 0, the
workload's whole duration: the evaluation run), and one row goes to
``placement_wins.csv``. With ``--capacity`` it also asks ``muxsim capacity``'s question
of each algorithm (the fewest GPUs whose plan reaches 99% SLO attainment at 8x) and
writes ``placement_capacity.csv``. With ``--scoring`` it reruns ``flex-slo`` with other
scoring choices (see :func:`scoring_variants`) and writes ``placement_scoring.csv``.

    python experiments/placement_wins.py --capacity --scoring
    python experiments/placement_wins.py --trace PATH/AzureLLMInferenceTrace_conv.csv

The trace is read from ``--trace`` (default: ``$MUXSIM_TRACES/AzureLLMInferenceTrace_conv.csv``,
else ``../shared/traces/`` beside the repository); without it the trace rows are left out.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

import muxsim as mx
from muxsim.io import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
MIX = "12xllama-7b,4xllama-13b,2xllama-30b,1xllama-65b"
# 16 models in popularity order, sizes mixed: 7 of 7-8B, 4 of 13-14B, 2 of 32B, 3 of 70-72B
TRACE_MODELS = ["llama-3-8b", "qwen2.5-14b", "mistral-7b", "llama-3-70b", "qwen2.5-7b", "llama-2-13b",
                "qwen2.5-32b", "llama-3-8b", "llama-2-7b", "qwen2.5-72b", "qwen2.5-14b", "mistral-7b",
                "llama-2-13b", "qwen2.5-32b", "llama-2-70b", "llama-3-8b"]
TRACE_ALPHA = 1.0
TRACE_RATE = 80.0  # req/s over all 16 models: the hour of requests in about 240 s
ALGORITHMS = "flex-slo,flex,muxserve,spatial"
CAPACITY_ALGORITHMS = "flex-slo,muxserve,spatial"
SCALE = "8"


def default_trace() -> Path | None:
    env = os.environ.get("MUXSIM_TRACES")
    base = Path(env) if env else ROOT.parent / "shared" / "traces"
    p = base / "AzureLLMInferenceTrace_conv.csv"
    return p if p.exists() else None


def trace_workload(path: Path, out_dir: Path, rate: float = TRACE_RATE) -> Any:
    """The 16-model Azure workload; its converted trace goes to ``out_dir`` (not the repository)."""
    from muxsim.workload import import_logs, load_workload, save_workload, write_trace

    trace = out_dir / f"azure-conv-16llm-{rate:g}.trace.csv"
    wl, reqs = import_logs([path], TRACE_MODELS, split=len(TRACE_MODELS), alpha=TRACE_ALPHA, rate=rate, truncate=True,
                           trace_path=trace)
    write_trace(reqs, trace)
    save_workload(wl, out_dir / f"azure-conv-16llm-{rate:g}.json")
    return load_workload(out_dir / f"azure-conv-16llm-{rate:g}.json")


def workloads(max_rates: list[float], alphas: list[float], trace: Path | None, tmp: Path) -> list[tuple[str, Any]]:
    out = []
    for rate in max_rates:
        for alpha in alphas:
            out.append((f"paper R{rate:g} a{alpha:g}",
                        mx.synth_workload(MIX, alpha=alpha, max_rate=rate, duration=240, seed=0)))
    if trace is not None:
        out.append((f"azure-conv 16 LLMs {TRACE_RATE:g} req/s", trace_workload(trace, tmp)))
    return out


def evaluate(name: str, wl: Any, algorithm: str, **options: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    res = mx.solve_placement(wl, algorithm, **options)
    placed_s = time.perf_counter() - t0
    agg = mx.simulate(res.plan, wl, seed=0).aggregate
    return {"workload": name, "algorithm": algorithm, "offered_rps": agg["offered_rps"],
            "estimate.throughput_rps": res.objective, "throughput_rps": agg["throughput_rps"],
            f"slo_attainment.{SCALE}": agg["slo_attainment"][SCALE], "ttft_ms.p99": agg["ttft_ms"]["p99"],
            "tpot_ms.p99": agg["tpot_ms"]["p99"], "placement_s": placed_s, "chosen": res.stats.get("chosen", "")}


DEFAULT_SCORING = "default (fresh draw, seed+1, 60 s)"


def scoring_variants(wl: Any) -> dict[str, dict[str, Any]]:
    """flex-slo's other scoring choices (the default, a fresh draw with seed + 1 over 60 s,
    is the main row): the whole duration of that draw; for the trace, its own 10 s blocks
    resampled (in-sample: the scored requests are requests of the evaluation run); and
    the oracle that simulates exactly the evaluation run: not a placement algorithm, an
    upper bound on what scoring can pick."""
    out: dict[str, dict[str, Any]] = {"fresh draw, seed+1, whole duration": {"score_horizon_s": float(wl.duration_s)}}
    if wl.trace is not None:
        out["trace blocks, 60 s (in-sample)"] = {"score_sample": "blocks"}
    out["oracle (evaluation run)"] = {"score_sample": "oracle"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-rates", default="40,50")
    ap.add_argument("--alphas", default="0.7,0.9,1.3,1.7,2.1")
    ap.add_argument("--algorithms", default=ALGORITHMS)
    ap.add_argument("--trace", type=Path, default=None, help="Azure conversation log (default: see above)")
    ap.add_argument("--no-trace", action="store_true", help="leave the trace workload out")
    ap.add_argument("--capacity", action="store_true", help="also the GPUs each algorithm needs")
    ap.add_argument("--capacity-algorithms", default=CAPACITY_ALGORITHMS)
    ap.add_argument("--scoring", action="store_true", help="also flex-slo under other scoring choices")
    ap.add_argument("--out-dir", default="experiments/results")
    args = ap.parse_args()
    trace = None if args.no_trace else (args.trace or default_trace())
    algorithms = args.algorithms.split(",")
    out = Path(args.out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        wls = workloads([float(r) for r in args.max_rates.split(",")], [float(a) for a in args.alphas.split(",")],
                        trace, Path(tmp))
        rows, cap_rows, score_rows = [], [], []
        for name, wl in wls:
            for algorithm in algorithms:
                r = evaluate(name, wl, algorithm)
                rows.append(r)
                print(f"{name:>32} {algorithm:>9}: {r['throughput_rps']:.1f} of {r['offered_rps']:.1f} req/s, "
                      f"SLO@{SCALE}x {r[f'slo_attainment.{SCALE}']:.3f} ({r['placement_s']:.1f} s)", flush=True)
            if args.scoring:
                main_row = next((r for r in rows if r["workload"] == name and r["algorithm"] == "flex-slo"), None)
                if main_row is not None:
                    score_rows.append({"scoring": DEFAULT_SCORING, **main_row})
                for label, opts in scoring_variants(wl).items():
                    r = evaluate(name, wl, "flex-slo", **opts)
                    score_rows.append({"scoring": label, **r})
                    print(f"{name:>32} flex-slo [{label}]: {r['throughput_rps']:.1f} req/s, "
                          f"SLO@{SCALE}x {r[f'slo_attainment.{SCALE}']:.3f}", flush=True)
            if args.capacity:
                for algorithm in args.capacity_algorithms.split(","):
                    c = mx.capacity(wl, algorithm, slo_scale=float(SCALE), target=0.99)
                    cap_rows.append({"workload": name, "algorithm": algorithm, "gpus": c.gpus, "nodes": c.nodes,
                                     "attainment": c.attainment,
                                     "curve": " ".join(f"{p['gpus']}:{p['attainment']:.3f}" for p in c.curve)})
                    print(f"{name:>32} {algorithm:>9}: {c.gpus} GPUs for 99% at {SCALE}x", flush=True)
            _write(out, rows, score_rows, cap_rows)  # after each workload: a long run keeps what it measured
    print(f"wrote {out}/placement_*.csv")


def _write(out: Path, rows: list[dict[str, Any]], score_rows: list[dict[str, Any]],
           cap_rows: list[dict[str, Any]]) -> None:
    write_text_atomic(out / "placement_wins.csv", pd.DataFrame(rows).to_csv(index=False))
    if score_rows:
        write_text_atomic(out / "placement_scoring.csv", pd.DataFrame(score_rows).to_csv(index=False))
    if cap_rows:
        write_text_atomic(out / "placement_capacity.csv", pd.DataFrame(cap_rows).to_csv(index=False))


if __name__ == "__main__":
    main()
