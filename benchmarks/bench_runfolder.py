"""What a run folder costs on top of the simulation (prints one JSON line).

    python benchmarks/bench_runfolder.py [--workload examples/paper-19llm-alpha0.9.json]

Simulates the MuxServe plan of the workload once, then times writing its run folder
without figures (workload, plan, config, summary.json, requests.parquet, per_llm.csv,
timeline.parquet) and the figures alone, best of ``--repeat`` each.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import muxsim as mx
from muxsim.runfolder import Run, build_run_folder, write_figures, write_run_folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="examples/paper-19llm-alpha0.9.json")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    wl = mx.load_workload(args.workload)
    plan = mx.place(wl, algorithm="muxserve")
    t0 = time.perf_counter()
    res = mx.simulate(plan, wl, seed=0)
    sim_s = time.perf_counter() - t0
    folder = build_run_folder("simulate", wl, [Run(plan.algorithm, plan, res)], config=mx.SimConfig(), seed=0,
                              summary=res.to_dict())
    tables, figures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeat):
            t0 = time.perf_counter()
            write_run_folder(Path(tmp) / f"run{k}", folder, workload=wl, figures=False)
            tables.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            names = write_figures(folder, Path(tmp) / f"fig{k}")
            figures.append(time.perf_counter() - t0)
        size = sum(p.stat().st_size for p in (Path(tmp) / "run0").rglob("*") if p.is_file())
    print(json.dumps({"bench": "run_folder", "workload": args.workload, "requests": len(res.to_frame()),
                      "simulate_s": round(sim_s, 3), "write_tables_s": round(min(tables), 3),
                      "write_figures_s": round(min(figures), 3), "figures": len(names),
                      "folder_bytes_without_figures": size}))


if __name__ == "__main__":
    main()
