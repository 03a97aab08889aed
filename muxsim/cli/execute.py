"""``muxsim execute PLAN.json WORKLOAD.json``: run a plan on real worker processes."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from muxsim.cli.common import (
    SEED,
    add_format,
    add_max_requests,
    add_out_dir,
    add_policy_flags,
    add_quiet,
    bounded_text,
    check_outputs,
    check_suffix,
    number,
    sim_config_from,
)
from muxsim.limits import MAX_PATH_CHARS, MAX_TIME_S

BACKENDS = ("local", "ray")


def add_execute_options(p: argparse.ArgumentParser, *, speed: bool = True) -> None:
    """What execute and validate share: the plan and workload, and how the executor runs
    (validate replays in real time, as the simulator sees the requests)."""
    p.add_argument("plan", metavar="PLAN.json", help="the plan")
    p.add_argument("workload", metavar="WORKLOAD.json", help="the workload the plan serves")
    p.add_argument("--seed", type=SEED, default=None, help="request seed (default: the workload's seed)")
    if speed:
        p.add_argument("--speed", type=number(1e-3, 1e3), default=1.0,
                       help="replay arrivals this many times faster than the workload's clock")
    p.add_argument("--backend", choices=list(BACKENDS), default="local",
                   help="local: worker processes on this machine; ray: Ray actors, a placement group per mesh")
    p.add_argument("--address", type=bounded_text(MAX_PATH_CHARS), default=None, help="with --backend ray: the cluster to join (default: a local Ray)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="where the workers run (cpu: tiny models, one plan GPU per core)")
    p.add_argument("--startup-timeout", type=number(1, 3600), default=120.0, metavar="S",
                   help="seconds to wait for every worker to report ready")
    p.add_argument("--drain", type=number(0, MAX_TIME_S), default=120.0, metavar="S",
                   help="stop S seconds after the last arrival even if requests are unfinished")
    add_policy_flags(p)  # the simulator's: the executor's driver runs the same policies
    add_max_requests(p)
    add_quiet(p)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "execute", help="run a plan on real worker processes (tiny models on a CPU) and measure it",
        description="Replay the workload's requests in real time against worker processes that really generate "
                    "tokens (a prefill and a decode worker per unit, one KV pool per mesh), scheduled by the "
                    "simulator's own policies; report results in the simulator's schema, with run.status "
                    "completed, interrupted, worker_failed: ... or drain_timeout.")
    add_execute_options(p)
    p.add_argument("--out", metavar="RESULTS.json", help="write the results document here (.json), also when "
                                                          "the run is interrupted or a worker fails")
    add_out_dir(p)
    p.add_argument("--tokens", metavar="TOKENS.json",
                   help="write every request's generated token ids here (.json, a list in arrival order)")
    add_format(p, ("table", "json"))
    p.set_defaults(func=run)


def load_inputs(args: argparse.Namespace, outputs: list[tuple[str, Any]], extra: list[tuple[str, Any]] = (),
                dirs: list[tuple[str, Any]] = ()) -> tuple[Any, Any, list]:
    """The plan and workload, checked against each other and the outputs, before any work."""
    from muxsim.plan import load_plan
    from muxsim.plancheck import check_plan_workload, plan_files
    from muxsim.workload import input_files, load_workload

    inputs = [("plan", args.plan), ("workload", args.workload), *extra]
    check_outputs(outputs, inputs, dirs)
    plan = load_plan(args.plan)
    wl = load_workload(args.workload)
    inputs += input_files(wl) + plan_files(plan)
    check_outputs(outputs, inputs, dirs)
    check_plan_workload(plan, wl)
    return plan, wl, inputs


def executor_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"config": sim_config_from(args), "speed": getattr(args, "speed", 1.0), "backend": args.backend,
            "address": args.address, "device": args.device,
            "startup_timeout_s": args.startup_timeout, "drain_s": args.drain, "max_requests": args.max_requests}


def say_ready(workers: int, seconds: float) -> None:
    print(f"ready: {workers} workers in {seconds:.1f} s; replaying requests", file=sys.stderr, flush=True)


def exit_status(status: str) -> int:
    """0 when every request completed; 130 interrupted; 1 otherwise (with a line on stderr)."""
    if status == "completed":
        return 0
    print(f"error: run ended {status}", file=sys.stderr)
    return 130 if status == "interrupted" else 1


def run(args: argparse.Namespace) -> int:
    from muxsim.executor import execute
    from muxsim.io import write_json_atomic
    from muxsim.progress import Progress
    from muxsim.tables import emit

    check_suffix(args.out, (".json",), "--out")
    check_suffix(args.tokens, (".json",), "--tokens")
    plan, wl, inputs = load_inputs(args, [("--out", args.out), ("--tokens", args.tokens)],
                                   dirs=[("--out-dir", args.out_dir)])
    seed = wl.seed if args.seed is None else args.seed
    kw = executor_kwargs(args)
    with Progress("execute", unit="req", quiet=args.quiet) as bar:
        ex = execute(plan, wl, seed=seed, progress=bar.done_of, on_ready=None if args.quiet else say_ready, **kw)
    res = ex.results
    if args.out:
        write_json_atomic(args.out, res.to_dict(), inputs=inputs)
    if args.out_dir:
        from muxsim.runfolder import Run, build_run_folder, write_run_folder

        folder = build_run_folder("execute", wl, [Run(plan.algorithm, plan, res)], config=kw["config"], seed=seed,
                                  summary=res.to_dict())
        write_run_folder(args.out_dir, folder, workload=wl, figures=not args.no_figures, quiet=args.quiet,
                         inputs=inputs)
    if args.tokens:
        prompt = res.frame["prompt_len"].tolist()
        write_json_atomic(args.tokens, [t[p:] for t, p in zip(ex.tokens, prompt)], inputs=inputs)
    if args.format == "table":
        print(res.table().replace("simulated", "measured", 1))
        print(f"status {ex.status}, {res.run['backend']} backend, start-up {res.run['startup_s']:.1f} s")
    else:
        emit("json", res.rows(), doc=res.to_dict())
    return exit_status(ex.status)
