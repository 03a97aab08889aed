"""Pieces every subcommand shares: help text with defaults, output formats, --quiet,
bounded numeric arguments, SM shares, and the check of output paths every command runs
before its work."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from muxsim.errors import InputError
from muxsim.io import check_outputs
from muxsim.limits import MAX_REQUESTS, MAX_SEED, MIN_SM_SHARE
from muxsim.tables import FORMATS, print_json, render

__all__ = ["FORMATS", "SEED", "HelpFormatter", "add_format", "add_max_requests", "add_out_dir", "add_policy_flags",
           "add_quiet", "add_run_options", "add_truncate", "bounded_text", "check_outputs", "check_suffix", "format_table", "number",
           "parse_sm_share", "parse_sm_shares", "print_json", "sim_config_from", "sm_share"]


def add_policy_flags(parser: argparse.ArgumentParser) -> None:
    """The simulator's policy flags: ``simulate``, ``plan`` and ``compare`` take the same
    ones, so that placement plans for the policy the simulator will run."""
    from muxsim.policy import FLEX_POLICIES, TEMPORAL_POLICIES
    from muxsim.sim.config import KV_CACHES

    parser.add_argument("--flex-policy", choices=list(FLEX_POLICIES), default="adbs",
                        help="scheduler of flex meshes (adbs is MuxServe's; see docs/policies.md)")
    parser.add_argument("--temporal-policy", choices=list(TEMPORAL_POLICIES), default="fcfs",
                        help="which LLM of a temporal mesh takes the next turn")
    parser.add_argument("--kv-cache", choices=list(KV_CACHES), default="unified",
                        help="unified: one head-wise pool per mesh with quotas; static: fixed partitions by "
                             "kv_share (quotas never move)")
    parser.add_argument("--initial-quota", choices=["plan", "rate"], default="plan",
                        help="initial KV quotas: the plan's kv_share, or rate x layers x KV heads (ADBS)")
    parser.add_argument("--no-interference", action="store_true", help="co-running jobs do not slow each other")


def sim_config_from(args: argparse.Namespace, **extra: Any) -> Any:
    """The :class:`muxsim.sim.SimConfig` of :func:`add_policy_flags`' flags."""
    from muxsim.sim.config import SimConfig

    return SimConfig(flex_policy=args.flex_policy, temporal_policy=args.temporal_policy, kv_cache=args.kv_cache,
                     initial_quota=args.initial_quota, interference_on=not args.no_interference, **extra)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, adding ``(default: X)`` to every option whose help does not
    already say its default (flags and options without a default excepted)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if (not action.option_strings or d is None or d is False or d is argparse.SUPPRESS
                or "default" in text or isinstance(action, argparse._VersionAction | argparse._HelpAction)):
            return text
        return f"{text} (default: %(default)s)"


def add_format(parser: argparse.ArgumentParser, choices: Sequence[str] = FORMATS) -> None:
    parser.add_argument("--format", choices=list(choices), default=choices[0],
                        help="table: aligned text for people; json: the machine-readable document"
                             + ("; csv: the table's rows with every column" if "csv" in choices else ""))


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bar (there is none anyway when stderr is not a terminal)")


