"""``muxsim compare WORKLOAD.json``: every placement algorithm, each plan simulated, one table.

Columns: the algorithm's status, its estimated throughput, the simulated throughput,
SLO attainment at each of the workload's scales, P99 TTFT and TPOT, and placement time.
``--plot FILE.png`` adds a bar chart (simulated and estimated throughput, P99 TTFT).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from typing import Any

from muxsim.errors import InputError

ILP_MAX_LLMS = 20  # by default the ILP runs only on workloads this small (it grows as n^4)


def register(subparsers: Any) -> None:
    from muxsim.cli.common import add_policy_flags

    p = subparsers.add_parser("compare", help="place a workload with every algorithm and simulate each plan",
                              description="Run every placement algorithm, simulate each plan, print one table.")
    p.add_argument("workload", metavar="WORKLOAD.json")
    p.add_argument("--algorithms", metavar="A,B,...",
                   help=f"comma-separated (default: all; ilp only with at most {ILP_MAX_LLMS} LLMs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=60.0, metavar="S", help="ILP time limit (default 60 s)")
    p.add_argument("--plot", metavar="FILE.png", help="write a bar chart here")
    p.add_argument("--format", choices=["table", "json"], default="table")
    add_policy_flags(p)  # placement and simulation alike
    p.set_defaults(func=run)


def _algorithms(arg: str | None, n_llms: int) -> tuple[list[str], list[str]]:
    from muxsim.placement import ALGORITHMS

    if arg is None:
        names = [a for a in ALGORITHMS if a != "ilp" or n_llms <= ILP_MAX_LLMS]
        return names, [a for a in ALGORITHMS if a not in names]
    names = [a.strip() for a in arg.split(",") if a.strip()]
    unknown = [a for a in names if a not in ALGORITHMS]
    if unknown or not names:
        raise InputError(f"--algorithms: unknown {', '.join(unknown) or '(empty)'} (known: {', '.join(ALGORITHMS)})")
    return list(dict.fromkeys(names)), []


def compare(wl: Any, algorithms: list[str], *, seed: int = 0, time_limit_s: float = 60.0,
            config: Any = None) -> list[dict[str, Any]]:
    """One row per algorithm: placement outcome and the simulated metrics of its plan,
    placed and simulated under the same simulator ``config`` (default: SimConfig())."""
    from muxsim.placement import solve_placement
    from muxsim.sim import simulate

    rows = []
    for name in algorithms:
        opts = {} if name.startswith("spatial") else {"time_limit_s": time_limit_s}
        t0 = time.perf_counter()
        res = solve_placement(wl, name, sim_config=config, **opts)
        placed_s = time.perf_counter() - t0
        row: dict[str, Any] = {"algorithm": name, "status": res.status, "message": res.message,
                               "placement_s": placed_s,
                               "estimated_rps": res.objective if res.plan is not None else None}
        if res.plan is not None:
            agg = simulate(res.plan, wl, seed=seed, config=config).aggregate
            row.update(throughput_rps=agg["throughput_rps"], slo_attainment=agg["slo_attainment"],
                       ttft_p99_ms=agg["ttft_ms"]["p99"], tpot_p99_ms=agg["tpot_ms"]["p99"],
                       requests=agg["requests"], completed=agg["completed"])
        rows.append(row)
    return rows


def _fmt(x: Any, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def table(rows: list[dict[str, Any]]) -> str:
    scales = next((list(r["slo_attainment"]) for r in rows if "slo_attainment" in r), [])
    head = ["algorithm", "status", "est_rps", "sim_rps", *[f"slo@{s}" for s in scales],
            "p99_ttft_ms", "p99_tpot_ms", "place_s"]
    body = []
    for r in rows:
        slo = r.get("slo_attainment", {})
        body.append([r["algorithm"], r["status"], _fmt(r.get("estimated_rps"), ".2f"),
                     _fmt(r.get("throughput_rps"), ".2f"), *[_fmt(slo.get(s), ".3f") for s in scales],
                     _fmt(r.get("ttft_p99_ms"), ".0f"), _fmt(r.get("tpot_p99_ms"), ".1f"),
                     _fmt(r.get("placement_s"), ".2f")])
    widths = [max(len(h), *(len(b[k]) for b in body)) for k, h in enumerate(head)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from muxsim.io import write_bytes_atomic

    names = [r["algorithm"] for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    x = range(len(rows))
    a1.bar([i - 0.2 for i in x], [r.get("throughput_rps") or 0 for r in rows], 0.4, label="simulated")
    a1.bar([i + 0.2 for i in x], [r.get("estimated_rps") or 0 for r in rows], 0.4, label="estimated")
    a1.set_xticks(list(x), names, rotation=20)
    a1.set_ylabel("throughput (req/s)")
    a1.legend()
    a2.bar(list(x), [r.get("ttft_p99_ms") or 0 for r in rows], 0.6, color="tab:red")
    a2.set_xticks(list(x), names, rotation=20)
    a2.set_ylabel("P99 TTFT (ms, log scale)")
    a2.set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def run(args: argparse.Namespace) -> int:
    from muxsim.workload import load_workload

    if args.time_limit <= 0:
        raise InputError(f"--time-limit: must be > 0, got {args.time_limit!r}")
    if args.plot and not args.plot.lower().endswith(".png"):
        raise InputError(f"--plot: expected a .png path, got {args.plot!r}")
    if args.algorithms is not None:
        _algorithms(args.algorithms, 0)  # bad names fail before any work
    wl = load_workload(args.workload)
    names, skipped = _algorithms(args.algorithms, len(wl.models))
    from muxsim.cli.common import sim_config_from

    config = sim_config_from(args)
    rows = compare(wl, names, seed=args.seed, time_limit_s=args.time_limit, config=config)
    if args.plot:
        plot(rows, args.plot, f"{args.workload} (seed {args.seed})")
    if args.format == "json":
        sys.stdout.write(json.dumps({"workload": args.workload, "seed": args.seed, "rows": rows}, indent=2) + "\n")
        return 0
    print(table(rows))
    if skipped:
        print(f"skipped: {', '.join(skipped)} ({len(wl.models)} LLMs > {ILP_MAX_LLMS}; name it in --algorithms)")
    if args.plot:
        print(f"wrote {args.plot}")
    return 0
