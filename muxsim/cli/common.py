"""Small pieces the subcommands share: output formats, bounded numeric arguments and
the check of output paths every command runs before its work."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from muxsim.limits import MAX_REQUESTS, MAX_SEED


def add_format(parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("table", "json")) -> None:
    parser.add_argument("--format", choices=choices, default=choices[0],
                        help=f"output format (default {choices[0]}); json prints machine-readable output")


def print_json(obj: Any) -> None:
    """Standard JSON on stdout (a value that is not a finite number prints as null)."""
    from muxsim.io import dumps_json

    sys.stdout.write(dumps_json(obj) + "\n")


def number(lo: float, hi: float, *, integer: bool = False, lo_open: bool = False,
           allow_inf: bool = False) -> Callable[[str], Any]:
    """An argparse ``type``: a finite number (an integer with ``integer``) in [lo, hi]
    (``(lo, hi]`` with ``lo_open``; ``inf`` too with ``allow_inf``). argparse turns
    the complaint into ``error: argument --flag: <complaint>`` and exit status 2."""
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


def check_outputs(outputs: Sequence[tuple[str, Any]], inputs: Iterable[tuple[str, Any]] = ()) -> None:
    """Refuse, before any work, output paths muxsim must not write (see :mod:`muxsim.io`)."""
    from muxsim.io import check_outputs as check

    check(outputs, inputs)


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
