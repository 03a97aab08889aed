"""The one way muxsim prints tables, for every command and format.

Rows are dicts whose keys follow the metric naming of :mod:`muxsim.metrics` (nested
metrics flattened with dots: ``ttft_ms.p99``). Renderings of the same rows:

- ``text``: aligned columns for people. Dotted names share a header: ``ttft_ms`` over
  ``mean p50 p99``. Numbers are right-aligned, a column's numbers share one number of
  decimals chosen from its magnitude (3 up to 1, 2 up to 100, 1 up to 1000, then whole
  numbers with thousands separators; values spanning more than a factor of 1000 each
  get their own); never an exponent. Missing values print ``-``, booleans ``yes``/``no``.
- ``csv``: the same columns, full precision, for machines;
- ``markdown``: the text cells as a Markdown table (``muxsim fidelity`` writes docs with it).
- ``json`` is not a table: commands print their documents (``print_json``).
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Sequence
from typing import Any

FORMATS = ("table", "json", "csv")
GAP = "  "


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _decimals(values: list[Any]) -> int:
    finite = [abs(float(v)) for v in values if _is_num(v) and math.isfinite(v)]
    m = max(finite, default=0.0)
    if all(isinstance(v, int) for v in values if _is_num(v)) or (
            m > 1 and all(float(v).is_integer() for v in values if _is_num(v) and math.isfinite(v))):
        return 0  # counts, and whole numbers such as SLO scales (not shares that happen to be 0 or 1)
    if min((x for x in finite if x > 0), default=m) < m / 1000:
        return SPREAD  # magnitudes too far apart for one number of decimals
    return _places(m) if m > 0 else 3  # a column of zeros: 0.000 like the shares beside it


SPREAD = -1  # a column formatted value by value


def _places(a: float) -> int:
    return 0 if a >= 1000 else 1 if a >= 100 else 2 if a > 1 else 3 if a >= 0.01 else 4 if a >= 0.001 else 6


def format_number(v: Any, decimals: int) -> str:
    """One cell: ``-`` for missing, ``yes``/``no``, numbers with ``decimals`` places."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if _is_num(v):
        if isinstance(v, float) and math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if decimals == SPREAD:
            decimals = _places(abs(v))
        return f"{v:,.{decimals}f}" if decimals == 0 else f"{v:.{decimals}f}"
    return str(v)


def _split(col: str) -> tuple[str, str]:
    group, dot, leaf = col.partition(".")
    return (group, leaf) if dot else ("", col)


def render(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as aligned text (see the module doc)."""
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    if not rows or not cols:
        return "(no rows)"
    numeric, cells = [], []
    for c in cols:
        vals = [r.get(c) for r in rows]
        numeric.append(any(_is_num(v) for v in vals) and all(v is None or _is_num(v) for v in vals))
        d = _decimals(vals)
        cells.append([format_number(v, d) for v in vals])
    parts = [_split(c) for c in cols]
    widths = [max(len(parts[i][1]), *(len(x) for x in cells[i])) for i in range(len(cols))]
    # groups of consecutive columns sharing a prefix; widen the last column if the label needs it
    groups: list[tuple[str, int, int]] = []  # (label, first, last)
    for i, (g, _) in enumerate(parts):
        if g and groups and groups[-1][0] == g and groups[-1][2] == i - 1:
            groups[-1] = (g, groups[-1][1], i)
        else:
            groups.append((g, i, i))
    for g, a, b in groups:
        span = sum(widths[a:b + 1]) + len(GAP) * (b - a)
        if len(g) > span:
            widths[b] += len(g) - span

    def line(vals: list[str], right: list[bool]) -> str:
        return GAP.join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(vals, widths, right)).rstrip()

    out = []
    if any(g for g, _, _ in groups):
        head = []
        for g, a, b in groups:
            span = sum(widths[a:b + 1]) + len(GAP) * (b - a)
            head.append((g.center(span) if b > a else g.rjust(span) if numeric[a] else g.ljust(span)) if g
                        else " " * span)
        out.append(GAP.join(head).rstrip())
    out.append(line([p[1] for p in parts], numeric))
    out.append(line(["-" * w for w in widths], [False] * len(cols)))
    for k in range(len(rows)):
        out.append(line([cells[i][k] for i in range(len(cols))], numeric))
    return "\n".join(out)


def to_markdown(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as a Markdown table, cells formatted as :func:`render` formats them (for docs)."""
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    if not rows or not cols:
        return "(no rows)"
    cells = []
    for c in cols:
        vals = [r.get(c) for r in rows]
        d = _decimals(vals)
        cells.append([format_number(v, d).replace("|", "\\|") for v in vals])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(cells[i][k] for i in range(len(cols))) + " |" for k in range(len(rows))]
    return "\n".join(out)


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as CSV (full precision; missing values empty)."""
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow(["" if r.get(c) is None else repr(r[c]) if isinstance(r.get(c), float) else r.get(c)
                    for c in cols])
    return buf.getvalue()


def print_json(obj: Any) -> None:
    """Standard JSON on stdout (a value that is not a finite number prints as null)."""
    from muxsim.io import dumps_json

    sys.stdout.write(dumps_json(obj) + "\n")


def emit(fmt: str, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, *,
         doc: Any = None, notes: Sequence[str] = ()) -> None:
    """Print ``rows`` as a text table (then ``notes``, one a line) or as CSV, or ``doc``
    as JSON (``rows`` when no ``doc`` is given)."""
    if fmt == "json":
        print_json(rows if doc is None else doc)
    elif fmt == "csv":
        sys.stdout.write(to_csv(rows, columns))
    else:
        print(render(rows, columns))
        for n in notes:
            print(n)
