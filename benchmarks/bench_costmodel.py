"""Cost-model evaluations per second for one vectorized call (prints one JSON line).

    python benchmarks/bench_costmodel.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import muxsim as mx


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    batch = rng.integers(1, 256, args.n)
    seq = rng.integers(1, 2048, args.n)
    cm = mx.cost_model("a100-80gb")
    best = {}
    for phase in ("decode", "prefill"):
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            cm.phase_ms(phase, "llama-13b", batch, seq, 2, 0.5)
            times.append(time.perf_counter() - t0)
        best[phase] = min(times)
    print(json.dumps({
        "bench": "costmodel",
        "n": args.n,
        "decode_evals_per_s": round(args.n / best["decode"]),
        "prefill_evals_per_s": round(args.n / best["prefill"]),
        "decode_call_s": round(best["decode"], 4),
        "prefill_call_s": round(best["prefill"], 4),
    }))


if __name__ == "__main__":
    main()
