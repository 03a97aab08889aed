"""The paper's synthetic workloads: power-law popularity over a mix of models.

``rate_i = max_rate * (i+1) ** -alpha`` for the i-th model (0-based) in mix order,
named ``llm-0``, ``llm-1``, ...; ShareGPT lengths; Poisson arrivals unless told.
With ``drift_windows`` > 1 the popularity ranking rotates over that many equal windows
(in window w the i-th model takes the rate of rank (i + w*step) mod n), so every model's
traffic drifts while the total stays put.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from muxsim.errors import InputError, InputTypeError, check_positive
from muxsim.limits import MAX_LLMS, MAX_RATE, MAX_WINDOWS
from muxsim.models import resolve_model

from .schema import DEFAULT_CLUSTER, Workload

_TERM = re.compile(r"^\s*(?:(\d+)\s*[xX*]\s*)?(\S+?)\s*$")
_COUNT_ONLY = re.compile(r"^\s*\d+\s*[xX*]?\s*$")


def parse_mix(mix: str | Sequence[str]) -> list[str]:
    """``"12xllama-7b,4xllama-13b"`` (or a list of such terms) -> one model name per LLM."""
    if not isinstance(mix, str) and not (isinstance(mix, Sequence) and not isinstance(mix, bytes)):
        raise InputTypeError(f"mix: expected a string like '12xllama-7b,4xllama-13b', got {type(mix).__name__}")
    if isinstance(mix, str) and len(mix) > 100_000:
        raise InputError("mix: too long")
    terms = mix.split(",") if isinstance(mix, str) else list(mix)
    if not terms or all(not str(t).strip() for t in terms):
        raise InputError("mix: must name at least one model, e.g. 12xllama-7b,4xllama-13b")
    out: list[str] = []
    for k, term in enumerate(terms):
        if not isinstance(term, str):
            raise InputError(f"mix[{k}]: expected a term like '4xllama-13b', got {type(term).__name__}")
        m = _TERM.match(term)
        if not m or not m.group(2) or _COUNT_ONLY.match(term):
            shown = repr(term) if len(term) <= 40 else repr(term[:37] + "...")
            raise InputError(f"mix[{k}]: cannot read {shown} (write COUNTxMODEL, e.g. 4xllama-13b)")
        digits = m.group(1) or "1"
        count = int(digits) if len(digits) <= 9 else MAX_LLMS + 1  # never parse thousands of digits
        if count < 1:
            raise InputError(f"mix[{k}]: count must be >= 1, got {count}")
        if len(out) + count > MAX_LLMS:
            raise InputError(f"mix: more than {MAX_LLMS} LLMs in all (mix[{k}] asks for "
                             f"{count if count <= MAX_LLMS else 'more'})")
        resolve_model(m.group(2), field=f"mix[{k}]")
        out += [m.group(2)] * count
    return out


def power_law_rates(n: int, alpha: float, max_rate: float) -> list[float]:
    return [max_rate * (i + 1) ** -alpha for i in range(n)]


def drift_rank(i: int, window: int, n: int, windows: int) -> int:
    """The popularity rank the i-th of ``n`` models takes in ``window`` (of ``windows``)
    when popularity drifts: ranks rotate by ceil(n / windows) per window."""
    return (i + window * max(1, math.ceil(n / windows))) % n


def synth_workload(
    mix: str | Sequence[str],
    alpha: float,
    max_rate: float,
    gpu: str = DEFAULT_CLUSTER["gpu"],
    nodes: int = DEFAULT_CLUSTER["nodes"],
    gpus_per_node: int = DEFAULT_CLUSTER["gpus_per_node"],
    duration: float = 240,
    seed: int = 0,
    *,
    arrivals: dict[str, Any] | None = None,
    drift_windows: int = 1,
) -> Workload:
    """A power-law workload; see the module docstring."""
    models = parse_mix(mix)
    try:
        alpha = float(alpha)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"alpha: must be a number, got {type(alpha).__name__}") from None
    if not math.isfinite(alpha) or alpha < 0:
        raise InputError(f"alpha: must be a finite number >= 0, got {alpha!r}")
    if not math.isfinite(alpha) or alpha > 100:
        raise InputError(f"alpha: must be at most 100, got {alpha!r}")
    max_rate = check_positive(max_rate, "max_rate")
    if max_rate > MAX_RATE:
        raise InputError(f"max_rate: must be <= {MAX_RATE:g}, got {max_rate!r}")
    if isinstance(drift_windows, bool) or not isinstance(drift_windows, int) or not 1 <= drift_windows <= MAX_WINDOWS:
        raise InputError(f"drift_windows: must be an integer in [1, {MAX_WINDOWS}], got {drift_windows!r}")
    if arrivals is not None and not isinstance(arrivals, dict):
        raise InputTypeError(f"arrivals: expected a dict such as {{'process': 'gamma', 'cv': 2}}, "
                             f"got {type(arrivals).__name__}")
    if len(models) * drift_windows > MAX_WINDOWS:
        raise InputError(f"drift_windows: {len(models)} LLMs x {drift_windows} windows is more than the "
                         f"{MAX_WINDOWS} rate windows a workload may hold")
    rates = power_law_rates(len(models), alpha, max_rate)
    entries: list[dict[str, Any]] = []
    n = len(models)
    for i, model in enumerate(models):
        e: dict[str, Any] = {"name": f"llm-{i}", "model": model}
        if drift_windows == 1:
            e["rate"] = rates[i]
        else:
            e["rate_schedule"] = [
                {"start_s": duration * w / drift_windows, "rate": rates[drift_rank(i, w, n, drift_windows)]}
                for w in range(drift_windows)
            ]
        entries.append(e)
    return Workload.from_dict({
        "cluster": {"gpu": gpu, "nodes": nodes, "gpus_per_node": gpus_per_node},
        "models": entries,
        "arrivals": arrivals or {"process": "poisson"},
        "duration_s": duration,
        "seed": seed,
    })
