"""``workload.json`` as frozen, validated objects (see docs/design.md for the schema).

Validation happens once, in :meth:`Workload.from_dict`: pydantic checks types and
ranges, :func:`muxsim.workload.messages.input_error` turns its first complaint into one line naming the field
(``models[3].rate: must be > 0, got -1``), and :meth:`Workload.check_references` then
resolves what lives outside the file (catalog models, config files, trace and
empirical files). Constructing a :class:`Workload` directly runs the same pure checks
but reads no file.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from muxsim.errors import InputError
from muxsim.gpus import CATALOG as GPU_CATALOG
from muxsim.gpus import GPUSpec, get_gpu
from muxsim.limits import (
    MAX_GPUS_PER_NODE,
    MAX_LLMS,
    MAX_NAME_CHARS,
    MAX_NODES,
    MAX_PATH_CHARS,
    MAX_RATE,
    MAX_SEED,
    MAX_SLO_SCALE,
    MAX_TIME_S,
    MAX_WINDOWS,
)
from muxsim.metrics import DEFAULT_SCALES, DEFAULT_TARGET_ATTAINMENT, LATENCIES
from muxsim.models import ModelSpec, resolve_model
from muxsim.plan import DEFAULT_CLUSTER as _DEFAULT_CLUSTER

from . import lengths
from .arrivals import ArrivalSpec, PoissonArrivals, TraceArrivals
from .lengths import LengthSpec, ShareGPTLength
from .messages import input_error

_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
Seconds = Annotated[float, Field(gt=0, le=MAX_TIME_S, strict=True)]
StartSeconds = Annotated[float, Field(ge=0, le=MAX_TIME_S, strict=True)]
Rate = Annotated[float, Field(gt=0, le=MAX_RATE, strict=True)]
WindowRate = Annotated[float, Field(ge=0, le=MAX_RATE, strict=True)]
Millis = Annotated[float, Field(gt=0, le=MAX_TIME_S * 1e3, strict=True)]  # an absolute latency target
SLOScale = Annotated[float, Field(gt=0, le=MAX_SLO_SCALE, strict=True)]


DEFAULT_CLUSTER: dict[str, Any] = _DEFAULT_CLUSTER.to_dict()


class ClusterSpec(BaseModel):
    """The GPUs the workload is served on; same fields as :class:`muxsim.plan.Cluster`."""

    model_config = _CONFIG
    gpu: StrictStr
    nodes: Annotated[StrictInt, Field(ge=1, le=MAX_NODES)] = 1
    gpus_per_node: Annotated[StrictInt, Field(ge=1, le=MAX_GPUS_PER_NODE)] = 8

    @field_validator("gpu")
    @classmethod
    def _known_gpu(cls, v: str) -> str:
        """The catalog's name (case and outer spaces do not matter)."""
        if v.strip().lower() not in GPU_CATALOG:
            raise ValueError(f"unknown GPU {v!r} (known: {', '.join(GPU_CATALOG)})")
        return GPU_CATALOG[v.strip().lower()].name

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    def to_plan_cluster(self) -> Any:
        from muxsim.plan import Cluster

        return Cluster(gpu=self.gpu, nodes=self.nodes, gpus_per_node=self.gpus_per_node)

    def to_dict(self) -> dict[str, Any]:
        return {"gpu": self.gpu, "nodes": self.nodes, "gpus_per_node": self.gpus_per_node}


Fraction = Annotated[float, Field(gt=0, le=1, strict=True)]


class ModelSLO(BaseModel):
    """Absolute targets of one model (each overrides the workload's ``slo`` field of the
    same name): TTFT, TPOT and end-to-end latency in milliseconds, and the attainment
    the team wants."""

    model_config = _CONFIG
    ttft_ms: Millis | None = None
    tpot_ms: Millis | None = None
    e2e_ms: Millis | None = None
    target_attainment: Fraction | None = None


class SLOSpec(BaseModel):
    """SLO scales (multiples of a request's latency alone), the attainment target, and
    absolute targets for every model (``ttft_ms``, ``tpot_ms``, ``e2e_ms``; optional)."""

    model_config = _CONFIG
    scales: tuple[SLOScale, ...] = Field(default=DEFAULT_SCALES, min_length=1, max_length=100)
    target_attainment: Fraction = DEFAULT_TARGET_ATTAINMENT
    ttft_ms: Millis | None = None
    tpot_ms: Millis | None = None
    e2e_ms: Millis | None = None


class RateWindow(BaseModel):
    """From ``start_s`` until the next window's start (or the end), ``rate`` requests/s."""

    model_config = _CONFIG
    start_s: StartSeconds
    rate: WindowRate


def _model_ref(v: Any) -> Any:
    if isinstance(v, str) and v.strip():
        return v
    if isinstance(v, dict):
        return v
    raise ValueError(f"must be a catalog model name, a config.json path or an inline architecture, got {v!r}")


