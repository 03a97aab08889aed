"""The estimator against the simulator, for every policy, over the contract's grid of
units (:mod:`muxsim.placement.contract`): one row per (policy, unit, load), and one
summary line per policy. Writes ``estimator_contract.csv``.

    python experiments/estimator_contract.py [--policies flex:adbs,temporal:fcfs,...] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from muxsim.io import write_text_atomic
from muxsim.placement.contract import GRID, check_policy, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policies", default=",".join(f"{m}:{p}" for m, p in GRID))
    ap.add_argument("--out-dir", default="experiments/results")
    args = ap.parse_args()
    rows = []
    lines = []
    for key in args.policies.split(","):
        mode, policy = key.split(":")
        t0 = time.process_time()
        got = check_policy(mode, policy)
        rows += got
        s = summary(got)
        lines.append(f"{mode:8} {policy:12} served units: median error {s['median_error']:.1%}, worst "
                     f"{s['worst_error']:.1%} ({s['served']}); overloaded: worst optimism {s['worst_optimism']:+.1%} "
                     f"({s['overloaded']}); {time.process_time() - t0:.1f} s CPU")
        print(lines[-1], flush=True)
    df = pd.DataFrame(rows)
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(df.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print("\n".join(lines))
    out = Path(args.out_dir) / "estimator_contract.csv"
    write_text_atomic(out, df.to_csv(index=False, float_format="%.4f"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
