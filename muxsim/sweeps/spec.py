"""The sweep file: what to vary, what to hold fixed, read with YAML's safe loader only.

A sweep file has a ``base`` (one trial's parameters), a ``grid`` (dotted parameter ->
list of values; every combination is a trial) and optional ``cases`` (a list of dotted
overrides; the grid runs once per case)::

    name: synthetic
    base:
      workload: {kind: synth, mix: "12xllama-7b,4xllama-13b", nodes: 2, duration: 120}
      algorithm: muxserve
      seed: 0
    grid:
      workload.alpha: [0.7, 1.3, 2.1]
      algorithm: [muxserve, spatial]
      config.flex_policy: [adbs, fcfs]
    cases:
      - {workload.nodes: 1}
      - {workload.nodes: 2}

The sections of a trial (all optional but ``workload``):

- ``workload``: ``kind`` ``synth`` (the power-law mix of :func:`muxsim.synth_workload`),
  ``file`` (a workload.json at ``path``) or ``trace`` (a request log at ``path``, such
  as the Azure traces, spread over the ``mix``'s models by popularity ``alpha`` at
  ``rate`` requests/s, see :func:`muxsim.workload.import_logs`). ``rate_scale``
  multiplies every rate; ``drift_windows`` > 1 rotates popularity over the run;
  ``slo_scales`` replaces the SLO scales reported.
- ``algorithm`` (a placement algorithm; default muxserve), or ``plan`` (a plan.json to
  simulate as it is, placing nothing), ``seed``.
- ``place``: keyword arguments of :func:`muxsim.placement.solve_placement` (an
  algorithm's options such as ``time_limit_s``; serving limits such as the overload
  cap are the simulator's, in ``config.limits``, and placement reads them from there).
- ``config``: fields of :class:`muxsim.SimConfig` (``flex_policy``, ``kv_cache``,
  ``interference_on``, ...).
- ``simulate``: keyword arguments of :func:`muxsim.simulate` (``truncate``,
  ``max_requests``).
- ``cost``: ``engine`` (an engine preset of the cost model).
- ``capacity``: keyword arguments of ``muxsim.capacity`` when the sweep should also
  ask for the GPUs needed (only where muxsim has it).
- ``stop_after``: ``place`` to skip the simulation (placement studies), or ``simulate``.
- ``tags``: free labels, kept as columns (``tags.study: kv``) and never read.

Relative file paths (``workload.path``, ``plan``) are taken from the sweep file's folder
(from the current folder when the sweep is given as a dict).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from muxsim.errors import InputError, InputTypeError
from muxsim.limits import MAX_NAME_CHARS, MAX_PATH_CHARS, MAX_SEED, MAX_TIME_S, MAX_TRIALS

Options = dict[Annotated[str, Field(max_length=MAX_NAME_CHARS)], Any]
_CONFIG = ConfigDict(extra="forbid", frozen=True)
SECTIONS = ("workload", "algorithm", "plan", "seed", "place", "config", "simulate", "cost", "capacity", "stop_after", "tags")


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


class WorkloadParams(BaseModel):
    """How one trial's workload is made (see the module docstring)."""

    model_config = _CONFIG
    kind: Literal["synth", "file", "trace"] = "synth"
    mix: Annotated[StrictStr, Field(max_length=100_000)] | None = None
    alpha: Annotated[float, Field(ge=0, le=100)] = 1.0
    max_rate: Annotated[float, Field(gt=0, le=1e6)] = 40.0
    rate: Annotated[float, Field(gt=0, le=1e6)] | None = None
    rate_scale: Annotated[float, Field(gt=0, le=1e6)] = 1.0
    gpu: Annotated[StrictStr, Field(max_length=MAX_NAME_CHARS)] = "a100-80gb"
    nodes: Annotated[StrictInt, Field(ge=1, le=1024)] = 4
    gpus_per_node: Annotated[StrictInt, Field(ge=1, le=128)] = 8
    duration: Annotated[float, Field(gt=0, le=MAX_TIME_S)] | None = None
    drift_windows: Annotated[StrictInt, Field(ge=1, le=100_000)] = 1
    arrivals: dict[str, Any] | None = None
    path: Annotated[StrictStr, Field(min_length=1, max_length=MAX_PATH_CHARS)] | None = None
    truncate: StrictBool = False
    slo_scales: Annotated[list[Annotated[float, Field(gt=0, le=1e6)]], Field(min_length=1, max_length=100)] | None = None


