"""``muxsim workload synth|from-trace|describe|requests``: make and inspect workloads."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from muxsim.cli.common import (
    SEED,
    add_format,
    add_max_requests,
    add_truncate,
    check_outputs,
    check_suffix,
    number,
)
from muxsim.errors import InputError
from muxsim.limits import (
    MAX_ARRIVAL_CV,
    MAX_GPUS_PER_NODE,
    MAX_LLMS,
    MAX_NODES,
    MAX_RATE,
    MAX_TIME_S,
    MAX_WINDOWS,
    MIN_ARRIVAL_CV,
)

ALPHA = number(0, 100)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("workload", help="make and inspect workloads (workload.json)")
    sub = p.add_subparsers(dest="workload_command", metavar="ACTION", parser_class=type(p))
    p.set_defaults(func=lambda args: _usage(p))

    s = sub.add_parser("synth", help="the paper's power-law workload: rate_i = max_rate*(i+1)^-alpha")
    s.add_argument("--mix", required=True, help="models in popularity order, e.g. 12xllama-7b,4xllama-13b "
                                                "(catalog names, aliases or Hugging Face ids)")
    s.add_argument("--alpha", type=ALPHA, required=True, help="power-law exponent, in [0, 100]")
    s.add_argument("--max-rate", type=number(0, MAX_RATE, lo_open=True), required=True,
                   help="requests/s of the most popular model")
    _cluster_args(s)
    s.add_argument("--duration", type=number(0, MAX_TIME_S, lo_open=True), default=240.0, help="seconds of traffic")
    s.add_argument("--seed", type=SEED, default=0, help="seed of the requests the workload generates")
    s.add_argument("--arrivals", choices=["poisson", "gamma"], default="poisson",
                   help="arrival process of each model")
    s.add_argument("--cv", type=number(MIN_ARRIVAL_CV, MAX_ARRIVAL_CV), default=None,
                   help=f"coefficient of variation of gamma gaps, in [{MIN_ARRIVAL_CV:g}, {MAX_ARRIVAL_CV:g}]")
    s.add_argument("--drift-windows", type=number(1, MAX_WINDOWS, integer=True), default=1,
                   help="rotate the popularity ranking over this many equal windows (default 1: none)")
    s.add_argument("--out", required=True, metavar="WORKLOAD.json", help="workload.json to write (.json)")
    s.set_defaults(func=_synth)

    t = sub.add_parser("from-trace", help="a workload replaying request logs (e.g. Azure LLM inference traces)")
    t.add_argument("traces", nargs="+", metavar="TRACE", help="CSV/JSONL logs: time, prompt tokens, output tokens")
    t.add_argument("--model", action="append", required=True,
                   help="model serving each log (once for all, or once per log in order)")
    t.add_argument("--name", action="append", default=None, help="LLM name per log (default llm-0, llm-1, ...)")
    t.add_argument("--time-scale", type=number(0, 1e9, lo_open=True), default=None,
                   help="multiply times by this (0.1 compresses the trace tenfold: rates x10)")
    t.add_argument("--rate", type=number(0, MAX_RATE, lo_open=True), default=None,
                   help="instead of --time-scale: scale time so that all logs together offer this many req/s")
    t.add_argument("--split", type=number(1, MAX_LLMS, integer=True), default=None, metavar="N",
                   help="spread one log over N models by power-law popularity (see --alpha)")
    t.add_argument("--alpha", type=ALPHA, default=1.0,
                   help="with --split: the i-th model gets requests with weight (i+1)^-alpha (default 1)")
    t.add_argument("--seed", type=SEED, default=0, help="with --split: seed of the assignment (default 0)")
    _cluster_args(t)
    t.add_argument("--duration", type=number(0, MAX_TIME_S, lo_open=True), default=None,
                   help="seconds to keep (default: the last request plus one mean gap)")
    add_truncate(t)
    add_max_requests(t)
    t.add_argument("--trace-out", default=None, help="where the converted trace goes: .csv, .jsonl or .parquet "
                                                     "(default OUT.trace.csv)")
    t.add_argument("--out", required=True, metavar="WORKLOAD.json", help="workload.json to write (.json)")
    t.set_defaults(func=_from_trace)

    d = sub.add_parser("describe", help="rates, shares, length percentiles, offered tokens/s")
    d.add_argument("workload", metavar="WORKLOAD.json", help="the workload to describe")
    add_format(d)
    d.set_defaults(func=_describe)

    r = sub.add_parser("requests", help="generate the requests and write them as a trace (CSV or JSONL)")
    r.add_argument("workload", metavar="WORKLOAD.json", help="the workload whose requests to generate")
    r.add_argument("--seed", type=SEED, default=None, help="request seed (default: the workload's seed)")
    add_max_requests(r)
    r.add_argument("--out", required=True, metavar="TRACE",
                   help="trace to write, in the format its name says: .csv, .jsonl (either may add .gz) or .parquet")
    r.set_defaults(func=_requests)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def _cluster_args(p: argparse.ArgumentParser) -> None:
    from muxsim.plan import DEFAULT_CLUSTER

    p.add_argument("--gpu", default=DEFAULT_CLUSTER.gpu, help="GPU of the cluster (a catalog name)")
    p.add_argument("--nodes", type=number(1, MAX_NODES, integer=True), default=DEFAULT_CLUSTER.nodes,
                   help="nodes of the cluster")
    p.add_argument("--gpus-per-node", type=number(1, MAX_GPUS_PER_NODE, integer=True),
                   default=DEFAULT_CLUSTER.gpus_per_node, help="GPUs in each node")


def _synth(args: argparse.Namespace) -> int:
    from muxsim.workload import save_workload, synth_workload

    check_suffix(args.out, (".json",), "--out")
    arrivals: dict[str, Any] = {"process": args.arrivals}
    if args.arrivals == "gamma":
        if args.cv is None:
            raise InputError("cv: --arrivals gamma needs --cv")
        arrivals["cv"] = args.cv
    elif args.cv is not None:
        raise InputError("cv: only --arrivals gamma takes --cv")
    check_outputs([("--out", args.out)])
    wl = synth_workload(args.mix, args.alpha, args.max_rate, gpu=args.gpu, nodes=args.nodes,
                        gpus_per_node=args.gpus_per_node, duration=args.duration, seed=args.seed,
                        arrivals=arrivals, drift_windows=args.drift_windows)
    save_workload(wl, args.out)
    print(f"wrote {args.out}: {len(wl.models)} LLMs, {wl.total_rate():.4g} req/s over {wl.duration_s:g} s")
    return 0


def _from_trace(args: argparse.Namespace) -> int:
    from muxsim.workload import import_logs, save_workload, write_trace
    from muxsim.workload.tabular import table_format

    check_suffix(args.out, (".json",), "--out")
    inputs = [(f"trace {str(t)!r}", t) for t in args.traces]
    check_outputs([("--out", args.out)], inputs)
    out = Path(args.out)
    # the path as given: a trailing slash must reach the check (pathlib would drop it)
    trace_out = args.trace_out if args.trace_out is not None else \
        str(out.with_name(out.name.removesuffix(".json") + ".trace.csv"))
    table_format(trace_out, "--trace-out")
    check_outputs([("--out", args.out), ("--trace-out", trace_out)], inputs)
    wl, reqs = import_logs(
        args.traces, args.model, args.name, time_scale=args.time_scale, rate=args.rate, split=args.split,
        alpha=args.alpha, seed=args.seed, duration=args.duration,
        cluster={"gpu": args.gpu, "nodes": args.nodes, "gpus_per_node": args.gpus_per_node},
        trace_path=os.path.relpath(Path(trace_out).resolve(), Path.cwd()), truncate=args.truncate,
        max_requests=args.max_requests,
    )
    write_trace(reqs, trace_out, "--trace-out", inputs=inputs)
    save_workload(wl, out, inputs=[*inputs, ("--trace-out", trace_out)])
    print(f"wrote {out} and {trace_out}: {len(reqs)} requests of {len(args.traces)} log(s), "
          f"{len(reqs) / wl.duration_s:.4g} req/s over {wl.duration_s:g} s")
    return 0


def _describe(args: argparse.Namespace) -> int:
    from muxsim.metrics import unflatten
    from muxsim.tables import emit
    from muxsim.workload import describe, describe_text, load_workload

    wl = load_workload(args.workload)
    if args.format == "table":
        sys.stdout.write(describe_text(wl))
        return 0
    df = describe(wl)
    rows = df.to_dict(orient="records")
    per_llm = {r["name"]: unflatten({k: v for k, v in r.items() if k != "name"}) for r in rows}
    emit(args.format, rows, doc={"total": df.attrs["total"], "per_llm": per_llm})
    return 0


def _requests(args: argparse.Namespace) -> int:
    from muxsim.workload import generate_requests, input_files, load_workload, write_trace
    from muxsim.workload.tabular import table_format

    table_format(args.out, "--out")
    inputs = [("workload", args.workload)]
    check_outputs([("--out", args.out)], inputs)
    wl = load_workload(args.workload)
    inputs += input_files(wl)
    check_outputs([("--out", args.out)], inputs)
    df = generate_requests(wl, seed=args.seed, max_requests=args.max_requests)
    write_trace(df, args.out, "--out", inputs=inputs)
    print(f"wrote {args.out}: {len(df)} requests")
    return 0
