"""Length distributions of prompts and answers (``prompt_len`` / ``output_len``).

Each spec is a frozen pydantic model tagged by ``dist``:

- ``fixed``: ``value``;
- ``uniform``: integers ``low..high`` inclusive;
- ``lognormal``: ``mean`` and coefficient of variation ``cv`` of the unclipped draw;
- ``empirical``: values of ``column`` in a CSV/JSONL ``file``, drawn with replacement;
- ``sharegpt``: ShareGPT's shape as the paper used it (see :data:`SHAREGPT`).

Every spec also takes ``min`` (default 1) and ``max`` (default none): a draw is rounded
to the nearest integer and clipped to ``[min, max]``. An output spec may take
``max_total``: the answer is then cut so that prompt + answer <= ``max_total`` (how the
paper filtered ShareGPT), though never below the answer's ``min`` (a prompt that alone
reaches ``max_total`` still gets its shortest answer). Expected values
(:func:`mean_length`) are exact for the rounded, clipped integers, because the placement
estimator plans with them.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator
from scipy.special import ndtr, ndtri

from muxsim.errors import InputError
from muxsim.limits import MAX_LENGTH_CV, MAX_NAME_CHARS, MAX_PATH_CHARS, MAX_TOKENS, MIN_LENGTH_CV

from .tabular import read_table

_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
Tokens = Annotated[StrictInt, Field(ge=1, le=MAX_TOKENS)]
MeanTokens = Annotated[float, Field(gt=0, le=MAX_TOKENS, strict=True)]
LengthCV = Annotated[float, Field(ge=MIN_LENGTH_CV, le=MAX_LENGTH_CV, strict=True)]

# ShareGPT as MuxServe used it (vLLM's benchmark filter): 4 <= prompt <= 1024 tokens,
# answers >= 4, prompt + answer <= 2048, mean prompt 161 and mean answer 338 after that
# filter. The shape is lognormal (heavy right tail, median well below the mean: cv 1.3
# for prompts, 0.9 for answers); the raw means were solved (scipy brentq on
# mean_length) so that the clipped means come out at 161 and 338; tests pin both.
SHAREGPT = {
    "prompt": {"mean": 165.9, "cv": 1.3, "min": 4, "max": 1024, "max_total": None},
    "output": {"mean": 340.9, "cv": 0.9, "min": 4, "max": None, "max_total": 2048},
}
SHAREGPT_TARGET_MEANS = {"prompt": 161.0, "output": 338.0}


class _Length(BaseModel):
    model_config = _CONFIG
    min: Tokens = 1
    max: Tokens | None = None
    max_total: Annotated[StrictInt, Field(ge=2, le=2 * MAX_TOKENS)] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> _Length:
        lo = self.min if self.min is not None else SHAREGPT["prompt"]["min"]  # None: ShareGPT's own
        if self.max is not None and self.max < lo:
            raise ValueError(f"max ({self.max}) must be >= min ({lo})")
        return self

    def bounds(self) -> tuple[int, float]:
        return self.min, (math.inf if self.max is None else self.max)


class FixedLength(_Length):
    dist: Literal["fixed"] = "fixed"
    value: Tokens


class UniformLength(_Length):
    dist: Literal["uniform"] = "uniform"
    low: Tokens
    high: Tokens

    @model_validator(mode="after")
    def _order(self) -> UniformLength:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self


class LognormalLength(_Length):
    dist: Literal["lognormal"] = "lognormal"
    mean: MeanTokens
    cv: LengthCV

    def mu_sigma(self) -> tuple[float, float]:
        s2 = math.log1p(self.cv**2)
        return math.log(self.mean) - s2 / 2, math.sqrt(s2)


class EmpiricalLength(_Length):
    dist: Literal["empirical"] = "empirical"
    file: StrictStr = Field(min_length=1, max_length=MAX_PATH_CHARS)
    column: StrictStr = Field(min_length=1, max_length=MAX_NAME_CHARS)


class ShareGPTLength(_Length):
    """ShareGPT's shape; ``min``/``max``/``max_total`` left out take the role's defaults."""

    dist: Literal["sharegpt"] = "sharegpt"
    min: Tokens | None = None  # type: ignore[assignment]


LengthSpec = Annotated[
    FixedLength | UniformLength | LognormalLength | EmpiricalLength | ShareGPTLength,
    Field(discriminator="dist"),
]
DISTRIBUTIONS = ("fixed", "uniform", "lognormal", "empirical", "sharegpt")


def concrete(spec: _Length, role: str) -> _Length:
    """A ``sharegpt`` spec as the lognormal it stands for in ``role``; others unchanged."""
    if not isinstance(spec, ShareGPTLength):
        return spec
    d = dict(SHAREGPT[role])
    for key in ("min", "max", "max_total"):
        if getattr(spec, key) is not None:
            d[key] = getattr(spec, key)
    return LognormalLength(dist="lognormal", **d)


# ---- empirical columns ------------------------------------------------------------
@lru_cache(maxsize=16)
def _column_cached(path: str, column: str, mtime_ns: int, size: int) -> np.ndarray:
    table = read_table(path, "empirical file")
    if column not in table.columns:  # the file's header is not echoed: it may be anything
        raise InputError(f"column {column!r} not in {path!r}")
    x = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise InputError(f"column {column!r} of {path!r} has values that are not numbers")
    if np.any(x > MAX_TOKENS):
        raise InputError(f"column {column!r} of {path!r} has lengths above {MAX_TOKENS} tokens")
    x = np.rint(x).astype(np.int64)
    x.setflags(write=False)
    return x


def empirical_values(spec: EmpiricalLength) -> np.ndarray:
    """The rounded values of the spec's column (read-only; cached per file version)."""
    p = Path(spec.file)
    try:
        st = p.stat()
    except OSError:
        raise InputError(f"file {spec.file!r} does not exist") from None
    return _column_cached(str(p), spec.column, st.st_mtime_ns, st.st_size)


