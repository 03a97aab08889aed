"""``muxsim sweep SWEEP.yaml --out-dir DIR``: every trial of a sweep file, one Parquet table.

Each trial (a point of the grid: workload, algorithm, policies, simulator options) is
placed and simulated; its parameters and metrics make one row of
``DIR/results.parquet``. Trials are kept in ``DIR/trials/`` as they finish, so a rerun
into the same folder skips the finished ones. A failing trial is recorded with its
error and does not stop the sweep.
"""

from __future__ import annotations

import sys
from typing import Any

from muxsim.cli.common import add_quiet, bounded_text, number
from muxsim.limits import MAX_TRIALS, MAX_WORKERS


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep", help="run a grid of trials (workloads x algorithms x policies) into one Parquet table",
        description="Run every trial of SWEEP.yaml (base, grid and cases; see docs/user-guide.md) locally or on Ray; "
                    "results in DIR/results.parquet, one row per trial; a rerun into DIR resumes.")
    p.add_argument("spec", metavar="SWEEP.yaml", help="the sweep file (YAML)")
    p.add_argument("--out-dir", metavar="DIR", required=True,
                   help="a new or empty folder, or the folder of an earlier run of the sweep (it resumes)")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local: a process pool on this machine; ray: Ray tasks (a local Ray, or --address)")
    p.add_argument("--address", type=bounded_text(1000), metavar="ADDR",
                   help="with --backend ray: the Ray cluster to use (auto, or ray://HOST:PORT)")
    p.add_argument("--workers", type=number(1, MAX_WORKERS, integer=True), metavar="N",
                   help="trials run at once (default: one per CPU; ray without --address: CPUs of the local Ray)")
    p.add_argument("--max-trials", type=number(1, 10**9, integer=True), default=MAX_TRIALS, metavar="N",
                   help="refuse a sweep that expands to more trials")
    p.add_argument("--retry-failed", action="store_true", help="when resuming, run the failed trials again")
    add_quiet(p)
    p.set_defaults(func=run)


def run(args: Any) -> int:
    from muxsim.sweeps import sweep
    from muxsim.sweeps.folder import RESULTS

    df = sweep(args.spec, args.backend, workers=args.workers, address=args.address, out_dir=args.out_dir,
               max_trials=args.max_trials, retry_failed=args.retry_failed, quiet=args.quiet)
    failed = int((df["status"] != "ok").sum()) if "status" in df else 0
    print(f"{len(df)} trials, {len(df) - failed} ok, {failed} failed: {args.out_dir.rstrip('/')}/{RESULTS}")
    if failed:
        first = df.loc[df["status"] != "ok", "error"].iloc[0]
        print(f"first failure: {first}", file=sys.stderr)
    return 0
