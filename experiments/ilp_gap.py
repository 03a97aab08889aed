"""The heuristics' optimality gap: MuxServe's enumeration-based greedy (``muxserve``)
and the default search's estimator stage (``flex``: multiplexing with replicas) against
the exact ILP (whose space includes replicas that run alone on their meshes) on 60
random small instances (``ilp_gap.yaml``: 3 to 8 LLMs of 7B/13B/30B on 4 or 8 A100s,
random popularity and load; placement only). A gap is 1 - heuristic objective / ILP
objective, both the estimator's throughput (negative: ``flex`` found a plan outside the
ILP's space, a replica colocated with other LLMs). Writes ``ilp_gap.csv`` and
``ilp_gap.png`` (histograms of both gaps).

    python experiments/ilp_gap.py
    python experiments/ilp_gap.py --make-cases 60 --seed 0   # print the cases of ilp_gap.yaml
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from common import parser, run, save, write_csv


def make_cases(n: int, seed: int) -> str:
    """``n`` random instances as the YAML lines of ``cases``."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        llms = int(rng.integers(3, 9))
        counts = rng.multinomial(llms, [0.55, 0.3, 0.15])
        mix = ",".join(f"{c}x{m}" for c, m in zip(counts, ("llama-7b", "llama-13b", "llama-30b")) if c)
        nodes, per_node = [(1, 4), (1, 8), (2, 4)][int(rng.integers(0, 3))]
        alpha = round(float(rng.uniform(0.5, 2.5)), 2)
        rate = round(float(rng.uniform(2, 30)), 1)
        lines.append(f'  - {{workload.mix: "{mix}", workload.nodes: {nodes}, workload.gpus_per_node: {per_node}, '
                     f"workload.alpha: {alpha}, workload.max_rate: {rate}}}")
    return "\n".join(lines)


def gaps(df: pd.DataFrame) -> pd.DataFrame:
    ok = df[df["status"] == "ok"]
    wide = ok.pivot_table(index="trial_case", columns="algorithm", values="placement.objective")
    status = ok[ok["algorithm"] == "ilp"].set_index("trial_case")["placement.status"]
    out = pd.DataFrame({"greedy": wide["muxserve"], "flex": wide["flex"], "ilp": wide["ilp"],
                        "ilp_status": status}).dropna(subset=["greedy"])
    out["gap"] = 1 - out["greedy"] / out["ilp"]
    out["flex_gap"] = 1 - out["flex"] / out["ilp"]
    return out.reset_index()


def plot(g: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    pct = {"muxserve": 100 * g["gap"], "flex": 100 * g["flex_gap"]}
    lo = min(0.0, float(pct["flex"].min()))
    bins = np.linspace(lo, max(5.0, float(pct["muxserve"].max()) * 1.05), 26)
    lines = []
    for (name, p), color in zip(pct.items(), ("C0", "C8")):
        ax.hist(p, bins=bins, color=color, alpha=0.6, edgecolor="white", label=name)
        lines.append(f"{name}: median {p.median():.2f}%, max {p.max():.2f}%, {int((p.abs() < 1e-4).sum())} equal")
    ax.set_xlabel("optimality gap (% of the ILP's estimated throughput; < 0: outside the ILP's space)")
    ax.set_ylabel("instances")
    ax.set_title(f"heuristics vs ILP, {len(g)} random small instances\n" + "\n".join(lines), fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--make-cases", type=int, metavar="N", help="print N random cases and stop")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.make_cases:
        print(make_cases(args.make_cases, args.seed))
        return
    df = run("ilp_gap.yaml", args, "ilp-gap")
    keys = ["workload.mix", "workload.nodes", "workload.gpus_per_node", "workload.alpha", "workload.max_rate"]
    df["trial_case"] = df[keys].astype(str).agg("|".join, axis=1)
    g = gaps(df)
    cols = ["trial_case", "greedy", "flex", "ilp", "ilp_status", "gap", "flex_gap"]
    write_csv(g[cols], args, "ilp_gap.csv")
    save(plot(g), args, "ilp_gap.png")
    for name, col in (("muxserve", "gap"), ("flex", "flex_gap")):
        print(f"{len(g)} instances, {name}: gap median {g[col].median():.4f}, mean {g[col].mean():.4f}, "
              f"min {g[col].min():.4f}, max {g[col].max():.4f}, within 1e-6: {int((g[col].abs() < 1e-6).sum())}")
    print(f"ILP optimal on {(g['ilp_status'] == 'optimal').sum()}")


if __name__ == "__main__":
    main()
