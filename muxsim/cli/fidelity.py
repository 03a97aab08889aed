"""``muxsim fidelity``: how far the cost model is from Vidur-format GPU measurements."""

from __future__ import annotations

import argparse
from typing import Any

from muxsim.cli.common import add_format, format_table, print_json


def register(sub: Any) -> None:
    p = sub.add_parser("fidelity", help="error of the cost model against measured operator timings",
                       description="Compare the analytic cost model with a Vidur data/profiling tree: median and "
                                   "p90 absolute percentage error by operator group, by TP and by token band for "
                                   "one decoder layer (the profiled operators plus its two all-reduces), of the "
                                   "all-reduce alone and of the engine overhead; writes a log-log figure of "
                                   "predicted against measured layer times, one panel per GPU.")
    p.add_argument("--vidur", required=True, metavar="DIR", help="a Vidur data/profiling tree (.csv or .csv.xz)")
    p.add_argument("--gpu", action="append",
                   help="GPU catalog name (repeatable; default: every GPU folder of the tree with a catalog entry)")
    p.add_argument("--params", default="shipped",
                   help="'shipped' (the defaults muxsim uses), 'datasheet' (the unfitted defaults) or a "
                        "PARAMS.json from `muxsim calibrate` (default: shipped)")
    p.add_argument("--lomo", action="store_true",
                   help="leave one model out: refit the kernel parameters without each model and judge on it")
    p.add_argument("--plot", default="fidelity.png", help="figure to write (default fidelity.png)")
    p.add_argument("--no-plot", action="store_true", help="write no figure")
    add_format(p, ("table", "json", "markdown"))
    p.set_defaults(func=run)


def _gpus(root: Any, names: list[str] | None) -> list[str]:
    from muxsim.costmodel.params import FITTED
    from muxsim.gpus import CATALOG, get_gpu

    if names:
        return [get_gpu(n).name for n in dict.fromkeys(x for n in names for x in n.split(",") if x)]
    folders = sorted(p.name for p in (root / "compute").iterdir() if p.is_dir())
    out = []
    for f in folders:
        cands = sorted(g for g in CATALOG if g.split("-")[0] == f)
        if cands:
            out.append(next((g for g in cands if g in FITTED), cands[0]))
    return out


def _model(gpu: str, which: str) -> Any:
    from muxsim.costmodel import AnalyticCostModel, AnalyticParams, load_params

    if which == "shipped":
        return AnalyticCostModel(gpu)
    if which == "datasheet":
        return AnalyticCostModel(gpu, AnalyticParams())
    params, _ = load_params(which)
    return AnalyticCostModel(gpu, params)


def run(args: argparse.Namespace) -> int:
    from muxsim.costmodel import fidelity, vidur
    from muxsim.costmodel.vidur_fit import leave_one_model_out, load_vidur
    from muxsim.errors import InputError
    from muxsim.io import write_bytes_atomic

    root = vidur.profiling_root(args.vidur)
    gpus = _gpus(root, args.gpu)
    if not gpus:
        raise InputError(f"vidur: no compute/ folder of {str(root)!r} names a catalog GPU; give --gpu")
    summaries, panels = {}, {}
    for gpu in gpus:
        data = load_vidur(root, gpu)
        cm = _model(gpu, args.params)
        rows = leave_one_model_out(data, cm.params)[0] if args.lomo else fidelity.evaluate(cm, data)
        panels[gpu] = rows
        summaries[gpu] = fidelity.summarize(rows)
    plot = None if args.no_plot else args.plot
    how = "leave one model out" if args.lomo else "all models"
    if plot:
        write_bytes_atomic(plot, fidelity.plot(panels, f"{args.params} parameters, {how}"))
    if args.format == "json":
        print_json({"params": args.params, "judged": how, "plot": plot, "gpus": summaries})
        return 0
    for gpu, s in summaries.items():
        _print(gpu, s, args.params, how, args.format == "markdown")
    if plot:
        print(f"wrote {plot}")
    return 0


def _cells(r: dict[str, Any]) -> dict[str, Any]:
    return {"points": r["points"], "median %": round(r["median_ape"], 1), "p90 %": round(r["p90_ape"], 1),
            "bias %": round(r["median_error"], 1)}


def _rows(items: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [{key: r[key]} | _cells(r) for r in items]


def _print(gpu: str, s: dict[str, Any], params: str, how: str, markdown: bool) -> None:
    lay = s["layer"]
    title = (f"{gpu}, {params} parameters, {how}: one layer (profiled operators + two all-reduces) "
             f"median {lay['median_ape']:.1f}%, p90 {lay['p90_ape']:.1f}% over {lay['points']} points")
    size = [{"topology": r["topology"], "tp": r["tp"], "size": r["size"]} | _cells(r)
            for r in s["allreduce_by_size"]]
    tables = [("by operator group (each operator alone)", _rows(s["by_operator"], "group")),
              ("one layer, by TP", _rows(s["by_tp"], "tp")),
              ("one layer, by tokens", _rows(s["by_tokens"], "tokens")),
              ("all-reduce alone, at the layer payloads of decode (<= 256 tokens) and prefill",
               _rows(s["allreduce_at_layer_sizes"], "phase")),
              ("all-reduce alone, every measured row, by size", size)]
    if "engine" in s:
        tables.append(("engine overhead per decode step", [_cells(s["engine"])]))
    print(f"### {title}\n" if markdown else title)
    print("(median and p90 absolute percentage error; bias: median of predicted / measured - 1, negative = "
          "too fast)")
    for name, rows in tables:
        print(f"\n{name}:\n" if markdown else f"\n{name}")
        print(_markdown(rows) if markdown else format_table(rows))
    print()


def _markdown(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0]) if rows else []
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(out)
