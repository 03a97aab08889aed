"""A drawing of a plan: nodes, GPUs, meshes, which models share them, their SM and KV shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from muxsim.plot.style import figure, outside_legend, palette

ROW = 1.0  # height of a node's row
GAP = 0.45  # between rows
PAD = 0.06  # inside a mesh's box
IDLE = "0.92"


def _spans(gpus: Sequence[int]) -> list[tuple[int, int]]:
    """Contiguous runs of GPU indices: [(first, last), ...]."""
    out: list[tuple[int, int]] = []
    for g in sorted(gpus):
        if out and g == out[-1][1] + 1:
            out[-1] = (out[-1][0], g)
        else:
            out.append((g, g))
    return out


def plan(p: Any, *, order: Sequence[str] | None = None, rates: dict[str, float] | None = None) -> Any:
    """Draw plan ``p`` (a :class:`muxsim.plan.Plan`): one row per node, one cell per GPU,
    a box per mesh. In each box the upper bar splits the mesh's KV cache by the models'
    ``kv_share`` and the lower bar its SMs by their decode SM share (scaled to fit when
    the shares sum past 100%, as MuxServe's overload allows); idle GPUs are hatched.
    ``order`` fixes the colours (workload order); ``rates`` adds each model's request rate
    to the legend."""
    from matplotlib.patches import Patch, Rectangle

    c = p.cluster
    names = [u.name for _, u in p.units()]
    names = [n for n in (order or []) if n in names] + [n for n in dict.fromkeys(names) if n not in (order or [])]
    colors = palette(names)
    width = max(6.0, 0.95 * c.gpus_per_node + 1.5)
    fig = figure(width + 2.6, 0.9 + (ROW + GAP) * c.nodes * 1.05)
    ax = fig.subplots()
    inch_per_gpu = width / c.gpus_per_node
    y_of = {n: (c.nodes - 1 - n) * (ROW + GAP) for n in range(c.nodes)}
    used: set[tuple[int, int]] = set()
    for m in p.meshes:
        if m.units:
            used |= {(m.node, g) for g in m.gpus}
    for n in range(c.nodes):
        for g in range(c.gpus_per_node):
            idle = (n, g) not in used
            ax.add_patch(Rectangle((g + 0.02, y_of[n]), 0.96, ROW, facecolor=IDLE if idle else "white",
                                   edgecolor="0.7", lw=0.8, hatch="xx" if idle else None))
    for m in p.meshes:
        if not m.units:
            continue
        y0 = y_of[m.node]
        for a, b in _spans(m.gpus):
            x0, w = a + 0.04, b - a + 1 - 0.08
            ax.add_patch(Rectangle((x0, y0 + 0.02), w, ROW - 0.04, facecolor="none", edgecolor="0.15", lw=1.4))
            label = f"{m.id}: {len(m.gpus)} GPU{'s' if len(m.gpus) > 1 else ''}"
            if p.mode == "temporal" and len(m.units) > 1:
                label += ", turns"
            ax.text(x0 + PAD, y0 + ROW - 0.08, label if w * inch_per_gpu > 0.09 * len(label) else m.id,
                    va="top", ha="left", fontsize=7.5)
            _bars(ax, m.units, x0 + PAD, w - 2 * PAD, y0, colors, inch_per_gpu, turns=p.mode == "temporal")
    ax.set_xlim(0, c.gpus_per_node)
    ax.set_ylim(-0.1, y_of[0] + ROW + 0.1)
    ax.set_xticks([g + 0.5 for g in range(c.gpus_per_node)], [str(g) for g in range(c.gpus_per_node)])
    ax.set_yticks([y_of[n] + ROW / 2 for n in range(c.nodes)], [str(n) for n in range(c.nodes)])
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.set_xlabel("GPU within the node (in a mesh, upper bar: KV cache share; lower bar: decode SM share)",
                  fontsize="small")
    ax.set_ylabel("node")
    gpus = sum(len(m.gpus) for m in p.meshes if m.units)
    how = p.algorithm if p.algorithm == p.mode else f"{p.algorithm} ({p.mode})"
    ax.set_title(f"{how}: {sum(1 for m in p.meshes if m.units)} meshes on "
                 f"{gpus}/{c.total_gpus} {c.gpu} GPUs", fontsize="medium")
    handles = [Patch(facecolor=colors[n], label=n if not rates or n not in rates else f"{n} ({rates[n]:.3g} req/s)")
               for n in names]
    if len(used) < c.total_gpus:
        handles.append(Patch(facecolor=IDLE, edgecolor="0.7", hatch="xx", label="idle GPU"))
    outside_legend(fig, handles, [h.get_label() for h in handles], "model")
    return fig


def _bars(ax: Any, units: Sequence[Any], x0: float, w: float, y0: float, colors: dict[str, Any],
          inch_per_gpu: float, turns: bool = False) -> None:
    """The KV bar (upper) and the decode SM bar (lower) of one mesh; a temporal mesh's
    models take whole-mesh turns, drawn as equal parts."""
    from matplotlib.patches import Rectangle

    h = 0.27
    kv_y, sm_y = y0 + 0.40, y0 + 0.08
    sm_total = sum(u.decode_sm for u in units)
    for y, key in ((kv_y, "kv_share"), (sm_y, "decode_sm")):
        ax.add_patch(Rectangle((x0, y), w, h, facecolor="white", edgecolor="0.6", lw=0.6))
        x = x0
        for u in units:
            if key == "decode_sm" and turns:
                share, pct = 1 / len(units), "turns"
            else:
                share = getattr(u, key) / (max(1.0, sm_total) if key == "decode_sm" else 1.0)
                pct = f"{getattr(u, key):.0%}"
            seg = w * share
            ax.add_patch(Rectangle((x, y), seg, h, facecolor=colors[u.name], edgecolor="white", lw=0.6))
            for text in (f"{u.name} {pct}", pct):
                if seg * inch_per_gpu > 0.075 * len(text):
                    ax.text(x + seg / 2, y + h / 2, text, ha="center", va="center", fontsize=6.5,
                            color=_ink(colors[u.name]))
                    break
            x += seg
    if sm_total > 1 + 1e-9 and not turns:
        ax.text(x0 + w, sm_y - 0.01, f"sum {sm_total:.0%}", ha="right", va="top", fontsize=6, color="0.25")


def _ink(rgba: Any) -> str:
    """Black or white text, whichever reads on ``rgba``."""
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"
