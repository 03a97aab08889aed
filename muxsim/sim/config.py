"""Simulator settings: ADBS parameters, scheduling policies, interference, KV layout.

Everything the simulator could choose differently is a field of :class:`SimConfig`
(frozen, JSON round-trip through ``to_dict``/``from_dict``); the serving limits
(overload, prefill token budget, batch cap, memory reserves) are its ``limits``
(:class:`muxsim.limits.ServingLimits`). Policies are plain dicts keyed by name; the
CLI's choices come from their keys.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from muxsim.errors import InputError, InputTypeError, check_fields
from muxsim.interference import DEFAULT_INTERFERENCE, InterferenceParams
from muxsim.limits import DEFAULT_LIMITS, MAX_TIME_S, ServingLimits
from muxsim.policy import FLEX_POLICIES, SPATIAL_POLICIES, TEMPORAL_POLICIES, FlexPolicy, PolicyBase

KV_CACHES = ("unified", "static")


@dataclass(frozen=True)
class SimConfig:
    """Simulator settings. Defaults follow MuxServe (ADBS) and vLLM."""

    # ADBS (flex meshes)
    flex_policy: str = "adbs"
    adapt_period_s: float = 8.0
    adapt_window_steps: int = 500
    hot_threshold: float = 0.9
    donor_keep: float = 0.95
    # temporal meshes
    temporal_policy: str = "fcfs"
    # KV cache: "unified" head-wise pool with quotas, or "static" fixed partitions by kv_share
    kv_cache: str = "unified"
    # initial KV quotas: the plan's kv_share, or ADBS's rule (rate x layers x KV heads per GPU)
    initial_quota: str = "plan"
    interference: InterferenceParams = DEFAULT_INTERFERENCE
    interference_on: bool = True
    # overload (flex: SM shares of running jobs may sum to this), prefill token budget,
    # batch cap, memory reserves
    limits: ServingLimits = DEFAULT_LIMITS
    # run
    drain_s: float = 120.0  # after the last arrival, keep serving this long at most
    sample_interval_s: float = 1.0  # utilization sampling
    max_chunk_steps: int = 512  # decode steps advanced as one event at most
    cost_grid: bool = True  # decode step cost interpolated on a context grid (see mesh.py)

    def __post_init__(self) -> None:
        if self.flex_policy not in FLEX_POLICIES:
            raise InputError(f"config.flex_policy: must be one of {', '.join(FLEX_POLICIES)}, got {self.flex_policy!r}")
        if self.temporal_policy not in TEMPORAL_POLICIES:
            raise InputError(f"config.temporal_policy: must be one of {', '.join(TEMPORAL_POLICIES)}, "
                             f"got {self.temporal_policy!r}")
        if self.initial_quota not in ("plan", "rate"):
            raise InputError(f"config.initial_quota: must be plan or rate, got {self.initial_quota!r}")
        if self.kv_cache not in KV_CACHES:
            raise InputError(f"config.kv_cache: must be one of {', '.join(KV_CACHES)}, got {self.kv_cache!r}")
        # periods of at least a millisecond: events stay bounded by the simulated time
        for f in ("adapt_period_s", "sample_interval_s"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not 1e-3 <= v <= MAX_TIME_S:
                raise InputError(f"config.{f}: must be a number in [0.001, {MAX_TIME_S:g}], got {v!r}")
        d = self.drain_s
        if isinstance(d, bool) or not isinstance(d, int | float) or not (0 <= d <= MAX_TIME_S or d == math.inf):
            raise InputError(f"config.drain_s: must be in [0, {MAX_TIME_S:g}] or inf, got {d!r}")
        for f, hi in (("adapt_window_steps", 10**7), ("max_chunk_steps", 10**6)):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= hi:
                raise InputError(f"config.{f}: must be an integer in [1, {hi}], got {v!r}")
        for f in ("hot_threshold", "donor_keep"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1:
                raise InputError(f"config.{f}: must be in (0, 1], got {v!r}")
        for f in ("interference_on", "cost_grid"):
            if not isinstance(getattr(self, f), bool):
                raise InputError(f"config.{f}: must be true or false, got {getattr(self, f)!r}")
        if not isinstance(self.interference, InterferenceParams):
            raise InputTypeError(f"config.interference: expected InterferenceParams, got {self.interference!r}")
        if not isinstance(self.limits, ServingLimits):
            raise InputTypeError(f"config.limits: expected ServingLimits, got {type(self.limits).__name__}")

    def policy(self, mode: str) -> PolicyBase:
        """The policy meshes of plan ``mode`` run under, with this configuration's
        parameters and limits (a static KV cache makes the quotas fixed partitions)."""
        common: dict[str, Any] = {"initial_quota": self.initial_quota, "max_chunk_steps": self.max_chunk_steps,
                                  "limits": self.limits}
        static = self.kv_cache == "static"
        if mode == "flex":
            p: FlexPolicy = FLEX_POLICIES[self.flex_policy]
            common.update(adapt_period_s=self.adapt_period_s, adapt_window_steps=self.adapt_window_steps,
                          hot_threshold=self.hot_threshold, donor_keep=self.donor_keep)
            if static:
                common.update(quotas=True, adapt=False)
            return replace(p, **common)
        turns = TEMPORAL_POLICIES[self.temporal_policy] if mode == "temporal" else SPATIAL_POLICIES["continuous"]
        return replace(turns, quotas=static, **common)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["limits"] = self.limits.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimConfig:
        args = dict(check_fields(d, cls, "config"))
        if "limits" in args:
            args["limits"] = ServingLimits.from_dict(args["limits"])
        if "interference" in args:
            inter = args["interference"]
            if not isinstance(inter, dict) or set(inter) - {"sm_coef", "hbm_coef"}:
                raise InputError("config.interference: expected {sm_coef, hbm_coef}")
            args["interference"] = InterferenceParams(**inter)
        return cls(**args)