def shortest(spec: _Length, role: str) -> int:
    """The fewest tokens a draw can have (after rounding and clipping; for an output with
    ``max_total``, its ``min``, to which the cut may bring it)."""
    spec = concrete(spec, role)
    if spec.max_total is not None:
        return spec.min
    if isinstance(spec, FixedLength):
        lo = spec.value
    elif isinstance(spec, UniformLength):
        lo = spec.low
    elif isinstance(spec, EmpiricalLength):
        lo = int(empirical_values(spec).min())
    else:
        lo = spec.min
    hi = spec.max if spec.max is not None else lo
    return int(min(max(lo, spec.min), max(hi, spec.min)))


# ---- sampling -----------------------------------------------------------------------
def sample(spec: _Length, role: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` integer lengths (int64), rounded and clipped to the spec's bounds."""
    spec = concrete(spec, role)
    if isinstance(spec, FixedLength):
        x = np.full(n, spec.value, dtype=np.int64)
    elif isinstance(spec, UniformLength):
        x = rng.integers(spec.low, spec.high + 1, size=n, dtype=np.int64)
    elif isinstance(spec, LognormalLength):
        mu, sigma = spec.mu_sigma()
        raw = np.minimum(rng.lognormal(mu, sigma, size=n), 2.0**52)
        x = np.rint(raw).astype(np.int64)
    elif isinstance(spec, EmpiricalLength):
        values = empirical_values(spec)
        x = values[rng.integers(0, len(values), size=n)]
    else:  # pragma: no cover - the discriminator admits nothing else
        raise AssertionError(spec)
    return np.clip(x, spec.min, spec.max if spec.max is not None else None)


def cut_to_total(prompt: np.ndarray, output: np.ndarray, spec: _Length, role: str = "output") -> np.ndarray:
    """Cut answers so that prompt + answer <= ``max_total`` (when the output spec has one)."""
    spec = concrete(spec, role)
    if spec.max_total is None:
        return output
    return np.minimum(output, np.maximum(spec.max_total - prompt, spec.min))


# ---- exact distribution of the rounded, clipped integer -------------------------------
_TAIL = 1e-12  # mass beyond which a lognormal's support is summarized by one point


def pmf(spec: _Length, role: str) -> tuple[np.ndarray, np.ndarray]:
    """Support (float64, ascending) and probabilities of the rounded, clipped length.

    Exact for bounded specs; an unbounded lognormal's far tail (mass < 1e-12 plus
    whatever lies past 2**20 tokens) is one point at its conditional mean."""
    spec = concrete(spec, role)
    lo = spec.min
    hi = spec.max
    if isinstance(spec, FixedLength):
        return np.array([float(np.clip(spec.value, lo, hi if hi is not None else None))]), np.ones(1)
    if isinstance(spec, UniformLength):
        k = np.clip(np.arange(spec.low, spec.high + 1), lo, hi if hi is not None else None)
        return _collapse(k.astype(np.float64), np.full(k.size, 1.0 / k.size))
    if isinstance(spec, EmpiricalLength):
        v = np.clip(empirical_values(spec), lo, hi if hi is not None else None)
        vals, counts = np.unique(v, return_counts=True)
        return vals.astype(np.float64), counts / counts.sum()
    assert isinstance(spec, LognormalLength)
    mu, sigma = spec.mu_sigma()

    def cdf(x: np.ndarray) -> np.ndarray:
        return ndtr((np.log(np.maximum(x, 1e-300)) - mu) / sigma)

    cap = math.ceil(min(math.exp(mu + sigma * float(ndtri(1 - _TAIL))), 2.0**20))
    top = max(cap, lo) if hi is None else min(hi, max(cap, lo))
    k = np.arange(lo, top + 1, dtype=np.float64)
    upper = cdf(k + 0.5)
    lower = cdf(k - 0.5)
    lower[0] = 0.0  # everything below rounds up to min
    probs = upper - lower
    if hi is not None and top == hi:
        probs[-1] = 1.0 - lower[-1] if k.size > 1 else 1.0
        return k, probs
    # unbounded: one extra point for the tail beyond top + 0.5 at its conditional mean
    tail_mass = 1.0 - float(cdf(np.array(top + 0.5)))
    if tail_mass > 0:
        z = (math.log(top + 0.5) - mu - sigma**2) / sigma
        tail_mean = math.exp(mu + sigma**2 / 2) * float(ndtr(-z)) / tail_mass
        if hi is not None:
            tail_mean = min(tail_mean, float(hi))
        k = np.append(k, tail_mean)
        probs = np.append(probs, tail_mass)
    return k, probs


def _collapse(values: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vals, inverse = np.unique(values, return_inverse=True)
    return vals, np.bincount(inverse, weights=probs, minlength=vals.size)


def mean_min(values: np.ndarray, probs: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """E[min(X, c)] for each cap ``c``, X with the given (ascending) support."""
    cum_p = np.concatenate([[0.0], np.cumsum(probs)])
    cum_vp = np.concatenate([[0.0], np.cumsum(values * probs)])
    i = np.searchsorted(values, caps, side="left")  # values[:i] < c
    return cum_vp[i] + caps * (cum_p[-1] - cum_p[i])


def output_pmf(prompt: _Length, output: _Length) -> tuple[np.ndarray, np.ndarray]:
    """Distribution of the answer length after the ``max_total`` cut (prompt independent):
    with cap C = max(max_total - P, min), P(min(O, C) <= x) = 1 - P(O > x) P(C > x)."""
    ov, op = pmf(output, "output")
    out = concrete(output, "output")
    if out.max_total is None:
        return ov, op
    pv, pp = pmf(prompt, "prompt")
    caps = np.maximum(out.max_total - pv, out.min)
    order = np.argsort(caps, kind="stable")
    caps, cp = caps[order], pp[order]
    support = np.union1d(ov, caps)

    def survival(values: np.ndarray, probs: np.ndarray) -> np.ndarray:  # P(X > x) on support
        cum = np.concatenate([[0.0], np.cumsum(probs)])
        return cum[-1] - cum[np.searchsorted(values, support, side="right")]

    cdf = 1.0 - survival(ov, op) * survival(caps, cp)
    probs = np.diff(np.concatenate([[0.0], cdf]))
    keep = probs > 0
    return support[keep], probs[keep]


def mean_length(spec: _Length, role: str, prompt: _Length | None = None) -> float:
    """Expected rounded, clipped length; for an output, cut by ``max_total`` against ``prompt``."""
    if role == "output" and prompt is not None and concrete(spec, "output").max_total is not None:
        ov, op = pmf(spec, "output")
        pv, pp = pmf(prompt, "prompt")
        out = concrete(spec, "output")
        return float(np.dot(pp, mean_min(ov, op, np.maximum(out.max_total - pv, out.min))))
    values, probs = pmf(spec, role)
    return float(np.dot(values, probs))


def quantiles(values: np.ndarray, probs: np.ndarray, qs: list[float]) -> list[float]:
    """Lower quantiles of a discrete distribution."""
    cum = np.cumsum(probs) / probs.sum()
    idx = np.minimum(np.searchsorted(cum, np.asarray(qs) - 1e-12, side="left"), values.size - 1)
    return [float(values[i]) for i in idx]
