"""What the profiler writes: profile rows, interference rows, and their files.

Profile CSV (docs/design.md's tidy schema plus one column)::

    model, gpu, tp, sm_pct, phase, batch, seq_len, latency_ms, source, device, date, sm_enforced

Interference CSV (one row per co-located prefill/decode pair)::

    gpu, model, tp, prefill_sm_pct, decode_sm_pct, prefill_batch, prefill_seq_len,
    decode_batch, decode_seq_len, prefill_alone_ms, prefill_colocated_ms, decode_alone_ms,
    decode_colocated_ms, prefill_slowdown, decode_slowdown, sm_enforced, source, device, date

Models outside the catalog are defined in a sidecar ``<stem>.models.json`` (name ->
inline architecture) so that ``muxsim.costmodel.load_profile`` can resolve them; a
``<stem>.meta.json`` sidecar records how the run went (SM control, skipped points).
Plain Python: no torch here.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from muxsim.io import write_json_atomic, write_text_atomic
from muxsim.models import CATALOG, ModelSpec


@dataclass(frozen=True)
class ProfileRow:
    model: str
    gpu: str
    tp: int
    sm_pct: int
    phase: str  # "prefill" | "decode"
    batch: int
    seq_len: int
    latency_ms: float
    source: str = "measured"
    device: str = ""
    date: str = ""
    sm_enforced: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProfileRow:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass(frozen=True)
class InterferenceRow:
    gpu: str
    model: str
    tp: int
    prefill_sm_pct: int
    decode_sm_pct: int
    prefill_batch: int
    prefill_seq_len: int
    decode_batch: int
    decode_seq_len: int
    prefill_alone_ms: float
    prefill_colocated_ms: float
    decode_alone_ms: float
    decode_colocated_ms: float
    prefill_slowdown: float
    decode_slowdown: float
    sm_enforced: bool
    source: str = "measured"
    device: str = ""
    date: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PROFILE_COLUMNS = [f.name for f in fields(ProfileRow)]
INTERFERENCE_COLUMNS = [f.name for f in fields(InterferenceRow)]


def _fmt(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def to_csv(rows: list[Any], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(v) for k, v in r.to_dict().items()})
    return buf.getvalue()


def sidecar_path(path: str | Path, kind: str) -> Path:
    """``runs/p.csv`` -> ``runs/p.<kind>.json``."""
    return Path(path).with_suffix(f".{kind}.json")


def write_profile(path: str | Path, rows: list[ProfileRow], models: dict[str, ModelSpec],
                  meta: dict[str, Any] | None = None) -> Path:
    """The CSV, plus the models sidecar (for names not in the catalog) and the meta
    sidecar; the sidecars are written first so a present CSV always has them."""
    inline = {name: _arch(spec) for name, spec in models.items() if name.lower() not in CATALOG}
    side = sidecar_path(path, "models")
    if inline:
        write_json_atomic(side, inline)
    if meta is not None:
        write_json_atomic(sidecar_path(path, "meta"), meta)
    return write_text_atomic(path, to_csv(rows, PROFILE_COLUMNS))


def write_interference(path: str | Path, rows: list[InterferenceRow],
                       models: dict[str, ModelSpec] | None = None) -> Path:
    inline = {name: _arch(spec) for name, spec in (models or {}).items() if name.lower() not in CATALOG}
    if inline:
        write_json_atomic(sidecar_path(path, "models"), inline)
    return write_text_atomic(path, to_csv(rows, INTERFERENCE_COLUMNS))


def _arch(spec: ModelSpec) -> dict[str, Any]:
    d = spec.to_dict()
    d.pop("name")
    return d
