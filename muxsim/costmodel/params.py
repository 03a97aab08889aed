"""Parameters of the analytic cost model, engine presets, and the fitted defaults.

:class:`AnalyticParams` holds every number the analytic model uses besides the GPU's
datasheet. Its class defaults are the *datasheet defaults*: round figures from vendor
and paper sources, no minimum kernel times and no tile quantization, which is what
muxsim used before it met a measurement (``docs/fidelity.md`` calls them "before").
The defaults a GPU actually gets come from :func:`default_params`:

- ``a100-80gb`` and ``h100-80gb``: fitted to public operator, all-reduce and engine
  measurements (``muxsim calibrate --vidur``); the fitted files ship in
  ``muxsim/data/fitted-*.json`` and say which files, which fit and what error;
- the other catalog GPUs: the parameters of the nearest fitted GPU (closest peak FLOP/s
  and HBM bandwidth on a log scale). Parameters are efficiencies and fixed times, so
  they carry over and the GPU's own datasheet scales them; ``source`` says so;
- ``cpu`` (the pseudo-device for tiny models): the datasheet defaults, to be calibrated.

Per-step engine overhead comes from a named preset (:data:`ENGINES`), applied on top:
``vllm-2024-ray`` (what MuxServe ran on: vLLM of 2024 driving tensor-parallel workers
through Ray; fitted to its measured CPU time per step; the default), ``lean`` (the same
engine's per-step work without the Ray hop, standing for engines with CUDA graphs and
in-process workers), ``none`` (kernel time only) and ``datasheet`` (the old flat 1 ms a
step plus 30 us a layer).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from importlib import resources
from typing import Any

from muxsim.errors import InputError, InputTypeError, check_fields
from muxsim.gpus import CATALOG as GPUS
from muxsim.gpus import TOPOLOGIES, GPUSpec, get_gpu
from muxsim.limits import MAX_GPUS_PER_NODE, MAX_PARAM

# Fields that may be zero (fixed times and overheads); every other field must be > 0.
ZERO_OK = frozenset({"gemm_min_us", "attn_min_us", "norm_min_us", "norm_row_ns", "rope_min_us", "act_min_us",
                     "add_min_us", "embed_min_us", "step_overhead_ms", "layer_overhead_us", "seq_overhead_us",
                     "logit_overhead_ns", "tp_overhead_ms"})
ENGINE_FIELDS = ("step_overhead_ms", "layer_overhead_us", "seq_overhead_us", "logit_overhead_ns", "tp_overhead_ms")


@dataclass(frozen=True)
class AllReduceFit:
    """Measured all-reduce on one node topology and group size: the latency and the
    transfer ``ring(n) * bytes / busbw`` (``ring(n) = 2 (n - 1) / n``, NCCL's bus-bandwidth
    convention) added (``blend_p = 1``) or in quadrature (``blend_p = 2``)."""

    topology: str
    tp: int
    latency_us: float
    busbw_gbps: float
    blend_p: float = 1.0

    def __post_init__(self) -> None:
        if self.topology not in TOPOLOGIES:
            raise InputError(f"topology: must be one of {', '.join(TOPOLOGIES)}, got {self.topology!r}")
        if isinstance(self.tp, bool) or not isinstance(self.tp, int) or not 2 <= self.tp <= MAX_GPUS_PER_NODE:
            raise InputError(f"tp: must be an integer in [2, {MAX_GPUS_PER_NODE}], got {self.tp!r}")
        for k in ("latency_us", "busbw_gbps"):
            object.__setattr__(self, k, _check_value(k, getattr(self, k), zero_ok=False))
        if isinstance(self.blend_p, bool) or self.blend_p not in (1, 2):
            raise InputError(f"blend_p: must be 1 (latency + transfer) or 2 (in quadrature), got {self.blend_p!r}")
        object.__setattr__(self, "blend_p", float(self.blend_p))

    def to_dict(self) -> dict[str, Any]:
        return {"topology": self.topology, "tp": self.tp, "latency_us": self.latency_us,
                "busbw_gbps": self.busbw_gbps, "blend_p": self.blend_p}


@dataclass(frozen=True)
class AnalyticParams:
    """The analytic model's parameters (class defaults: the datasheet defaults).

    GEMMs: ``compute = waves * tile_time`` with ``waves = ceil(tiles / SMs)`` for a small
    (``gemm_tile_*``) and a big (``gemm_big_tile_*``) CTA tile, whichever is faster, at
    ``gemm_eff`` / ``gemm_big_eff`` of the tensor-core peak; ``memory`` streams weights and
    activations at ``bw_eff`` of the HBM bandwidth; ``time = gemm_min_us + (compute^p +
    memory^p)^(1/p)`` with ``p = overlap_p``. Elementwise kernels (``norm``, ``rope`` (also
    the KV-cache write), ``act``, ``add``, ``embed``): ``min_us (+ norm_row_ns * hidden) +
    bytes / (HBM * eff)``. The attention core: FLOPs at ``attn_eff`` of the peak blended
    with its HBM traffic at ``attn_bw_eff``. SM shares scale compute by ``sm **
    -sm_compute_exp`` and bandwidth by ``bw_share(sm, bw_sat_tau)``. All-reduce: the
    measured ``allreduce`` rows of the node topology, else ``comm_latency_us`` plus the
    datasheet link rate at ``comm_eff``. Engine overhead per step: ``step_overhead_ms +
    layers * layer_overhead_us + seqs * (seq_overhead_us + vocab * logit_overhead_ns) +
    (tp > 1) * tp_overhead_ms``.
    """

    gemm_eff: float = 0.75  # cuBLAS FP16 GEMMs reach 70-80% of the dense peak (NVIDIA GEMM guide)
    gemm_big_eff: float = 0.75
    bw_eff: float = 0.85  # streaming kernels reach ~85% of the HBM datasheet bandwidth
    gemm_min_us: float = 0.0
    gemm_tile_m: float = 1.0  # 1 x 1: no tile quantization (the datasheet roofline)
    gemm_tile_n: float = 1.0
    gemm_big_tile_m: float = 1.0
    gemm_big_tile_n: float = 1.0
    overlap_p: float = 2.0
    attn_eff: float = 0.55  # FlashAttention-2 forward: 50-73% of the A100 peak (Dao, 2023)
    attn_bw_eff: float = 0.85
    attn_min_us: float = 0.0
    norm_eff: float = 0.85
    norm_min_us: float = 0.0
    norm_row_ns: float = 0.0
    rope_eff: float = 0.85
    rope_min_us: float = 0.0
    act_eff: float = 0.85
    act_min_us: float = 0.0
    add_eff: float = 0.85
    add_min_us: float = 0.0
    embed_eff: float = 0.85
    embed_min_us: float = 0.0
    sm_compute_exp: float = 0.81  # MuxServe: batch-128 prefill 2.65x slower at 30% SMs; 0.3**-0.81
    bw_sat_tau: float = 0.30  # bw_share(0.3) = 0.66: decode 1.4-1.5x slower at 30% SMs
    comm_eff: float = 0.75  # NCCL bus bandwidth ~75% of the per-direction link rate
    comm_latency_us: float = 10.0
    step_overhead_ms: float = 1.0
    layer_overhead_us: float = 30.0
    seq_overhead_us: float = 0.0
    logit_overhead_ns: float = 0.0
    tp_overhead_ms: float = 0.0
    allreduce: tuple[AllReduceFit, ...] = ()

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name != "allreduce":
                _check_value(f.name, getattr(self, f.name), zero_ok=f.name in ZERO_OK, where="params.")
        if self.overlap_p < 1:
            raise InputError(f"params.overlap_p: must be >= 1, got {self.overlap_p!r}")
        if not isinstance(self.allreduce, tuple) or not all(isinstance(a, AllReduceFit) for a in self.allreduce):
            raise InputTypeError("params.allreduce: expected a tuple of AllReduceFit")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "allreduce"}
        d["allreduce"] = [a.to_dict() for a in self.allreduce]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnalyticParams:
        check_fields(d, cls, "params", expected="an object of analytic-model parameters", noun="parameter(s)",
                     list_known=True)
        out: dict[str, Any] = {}
        for k, v in d.items():
            if k == "allreduce":
                out[k] = _allreduce_rows(v)
                continue
            out[k] = _check_value(k, v, zero_ok=k in ZERO_OK, where="params.")
        return replace(cls(), **out)

    def with_engine(self, name: str) -> AnalyticParams:
        """These parameters with the per-step overhead of engine preset ``name``."""
        return replace(self, **engine_preset(name))

    def allreduce_for(self, topology: str, tp: int) -> AllReduceFit | None:
        """The measured row for ``tp`` GPUs on ``topology``: exact, else the nearest group
        size (log scale) on the same topology; None when the topology has none."""
        rows = [a for a in self.allreduce if a.topology == topology]
        if not rows:
            return None
        return min(rows, key=lambda a: (abs(math.log2(a.tp) - math.log2(tp)), a.tp))


def _check_value(name: str, v: Any, *, zero_ok: bool, where: str = "") -> float:
    """``v`` as a float if it is a finite number in ``(0, MAX_PARAM]`` (``[0, MAX_PARAM]``
    with ``zero_ok``); otherwise an InputError naming ``<where><name>``."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise InputError(f"{where}{name}: must be a finite number, got {v!r}")
    if v < 0 or (v == 0 and not zero_ok) or v > MAX_PARAM:
        low = "[0" if zero_ok else "(0"
        raise InputError(f"{where}{name}: must be in {low}, {MAX_PARAM:.0e}], got {v!r}".replace("e+0", "e"))
    return float(v)


