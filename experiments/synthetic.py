"""The end-to-end synthetic study: 19 LLMs on 4 x 8 A100-80GB, alpha in {0.7, 0.9, 1.3,
1.7, 2.1}, max rate 40 x {0.5, 0.75, 1, 1.25}, every placement algorithm
(``synthetic.yaml``). Writes ``synthetic.csv``, ``synthetic_throughput.png``
(throughput against offered load, one panel per alpha) and ``synthetic_slo.png`` (SLO
attainment against SLO scale at the lowest and highest load, one panel per alpha).

    python experiments/synthetic.py                      # local, 2 workers
    python experiments/synthetic.py --backend ray        # a local Ray of 2 CPUs
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from common import algorithms, parser, run, save, slo_curve, style, write_csv

KEEP = ["workload.alpha", "workload.rate_scale", "algorithm", "status", "offered_rps", "throughput_rps",
        "estimate.throughput_rps", "plan.mode", "plan.gpus", "ttft_ms.p99", "tpot_ms.p99", "time.placement_s",
        "error"]


def plot_throughput(df: pd.DataFrame) -> plt.Figure:
    alphas = sorted(df["workload.alpha"].unique())
    fig, axes = plt.subplots(1, len(alphas), figsize=(3.2 * len(alphas), 3.4), sharey=False)
    for ax, alpha in zip(axes, alphas):
        d = df[(df["workload.alpha"] == alpha) & (df["status"] == "ok")]
        for a in algorithms(df):
            g = d[d["algorithm"] == a].sort_values("offered_rps")
            ax.plot(g["offered_rps"], g["throughput_rps"], **style(a))
        ax.set_title(f"alpha = {alpha:g}")
        ax.set_xlabel("offered load (req/s)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("throughput (req/s)")
    axes[-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle("19 LLMs on 32 A100s: simulated throughput", y=1.02)
    fig.tight_layout()
    return fig


def plot_slo(df: pd.DataFrame, rate_scales: list[float]) -> plt.Figure:
    """One row per rate scale, one panel per alpha: SLO attainment against SLO scale."""
    scales, cols = slo_curve(df)
    alphas = sorted(df["workload.alpha"].unique())
    fig, axes = plt.subplots(len(rate_scales), len(alphas), figsize=(3.2 * len(alphas), 3.0 * len(rate_scales)),
                             sharey=True, squeeze=False)
    for i, rate_scale in enumerate(rate_scales):
        for ax, alpha in zip(axes[i], alphas):
            d = df[(df["workload.alpha"] == alpha) & (df["workload.rate_scale"] == rate_scale) & (df["status"] == "ok")]
            for a in algorithms(df):
                g = d[d["algorithm"] == a]
                if len(g):
                    ax.plot(scales, g[cols].iloc[0].to_numpy(float), **style(a))
            ax.set_xscale("log", base=2)
            ax.set_xticks([1, 2, 4, 8, 16], ["1", "2", "4", "8", "16"])
            ax.set_title(f"alpha = {alpha:g}, max rate {40 * rate_scale:g}", fontsize=10)
            ax.grid(alpha=0.3)
        axes[i, 0].set_ylabel("SLO attainment")
    for ax in axes[-1]:
        ax.set_xlabel("SLO scale (x latency alone)")
    axes[0, -1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle("SLO attainment against SLO scale, at the lowest and the highest load", y=1.0)
    fig.tight_layout()
    return fig


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per alpha at the highest load: each algorithm's throughput and muxserve's ratio to it."""
    top = df[df["workload.rate_scale"] == df["workload.rate_scale"].max()]
    wide = top.pivot_table(index="workload.alpha", columns="algorithm", values="throughput_rps")
    for a in ("spatial-min", "spatial", "temporal"):
        if a in wide and "muxserve" in wide:
            wide[f"muxserve/{a}"] = wide["muxserve"] / wide[a]
    if "flex-slo" in wide and "spatial" in wide:
        wide["flex-slo/spatial"] = wide["flex-slo"] / wide["spatial"]
    return wide.reset_index()


def main() -> None:
    args = parser(__doc__).parse_args()
    df = run("synthetic.yaml", args, "synthetic")
    _, slo_cols = slo_curve(df)
    write_csv(df[KEEP[:-1] + slo_cols + KEEP[-1:]], args, "synthetic.csv")
    save(plot_throughput(df), args, "synthetic_throughput.png")
    rates = sorted(df["workload.rate_scale"].unique())
    save(plot_slo(df, [rates[0], rates[-1]]), args, "synthetic_slo.png")
    s = summary(df)
    write_csv(s, args, "synthetic_summary.csv")
    print(s.to_string(index=False, float_format=lambda x: f"{x:.2f}"))


if __name__ == "__main__":
    main()
