"""``muxsim compare WORKLOAD.json``: every placement algorithm, each plan simulated, one table.

One row per algorithm: its status, the plan's estimated throughput, the offered and
simulated throughput, SLO attainment at each of the workload's scales and the verdict
against its ``target_attainment`` (``slo.min_scale``; ``slo.attainment`` and ``slo.met``
with absolute targets), P99 TTFT and TPOT, and placement time. ``--format json`` prints
the rows with each plan's full results document (what ``summary.json`` of
``--out-dir`` holds); ``--plot FILE`` draws :func:`muxsim.plot.compare`. ``--capacity``
asks instead each algorithm's fewest GPUs for the target attainment (``muxsim capacity``),
side by side.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from muxsim.cli.capacity import add_capacity_options
from muxsim.cli.common import (
    SEED,
    add_policy_flags,
    add_run_options,
    check_outputs,
    check_suffix,
    sim_config_from,
)
from muxsim.cli.search import add_search_options, search_options
from muxsim.errors import InputError
from muxsim.limits import MAX_REQUESTS

ILP_MAX_LLMS = 20  # by default the ILP runs only on workloads this small (it grows as n^4)
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("compare", help="place a workload with every algorithm and simulate each plan",
                              description="Run every placement algorithm, simulate each plan, print one table.")
    p.add_argument("workload", metavar="WORKLOAD.json", help="the workload (workload.json)")
    p.add_argument("--algorithms", metavar="A,B,...",
                   help=f"comma-separated algorithms (default: all; ilp only with at most {ILP_MAX_LLMS} LLMs)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the requests")
    p.add_argument("--plot", metavar="FILE.png", help="draw throughput, SLO attainment and P99 TTFT here (with "
                                                      "--capacity: attainment against GPUs; .png, .svg or .pdf)")
    p.add_argument("--capacity", action="store_true",
                   help="instead: the fewest GPUs each algorithm needs to reach the target attainment, side by side "
                        "(see `muxsim capacity`)")
    add_capacity_options(p, seed=False)
    add_run_options(p)
    add_policy_flags(p)  # placement and simulation alike
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
                 config: Any = None, percentiles: Any = None, quiet: bool = True, truncate: bool = False,
                 max_requests: int = MAX_REQUESTS, options: dict[str, dict[str, Any]] | None = None) -> list[Any]:
    """One :class:`muxsim.runfolder.Run` per algorithm: its plan and the simulated results,
    placed and simulated under the same simulator ``config`` (default: SimConfig()).
    The requests are drawn once and checked against the models' context windows
    before any placement runs. ``options`` (by algorithm) replace the time limit as the
    search's options."""
    from muxsim.placement import solve_placement
    from muxsim.progress import Progress
    from muxsim.runfolder import Run
    from muxsim.sim import simulate
    from muxsim.workload import generate_requests
    from muxsim.workload.generate import context_windows, fit_to_context

    reqs = fit_to_context(generate_requests(wl, seed=seed, max_requests=max_requests), context_windows(wl),
                          truncate)
    runs = []
    with Progress("compare", total=2 * len(algorithms), quiet=quiet) as bar:
        for name in algorithms:
            bar.status(f"{name}: placing")
            t0 = time.perf_counter()
            opts = (options or {}).get(name, {"time_limit_s": time_limit_s})
            res = solve_placement(wl, name, sim_config=config, **opts)
            placed_s = time.perf_counter() - t0
            bar.advance()
            results = None
            if res.plan is not None:
                bar.status(f"{name}: simulating")
                results = simulate(res.plan, wl, seed=seed, config=config, percentiles=percentiles, requests=reqs,
                                   max_requests=max_requests)
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
    from muxsim.workload import input_files, load_workload

    check_suffix(args.plot, FIGURE_SUFFIXES, "--plot")
    if args.capacity and (args.out_dir or args.percentiles):
        raise InputError("--capacity: prints GPU counts; it takes no --out-dir or --percentiles")
    percentiles = parse_percentiles(args.percentiles)
    inputs = [("workload", args.workload)]
    outputs, folders = [("--plot", args.plot)], [("--out-dir", args.out_dir)]
    check_outputs(outputs, inputs, folders)
    if args.algorithms is not None:
        _algorithms(args.algorithms, 0)  # bad names fail before any work
    wl = load_workload(args.workload)
    inputs += input_files(wl)
    check_outputs(outputs, inputs, folders)
    names, skipped = _algorithms(args.algorithms, len(wl.models))
    config = sim_config_from(args)
    if args.capacity:
        return _capacity(args, wl, names, skipped, config, inputs)
    runs = compare_runs(wl, names, seed=args.seed, time_limit_s=args.time_limit, config=config,
                        percentiles=percentiles, quiet=args.quiet, truncate=args.truncate,
                        max_requests=args.max_requests, options={n: search_options(n, args, args.seed) for n in names})
    from muxsim.runfolder import summary_rows

    rows = summary_rows(runs)
    doc = {"workload": args.workload, "seed": args.seed, "rows": rows}
    notes = []
    if args.plot:
        from muxsim import plot

        plot.save(plot.compare(rows, title=f"{args.workload} (seed {args.seed})"), args.plot, what="--plot",
                  inputs=inputs)
        notes.append(f"wrote {args.plot}")
    if args.out_dir:
        from muxsim.runfolder import build_run_folder, write_run_folder

        folder = build_run_folder("compare", wl, runs, config=config, seed=args.seed, summary=doc)
        write_run_folder(args.out_dir, folder, workload=wl, figures=not args.no_figures, quiet=args.quiet,
                         inputs=inputs)
        notes.append(f"wrote {args.out_dir.rstrip('/')}/")
    notes[:0] = _skipped_note(skipped, len(wl.models))
    flat = flat_rows(rows)
    emit(args.format, flat, None if args.format == "csv" else table_columns(rows), doc=doc, notes=notes)
    return 0


def _skipped_note(skipped: list[str], n_llms: int) -> list[str]:
    return [f"skipped: {', '.join(skipped)} ({n_llms} LLMs > {ILP_MAX_LLMS}; name it in --algorithms)"] if skipped else []


def _capacity(args: argparse.Namespace, wl: Any, names: list[str], skipped: list[str], config: Any,
              inputs: list[Any]) -> int:
    """``compare --capacity``: each algorithm's capacity search, one row each."""
    from muxsim.capacity import check_bounds
    from muxsim.cli.capacity import capacity_of
    from muxsim.tables import emit

    check_bounds(wl, args.max_gpus)  # before any work
    docs = [capacity_of(wl, name, args, config).to_dict() for name in names]
    rows = [{"algorithm": d["algorithm"], "gpus": d["gpus"], "nodes": d["nodes"], "attainment": d["attainment"],
             "tried": " ".join(str(p["gpus"]) for p in d["curve"])} for d in docs]
    notes = [f"fewest GPUs reaching {docs[0]['objective']} >= {docs[0]['target']:g}",
             *_skipped_note(skipped, len(wl.models))]
    if args.plot:
        from muxsim import plot

        plot.save(plot.capacity(docs, title=f"{args.workload}: GPUs to reach the target"), args.plot, what="--plot",
                  inputs=inputs)
        notes.append(f"wrote {args.plot}")
    emit(args.format, rows, doc={"workload": args.workload, "target": docs[0]["target"],
                                 "objective": docs[0]["objective"], "rows": docs}, notes=notes)
    return 0
