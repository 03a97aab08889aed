"""What a workload offers: rates, shares, length percentiles, tokens per second."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from muxsim.metrics import PERCENTILES, pct_key

from . import lengths
from .schema import Workload


def _length_stats(values: np.ndarray, probs: np.ndarray, prefix: str) -> dict[str, float]:
    out = {f"{prefix}.mean": float(np.dot(values, probs) / probs.sum())}
    qs = lengths.quantiles(values, probs, [p / 100 for p in PERCENTILES])
    out.update({f"{prefix}.{pct_key(p)}": q for p, q in zip(PERCENTILES, qs)})
    return out


def describe(wl: Workload) -> pd.DataFrame:
    """One row per model: ``name, model, rate_rps`` (mean over the run), ``min_rate_rps``,
    ``max_rate_rps`` (over its schedule), ``share`` of all requests, ``expected_requests``,
    ``prompt_len.`` and ``output_len.`` ``mean/p50/p90/p99`` (exact for the distributions,
    empirical for a trace; dotted names as :mod:`muxsim.metrics` names metrics) and offered
    ``prompt_tokens_per_s``, ``output_tokens_per_s``, ``tokens_per_s``.
    ``df.attrs["total"]`` holds the cluster-wide sums."""
    if not isinstance(wl, Workload):
        from muxsim.errors import InputTypeError

        raise InputTypeError(f"wl: expected a Workload, got {type(wl).__name__}")
    trace = None
    if wl.trace is not None:
        from .trace import trace_requests

        trace = trace_requests(wl)
    total_rate = wl.total_rate()
    rows: list[dict[str, Any]] = []
    for m in wl.models:
        _, rates = m.windows(wl.duration_s)
        row: dict[str, Any] = {
            "name": m.name,
            "model": m.model if isinstance(m.model, str) else "inline",
            "rate_rps": wl.rate_of(m.name),
            "min_rate_rps": float(min(rates)) if m.rate_schedule else wl.rate_of(m.name),
            "max_rate_rps": float(max(rates)) if m.rate_schedule else wl.rate_of(m.name),
            "share": wl.rate_of(m.name) / total_rate,
            "expected_requests": wl.rate_of(m.name) * wl.duration_s,
        }
        if trace is not None:
            mine = trace[trace["name"] == m.name]
            for col in ("prompt_len", "output_len"):
                v, c = np.unique(mine[col].to_numpy(), return_counts=True) if len(mine) else (np.zeros(1), np.ones(1))
                row.update(_length_stats(v.astype(np.float64), c.astype(np.float64), col))
        else:
            row.update(_length_stats(*lengths.pmf(m.prompt_len, "prompt"), "prompt_len"))
            row.update(_length_stats(*lengths.output_pmf(m.prompt_len, m.output_len), "output_len"))
        row["prompt_tokens_per_s"] = row["rate_rps"] * row["prompt_len.mean"]
        row["output_tokens_per_s"] = row["rate_rps"] * row["output_len.mean"]
        row["tokens_per_s"] = row["prompt_tokens_per_s"] + row["output_tokens_per_s"]
        rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs["total"] = {
        "models": len(rows),
        "rate_rps": total_rate,
        "expected_requests": float(df["expected_requests"].sum()),
        "prompt_tokens_per_s": float(df["prompt_tokens_per_s"].sum()),
        "output_tokens_per_s": float(df["output_tokens_per_s"].sum()),
        "tokens_per_s": float(df["tokens_per_s"].sum()),
        "duration_s": wl.duration_s,
        "arrivals": wl.arrivals.process,
        "cluster": wl.cluster.to_dict(),
    }
    return df


def describe_text(wl: Workload) -> str:
    """The table the CLI prints."""
    from muxsim.tables import render

    df = describe(wl)
    t = df.attrs["total"]
    cols = ["name", "model", "rate_rps", "share", "prompt_len.mean", "prompt_len.p99", "output_len.mean",
            "output_len.p99", "tokens_per_s"]
    if any(m.rate_schedule for m in wl.models):
        cols[3:3] = ["min_rate_rps", "max_rate_rps"]
    c = t["cluster"]
    head = (f"{t['models']} models on {c['nodes']} x {c['gpus_per_node']} {c['gpu']}, "
            f"{t['arrivals']} arrivals over {t['duration_s']:g} s")
    foot = (f"total: {t['rate_rps']:.4g} req/s, {t['expected_requests']:,.0f} requests expected, "
            f"{t['tokens_per_s']:,.0f} tokens/s offered "
            f"({t['prompt_tokens_per_s']:,.0f} prompt + {t['output_tokens_per_s']:,.0f} output)")
    return f"{head}\n{render(df.to_dict(orient='records'), cols)}\n{foot}\n"
