"""The capacity figure: SLO attainment against GPUs, one line per algorithm."""

from __future__ import annotations

from typing import Any

from muxsim.plot.style import figure, line_style, outside_legend, palette


def capacity(docs: list[dict[str, Any]], *, title: str | None = None) -> Any:
    """``muxsim capacity``'s documents (one per algorithm): the attainment of each count
    of GPUs tried, the target as a dotted line, and each algorithm's answer marked."""
    from matplotlib.lines import Line2D

    names = [d["algorithm"] for d in docs]
    colors = palette(names)
    fig = figure(7.5, 3.9)
    ax = fig.subplots()
    for i, d in enumerate(docs):
        pts = d["curve"]
        ax.plot([p["gpus"] for p in pts], [p["attainment"] for p in pts], color=colors[d["algorithm"]],
                label=d["algorithm"], **line_style(i))
        if d["gpus"] is not None:
            ax.axvline(d["gpus"], color=colors[d["algorithm"]], lw=0.8, alpha=0.6)
    target = docs[0]["target"] if docs else None
    if target is not None:
        ax.axhline(target, ls=":", color="0.3")
    gpn = docs[0]["gpus_per_node"] if docs else 8
    top = max((p["gpus"] for d in docs for p in d["curve"]), default=gpn)
    ax.set_xticks(range(1, top + 1) if top <= 16 else range(gpn, top + 1, gpn))  # every GPU, or every node
    ax.set_xlabel("GPUs")
    ax.set_ylabel(f"SLO attainment ({docs[0]['objective']})" if docs else "SLO attainment")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if target is not None:
        handles.append(Line2D([], [], ls=":", color="0.3"))
        labels.append(f"target ({target:.0%})")
    outside_legend(fig, handles, labels)
    if title:
        fig.suptitle(title)
    return fig