class ModelEntry(BaseModel):
    """One LLM of the workload: its name, architecture, popularity and lengths."""

    model_config = _CONFIG
    name: StrictStr = Field(min_length=1, max_length=MAX_NAME_CHARS)
    model: Annotated[Any, AfterValidator(_model_ref)]
    rate: Rate | None = None
    prompt_len: LengthSpec = Field(default_factory=ShareGPTLength)
    output_len: LengthSpec = Field(default_factory=ShareGPTLength)
    rate_schedule: tuple[RateWindow, ...] | None = Field(default=None, min_length=1, max_length=MAX_WINDOWS)
    slo: ModelSLO | None = None

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if v != v.strip() or any(c in v for c in ",\n\r\t\"") or not v.isprintable():
            raise ValueError(f"must not hold commas, quotes, control characters or outer spaces, got {v!r}")
        return v

    @field_validator("prompt_len")
    @classmethod
    def _prompt_has_no_total(cls, v: Any) -> Any:
        if v.max_total is not None:
            raise ValueError("max_total belongs to output_len (it cuts the answer), not to prompt_len")
        return v

    def windows(self, duration_s: float) -> tuple[list[float], list[float]]:
        """Window starts and rates over [0, duration_s)."""
        if self.rate_schedule is None:
            return [0.0], [float(self.rate or 0.0)]
        return [w.start_s for w in self.rate_schedule], [w.rate for w in self.rate_schedule]


def schedule_mean(windows: tuple[RateWindow, ...], duration_s: float) -> float:
    ends = [w.start_s for w in windows[1:]] + [duration_s]
    return sum(w.rate * (e - w.start_s) for w, e in zip(windows, ends)) / duration_s


