"""Small pieces the subcommands share: output formats and atomic writes."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_policy_flags(parser: argparse.ArgumentParser) -> None:
    """The simulator's policy flags: ``simulate``, ``plan`` and ``compare`` take the same
    ones, so that placement plans for the policy the simulator will run."""
    from muxsim.policy import FLEX_POLICIES, TEMPORAL_POLICIES
    from muxsim.sim.config import KV_CACHES

    parser.add_argument("--flex-policy", choices=list(FLEX_POLICIES), default="adbs",
                        help="scheduler of flex meshes (adbs is MuxServe's)")
    parser.add_argument("--temporal-policy", choices=list(TEMPORAL_POLICIES), default="fcfs",
                        help="which LLM takes the next turn on a temporal mesh")
    parser.add_argument("--kv-cache", choices=list(KV_CACHES), default="unified",
                        help="static: fixed KV partitions by kv_share (quotas never move)")
    parser.add_argument("--initial-quota", choices=["plan", "rate"], default="plan",
                        help="initial KV quotas: the plan's kv_share, or rate x layers x KV heads (ADBS)")
    parser.add_argument("--no-interference", action="store_true", help="co-running jobs do not slow each other")


def sim_config_from(args: argparse.Namespace, **extra: Any) -> Any:
    """The :class:`muxsim.sim.SimConfig` of :func:`add_policy_flags`' flags."""
    from muxsim.sim.config import SimConfig

    return SimConfig(flex_policy=args.flex_policy, temporal_policy=args.temporal_policy, kv_cache=args.kv_cache,
                     initial_quota=args.initial_quota, interference_on=not args.no_interference, **extra)


def add_format(parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("table", "json")) -> None:
    parser.add_argument("--format", choices=choices, default=choices[0],
                        help=f"output format (default {choices[0]}); json prints machine-readable output")


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def format_table(rows: list[dict[str, Any]], columns: list[str] | None = None, floatfmt: str = ".4g") -> str:
    """A plain aligned text table (no dependency; numbers right-aligned)."""
    if not rows:
        return "(no rows)"
    cols = columns or list(rows[0])

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v)

    cells = [[cell(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    numeric = [all(isinstance(r.get(c), int | float) for r in rows) for c in cols]

    def line(vals: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric)).rstrip()

    out = [line(cols), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)
