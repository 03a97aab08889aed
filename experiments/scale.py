"""Scale (``scale.yaml``): placement time (muxserve) and simulation time against the
number of LLMs on 64 GPUs, and against the number of GPUs for 16 LLMs. Writes
``scale.csv`` and ``scale.png`` (log-log). Wall times: run with one worker on an
otherwise idle machine.

    python experiments/scale.py --workers 1
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from common import parser, run, save, write_csv

KEEP = ["tags.series", "seed", "llms", "cluster_gpus", "status", "requests", "time.placement_s", "time.simulate_s",
        "run.events", "throughput_rps", "error"]


def plot(df: pd.DataFrame) -> plt.Figure:
    """Median of the repeats, with their range as error bars."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (series, x, label) in zip(axes, (("llms", "llms", "LLMs (on 64 GPUs)"),
                                             ("gpus", "cluster_gpus", "GPUs (16 LLMs)"))):
        d = df[(df["tags.series"] == series) & (df["status"] == "ok")]
        for col, marker, what in (("time.placement_s", "o", "placement (muxserve)"),
                                  ("time.simulate_s", "s", "simulation (60 s of traffic)")):
            g = d.groupby(x)[col].agg(["median", "min", "max"])
            ax.errorbar(g.index, g["median"], yerr=[g["median"] - g["min"], g["max"] - g["median"]],
                        marker=marker, capsize=3, label=what)
        ax.set_xscale("log")
        ax.set_yscale("log")
        xs = sorted(d[x].unique())
        ax.set_xticks(xs, [str(v) for v in xs])
        ax.minorticks_off()
        lo, hi = ax.get_ylim()
        ticks = [t for t in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100) if lo <= t <= hi]
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel(label)
        ax.set_ylabel("wall time (s)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    axes[0].set_title("time vs number of LLMs")
    axes[1].set_title("time vs number of GPUs")
    fig.tight_layout()
    return fig


def main() -> None:
    args = parser(__doc__).parse_args()
    df = run("scale.yaml", args, "scale")
    write_csv(df[KEEP], args, "scale.csv")
    save(plot(df), args, "scale.png")
    print(df.groupby(["tags.series", "llms", "cluster_gpus"])[["time.placement_s", "time.simulate_s", "requests"]]
          .median().to_string())


if __name__ == "__main__":
    main()