def _allreduce_rows(v: Any) -> tuple[AllReduceFit, ...]:
    if not isinstance(v, list):
        raise InputError("params.allreduce: expected a list of {topology, tp, latency_us, busbw_gbps, blend_p} "
                         "objects")
    rows = []
    for i, r in enumerate(v):
        where = f"params.allreduce[{i}]"
        if not isinstance(r, dict) or not {"topology", "tp", "latency_us", "busbw_gbps"} <= set(r) \
                or not set(r) <= {"topology", "tp", "latency_us", "busbw_gbps", "blend_p"}:
            raise InputError(f"{where}: expected topology, tp, latency_us, busbw_gbps (and blend_p)")
        try:
            rows.append(AllReduceFit(r["topology"], r["tp"], r["latency_us"], r["busbw_gbps"], r.get("blend_p", 1.0)))
        except InputError as e:
            raise InputError(f"{where}.{e}") from None
    return tuple(rows)


# ---- engine presets ------------------------------------------------------------------

_FIXED_ENGINES: dict[str, dict[str, float]] = {
    "none": dict.fromkeys(ENGINE_FIELDS, 0.0),
    "datasheet": {f.name: f.default for f in fields(AnalyticParams) if f.name in ENGINE_FIELDS},
}
ENGINES = ("vllm-2024-ray", "lean", "none", "datasheet")
DEFAULT_ENGINE = "vllm-2024-ray"


