"""Simulator speed: the paper's 19-LLM / 32-GPU workload (alpha 0.7, max rate 40, 240 s)
under a MuxServe placement, and a Vidur-style single-model run (Llama-2-7B alone on one
A100, 161-token prompts, 338-token outputs, 6 req/s). Prints one JSON line.

Placement and request generation are outside the timed part; ``cpu_s`` is the process
CPU time of the simulation (less sensitive than ``wall_s`` to a busy machine).

    python benchmarks/bench_sim.py [--duration 240] [--algorithm muxserve] [--vidur-duration 600]

Recorded 2026-11-25 on the shared 2-core development machine (load average 2.5-5 from
other work, so CPU time is the fairer figure): paper workload 51,322 requests, 179k
events, 9.1 s CPU (5.6k requests and 19.7k events per CPU second); Vidur-style run
3,602 requests in 0.21-0.34 s CPU (10.6k-16.9k requests per CPU second, 26-42x Vidur's
~400 per second).

After the speed work (float fast paths of the cost model, decode rows eight batch sizes
at a time, float views of the rows, fewer calls on the hot paths; results bit-identical),
same day, the old and new simulator run alternately on the same plan (load average
0.9-1.9 from other work): paper workload 7.0-9.8 s CPU before, 4.4-6.1 s after
(0.62-0.79x); the Vidur-style run is unchanged within noise (0.18-0.35 s CPU).

After the split into a runtime and the policies of ``muxsim.policy`` (results bit-identical),
2026-12-02, the old and new simulator alternated three times each way on the same machine
(load average 2.5-3): paper workload 2.33-3.21 s CPU before, 2.36-2.98 s after (min 2.33
and 2.36); the Vidur-style run 0.089-0.095 s before, 0.088-0.136 s after (min 0.089 and
0.088). Instructions per simulation (valgrind --tool=cachegrind, the same inputs): paper
workload 14.44 G before, 13.69 G after; Vidur-style run 764 M before, 713 M after.

After the runtime/policy split met the fitted cost model and the hardening (periodic
ticks asleep while their meshes idle, sample thinning; results and event counts
identical), 2026-12-02, that tree and the one before the merge alternated three times on
the same machine (load average 3.6-3.9): paper workload 1.83-2.32 s CPU before,
1.85-2.46 s after (min 1.83 and 1.85); the Vidur-style run 0.102-0.130 s before,
0.098-0.145 s after (min 0.102 and 0.098).
"""

from __future__ import annotations

import argparse
import json
import time

import muxsim as mx
from muxsim.workload import Workload, generate_requests, synth_workload

VIDUR_RATE_PER_S = 400.0  # Vidur's simulated requests per wall second on this kind of run


def timed(plan, wl, reqs) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    res = mx.simulate(plan, wl, seed=0, requests=reqs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n, ev = res.aggregate["requests"], res.run["events"]
    return {"requests": n, "completed": res.aggregate["completed"], "events": ev, "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3), "requests_per_wall_s": round(n / wall, 1),
            "requests_per_cpu_s": round(n / cpu, 1), "events_per_cpu_s": round(ev / cpu, 1),
            "sim_duration_s": round(res.run["sim_duration_s"], 3),
            "throughput_rps": round(res.aggregate["throughput_rps"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=240.0)
    ap.add_argument("--algorithm", default="muxserve")
    ap.add_argument("--vidur-duration", type=float, default=600.0)
    args = ap.parse_args()

    wl = synth_workload("12xllama-7b,4xllama-13b,2xllama-30b,1xllama-65b", alpha=0.7, max_rate=40,
                        duration=args.duration, seed=0)
    plan = mx.place(wl, algorithm=args.algorithm)
    paper = timed(plan, wl, generate_requests(wl, seed=0))
    paper.update({"meshes": len(plan.meshes), "mode": plan.mode, "algorithm": args.algorithm})

    one = Workload.from_dict({
        "cluster": {"gpu": "a100-80gb", "nodes": 1, "gpus_per_node": 1},
        "models": [{"name": "llama2-7b", "model": "llama-2-7b", "rate": 6.0,
                    "prompt_len": {"dist": "fixed", "value": 161},
                    "output_len": {"dist": "fixed", "value": 338}}],
        "duration_s": args.vidur_duration, "seed": 0})
    single = mx.place(one, algorithm="spatial")
    vidur = timed(single, one, generate_requests(one, seed=0))
    vidur["x_vidur"] = round(vidur["requests_per_cpu_s"] / VIDUR_RATE_PER_S, 1)
    print(json.dumps({"benchmark": "sim", "paper_19llm_alpha0.7": paper, "vidur_like_llama2_7b": vidur}))


if __name__ == "__main__":
    main()
