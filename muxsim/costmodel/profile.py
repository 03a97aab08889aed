"""Reading profiles: the tidy table of measured step latencies (docs/design.md).

``model, gpu, tp, sm_pct, phase, batch, seq_len, latency_ms[, source, device, date]``,
one row a measurement, as CSV or JSONL. Models that are not in the catalog (the tiny
ones a CPU profile measures) are defined in a sidecar ``<profile>.models.json``
(or ``<stem>.models.json``) mapping each name to an inline architecture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from muxsim.errors import InputError
from muxsim.limits import (
    MAX_BATCH,
    MAX_GPUS_PER_NODE,
    MAX_LLMS,
    MAX_PROFILE_ROWS,
    MAX_STEP_MS,
    MAX_TOKENS,
    MIN_SM_SHARE,
)
from muxsim.models import CATALOG, ModelSpec, resolve_model

REQUIRED = ["model", "gpu", "tp", "sm_pct", "phase", "batch", "seq_len", "latency_ms"]
OPTIONAL = ["source", "device", "date"]
TEXT_COLUMNS = ["model", "gpu", "phase", "source", "device", "date"]


def sidecar_paths(path: str | Path) -> list[Path]:
    """Where a profile's models sidecar may be: ``<profile>.models.json``, ``<stem>.models.json``."""
    p = Path(path)
    return [p.with_name(p.name + ".models.json"), p.with_suffix(".models.json")]


def load_models_sidecar(path: str | Path) -> dict[str, ModelSpec]:
    from muxsim.io import read_json

    for side in sidecar_paths(path):
        if side.exists():
            raw = read_json(side, "profile sidecar")
            if not isinstance(raw, dict):
                raise InputError(f"profile: {side.name} must map model names to architectures")
            if len(raw) > MAX_LLMS:
                raise InputError(f"profile: {side.name} defines more than {MAX_LLMS} models")
            out = {}
            for name, arch in raw.items():
                try:
                    out[name] = ModelSpec.from_dict(arch, name=name)
                except InputError as e:
                    raise InputError(f"profile: {side.name}: {str(e).removeprefix('model: ')}") from None
            return out
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
        from muxsim.io import read_table

        p = Path(path) if isinstance(path, str | Path) else path
        df = read_table(p, "profile", text_columns=TEXT_COLUMNS)
        p = Path(p)
        where = f"profile {p.name!r}"
        sidecar = f"{p.name}.models.json"
        models = load_models_sidecar(p)
    if df.empty:
        raise InputError(f"{where}: no rows")
    if len(df) > MAX_PROFILE_ROWS:
        raise InputError(f"{where}: {len(df)} rows, more than the {MAX_PROFILE_ROWS} a profile may have")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InputError(f"{where}: missing column(s) {', '.join(missing)}")
    for col in ["tp", "sm_pct", "batch", "seq_len", "latency_ms"]:
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = vals.isna() | ~np.isfinite(vals)
        if bad.any():  # the value is not quoted: the file may be anything
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{where}: row {i + 1}: {col} is not a finite number")
        df[col] = vals
    for col in ("model", "gpu", "phase"):
        df[col] = df[col].astype(str)
    checks = [
        ("tp", (df["tp"] >= 1) & (df["tp"] <= MAX_GPUS_PER_NODE) & (df["tp"] == np.rint(df["tp"])),
         f"must be a whole number in [1, {MAX_GPUS_PER_NODE}]"),
        ("sm_pct", (df["sm_pct"] >= 100 * MIN_SM_SHARE) & (df["sm_pct"] <= 100),
         f"must be in [{100 * MIN_SM_SHARE:g}, 100]"),
        ("batch", (df["batch"] >= 1) & (df["batch"] <= MAX_BATCH), f"must be in [1, {MAX_BATCH}]"),
        ("seq_len", (df["seq_len"] >= 1) & (df["seq_len"] <= MAX_TOKENS), f"must be in [1, {MAX_TOKENS}]"),
        ("latency_ms", (df["latency_ms"] > 0) & (df["latency_ms"] <= MAX_STEP_MS), f"must be in (0, {MAX_STEP_MS:g}]"),
        ("phase", df["phase"].isin(["prefill", "decode"]), "must be prefill or decode"),
    ]
    for col, ok, msg in checks:
        if not ok.all():
            i = int(np.flatnonzero(~ok.to_numpy())[0])
            got = f", got {df[col].iloc[i]:.6g}" if col != "phase" else ""
            raise InputError(f"{where}: row {i + 1}: {col} {msg}{got}")
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
                shown = repr(name) if len(name) <= 40 else repr(name[:37] + "...")
                raise InputError(f"{where}: unknown model {shown} (not in the catalog and no "
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