ENGINE_SOURCE = "a100-80gb"  # the shipped fit whose tree had the engine's CPU measurements


def _fitted_engines() -> dict[str, Any]:
    return fitted_document(ENGINE_SOURCE)["engines"]


def check_engine(name: Any, field: str = "engine") -> str | None:
    """``name`` if it is None or an engine preset (:data:`ENGINES`); otherwise an
    InputError (InputTypeError for a value that is not a string) naming ``field``."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise InputTypeError(f"{field}: expected a preset name ({', '.join(ENGINES)}), got {type(name).__name__}")
    if name not in ENGINES:
        shown = repr(name) if len(name) <= 40 else repr(name[:37] + "...")
        raise InputError(f"{field}: unknown preset {shown} (known: {', '.join(ENGINES)})")
    return name


def engine_preset(name: str) -> dict[str, float]:
    """The engine-overhead fields of preset ``name`` (see the module docstring)."""
    check_engine(name)
    if name in _FIXED_ENGINES:
        return dict(_FIXED_ENGINES[name])
    return {k: float(v) for k, v in _fitted_engines()[name].items()}


def params_from_document(raw: dict[str, Any]) -> AnalyticParams:
    """The parameters of a PARAMS.json (``muxsim calibrate``): ``params``, then the
    engine preset it names (its own fitted ``engines`` first, else the shipped ones)."""
    inner = raw.get("params", raw)
    if not isinstance(inner, dict):
        raise InputError("params.params: expected an object of analytic-model parameters")
    meta = ("gpu", "fit", "engine", "engines", "provenance")
    params = AnalyticParams.from_dict({k: v for k, v in inner.items() if k not in meta})
    engine = raw.get("engine")
    if engine is None:
        return params
    if not isinstance(engine, str):
        raise InputError(f"engine: expected a preset name, got {engine!r}")
    own = raw.get("engines") or {}
    if not isinstance(own, dict) or not all(isinstance(v, dict) for v in own.values()):
        raise InputError("engines: expected an object of preset name -> engine fields")
    if engine in own:
        bad = sorted(set(own[engine]) - set(ENGINE_FIELDS))
        if bad:
            raise InputError(f"engines.{engine}: unknown field(s) {', '.join(bad)}")
        checked = AnalyticParams.from_dict(own[engine])
        return replace(params, **{k: getattr(checked, k) for k in own[engine]})
    return params.with_engine(engine)


# ---- fitted defaults -----------------------------------------------------------------

FITTED = ("a100-80gb", "h100-80gb")


@lru_cache(maxsize=8)
def fitted_document(gpu: str) -> dict[str, Any]:
    """The shipped fit of ``gpu`` (one of :data:`FITTED`): params, engine, provenance."""
    if gpu not in FITTED:
        raise InputError(f"gpu: no shipped fit for {gpu!r} (fitted: {', '.join(FITTED)})")
    return json.loads(resources.files("muxsim").joinpath(f"data/fitted-{gpu}.json").read_text())


def nearest_fitted(gpu: GPUSpec) -> str:
    """The fitted GPU closest in peak FLOP/s and HBM bandwidth (log scale)."""
    def dist(name: str) -> float:
        f = GPUS[name]
        return abs(math.log(gpu.flops / f.flops)) + abs(math.log(gpu.hbm_bw / f.hbm_bw))

    return min(FITTED, key=lambda n: (dist(n), n))


@lru_cache(maxsize=32)
def default_params(gpu: str | GPUSpec, engine: str | None = None) -> tuple[AnalyticParams, str]:
    """(parameters, where they come from) for ``gpu``, with ``engine``'s overhead
    (default: the fitted file's engine, :data:`DEFAULT_ENGINE`)."""
    spec = get_gpu(gpu)
    if spec.name == "cpu":
        params, source = AnalyticParams(), "datasheet defaults (calibrate against a CPU profile)"
        return (params.with_engine(engine) if engine else params), source
    base = spec.name if spec.name in FITTED else nearest_fitted(spec)
    doc = fitted_document(base)
    params = params_from_document(doc)
    if engine:
        params = params.with_engine(engine)
    source = f"fitted to {doc['provenance']['source']} ({base})"
    if base != spec.name:
        source = (f"scaled from the {base} fit (efficiencies and fixed times carried over; {spec.name}'s own "
                  "peak FLOP/s and HBM bandwidth)")
    return params, source
