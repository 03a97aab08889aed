"""Figures of results: latency CDFs, SLO attainment, utilization, throughput, compare."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import numpy as np

from muxsim.plot.style import (
    LABELS,
    figure,
    line_style,
    outside_legend,
    palette,
    requests_frame,
    results_docs,
    timeline_frame,
)

CDF_POINTS = 1000  # a CDF line is drawn through at most this many quantiles


def save(fig: Any, path: str | os.PathLike[str], dpi: int = 120, *, what: str = "out",
         inputs: Iterable[tuple[str, Any]] = ()) -> None:
    """Write ``fig`` (format from the suffix: .png, .svg, .pdf) whole or not at all, over a
    regular file or a new path only (:func:`muxsim.io.write_bytes_atomic`; errors name
    ``what``, and no input among ``inputs`` is replaced)."""
    from muxsim.io import write_bytes_atomic

    buf = io.BytesIO()
    fmt = os.fspath(path).rsplit(".", 1)[-1].lower()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    write_bytes_atomic(path, buf.getvalue(), what=what, inputs=inputs)


def _order(names: Sequence[str], order: Sequence[str] | None) -> list[str]:
    seen = list(dict.fromkeys(names))
    if order is None:
        return seen
    return [n for n in order if n in seen] + [n for n in seen if n not in order]


def latency_cdf(data: Any, metric: str = "ttft_ms", *, order: Sequence[str] | None = None,
                lines: str | None = None) -> Any:
    """The fraction of requests served within each latency (log-scaled axis). Requests
    that never finished count as never served, so a curve that tops out below 1 shows
    them. ``lines="model"``: one panel per run, a line per model (the default for one
    run); ``lines="run"``: one panel per model, a line per run (the default for several)."""
    if metric not in LABELS:
        raise ValueError(f"metric: one of {', '.join(LABELS)}, got {metric!r}")
    df = requests_frame(data)
    if order is None and hasattr(data, "workload"):
        order = [m["name"] for m in data.workload.get("models", [])]
    runs = list(dict.fromkeys(df["run"]))
    names = _order(df["name"].tolist(), order)
    lines = lines or ("model" if len(runs) <= 1 else "run")
    if lines not in ("model", "run"):
        raise ValueError(f"lines: 'model' or 'run', got {lines!r}")
    panels, keys = (runs, names) if lines == "model" else (names, runs)
    colors = palette(keys)
    ncols = min(len(panels), 4) or 1
    nrows = -(-len(panels) // ncols) or 1
    fig = figure(3.3 * ncols + 1.6, 2.7 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    styles = {k: line_style(i)["ls"] if lines == "run" else "-" for i, k in enumerate(keys)}
    for i, (ax, panel) in enumerate(zip(axes, panels)):
        unfinished = 0
        for key in keys:
            run, name = (panel, key) if lines == "model" else (key, panel)
            mine = df[(df["run"] == run) & (df["name"] == name)]
            eligible = mine["output_len"].to_numpy() > 1 if metric == "tpot_ms" else np.ones(len(mine), bool)
            total = int(eligible.sum())
            v = mine[metric].to_numpy(dtype=float)[eligible]
            v = np.sort(v[np.isfinite(v)])
            unfinished += total - len(v)
            if total == 0 or not len(v):
                continue
            idx = np.unique(np.linspace(0, len(v) - 1, min(len(v), CDF_POINTS)).round().astype(int))
            ax.step(v[idx], (idx + 1) / total, where="post", color=colors[key], ls=styles[key], label=key, lw=1.4)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        if i + ncols >= len(panels):  # the lowest panel of its column
            ax.set_xlabel(LABELS[metric])
            ax.xaxis.set_tick_params(labelbottom=True)
        if i % ncols == 0:
            ax.set_ylabel("fraction of requests")
        ax.grid(alpha=0.3, which="major")
        if len(panels) > 1 or lines == "run":
            ax.set_title(f"{panel}" + (f" ({unfinished:,} unfinished)" if unfinished else ""), fontsize="medium")
        elif unfinished:
            ax.set_title(f"{unfinished:,} requests unfinished", fontsize="medium")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    outside_legend(fig, handles, labels, lines)
    return fig


def slo_attainment(data: Any) -> Any:
    """SLO attainment (share of requests within scale x their latency alone) against the
    SLO scale, one line per run, with the workload's target attainment."""
    docs = results_docs(data)
    fig = figure(6.6, 3.6)
    ax = fig.subplots()
    _attainment(ax, {label: doc["aggregate"] for label, doc in docs.items()}, palette(list(docs)))
    outside_legend(fig, *ax.get_legend_handles_labels())
    return fig


