"""Requests generated per second for a ~1M-request workload (prints one JSON line).

    python benchmarks/bench_workload.py [--requests 1000000] [--repeat 3]

The paper's 19-LLM mix (alpha 0.9, max rate 40: 161 req/s in all) stretched to the
duration that offers ``--requests`` requests, with ShareGPT lengths; timed for Poisson
and for bursty Gamma (cv 3) arrivals, best of ``--repeat`` runs each.
"""

from __future__ import annotations

import argparse
import json
import time

import muxsim as mx

MIX = "12xllama-7b,4xllama-13b,2xllama-30b,1xllama-65b"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    probe = mx.synth_workload(MIX, 0.9, 40)
    duration = args.requests / probe.total_rate()
    out: dict[str, object] = {"bench": "workload_generate", "target_requests": args.requests,
                              "duration_s": round(duration, 1)}
    for label, arrivals in (("poisson", {"process": "poisson"}), ("gamma_cv3", {"process": "gamma", "cv": 3.0})):
        wl = mx.synth_workload(MIX, 0.9, 40, duration=duration, arrivals=arrivals)
        times, n = [], 0
        for seed in range(args.repeat):
            t0 = time.perf_counter()
            n = len(mx.generate_requests(wl, seed=seed, max_requests=2 * args.requests))
            times.append(time.perf_counter() - t0)
        best = min(times)
        out[f"{label}_requests"] = n
        out[f"{label}_s"] = round(best, 4)
        out[f"{label}_requests_per_s"] = round(n / best)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