class TrialParams(BaseModel):
    """Every parameter of one trial; a trial is this, flattened to dotted keys."""

    model_config = _CONFIG
    workload: WorkloadParams
    algorithm: Annotated[StrictStr, Field(max_length=MAX_NAME_CHARS)] | None = None
    plan: Annotated[StrictStr, Field(min_length=1, max_length=MAX_PATH_CHARS)] | None = None
    seed: Annotated[StrictInt, Field(ge=0, le=MAX_SEED)] = 0
    place: Options = Field(default_factory=dict)
    config: Options = Field(default_factory=dict)
    simulate: Options = Field(default_factory=dict)
    cost: Options = Field(default_factory=dict)
    capacity: Options | None = None
    stop_after: Literal["place", "simulate"] = "simulate"
    tags: Options = Field(default_factory=dict)


DottedKey = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]


class SweepSpec(BaseModel):
    """A sweep file (see the module docstring)."""

    model_config = _CONFIG
    name: Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME_CHARS)] = "sweep"
    base: dict[str, Any] = Field(default_factory=dict)
    grid: dict[DottedKey, Annotated[list[Any], Field(min_length=1, max_length=MAX_TRIALS)]] = Field(
        default_factory=dict)
    cases: Annotated[list[dict[DottedKey, Any]], Field(max_length=MAX_TRIALS)] = Field(default_factory=list)


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader without anchors and aliases (a few lines of aliases can stand
    for billions of nodes)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise InputError(f"sweep: line {self.peek_event().start_mark.line + 1}: YAML aliases (*name) "
                             "are not accepted in a sweep file")
        return super().compose_node(parent, index)


def parse_yaml(text: str, what: str = "sweep") -> Any:
    """The document in ``text`` (safe loader, no aliases); InputError naming the line."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader: plain data only
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise InputError(f"{what}: {where}not valid YAML ({e.problem or 'cannot parse'})") from None
    except yaml.YAMLError as e:
        raise InputError(f"{what}: not valid YAML ({type(e).__name__})") from None
    except RecursionError:
        raise InputError(f"{what}: nested too deeply") from None


def shown(key: Any) -> str:
    """A key as an error names it: itself when it is short printable text, else quoted."""
    text = str(key)
    return text if text.isprintable() and len(text) <= 80 else repr(text[:80])


def spec_error(e: ValidationError, prefix: str = "") -> InputError:
    """The first error of a pydantic validation as one InputError naming the field."""
    err = e.errors()[0]
    loc = ".".join(shown(p) for p in err["loc"] if p != "__root__")
    msg = err["msg"].removeprefix("Value error, ")
    return InputError(f"{prefix}{loc}: {msg}" if loc else f"{prefix.rstrip('.')}: {msg}")


def as_spec(spec: Any) -> SweepSpec:
    """A :class:`SweepSpec` from itself or a dict of a sweep file's content (a path is
    read by :func:`load_spec`)."""
    if isinstance(spec, SweepSpec):
        return spec
    if not isinstance(spec, dict):
        raise InputTypeError(f"sweep: expected a sweep dict or a path to SWEEP.yaml, got {type(spec).__name__}")
    try:
        return SweepSpec.model_validate(spec)
    except ValidationError as e:
        raise spec_error(e) from None
    except RecursionError:
        raise InputError("sweep: nested too deeply") from None


def load_spec(path: Any) -> SweepSpec:
    """Read and check SWEEP.yaml (a regular file of bounded size)."""
    from muxsim.io import read_text

    doc = parse_yaml(read_text(path, "sweep"))
    if not isinstance(doc, dict):
        raise InputError(f"sweep: expected a mapping with base, grid and cases, got {type(doc).__name__}")
    return as_spec(doc)
