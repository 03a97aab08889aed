"""The real-trace study (``trace.yaml``): the Azure 2023 code trace spread over 16 LLMs
by popularity, at four total rates, with popularity fixed or drifting (ranks rotating
every quarter of the run). Writes ``trace.csv`` and ``trace.png`` (throughput and SLO
attainment at 8x against the offered rate, fixed and drifting popularity).

    python experiments/trace.py --trace PATH/AzureLLMInferenceTrace_code.csv

Without ``--trace`` the trace is looked for beside the repository
(``../shared/traces/``); when it is not there the study is skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from common import REPO, algorithms, parser, run, save, style, write_csv

from muxsim.sweeps.spec import load_spec

DEFAULT = REPO.parent / "shared" / "traces" / "AzureLLMInferenceTrace_code.csv"
KEEP = ["workload.rate", "workload.drift_windows", "algorithm", "status", "requests", "completed", "offered_rps",
        "throughput_rps", "plan.gpus", "slo_attainment.1", "slo_attainment.2", "slo_attainment.4", "slo_attainment.8",
        "slo_attainment.16", "ttft_ms.p99", "tpot_ms.p99", "run.preemptions", "error"]


def plot(df: pd.DataFrame) -> plt.Figure:
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.4), sharex=True)
    for j, (windows, label) in enumerate(((1, "fixed popularity"), (4, "drifting popularity (4 windows)"))):
        d = df[(df["workload.drift_windows"] == windows) & (df["status"] == "ok")]
        for a in algorithms(df):
            g = d[d["algorithm"] == a].sort_values("workload.rate")
            axes[0, j].plot(g["workload.rate"], g["throughput_rps"], **style(a))
            axes[1, j].plot(g["workload.rate"], g["slo_attainment.8"], **style(a))
        axes[0, j].set_title(label)
        axes[1, j].set_xlabel("trace rate (req/s, all 16 LLMs)")
        for ax in axes[:, j]:
            ax.set_xscale("log", base=2)
            ax.grid(alpha=0.3)
    axes[1, 1].set_xticks(sorted(df["workload.rate"].unique()), [f"{r:g}" for r in sorted(df["workload.rate"].unique())])
    axes[0, 0].set_ylabel("throughput (req/s)")
    axes[1, 0].set_ylabel("SLO attainment at 8x")
    axes[0, 1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle("Azure 2023 code trace over 16 LLMs on 32 A100s", y=1.0)
    fig.tight_layout()
    return fig


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--trace", default=str(DEFAULT), help="the Azure trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens)")
    args = ap.parse_args()
    if not Path(args.trace).is_file():
        print(f"skipped: no trace at {args.trace} (give --trace PATH)")
        sys.exit(0)
    spec = load_spec(Path(__file__).with_name("trace.yaml")).model_dump()
    spec["base"]["workload"]["path"] = args.trace
    df = run(spec, args, "trace")
    write_csv(df[KEEP], args, "trace.csv")  # not the trace's path: a machine's
    save(plot(df), args, "trace.png")
    top = df[df["workload.rate"] == df["workload.rate"].max()]
    print(top.pivot_table(index="workload.drift_windows", columns="algorithm", values="throughput_rps").to_string())


if __name__ == "__main__":
    main()
