"""Executor overheads on a CPU: two tiny colocated models (the runbook's CPU case),
replayed in real time. Prints one JSON line: worker start-up, the run's wall time, and
per kind of job the mean forward-pass time in the workers against the mean time from
sending a job to its answer (the difference is the dispatch cost the simulator does not
model: queues, pickling, the driver's bookkeeping).

    python benchmarks/bench_executor.py [--duration 3] [--backend local|ray]

Recorded 2026-12-02 on the shared 2-core development machine (load average 2.5): 13
requests, start-up of the 4 workers 2.7 s (9.9 s at load average 7), prefill 1.87 ms
of forward pass in 2.74 ms from send to answer, decode 0.78 ms in 1.19 ms, TPOT p50
1.20 ms, TTFT p50 3.66 ms.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--backend", choices=["local", "ray"], default="local")
    args = ap.parse_args()
    import muxsim as mx
    from muxsim.executor import execute
    from muxsim.plan import load_plan

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, str(REPO / "experiments" / "gpu" / "case.py"), "--device", "cpu", "--out", tmp],
                       check=True)
        wl_doc = json.loads((Path(tmp) / "workload.json").read_text())
        wl_doc["duration_s"] = args.duration
        (Path(tmp) / "workload.json").write_text(json.dumps(wl_doc))
        plan, wl = load_plan(Path(tmp) / "plan.json"), mx.load_workload(Path(tmp) / "workload.json")
        ex = execute(plan, wl, seed=0, backend=args.backend)
    run, agg = ex.results.run, ex.results.aggregate
    print(json.dumps({"benchmark": "executor", "backend": args.backend, "status": ex.status,
                      "requests": agg["requests"], "completed": agg["completed"],
                      "startup_s": round(run["startup_s"], 2), "wall_s": round(run["wall_s"], 2),
                      "jobs": {k: {kk: (round(vv, 3) if isinstance(vv, float) else vv) for kk, vv in v.items()}
                               for k, v in run["jobs"].items()},
                      "tpot_ms_p50": agg["tpot_ms"]["p50"], "ttft_ms_p50": agg["ttft_ms"]["p50"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
