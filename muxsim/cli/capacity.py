"""``muxsim capacity WORKLOAD.json``: the fewest GPUs at which an algorithm's plan,
simulated, reaches the target SLO attainment; the attainment against GPUs, and the plan."""

from __future__ import annotations

import argparse
from typing import Any

from muxsim.cli.common import add_format, add_quiet, check_suffix

FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


def add_capacity_options(p: argparse.ArgumentParser) -> None:
    """Options of a capacity search (capacity, and compare --capacity)."""
    p.add_argument("--target", type=float, default=None, metavar="A",
                   help="attainment to reach (default: the workload's slo.target_attainment, 0.99 unless set)")
    p.add_argument("--max-gpus", type=int, default=None, metavar="N",
                   help="try at most this many GPUs (default: twice the workload's cluster)")
    p.add_argument("--seed", type=int, default=None, help="seed of the requests (default: the workload's)")


def register(subparsers: Any) -> None:
    from muxsim.cli.plan import ALGORITHM_HELP, add_search_options
    from muxsim.placement import ALGORITHMS, DEFAULT_ALGORITHM

    p = subparsers.add_parser(
        "capacity", help="the fewest GPUs whose plan meets the SLO target",
        description="Place and simulate the workload on 1, 2, ... whole nodes until the SLO attainment reaches the "
                    "target, then on fewer GPUs of the last node; print the count, the curve and the plan. "
                    "--slo-scale X scores attainment at X times each request's latency alone (default: the "
                    "workload's absolute targets if it sets any, else 8).")
    p.add_argument("workload", metavar="WORKLOAD.json", help="the workload (workload.json); its cluster gives the GPU "
                                                             "type and node size")
    p.add_argument("--algorithm", default=DEFAULT_ALGORITHM, choices=list(ALGORITHMS),
                   help=f"placement algorithm: {ALGORITHM_HELP}")
    add_capacity_options(p)
    p.add_argument("--plot", metavar="FILE.png", help="draw the attainment against GPUs here (.png, .svg or .pdf)")
    add_format(p, ("table", "json"))
    add_quiet(p)
    add_search_options(p)
    p.set_defaults(func=run)


def capacity_of(wl: Any, algorithm: str, args: argparse.Namespace, quiet: bool) -> Any:
    """:func:`muxsim.capacity.capacity` with the command line's options, behind a progress bar."""
    from muxsim.capacity import capacity
    from muxsim.cli.plan import search_options
    from muxsim.progress import Progress

    opts = search_options(algorithm, args)
    opts.pop("slo_scale", None)  # capacity passes its own
    with Progress(f"capacity ({algorithm})", quiet=quiet) as bar:
        return capacity(wl, algorithm, slo_scale=args.slo_scale, target=args.target, max_gpus=args.max_gpus,
                        seed=args.seed, options=opts, progress=bar.status)


def summary(c: Any) -> str:
    if c.gpus is None:
        return (f"{c.algorithm}: {c.objective} does not reach {c.target:g} within {c.max_gpus} GPUs "
                f"(best {max((p['attainment'] for p in c.curve), default=0.0):.3f})")
    last = c.gpus - (c.nodes - 1) * c.gpus_per_node
    nodes = f"{c.nodes} node(s) of {c.gpus_per_node}" + (f", {last} GPU(s) of the last" if last < c.gpus_per_node
                                                            else "")
    return f"{c.algorithm}: {c.gpus} GPUs ({nodes}) reach {c.objective} {c.attainment:.3f} >= {c.target:g}"


def run(args: argparse.Namespace) -> int:
    from muxsim.tables import print_json, render
    from muxsim.workload import load_workload

    check_suffix(args.plot, FIGURE_SUFFIXES, "--plot")
    wl = load_workload(args.workload)
    c = capacity_of(wl, args.algorithm, args, args.quiet)
    if args.plot:
        from muxsim import plot

        plot.save(plot.capacity([c.to_dict()], title=str(args.workload)), args.plot)
    if args.format == "json":
        print_json(c.to_dict())
        return 0
    print(render(c.curve, ["gpus", "nodes", "attainment", "throughput_rps", "carried"]))
    if c.plan is not None:
        from muxsim.plan import plan_table

        rates = {m.name: float(m.rate or 0.0) for m in wl.models}
        print()
        print(plan_table(c.plan, rates, wl.names()))
    print(summary(c))
    if args.plot:
        print(f"wrote {args.plot}")
    return 0