def _attainment(ax: Any, aggregates: dict[str, dict[str, Any]], colors: dict[str, Any]) -> float | None:
    """Draw attainment against scale for each aggregate, and the target; returns the target."""
    scales: list[float] = []
    target = None
    for i, (label, agg) in enumerate(aggregates.items()):
        att = agg["slo_attainment"]
        xs = [float(k) for k in att]
        scales = sorted(set(scales) | set(xs))
        ax.plot(xs, list(att.values()), color=colors[label], label=label, **line_style(i))
        target = agg.get("slo", {}).get("target_attainment", target)
    if target is not None:
        ax.axhline(target, ls=":", color="0.3", lw=1.2, label=f"target attainment ({target:.0%})")
    ax.set_xscale("log", base=2)
    if scales:
        ax.set_xticks(scales, [f"{s:g}x" for s in scales])
        ax.minorticks_off()
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("SLO scale (x latency alone on a dedicated mesh)")
    ax.set_ylabel("SLO attainment (share of requests)")
    ax.grid(alpha=0.3)
    return target


def utilization(data: Any, *, run: str | None = None) -> Any:
    """Per mesh over time: the share of its SMs busy (mean over each sample interval; a
    flex mesh may exceed 100% when MPS oversubscribes it) and of its KV pool in use."""
    tl = timeline_frame(data)
    runs = list(dict.fromkeys(tl["run"]))
    run = run if run is not None else (runs[0] if runs else None)
    d = tl[tl["run"] == run]
    meshes = list(dict.fromkeys(d["mesh"]))
    who = _mesh_llms(data, run)
    colors = palette(meshes)
    fig = figure(8.4, 4.8)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for m in meshes:
        g = d[d["mesh"] == m]
        llms = who.get(m, [])
        label = f"{m}: {', '.join(llms)}" if len(llms) <= 3 else f"{m}: {llms[0]} and {len(llms) - 1} more"
        ax1.plot(g["t"], g["sm"] * 100, color=colors[m], lw=1, label=label if llms else m)
        ax2.plot(g["t"], g["kv"] * 100, color=colors[m], lw=1)
    ax1.axhline(100, ls=":", color="0.4", lw=1)
    end = getattr(data, "workload", {}).get("duration_s") if hasattr(data, "workload") else None
    if end:
        for ax in (ax1, ax2):
            ax.axvline(end, ls="--", color="0.5", lw=1)
        ax2.text(end, 100, " arrivals end", fontsize="small", color="0.4", va="top")
    ax1.set_ylabel("SMs busy (%)")
    ax2.set_ylabel("KV cache in use (%)")
    ax2.set_xlabel("simulated time (s)")
    ax1.set_xlabel("")
    ax2.set_ylim(0, 102)
    ax1.set_ylim(bottom=0)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    if len(runs) > 1 or run not in (None, "run"):
        ax1.set_title(f"{run}: utilization per mesh")
    outside_legend(fig, *ax1.get_legend_handles_labels(), title="mesh")
    return fig


def _mesh_llms(data: Any, run: Any) -> dict[str, list[str]]:
    plans = getattr(data, "plans", None)
    if isinstance(plans, dict) and run in plans:
        return {m["id"]: [u["name"] for u in m["units"]] for m in plans[run]["meshes"]}
    try:
        doc = results_docs(data).get(run)
    except TypeError:
        return {}
    return {k: v.get("llms", []) for k, v in (doc or {}).get("utilization", {}).get("meshes", {}).items()}


