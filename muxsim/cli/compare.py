"""``muxsim compare WORKLOAD.json``: every placement algorithm, each plan simulated, one table.

One row per algorithm: its status, the plan's estimated throughput, the offered and
simulated throughput, SLO attainment at each of the workload's scales and the verdict
against its ``target_attainment`` (``slo.min_scale``; ``slo.attainment`` and ``slo.met``
with absolute targets), P99 TTFT and TPOT, and placement time. ``--format json`` prints
the rows with each plan's full results document (what ``summary.json`` of
``--out-dir`` holds); ``--plot FILE`` draws :func:`muxsim.plot.compare`.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from muxsim.cli.common import add_format, add_quiet, add_run_outputs, check_suffix
from muxsim.cli.plan import add_search_options, search_options
from muxsim.errors import InputError

ILP_MAX_LLMS = 20  # by default the ILP runs only on workloads this small (it grows as n^4)
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("compare", help="place a workload with every algorithm and simulate each plan",
                              description="Run every placement algorithm, simulate each plan, print one table.")
    p.add_argument("workload", metavar="WORKLOAD.json", help="the workload (workload.json)")
    p.add_argument("--algorithms", metavar="A,B,...",
                   help=f"comma-separated algorithms (default: all; ilp only with at most {ILP_MAX_LLMS} LLMs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the requests")
    p.add_argument("--plot", metavar="FILE.png", help="draw throughput, SLO attainment and P99 TTFT here (with "
                                                      "--capacity: attainment against GPUs; .png, .svg or .pdf)")
    p.add_argument("--capacity", action="store_true",
                   help="instead: the fewest GPUs each algorithm needs to reach the target attainment, side by side "
                        "(see `muxsim capacity`)")
    p.add_argument("--target", type=float, default=None, metavar="A",
                   help="with --capacity: attainment to reach (default: the workload's slo.target_attainment)")
    p.add_argument("--max-gpus", type=int, default=None, metavar="N",
                   help="with --capacity: try at most this many GPUs (default: twice the workload's cluster)")
    add_run_outputs(p)
    add_format(p)
    add_quiet(p)
    p.add_argument("--no-interference", action="store_true",
                   help="co-running jobs do not slow each other, in placement and simulation alike")
    add_search_options(p, time_limit=60.0)
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


def compare_runs(wl: Any, algorithms: list[str], *, seed: int = 0, time_limit_s: float = 60.0,
                 config: Any = None, percentiles: Any = None, quiet: bool = True,
                 options: dict[str, dict[str, Any]] | None = None) -> list[Any]:
    """One :class:`muxsim.runfolder.Run` per algorithm: its plan and the simulated results,
    placed and simulated under the same simulator ``config`` (default: SimConfig()).
    ``options`` (by algorithm) replace the time limit as the search's options."""
    from muxsim.placement import solve_placement
    from muxsim.progress import Progress
    from muxsim.runfolder import Run
    from muxsim.sim import simulate

    runs = []
    with Progress("compare", total=2 * len(algorithms), quiet=quiet) as bar:
        for name in algorithms:
            bar.status(f"{name}: placing")
            opts = (options or {}).get(name, {} if name.startswith("spatial") else {"time_limit_s": time_limit_s})
            t0 = time.perf_counter()
            res = solve_placement(wl, name, sim_config=config, **opts)
            placed_s = time.perf_counter() - t0
            bar.advance()
            results = None
            if res.plan is not None:
                bar.status(f"{name}: simulating")
                results = simulate(res.plan, wl, seed=seed, config=config, percentiles=percentiles)
            bar.advance()
            runs.append(Run(name, res.plan, results, res.status, res.message, placed_s))
    return runs


def flat_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's rows: one per algorithm, every aggregate metric (dotted names)."""
    from muxsim.metrics import flatten

    return [{"algorithm": r["algorithm"], "status": r["status"],
             "estimate.throughput_rps": r["estimate"]["throughput_rps"],
             **flatten(r["aggregate"] or {}), "placement_s": r["placement_s"], "message": r["message"]}
            for r in rows]