class Workload(BaseModel):
    """Which models, how popular, how requests arrive, how long prompts and answers are."""

    model_config = _CONFIG
    cluster: ClusterSpec
    models: tuple[ModelEntry, ...] = Field(min_length=1, max_length=MAX_LLMS)
    arrivals: ArrivalSpec = Field(default_factory=PoissonArrivals)
    duration_s: Seconds
    seed: Annotated[StrictInt, Field(ge=0, le=MAX_SEED)] = 0
    slo: SLOSpec = Field(default_factory=SLOSpec)
    trace: Annotated[StrictStr, Field(min_length=1, max_length=MAX_PATH_CHARS)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Workload:
        windows = sum(len(m.rate_schedule or ()) for m in self.models)
        if windows > MAX_WINDOWS:
            raise ValueError(f"models: {windows} rate_schedule windows in all, more than {MAX_WINDOWS}")
        seen: dict[str, int] = {}
        filled = []
        for i, m in enumerate(self.models):
            where = f"models[{i}]"
            if m.name in seen:
                raise ValueError(f"{where}.name: duplicate name {m.name!r} (also models[{seen[m.name]}])")
            seen[m.name] = i
            filled.append(self._check_rate(m, where))
        object.__setattr__(self, "models", tuple(filled))
        is_trace = isinstance(self.arrivals, TraceArrivals)
        if is_trace and self.trace is None:
            raise ValueError("arrivals.process: 'trace' needs the trace field (a CSV/JSONL file)")
        if self.trace is not None and not is_trace:
            raise ValueError(f"trace: a trace replays arrivals; set arrivals.process to 'trace', "
                             f"not {self.arrivals.process!r}")
        return self

    def _check_rate(self, m: ModelEntry, where: str) -> ModelEntry:
        if m.rate_schedule is None:
            if m.rate is None and self.trace is None:
                raise ValueError(f"{where}.rate: missing (give rate or rate_schedule)")
            return m
        if self.trace is not None:
            raise ValueError(f"{where}.rate_schedule: a trace workload replays its arrivals; drop the schedule")
        prev = -1.0
        for k, w in enumerate(m.rate_schedule):
            wk = f"{where}.rate_schedule[{k}].start_s"
            if k == 0 and w.start_s != 0:
                raise ValueError(f"{wk}: the first window must start at 0, got {w.start_s!r}")
            if w.start_s <= prev:
                raise ValueError(f"{wk}: windows must start in increasing order, got {w.start_s!r} after {prev!r}")
            if w.start_s >= self.duration_s:
                raise ValueError(f"{wk}: {w.start_s!r} is not before duration_s ({self.duration_s!r})")
            prev = w.start_s
        mean = schedule_mean(m.rate_schedule, self.duration_s)
        if mean <= 0:
            raise ValueError(f"{where}.rate_schedule: every window has rate 0")
        if m.rate is not None and not math.isclose(m.rate, mean, rel_tol=1e-9):
            raise ValueError(f"{where}.rate: {m.rate!r} differs from the mean of rate_schedule ({mean!r}); "
                             "omit rate or make it match")
        return m.model_copy(update={"rate": mean})

    # ---- the boundary -----------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Any) -> Workload:
        """Validate a parsed ``workload.json``; bad input raises :class:`InputError`
        naming the field. Files it refers to are read to check them."""
        if not isinstance(d, dict):
            raise InputError(f"workload: expected a JSON object, got {type(d).__name__}")
        try:
            wl = cls.model_validate(d)
        except ValidationError as e:
            raise input_error(e) from None
        return wl.check_references()

    def check_references(self) -> Workload:
        """Resolve models, check empirical and trace files; returns the workload (rates of
        a trace workload filled from the trace when not given)."""
        for i, m in enumerate(self.models):
            model = resolve_model(m.model, field=f"models[{i}].model")
            for role in ("prompt", "output"):
                spec = getattr(m, f"{role}_len")
                if isinstance(spec, lengths.EmpiricalLength):
                    try:
                        lengths.empirical_values(spec)
                    except InputError as e:
                        raise InputError(f"models[{i}].{role}_len.file: {e}") from None
            if self.trace is None:
                least = lengths.shortest(m.prompt_len, "prompt") + lengths.shortest(m.output_len, "output")
                if least > model.context_window:
                    raise InputError(f"models[{i}]: its shortest request holds {least} tokens (prompt_len plus "
                                     f"output_len), more than the {model.context_window}-token context window of "
                                     f"{model.name}")
        if self.trace is None:
            return self
        from .trace import read_trace

        table = read_trace(self.trace, "trace", names=self.names())
        counts = table.loc[table["arrival_s"].to_numpy() < self.duration_s, "name"].value_counts()
        models = []
        for i, m in enumerate(self.models):
            if m.rate is None:
                n = int(counts.get(m.name, 0))
                if n == 0:
                    raise InputError(f"models[{i}].rate: no request of {m.name!r} arrives in the trace before "
                                     f"duration_s ({self.duration_s:g} s); give its rate")
                m = m.model_copy(update={"rate": n / self.duration_s})
            models.append(m)
        return self.model_copy(update={"models": tuple(models)})

    def to_dict(self) -> dict[str, Any]:
        d = self.model_dump(mode="json", exclude_none=True)
        d["trace"] = self.trace
        return d

    # ---- lookups ------------------------------------------------------------------
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def entry(self, name: str) -> ModelEntry:
        for m in self.models:
            if m.name == name:
                return m
        raise InputError(f"name: {name!r} is not a model of this workload (models: {', '.join(self.names())})")

    def model_spec(self, name: str) -> ModelSpec:
        i = self.names().index(self.entry(name).name)
        m = self.models[i]
        spec = resolve_model(m.model, field=f"models[{i}].model")
        if isinstance(m.model, dict) and "name" not in m.model:
            spec = replace(spec, name=m.name)  # an inline architecture is known by its LLM's name
        return spec

    def gpu_spec(self) -> GPUSpec:
        return get_gpu(self.cluster.gpu, field="cluster.gpu")

    def slo_targets(self) -> dict[str, dict[str, float | None]]:
        """Per LLM (workload order): its absolute SLO targets (``ttft_ms``, ``tpot_ms``,
        ``e2e_ms``, ``None`` where unset) and ``target_attainment``; a model's own
        ``slo`` field overrides the workload's."""
        out = {}
        for m in self.models:
            own = m.slo or ModelSLO()
            keys = (*LATENCIES, "target_attainment")
            out[m.name] = {k: v if (v := getattr(own, k)) is not None else getattr(self.slo, k) for k in keys}
        return out

    def rate_of(self, name: str) -> float:
        """Mean request rate (requests/s) over the run."""
        return float(self.entry(name).rate or 0.0)

    def total_rate(self) -> float:
        return sum(self.rate_of(n) for n in self.names())

    def mean_prompt_len(self, name: str) -> float:
        """Expected prompt tokens of a request to ``name`` (after rounding and clipping)."""
        m = self.entry(name)
        if self.trace is not None:
            return _trace_mean(self, name, "prompt_len")
        return lengths.mean_length(m.prompt_len, "prompt")

    def mean_output_len(self, name: str) -> float:
        """Expected answer tokens of a request to ``name`` (after clipping and the
        ``max_total`` cut against the prompt)."""
        m = self.entry(name)
        if self.trace is not None:
            return _trace_mean(self, name, "output_len")
        return lengths.mean_length(m.output_len, "output", prompt=m.prompt_len)


def _trace_mean(wl: Workload, name: str, column: str) -> float:
    from .trace import trace_requests

    df = trace_requests(wl)
    sel = df.loc[df["name"] == name, column]
    return float(sel.mean()) if len(sel) else 0.0
