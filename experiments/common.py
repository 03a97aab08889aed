"""What every experiment script shares: its command line, running its sweep file(s)
through ``mx.sweep`` (resumable in a runs folder), and writing CSV and PNG files
atomically."""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

import muxsim as mx
from muxsim.io import write_bytes_atomic, write_text_atomic

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ALGORITHM_ORDER = ["flex-slo", "flex", "muxserve", "ilp", "greedy-memory", "spatial", "spatial-min", "temporal"]


def parser(doc: str | None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["local", "ray"], default="local")
    ap.add_argument("--workers", type=int, default=2, help="trials at once (default: 2)")
    ap.add_argument("--address", help="with --backend ray: a Ray cluster")
    ap.add_argument("--runs", default=str(HERE / "runs"),
                    help="where the sweep folders go (a rerun resumes them; default: experiments/runs)")
    ap.add_argument("--out-dir", default=str(HERE / "results"), help="where the CSV and PNG files go")
    return ap


def run(spec: str | dict[str, Any], args: argparse.Namespace, name: str) -> pd.DataFrame:
    """The sweep's table; its folder is ``<runs>/<name>`` (resumed when it exists)."""
    if isinstance(spec, str):
        spec = str(HERE / spec)  # its relative paths are the experiments folder's
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    df = mx.sweep(spec, args.backend, workers=args.workers, address=args.address, out_dir=runs / name,
                  quiet=False)
    wall = time.perf_counter() - t0
    failed = df[df["status"] != "ok"]
    print(f"{name}: {len(df)} trials ({len(failed)} failed) in {wall:.1f} s on {args.backend} "
          f"with {args.workers} worker(s)", flush=True)
    for err in failed["error"].drop_duplicates().head(5):
        print(f"  failed: {err}")
    return df


def out_path(args: argparse.Namespace, name: str) -> Path:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)  # muxsim's writers never create folders
    return out / name


def write_csv(df: pd.DataFrame, args: argparse.Namespace, name: str) -> None:
    """The table without file paths (they are this machine's)."""
    df = df.drop(columns=[c for c in ("plan", "workload.path") if c in df.columns])
    p = out_path(args, name)
    write_text_atomic(p, df.to_csv(index=False, float_format="%.6g"))
    print(f"wrote {p}")


def save(fig: plt.Figure, args: argparse.Namespace, name: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    p = out_path(args, name)
    write_bytes_atomic(p, buf.getvalue())
    print(f"wrote {p}")


def algorithms(df: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(df["algorithm"]))
    return [a for a in ALGORITHM_ORDER if a in present] + [a for a in present if a not in ALGORITHM_ORDER]


STYLE = {"flex-slo": ("C6", "P", "-"), "flex": ("C8", "X", "--"), "muxserve": ("C0", "o", "-"), "ilp": ("C1", "*", "--"), "greedy-memory": ("C2", "s", "-."),
         "spatial": ("C3", "^", "-"), "spatial-min": ("C4", "v", ":"), "temporal": ("C5", "D", "--")}


def style(algorithm: str) -> dict[str, Any]:
    color, marker, line = STYLE.get(algorithm, ("C7", "x", "-"))
    return {"color": color, "marker": marker, "linestyle": line, "label": algorithm}


def slo_curve(df: pd.DataFrame) -> tuple[list[float], list[str]]:
    """The SLO scales the table reports (columns ``slo_attainment.<scale>``), sorted."""
    cols = [c for c in df.columns if c.startswith("slo_attainment.")]
    scales = sorted((float(c.split(".", 1)[1]), c) for c in cols)
    return [s for s, _ in scales], [c for _, c in scales]