def table_columns(rows: list[dict[str, Any]]) -> list[str]:
    agg = next((r["aggregate"] for r in rows if r["aggregate"]), None)
    cols = ["algorithm", "status", "estimate.throughput_rps", "offered_rps", "throughput_rps"]
    if agg is None:
        return [*cols[:3], "placement_s"]
    cols += [f"slo_attainment.{s}" for s in agg["slo_attainment"]] + ["slo.min_scale"]
    if any(r["aggregate"] and r["aggregate"]["slo"]["attainment"] is not None for r in rows):
        cols += ["slo.attainment", "slo.met"]
    return [*cols, "ttft_ms.p99", "tpot_ms.p99", "placement_s"]


def run(args: argparse.Namespace) -> int:
    from muxsim.metrics import parse_percentiles
    from muxsim.tables import emit
    from muxsim.workload import load_workload

    check_suffix(args.plot, FIGURE_SUFFIXES, "--plot")
    if args.capacity and (args.out_dir or args.percentiles):
        raise InputError("--capacity: prints GPU counts; it takes no --out-dir or --percentiles")
    percentiles = parse_percentiles(args.percentiles)
    if args.algorithms is not None:
        _algorithms(args.algorithms, 0)  # bad names fail before any work
    if args.out_dir:
        from muxsim.runfolder import check_out_dir

        check_out_dir(args.out_dir)
    wl = load_workload(args.workload)
    names, skipped = _algorithms(args.algorithms, len(wl.models))
    options = {name: search_options(name, args) for name in names}
    if args.capacity:
        return _capacity(args, wl, names, skipped)
    from muxsim.sim.config import SimConfig

    config = SimConfig(interference_on=not args.no_interference)
    runs = compare_runs(wl, names, seed=args.seed, config=config, percentiles=percentiles, quiet=args.quiet,
                        options=options)
    from muxsim.runfolder import summary_rows

    rows = summary_rows(runs)
    doc = {"workload": args.workload, "seed": args.seed, "rows": rows}
    notes = []
    if args.plot:
        from muxsim import plot

        plot.save(plot.compare(rows, title=f"{args.workload} (seed {args.seed})"), args.plot)
        notes.append(f"wrote {args.plot}")
    if args.out_dir:
        from muxsim.runfolder import build_run_folder, write_run_folder

        folder = build_run_folder("compare", wl, runs, config=config, seed=args.seed, summary=doc)
        write_run_folder(args.out_dir, folder, workload=wl, figures=not args.no_figures,
                         quiet=args.quiet)
        notes.append(f"wrote {args.out_dir}/")
    notes[:0] = _skipped_note(skipped, len(wl.models))
    flat = flat_rows(rows)
    emit(args.format, flat, None if args.format == "csv" else table_columns(rows), doc=doc, notes=notes)
    return 0


def _skipped_note(skipped: list[str], n_llms: int) -> list[str]:
    return [f"skipped: {', '.join(skipped)} ({n_llms} LLMs > {ILP_MAX_LLMS}; name it in --algorithms)"] if skipped else []


def _capacity(args: argparse.Namespace, wl: Any, names: list[str], skipped: list[str]) -> int:
    """``compare --capacity``: each algorithm's capacity search, one row each."""
    from muxsim.capacity import check_bounds
    from muxsim.cli.capacity import capacity_of
    from muxsim.tables import emit

    check_bounds(wl, args.max_gpus)  # before any work
    docs = [capacity_of(wl, name, args, args.quiet).to_dict() for name in names]
    rows = [{"algorithm": d["algorithm"], "gpus": d["gpus"], "nodes": d["nodes"], "attainment": d["attainment"],
             "tried": " ".join(str(p["gpus"]) for p in d["curve"])} for d in docs]
    notes = _skipped_note(skipped, len(wl.models))
    if args.plot:
        from muxsim import plot

        plot.save(plot.capacity(docs, title=f"{args.workload}: GPUs to reach the target"), args.plot)
        notes.append(f"wrote {args.plot}")
    target = docs[0]["target"] if docs else None
    objective = docs[0]["objective"] if docs else None
    notes.insert(0, f"fewest GPUs reaching {objective} >= {target:g}" if docs else "")
    emit(args.format, rows, doc={"workload": args.workload, "target": target, "objective": objective,
                                 "rows": docs}, notes=[n for n in notes if n])
    return 0

