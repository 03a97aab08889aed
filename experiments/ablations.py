"""Ablations, one sweep file each: placement (``ablation_placement.yaml``: muxserve vs
greedy-memory), scheduling (``ablation_scheduling.yaml``: ADBS vs FCFS vs round-robin vs
static quotas on MuxServe's two-model case, on a flex mesh and with whole-mesh turns), KV cache (``ablation_kv.yaml``: unified vs
static partitions) and interference (``ablation_interference.yaml``: on vs off). Writes
``ablations.csv`` and ``ablations.png`` (throughput on top, SLO attainment at 8x, or P99
TPOT for interference, below; the KV and interference panels show the two-model case,
the 19-LLM rows are in the CSV).

    python experiments/ablations.py
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from common import parser, run, save, style, write_csv

STUDIES = ["placement", "scheduling", "kv", "interference"]
KEEP = ["tags.study", "tags.scenario", "tags.policy", "workload.alpha", "workload.max_rate", "workload.rate_scale", "algorithm", "config.flex_policy",
        "config.temporal_policy", "config.kv_cache", "config.interference_on", "status", "offered_rps", "throughput_rps", "slo_attainment.8",
        "ttft_ms.p99", "tpot_ms.p99", "run.preemptions", "error"]
POLICY_STYLE = {"flex: ADBS": ("C0", "o", "-"), "flex: static quotas": ("C1", "s", "-"),
                "flex: round-robin": ("C2", "^", "-"), "flex: FCFS": ("C3", "v", "-"),
                "turns: round-robin": ("C2", "^", "--"), "turns: FCFS": ("C3", "v", "--")}


def _lines(ax_top, ax_bottom, d: pd.DataFrame, x: str, by: str, labels: dict, bottom: str = "slo_attainment.8"):
    for key, g in d.groupby(by, sort=False):
        g = g.sort_values(x)
        kw = labels(key) if callable(labels) else labels[key]
        ax_top.plot(g[x], g["throughput_rps"], **kw)
        ax_bottom.plot(g[x], g[bottom], **kw)


def plot(tables: dict[str, pd.DataFrame]) -> plt.Figure:
    fig, axes = plt.subplots(2, 4, figsize=(17, 7))
    d = tables["placement"]
    for scale, line in ((1.0, "-"), (1.25, "--")):
        part = d[d["workload.rate_scale"] == scale]
        _lines(axes[0, 0], axes[1, 0], part, "workload.alpha", "algorithm",
               lambda a, line=line, scale=scale: {**style(a), "linestyle": line, "label": f"{a}, max rate {40 * scale:g}"})
    axes[0, 0].set_title("placement: muxserve vs greedy-memory")
    axes[1, 0].set_xlabel("alpha")

    d = tables["scheduling"]
    _lines(axes[0, 1], axes[1, 1], d, "offered_rps", "tags.policy",
           lambda p: {"color": POLICY_STYLE[p][0], "marker": POLICY_STYLE[p][1], "linestyle": POLICY_STYLE[p][2],
                      "label": p})
    axes[0, 1].set_title("scheduling: 65B + 30B on 4 GPUs")
    axes[1, 1].set_xlabel("offered load (req/s)")

    d = tables["kv"]
    d = d[d["tags.scenario"] == "65B+30B"]
    _lines(axes[0, 2], axes[1, 2], d, "offered_rps", "config.kv_cache",
           {"unified": {"color": "C0", "marker": "o", "label": "unified pool, ADBS quotas"},
            "static": {"color": "C3", "marker": "s", "label": "static partitions"}})
    axes[0, 2].set_title("KV cache: 65B + 30B on 4 GPUs")
    axes[1, 2].set_xlabel("offered load (req/s)")

    d = tables["interference"]
    d = d[d["tags.scenario"] == "65B+30B"]
    _lines(axes[0, 3], axes[1, 3], d, "offered_rps", "config.interference_on",
           {True: {"color": "C0", "marker": "o", "label": "interference on"},
            False: {"color": "C7", "marker": "s", "label": "interference off"}}, bottom="tpot_ms.p99")
    axes[0, 3].set_title("interference model: 65B + 30B on 4 GPUs")
    axes[1, 3].set_xlabel("offered load (req/s)")
    axes[1, 3].set_ylabel("P99 TPOT (ms)")

    for ax in axes.flat:
        ax.grid(alpha=0.3)
    for ax in axes[0]:
        ax.set_ylabel("throughput (req/s)")
        ax.legend(fontsize=7)
    for ax in axes[1, :3]:
        ax.set_ylabel("SLO attainment at 8x")
    fig.tight_layout()
    return fig


def main() -> None:
    args = parser(__doc__).parse_args()
    tables = {s: run(f"ablation_{s}.yaml", args, f"ablation-{s}") for s in STUDIES}
    df = pd.concat([t.reindex(columns=KEEP) for t in tables.values()], ignore_index=True)
    write_csv(df, args, "ablations.csv")
    save(plot(tables), args, "ablations.png")
    s = tables["scheduling"]
    print(s.pivot_table(index="workload.max_rate", columns="tags.policy", values="throughput_rps").to_string())
    for study in ("placement", "kv", "interference"):
        t = tables[study]
        by = {"placement": ["workload.rate_scale", "algorithm"], "kv": ["config.kv_cache"],
              "interference": ["config.interference_on"]}[study]
        index = ["tags.scenario", "workload.alpha", "workload.max_rate"] if study != "placement" else ["workload.alpha"]
        print(t.pivot_table(index=index, columns=by, values=["throughput_rps", "slo_attainment.8", "tpot_ms.p99"])
              .round(3).to_string())


if __name__ == "__main__":
    main()
