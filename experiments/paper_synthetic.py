"""The paper's synthetic experiment (MuxServe, Figure 5 setup): 19 LLaMA models on
4 x 8 A100-80GB, power-law popularity rate_i = R * (i+1)^-alpha, Poisson arrivals,
ShareGPT lengths. For every (alpha, R) each placement algorithm plans the workload, the
simulator scores the plan, and one row goes to the CSV; a PNG plots throughput and SLO
attainment against alpha.

    python experiments/paper_synthetic.py                       # R = 40, alpha 0.7 .. 2.1
    python experiments/paper_synthetic.py --max-rates 20,30,40,50 --duration 240
    python experiments/paper_synthetic.py --max-rates 40,50 --engine lean   # -> paper_synthetic_lean.*

``--engine`` picks the cost model's per-step engine overhead (default vllm-2024-ray, the
engine MuxServe ran on); the results then go to files named after it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

import muxsim as mx
from muxsim.io import write_bytes_atomic, write_text_atomic

MIX = "12xllama-7b,4xllama-13b,2xllama-30b,1xllama-65b"


def run(alphas: list[float], max_rates: list[float], algorithms: list[str], duration: float, seed: int,
        slo_scale: str = "8", engine: str | None = None) -> pd.DataFrame:
    cost = mx.cost_model("a100-80gb", engine=engine)
    rows = []
    for rate in max_rates:
        for alpha in alphas:
            wl = mx.synth_workload(MIX, alpha=alpha, max_rate=rate, gpu="a100-80gb", nodes=4, gpus_per_node=8,
                                   duration=duration, seed=seed)
            offered = sum(m.rate for m in wl.models)
            for algorithm in algorithms:
                t0 = time.perf_counter()
                plan = mx.place(wl, algorithm=algorithm, cost=cost)
                placed_s = time.perf_counter() - t0
                agg = mx.simulate(plan, wl, seed=seed, cost=cost).aggregate
                rows.append({  # columns named as muxsim names metrics (docs/design.md)
                    "max_rate": rate, "alpha": alpha, "algorithm": algorithm, "mode": plan.mode,
                    "offered_rps": offered, "throughput_rps": agg["throughput_rps"],
                    "estimate.throughput_rps": plan.estimate.get("throughput_rps", float("nan")),
                    "completed": agg["completed"], "requests": agg["requests"],
                    f"slo_attainment.{slo_scale}": agg["slo_attainment"][slo_scale],
                    "ttft_ms.p99": agg["ttft_ms"]["p99"], "tpot_ms.p99": agg["tpot_ms"]["p99"],
                    "placement_s": placed_s,
                })
                print(f"R={rate:g} alpha={alpha:g} {algorithm:>13}: {agg['throughput_rps']:.1f} req/s "
                      f"of {offered:.1f} offered, SLO@{slo_scale}x {agg['slo_attainment'][slo_scale]:.3f}", flush=True)
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame, slo_scale: str = "8") -> plt.Figure:
    rates = sorted(df["max_rate"].unique())
    fig, axes = plt.subplots(2, len(rates), figsize=(4 * len(rates), 6), squeeze=False)
    for j, rate in enumerate(rates):
        d = df[df["max_rate"] == rate]
        for algorithm, g in d.groupby("algorithm", sort=False):
            axes[0, j].plot(g["alpha"], g["throughput_rps"], marker="o", label=algorithm)
            axes[1, j].plot(g["alpha"], g[f"slo_attainment.{slo_scale}"], marker="o", label=algorithm)
        axes[0, j].set_title(f"max rate {rate:g} req/s")
        axes[1, j].set_xlabel("alpha")
    axes[0, 0].set_ylabel("throughput (req/s)")
    axes[1, 0].set_ylabel(f"SLO attainment at {slo_scale}x")
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alphas", default="0.7,0.9,1.3,1.7,2.1")
    ap.add_argument("--max-rates", default="40")
    ap.add_argument("--algorithms", default="muxserve,spatial,spatial-min,temporal")
    ap.add_argument("--duration", type=float, default=240.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--engine", help="engine overhead preset of the cost model (default vllm-2024-ray)")
    ap.add_argument("--out-dir", default="experiments/results")
    args = ap.parse_args()
    df = run([float(a) for a in args.alphas.split(",")], [float(r) for r in args.max_rates.split(",")],
             args.algorithms.split(","), args.duration, args.seed, engine=args.engine)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)  # muxsim's writers never create folders
    stem = "paper_synthetic" if args.engine in (None, "vllm-2024-ray") else f"paper_synthetic_{args.engine}"
    write_text_atomic(out / f"{stem}.csv", df.to_csv(index=False))
    fig = plot(df)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    write_bytes_atomic(out / f"{stem}.png", buf.getvalue())
    print(f"wrote {out / (stem + '.csv')} and {out / (stem + '.png')}")


if __name__ == "__main__":
    main()
