"""``muxsim capacity WORKLOAD.json``: the fewest GPUs at which an algorithm's plan,
simulated, reaches the target SLO attainment; the attainment against GPUs, and the plan."""

from __future__ import annotations

import argparse
from typing import Any

from muxsim.cli.common import (
    SEED,
    add_format,
    add_policy_flags,
    add_quiet,
    check_outputs,
    check_suffix,
    number,
    sim_config_from,
)
from muxsim.cli.search import ALGORITHM_HELP, add_search_options, search_options
from muxsim.limits import MAX_CAPACITY_GPUS

FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


def add_capacity_options(p: argparse.ArgumentParser, *, seed: bool = True) -> None:
    """Options of a capacity search (capacity, and compare --capacity, which has its own --seed)."""
    p.add_argument("--target", type=number(0, 1, lo_open=True), default=None, metavar="A",
                   help="attainment to reach (default: the workload's slo.target_attainment, 0.99 unless set)")
    p.add_argument("--max-gpus", type=number(1, MAX_CAPACITY_GPUS, integer=True), default=None, metavar="N",
                   help="try at most this many GPUs (default: twice the workload's cluster)")
    if seed:
        p.add_argument("--seed", type=SEED, default=None, help="seed of the requests (default: the workload's)")


def register(subparsers: Any) -> None:
    from muxsim.placement import ALGORITHMS, DEFAULT_ALGORITHM

    p = subparsers.add_parser(
        "capacity", help="the fewest GPUs whose plan meets the SLO target",
        description="Place and simulate the workload on 1, 2, ... whole nodes until the SLO attainment reaches the "
                    "target, then on fewer GPUs of the last node; print the count, the curve and the plan.")
    p.add_argument("workload", metavar="WORKLOAD.json", help="the workload (workload.json); its cluster gives the GPU "
                                                             "type and node size")
    p.add_argument("--algorithm", default=DEFAULT_ALGORITHM, choices=list(ALGORITHMS),
                   help=f"placement algorithm: {ALGORITHM_HELP}")
    add_capacity_options(p)
    p.add_argument("--plot", metavar="FILE.png", help="draw the attainment against GPUs here (.png, .svg or .pdf)")
    add_format(p, ("table", "json"))
    add_quiet(p)
    add_policy_flags(p)  # placement and simulation alike
    add_search_options(p)
    p.set_defaults(func=run)


def capacity_of(wl: Any, algorithm: str, args: argparse.Namespace, config: Any) -> Any:
    """:func:`muxsim.capacity.capacity` with the command line's options, behind a progress bar."""
    from muxsim.capacity import capacity
    from muxsim.progress import Progress

    opts = search_options(algorithm, args)
    opts.pop("slo_scale", None)  # capacity passes its own
    with Progress(f"capacity ({algorithm})", quiet=args.quiet) as bar:
        return capacity(wl, algorithm, slo_scale=args.slo_scale, target=args.target, max_gpus=args.max_gpus,
                        seed=args.seed, config=config, options=opts, progress=bar.status)


def summary(c: Any) -> str:
    if c.gpus is None:
        return (f"{c.algorithm}: {c.objective} does not reach {c.target:g} within {c.max_gpus} GPUs "
                f"(best {max((p['attainment'] for p in c.curve), default=0.0):.3f})")
    last = c.gpus - (c.nodes - 1) * c.gpus_per_node
    nodes = f"{c.nodes} node(s) of {c.gpus_per_node}" + (f", {last} GPU(s) of the last" if last < c.gpus_per_node
                                                            else "")
    return f"{c.algorithm}: {c.gpus} GPUs ({nodes}) reach {c.objective} {c.attainment:.3f} >= {c.target:g}"


def run(args: argparse.Namespace) -> int:
    from muxsim.capacity import check_bounds
    from muxsim.tables import print_json, render
    from muxsim.workload import input_files, load_workload

    check_suffix(args.plot, FIGURE_SUFFIXES, "--plot")
    inputs = [("workload", args.workload)]
    outputs = [("--plot", args.plot)]
    check_outputs(outputs, inputs)
    wl = load_workload(args.workload)
    inputs += input_files(wl)
    check_outputs(outputs, inputs)
    check_bounds(wl, args.max_gpus)  # before any work
    c = capacity_of(wl, args.algorithm, args, sim_config_from(args))
    if args.plot:
        from muxsim import plot

        plot.save(plot.capacity([c.to_dict()], title=str(args.workload)), args.plot, what="--plot", inputs=inputs)
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
