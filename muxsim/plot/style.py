"""What every figure shares: colours, axis labels, and reading the inputs it accepts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

LABELS = {
    "ttft_ms": "time to first token (ms)",
    "tpot_ms": "time per output token (ms)",
    "e2e_ms": "end-to-end latency (ms)",
}


def palette(names: Sequence[str]) -> dict[str, Any]:
    """A colour per name, stable for the order given (tab10, tab20, then a continuous map)."""
    from matplotlib import colormaps

    names = list(dict.fromkeys(names))
    n = len(names)
    if n <= 10:
        cols = [colormaps["tab10"](i) for i in range(n)]
    elif n <= 20:
        cols = [colormaps["tab20"](i) for i in range(n)]
    else:
        cols = [colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, n)]
    return dict(zip(names, cols))


STYLES = [("-", "o"), ("--", "s"), ("-.", "^"), (":", "D")]


def line_style(i: int) -> dict[str, str]:
    """Line style and marker of the i-th run, so that runs with equal results stay visible."""
    ls, marker = STYLES[i % len(STYLES)]
    return {"ls": ls, "marker": marker}


def figure(width: float, height: float) -> Any:
    """A figure outside pyplot (no global state; shown inline by notebooks)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained", dpi=100)


def outside_legend(fig: Any, handles: list[Any], labels: list[str], title: str | None = None) -> None:
    """The legend to the right of the axes, in columns of at most 18 entries."""
    if handles:
        fig.legend(handles, labels, loc="outside right upper", title=title, ncols=1 + (len(handles) - 1) // 18,
                   fontsize="small", frameon=False)


def is_results(x: Any) -> bool:
    return hasattr(x, "to_frame") and hasattr(x, "utilization")


def is_folder(x: Any) -> bool:
    return hasattr(x, "manifest") and hasattr(x, "requests")


def requests_frame(data: Any) -> pd.DataFrame:
    """Per-request rows with a ``run`` column, from a Results, a {label: Results} dict,
    a run folder or a DataFrame."""
    if is_folder(data):
        return data.requests
    if is_results(data):
        df = data.to_frame()
        df.insert(0, "run", data.run.get("algorithm", "run"))
        return df
    if isinstance(data, dict):
        frames = []
        for label, res in data.items():
            df = res.to_frame()
            df.insert(0, "run", label)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)
    if isinstance(data, pd.DataFrame):
        return data if "run" in data.columns else data.assign(run="run")
    raise TypeError(f"expected Results, a dict of them, a run folder or a DataFrame, got {type(data).__name__}")


def results_docs(data: Any) -> dict[str, dict[str, Any]]:
    """label -> results document, from a Results, a results document, a dict of either,
    compare rows (list) or a run folder."""
    if is_folder(data):
        return data.results()
    if is_results(data):
        return {data.run.get("algorithm", "run"): data.to_dict()}
    if isinstance(data, list):
        return {r["algorithm"]: r for r in data if r.get("aggregate") is not None}
    if isinstance(data, dict) and "aggregate" in data:
        return {"run": data}
    if isinstance(data, dict):
        return {k: (v.to_dict() if is_results(v) else v) for k, v in data.items()}
    raise TypeError(f"expected Results, a results document, a dict of them, compare rows or a run folder, "
                    f"got {type(data).__name__}")


def timeline_frame(data: Any) -> pd.DataFrame:
    """``run, mesh, t, sm, kv`` rows from a Results, a run folder or a DataFrame."""
    if is_folder(data):
        return data.timeline
    if isinstance(data, pd.DataFrame):
        return data
    docs = results_docs(data)
    frames = [pd.DataFrame({"run": label, "mesh": mesh, "t": u["t"], "sm": u["sm"], "kv": u["kv"]})
              for label, doc in docs.items() for mesh, u in doc["utilization"]["meshes"].items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run", "mesh", "t", "sm", "kv"])
