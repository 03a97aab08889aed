"""The greedy's optimality gap: MuxServe's enumeration-based greedy (``muxserve``)
against the exact ILP on 60 random small instances (``ilp_gap.yaml``: 3 to 8 LLMs of
7B/13B/30B on 4 or 8 A100s, random popularity and load; placement only). The gap is
1 - greedy objective / ILP objective, both the estimator's throughput. Writes
``ilp_gap.csv`` and ``ilp_gap.png`` (histogram of the gap).

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
    out = pd.DataFrame({"greedy": wide["muxserve"], "ilp": wide["ilp"], "ilp_status": status}).dropna(subset=["greedy"])
    out["gap"] = 1 - out["greedy"] / out["ilp"]
    return out.reset_index()


def plot(g: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3.8))
    pct = 100 * g["gap"].clip(lower=0)
    bins = np.linspace(0, max(5.0, float(pct.max()) * 1.05), 21)
    ax.hist(pct, bins=bins, color="C0", edgecolor="white")
    ax.set_xlabel("optimality gap of the greedy (% of the ILP's estimated throughput)")
    ax.set_ylabel("instances")
    ax.set_title(f"muxserve greedy vs ILP, {len(g)} random small instances\n"
                 f"median {pct.median():.2f}%, mean {pct.mean():.2f}%, max {pct.max():.2f}%; "
                 f"{int((g['gap'].abs() < 1e-6).sum())} equal to the ILP's (within 1e-6)", fontsize=10)
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
    cols = ["trial_case", "greedy", "ilp", "ilp_status", "gap"]
    write_csv(g[cols], args, "ilp_gap.csv")
    save(plot(g), args, "ilp_gap.png")
    print(f"{len(g)} instances: gap median {g['gap'].median():.4f}, mean {g['gap'].mean():.4f}, "
          f"max {g['gap'].max():.4f}; ILP optimal on {(g['ilp_status'] == 'optimal').sum()}")


if __name__ == "__main__":
    main()