def throughput(data: Any, *, offered: dict[str, float] | None = None, order: Sequence[str] | None = None) -> Any:
    """Per model: the throughput each run served (bars) against the rate offered to it
    (black marks; the workload's rate when given, else what arrived)."""
    docs = results_docs(data)
    if offered is None and hasattr(data, "offered_rates"):
        offered = data.offered_rates()
    first = next(iter(docs.values()))
    names = _order(list(first["per_llm"]), order or (list(offered) if offered else None))
    offered = offered or {n: first["per_llm"][n]["offered_rps"] for n in names}
    colors = palette(list(docs))
    k = len(docs)
    fig = figure(max(6.0, 0.32 * len(names) * (k + 1) + 2.5), 3.8)
    ax = fig.subplots()
    x = np.arange(len(names))
    w = 0.8 / k
    for j, (label, doc) in enumerate(docs.items()):
        ys = [doc["per_llm"].get(n, {}).get("throughput_rps", 0.0) for n in names]
        ax.bar(x - 0.4 + w * (j + 0.5), ys, w, color=colors[label], label=label)
    ax.hlines([offered.get(n, np.nan) for n in names], x - 0.45, x + 0.45, colors="k", lw=2,
              label="offered rate")
    vals = [v for v in offered.values() if v > 0]
    if vals and max(vals) / min(vals) > 30:
        ax.set_yscale("log")
    ax.set_xticks(x, names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    ax.set_xlabel("model")
    ax.set_ylabel("throughput (requests/s)")
    ax.grid(alpha=0.3, axis="y")
    outside_legend(fig, *ax.get_legend_handles_labels())
    return fig


def compare(rows: list[dict[str, Any]], *, title: str | None = None) -> Any:
    """``muxsim compare``'s chart from its rows: simulated and estimated throughput with
    the offered load, SLO attainment against the SLO scale, and P99 TTFT."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    names = [r["algorithm"] for r in rows]
    colors = palette(names)
    fig = figure(13.5, 3.9)
    a1, a2, a3 = fig.subplots(1, 3)
    x = np.arange(len(rows))
    sim = [(r.get("aggregate") or {}).get("throughput_rps") for r in rows]
    est = [(r.get("estimate") or {}).get("throughput_rps") for r in rows]
    a1.bar(x - 0.2, [v or 0 for v in sim], 0.4, color=[colors[n] for n in names])
    a1.bar(x + 0.2, [v or 0 for v in est], 0.4, color="white", edgecolor=[colors[n] for n in names], hatch="//")
    offered = next(((r["aggregate"] or {}).get("offered_rps") for r in rows if r.get("aggregate")), None)
    if offered is not None:
        a1.axhline(offered, ls="--", color="k", lw=1.2)
    a1.set_ylim(0, 1.15 * max([offered or 0, *(v or 0 for v in sim), *(v or 0 for v in est)]) or 1)
    for i, v in enumerate(sim):
        if v is None:
            a1.text(i, 0, "no plan", ha="center", va="bottom", fontsize="small", rotation=90)
    a1.set_ylabel("throughput (requests/s)")
    target = _attainment(a2, {r["algorithm"]: r["aggregate"] for r in rows if r.get("aggregate")}, colors)
    p99 = [((r.get("aggregate") or {}).get("ttft_ms") or {}).get("p99") for r in rows]
    bars = a3.bar(x, [v or 0 for v in p99], 0.6, color=[colors[n] for n in names])
    a3.bar_label(bars, [_ms(v) for v in p99], fontsize="small", padding=2)
    if any(v for v in p99):
        a3.set_yscale("log")
    a3.set_ylabel("P99 time to first token (ms)")
    for ax in (a1, a3):
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_xlabel("placement algorithm")
        ax.grid(alpha=0.3, axis="y")
    a2.grid(alpha=0.3)
    handles = [Line2D([], [], color=colors[n], label=n, **line_style(i)) for i, n in enumerate(names)]
    handles += [Patch(facecolor="0.55", label="simulated"),
                Patch(facecolor="white", edgecolor="0.3", hatch="//", label="estimated by the placement")]
    if offered is not None:
        handles.append(Line2D([], [], ls="--", color="k", label=f"offered load ({offered:.3g} req/s)"))
    if target is not None:
        handles.append(Line2D([], [], ls=":", color="0.3", label=f"target attainment ({target:.0%})"))
    outside_legend(fig, handles, [h.get_label() for h in handles])
    if title:
        fig.suptitle(title)
    return fig


def _ms(v: float | None) -> str:
    if not v:
        return ""
    return f"{v / 1000:.3g} s" if v >= 1000 else f"{v:.3g} ms"


def run_figures(folder: Any) -> dict[str, Any]:
    """Every figure of a run folder, by file stem (see :func:`figure_makers`)."""
    return {name: make() for name, make in figure_makers(folder).items()}


def figure_makers(folder: Any) -> dict[str, Callable[[], Any]]:
    """How to draw each figure of a run folder, by file stem: ``ttft_cdf``, ``tpot_cdf``,
    ``e2e_cdf``, ``slo_attainment``, ``throughput``, ``compare`` (several runs), and per
    run ``utilization-<label>`` and ``plan-<label>``."""
    from muxsim.plan import plan_from_dict
    from muxsim.plot.draw import plan as draw_plan

    order = [m["name"] for m in folder.workload.get("models", [])]
    makers: dict[str, Callable[[], Any]] = {}
    docs = folder.results()
    if docs:
        for metric in ("ttft_ms", "tpot_ms", "e2e_ms"):
            makers[f"{metric.removesuffix('_ms')}_cdf"] = partial(latency_cdf, folder, metric, order=order)
        makers["slo_attainment"] = partial(slo_attainment, folder)
        makers["throughput"] = partial(throughput, folder, order=order)
    if "rows" in folder.summary and len(folder.summary["rows"]) > 1:
        makers["compare"] = partial(compare, folder.summary["rows"])
    for label in docs:
        makers[f"utilization-{label}"] = partial(utilization, folder, run=label)
    for label, p in folder.plans.items():
        makers[f"plan-{label}"] = partial(draw_plan, plan_from_dict(p), order=order, rates=folder.offered_rates())
    return makers