def add_out_dir(parser: argparse.ArgumentParser) -> None:
    """A run folder and whether it holds figures (every command that produces results)."""
    parser.add_argument("--out-dir", metavar="DIR",
                        help="write a run folder here (a new or empty folder, in a folder that exists): the inputs, "
                             "plan(s), summary.json, requests.parquet, per_llm.csv, timeline.parquet and figures/")
    parser.add_argument("--no-figures", action="store_true", help="with --out-dir: leave out figures/")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that simulates (``simulate``, ``compare``): a run
    folder, percentiles, the output format, --quiet, and the request bounds (--truncate,
    --max-requests)."""
    add_out_dir(parser)
    parser.add_argument("--percentiles", metavar="P,P,...",
                        help="latency percentiles beside the mean, p50, p90 and p99, e.g. 95,99.9")
    add_format(parser)
    add_quiet(parser)
    add_truncate(parser)
    add_max_requests(parser)


def format_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """The common text table (:func:`muxsim.tables.render`)."""
    return render(rows, columns)


def number(lo: float, hi: float, *, integer: bool = False, lo_open: bool = False,
           allow_inf: bool = False) -> Callable[[str], Any]:
    """An argparse ``type``: a finite number (an integer with ``integer``) in [lo, hi]
    (``(lo, hi]`` with ``lo_open``; ``inf`` too with ``allow_inf``). argparse turns
    the complaint into ``error: --flag: <complaint>`` and exit status 2."""
    kind = "an integer" if integer else "a number"
    span = f"{'(' if lo_open else '['}{_num(lo)}, {_num(hi)}]" + (" or inf" if allow_inf else "")

    def parse(text: str) -> Any:
        if len(text) > 64:
            raise argparse.ArgumentTypeError(f"must be {kind} in {span}, got a {len(text)}-character value")
        try:
            x: Any = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {kind} in {span}, got {text!r}") from None
        if allow_inf and x == math.inf:
            return x
        if isinstance(x, float) and not math.isfinite(x):
            raise argparse.ArgumentTypeError(f"must be a finite number in {span}, got {text!r}")
        if not ((x > lo if lo_open else x >= lo) and x <= hi):
            raise argparse.ArgumentTypeError(f"must be in {span}, got {text!r}")
        return x

    parse.__name__ = "integer" if integer else "number"
    return parse


def bounded_text(max_chars: int) -> Callable[[str], str]:
    """An argparse ``type``: printable text of 1 to ``max_chars`` characters."""
    def parse(text: str) -> str:
        if not 0 < len(text) <= max_chars:
            raise argparse.ArgumentTypeError(f"must be 1 to {max_chars} characters, got {len(text)}")
        if not text.isprintable():
            raise argparse.ArgumentTypeError("must be printable text (no control characters)")
        return text

    parse.__name__ = "text"
    return parse


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


SEED = number(0, MAX_SEED, integer=True)


def add_max_requests(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-requests", type=number(1, 10**9, integer=True), default=MAX_REQUESTS,
                        metavar="N", help=f"refuse runs of more requests than this (default {MAX_REQUESTS:,}; "
                                          "estimated from rates x duration before any is drawn)")


def add_truncate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--truncate", action="store_true",
                        help="cut requests longer than their model's context window to fit it, with a warning "
                             "(default: refuse them)")


SM_SHARE_RANGE = (f"a share in [{MIN_SM_SHARE:g}, 1] or a percentage in [{MIN_SM_SHARE:.0%}, 100%] "
                  "(0.5 and 50% both mean half)")


def _sm_share(text: str | float) -> float:
    """An SM share as a fraction in [MIN_SM_SHARE, 1], or ValueError saying why not."""
    s = str(text).strip()
    if len(s) > 64:
        raise ValueError(f"must be {SM_SHARE_RANGE}, got a {len(s)}-character value")
    pct = s.endswith("%")
    try:
        x = float(s.removesuffix("%").strip())
    except ValueError:
        raise ValueError(f"expected a share of the SMs such as 50% or 0.5, got {text!r}") from None
    if pct or (math.isfinite(x) and x > 1 and x.is_integer()):
        x /= 100
    if not (math.isfinite(x) and MIN_SM_SHARE <= x <= 1):
        raise ValueError(f"must be {SM_SHARE_RANGE}, got {text!r}")
    return x


def parse_sm_share(text: str | float, field: str) -> float:
    """An SM share as a fraction in [MIN_SM_SHARE, 1]. Written ``50%`` or ``0.5``; a bare
    whole number from 2 to 100 is a percentage too (``50``), any other bare number above
    1 is refused rather than guessed. Anything else is an InputError naming ``field``."""
    try:
        return _sm_share(text)
    except ValueError as e:
        raise InputError(f"{field}: {e}") from None


def sm_share(text: str) -> float:
    """The argparse ``type`` of an SM share flag (:func:`parse_sm_share`)."""
    try:
        return _sm_share(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_sm_shares(text: str, field: str) -> list[float]:
    """Comma-separated SM shares (``30%,50%,100%`` or ``0.3,0.5,1``), each as a fraction."""
    items = [x for x in str(text).split(",") if x.strip()]
    if not items:
        raise InputError(f"{field}: expected SM shares separated by commas, e.g. 30%,50%,100%")
    return [parse_sm_share(x, field) for x in items]


def check_suffix(path: str | os.PathLike[str] | None, suffixes: Sequence[str], field: str) -> str | None:
    """The suffix of ``path`` among ``suffixes`` (e.g. ``(".json",)``); anything else is an
    InputError naming ``field``, so that a file is never written in a format its name
    does not say."""
    if path is None:
        return None
    name = os.path.basename(os.fspath(path)).lower()
    for s in sorted(suffixes, key=len, reverse=True):
        if name.endswith(s) and len(name) > len(s):
            return s
    raise InputError(f"{field}: {os.fspath(path)!r} must end in {' or '.join(suffixes)}")
