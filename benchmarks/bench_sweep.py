"""What a sweep's backends cost (prints one JSON line).

    python benchmarks/bench_sweep.py [--spec experiments/ablation_placement.yaml] [--workers 2]

Runs every trial of the sweep file in this process (one worker), on the local process
pool and on a local Ray of ``--workers`` CPUs (when Ray is installed), nothing kept, and
reports each wall time, the sum of the trials' own times, and whether the tables agree
(every column but the wall times under ``time.``).
"""

from __future__ import annotations

import argparse
import json
import time

import muxsim as mx


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="experiments/ablation_placement.yaml")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    out: dict = {"bench": "sweep", "spec": args.spec, "workers": args.workers}
    tables = {}
    runs = [("serial", "local", 1), ("local", "local", args.workers)]
    try:
        import ray  # noqa: F401

        runs.append(("ray", "ray", args.workers))
    except ImportError:
        out["ray"] = "not installed"
    for name, backend, workers in runs:
        t0 = time.perf_counter()
        tables[name] = mx.sweep(args.spec, backend, workers=workers)
        out[f"{name}_s"] = round(time.perf_counter() - t0, 2)
    first = tables["serial"]
    keep = [c for c in first.columns if not c.startswith("time.")]
    out["trials"] = len(first)
    out["trial_s_sum"] = round(float(first["time.trial_s"].sum()), 2)
    out["tables_agree"] = all(t[keep].equals(first[keep]) for t in tables.values())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
