"""``muxsim fidelity``: how far the cost model is from Vidur-format GPU measurements."""

from __future__ import annotations

import argparse
from typing import Any

from muxsim.cli.common import add_format, check_outputs, check_suffix, print_json

FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
ERROR_COLUMNS = ["points", "ape_pct.p50", "ape_pct.p90", "bias_pct"]
# (key of the summary, what the table shows, the columns that name its rows)
TABLES = [
    ("layer", "one layer (profiled operators + two all-reduces)", []),
    ("by_operator", "by operator group (each operator alone)", ["group"]),
    ("by_tp", "one layer, by TP", ["tp"]),
    ("by_tokens", "one layer, by tokens", ["tokens"]),
    ("allreduce_at_layer_sizes", "all-reduce alone, at the layer payloads of decode (<= 256 tokens) and prefill",
     ["phase"]),
    ("allreduce_by_size", "all-reduce alone, every measured row, by size", ["topology", "tp", "size"]),
    ("engine", "engine overhead per decode step", []),
]


def register(sub: Any) -> None:
    p = sub.add_parser("fidelity", help="error of the cost model against measured operator timings",
                       description="Compare the analytic cost model with a Vidur data/profiling tree: the absolute "
                                   "percentage error (ape_pct: p50 and p90) and the median signed error (bias_pct) "
                                   "by operator group, by TP and by token band for one decoder layer (the profiled "
                                   "operators plus its two all-reduces), of the all-reduce alone and of the engine "
                                   "overhead; with --plot, a log-log figure of predicted against measured layer "
                                   "times, one panel per GPU.")
    p.add_argument("--vidur", required=True, metavar="DIR", help="a Vidur data/profiling tree (.csv or .csv.xz)")
    p.add_argument("--gpu", action="append",
                   help="GPU catalog name (repeatable; default: every GPU folder of the tree with a catalog entry)")
    p.add_argument("--params", default="shipped",
                   help="'shipped' (the defaults muxsim uses), 'datasheet' (the unfitted defaults) or a "
                        "PARAMS.json from `muxsim calibrate` (default: shipped)")
    p.add_argument("--lomo", action="store_true",
                   help="leave one model out: refit the kernel parameters without each model and judge on it")
    p.add_argument("--plot", metavar="FILE.png", help="also draw predicted against measured here (.png, .svg or .pdf)")
    add_format(p, ("table", "json", "csv", "markdown"))
    p.set_defaults(func=run)


def _gpus(root: Any, names: list[str] | None) -> list[str]:
    from muxsim.costmodel.params import FITTED
    from muxsim.costmodel.vidur import gpu_folders
    from muxsim.gpus import CATALOG, get_gpu

    if names:
        return [get_gpu(n, "--gpu").name for n in dict.fromkeys(x for n in names for x in n.split(",") if x)]
    out = []
    for f in gpu_folders(root):
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
    from muxsim.gpus import get_gpu

    check_suffix(args.plot, FIGURE_SUFFIXES, "--plot")
    root = vidur.profiling_root(args.vidur)
    gpus = _gpus(root, args.gpu)
    if not gpus:
        raise InputError(f"vidur: no compute/ folder of {str(root)!r} names a catalog GPU; give --gpu")
    files = {gpu: vidur.tree_files(root, get_gpu(gpu)) for gpu in gpus}
    inputs = [("Vidur file", p) for f in files.values() for p in f.paths()]
    if args.params not in ("shipped", "datasheet"):
        inputs.append(("--params", args.params))
    check_outputs([("--plot", args.plot)], inputs)
    summaries, panels = {}, {}
    for gpu in gpus:
        data = load_vidur(files[gpu], gpu)
        cm = _model(gpu, args.params)
        rows = leave_one_model_out(data, cm.params)[0] if args.lomo else fidelity.evaluate(cm, data)
        panels[gpu] = rows
        summaries[gpu] = fidelity.summarize(rows)
    how = "leave one model out" if args.lomo else "all models"
    if args.plot:
        from muxsim.plot import save

        save(fidelity.plot(panels, f"{args.params} parameters, {how}"), args.plot, what="--plot", inputs=inputs)
    if args.format == "json":
        print_json({"params": args.params, "judged": how, "plot": args.plot, "gpus": summaries})
    elif args.format == "csv":
        from muxsim.tables import to_csv

        rows = [{"gpu": gpu, "table": key} | r for gpu, s in summaries.items() for key, r in _table_rows(s)]
        names = list(dict.fromkeys(c for _, _, cols in TABLES for c in cols))
        print(to_csv(rows, ["gpu", "table", *names, *ERROR_COLUMNS]), end="")
    else:
        for gpu, s in summaries.items():
            _print(gpu, s, args.params, how, args.format == "markdown")
    if args.plot and args.format != "json":
        print(f"wrote {args.plot}")
    return 0


def _table_rows(s: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(table key, flat row) for every row of every table of a summary (house metric names)."""
    from muxsim.metrics import flatten

    out = []
    for key, _, _ in TABLES:
        items = s.get(key)
        for r in (items if isinstance(items, list) else [items] if items else []):
            out.append((key, flatten(r)))
    return out


def _print(gpu: str, s: dict[str, Any], params: str, how: str, markdown: bool) -> None:
    from muxsim.tables import render, to_markdown

    lay = s["layer"]
    title = (f"{gpu}, {params} parameters, {how}: one layer (profiled operators + two all-reduces) "
             f"median {lay['ape_pct']['p50']:.1f}%, p90 {lay['ape_pct']['p90']:.1f}% over {lay['points']} points")
    print(f"### {title}\n" if markdown else title)
    print("(ape_pct: median (p50) and p90 absolute percentage error; bias_pct: median of predicted / measured - 1, "
          "negative = too fast)")
    rows = _table_rows(s)
    for key, name, cols in TABLES[1:]:
        table = [r for k, r in rows if k == key]
        if table:
            print(f"\n{name}:\n" if markdown else f"\n{name}")
            print((to_markdown if markdown else render)(table, [*cols, *ERROR_COLUMNS]))
    print()
