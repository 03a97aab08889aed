"""Reading profiles: the tidy table of measured step latencies (docs/design.md).

``model, gpu, tp, sm_pct, phase, batch, seq_len, latency_ms[, source, device, date]``,
one row a measurement, as CSV or JSONL. Models that are not in the catalog (the tiny
ones a CPU profile measures) are defined in a sidecar ``<profile>.models.json``
(or ``<stem>.models.json``) mapping each name to an inline architecture.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from muxsim.errors import InputError
from muxsim.models import CATALOG, ModelSpec, resolve_model

REQUIRED = ["model", "gpu", "tp", "sm_pct", "phase", "batch", "seq_len", "latency_ms"]
OPTIONAL = ["source", "device", "date"]


def _sidecar_paths(p: Path) -> list[Path]:
    return [p.with_name(p.name + ".models.json"), p.with_suffix(".models.json")]


def load_models_sidecar(path: str | Path) -> dict[str, ModelSpec]:
    p = Path(path)
    for side in _sidecar_paths(p):
        if side.is_file():
            try:
                raw = json.loads(side.read_text())
            except json.JSONDecodeError as e:
                raise InputError(f"profile: {side.name} is not valid JSON ({e.msg})") from None
            if not isinstance(raw, dict):
                raise InputError(f"profile: {side.name} must map model names to architectures")
            return {name: ModelSpec.from_dict(arch, name=name) for name, arch in raw.items()}
    return {}


def load_profile(path: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Read and validate a profile; rows carry a ``spec`` column with the ModelSpec."""
    if isinstance(path, pd.DataFrame):
        df = path.copy()
        models: dict[str, ModelSpec] = {}
        if "spec" in df.columns:  # already loaded: keep its architectures
            models = {n: s for n, s in zip(df["model"].astype(str), df["spec"]) if isinstance(s, ModelSpec)}
        where = "profile"
        sidecar = "a models.json sidecar"
    else:
        p = Path(path)
        where = f"profile {p.name!r}"
        sidecar = f"{p.name}.models.json"
        if not p.is_file():
            raise InputError(f"profile: file {str(p)!r} does not exist")
        try:
            if p.suffix in (".jsonl", ".ndjson"):
                df = pd.read_json(p, lines=True)
            else:
                df = pd.read_csv(p)
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
            raise InputError(f"{where}: cannot parse ({str(e).splitlines()[0]})") from None
        models = load_models_sidecar(p)
    if df.empty:
        raise InputError(f"{where}: no rows")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InputError(f"{where}: missing column(s) {', '.join(missing)}")
    for col in ["tp", "sm_pct", "batch", "seq_len", "latency_ms"]:
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = vals.isna() | ~np.isfinite(vals)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{where}: row {i + 1}: {col} is not a finite number ({df[col].iloc[i]!r})")
        df[col] = vals
    checks = [
        ("tp", df["tp"] >= 1, "must be >= 1"),
        ("sm_pct", (df["sm_pct"] > 0) & (df["sm_pct"] <= 100), "must be in (0, 100]"),
        ("batch", df["batch"] >= 1, "must be >= 1"),
        ("seq_len", df["seq_len"] >= 1, "must be >= 1"),
        ("latency_ms", df["latency_ms"] > 0, "must be > 0"),
        ("phase", df["phase"].isin(["prefill", "decode"]), "must be prefill or decode"),
    ]
    for col, ok, msg in checks:
        if not ok.all():
            i = int(np.flatnonzero(~ok.to_numpy())[0])
            raise InputError(f"{where}: row {i + 1}: {col} {msg}, got {df[col].iloc[i]!r}")
    df["tp"] = df["tp"].astype(int)
    df["model"] = df["model"].astype(str)
    df["gpu"] = df["gpu"].astype(str).str.lower()
    specs: dict[str, ModelSpec] = {}
    for name in df["model"].unique():
        if name in models:
            specs[name] = models[name]
        elif name.lower() in CATALOG:
            specs[name] = CATALOG[name.lower()]
        else:
            try:
                specs[name] = resolve_model(name)
            except InputError:
                raise InputError(f"{where}: unknown model {name!r} (not in the catalog and no "
                                 f"{sidecar} defines it)") from None
    df["spec"] = df["model"].map(specs)
    for col in OPTIONAL:
        if col not in df.columns:
            df[col] = ""
    return df.reset_index(drop=True)


def rows_for_gpu(df: pd.DataFrame, gpu: Any = None) -> tuple[Any, pd.DataFrame]:
    """The GPU a profile's rows are for (``gpu`` or the profile's only one) and its rows."""
    from muxsim.gpus import get_gpu

    gpus = sorted(df["gpu"].unique())
    if gpu is None:
        if len(gpus) != 1:
            raise InputError(f"gpu: the profile covers {', '.join(gpus)}; name one")
        gpu = gpus[0]
    spec = get_gpu(gpu)
    rows = df[df["gpu"] == spec.name].reset_index(drop=True)
    if rows.empty:
        raise InputError(f"gpu: the profile has no rows for {spec.name!r} (it has {', '.join(gpus)})")
    return spec, rows


def profile_models(df: pd.DataFrame) -> dict[str, ModelSpec]:
    return dict(zip(df["model"], df["spec"]))


def rows_to_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return df.drop(columns=["spec"], errors="ignore").to_dict(orient="records")
