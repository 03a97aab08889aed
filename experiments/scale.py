"""Scale (``scale.yaml``): placement time (muxserve) and simulation time against the
number of LLMs on 32 GPUs, and against the number of GPUs for 16 LLMs. Writes
``scale.csv`` and ``scale.png`` (log-log). Wall times: run with one worker on an
otherwise idle machine.

    python experiments/scale.py --workers 1
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from common import parser, run, save, write_csv

KEEP = ["tags.series", "llms", "cluster_gpus", "status", "requests", "time.placement_s", "time.simulate_s",
        "run.events", "throughput_rps", "error"]


def plot(df: pd.DataFrame) -> plt.Figure:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (series, x, label) in zip(axes, (("llms", "llms", "LLMs (on 32 GPUs)"),
                                             ("gpus", "cluster_gpus", "GPUs (16 LLMs)"))):
        d = df[(df["tags.series"] == series) & (df["status"] == "ok")].sort_values(x)
        ax.loglog(d[x], d["time.placement_s"], marker="o", label="placement (muxserve)")
        ax.loglog(d[x], d["time.simulate_s"], marker="s", label="simulation")
        ax.set_xticks(d[x], [str(v) for v in d[x]])
        ax.minorticks_off()
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
    print(df[KEEP].to_string(index=False))


if __name__ == "__main__":
    main()
