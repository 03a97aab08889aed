"""Cost models: how long a prefill or a decode step takes.

Two backends behind one interface (``prefill_ms``, ``decode_ms``, ``forward_ms``,
``forward_terms``, ``phase_ms``; vectorized over numpy arrays):

- :class:`AnalyticCostModel`: a per-operator roofline (the default);
- :class:`TableCostModel`: interpolation of a measured profile, falling back to the
  analytic model outside it.

:func:`calibrate` fits the analytic model's parameters to a profile;
:func:`calibrate_vidur` to a Vidur operator/all-reduce/CPU-overhead tree, and
:mod:`muxsim.costmodel.fidelity` reports how far the model is from one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from muxsim.costmodel.analytic import AnalyticCostModel, StepTerms, bw_share
from muxsim.costmodel.calibrate import CalibrationReport, calibrate, load_params, predict_rows
from muxsim.costmodel.params import ENGINES, AnalyticParams, check_engine, default_params
from muxsim.costmodel.profile import load_profile
from muxsim.costmodel.table import ProfileRangeWarning, TableCostModel
from muxsim.errors import InputTypeError
from muxsim.gpus import GPUSpec, get_gpu


def calibrate_vidur(path: str | Path, gpu: str | GPUSpec = "a100-80gb", *, lomo: bool = False,
                    source: str | None = None) -> AnalyticCostModel:
    """Fit the analytic model to a Vidur ``data/profiling`` tree (see
    :mod:`muxsim.costmodel.vidur_fit`); ``.calibration`` holds the provenance and error.
    ``lomo`` adds the leave-one-model-out error; ``source`` says where the tree came from."""
    import os

    from muxsim.costmodel.vidur_fit import calibrate_vidur as fit  # scipy and pandas: on first use
    from muxsim.limits import MAX_PATH_CHARS

    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise InputTypeError(f"path: expected the folder of a Vidur tree, got {type(path).__name__}")
    gpu = get_gpu(gpu)
    if not isinstance(lomo, bool):
        raise InputTypeError(f"lomo: expected True or False, got {type(lomo).__name__}")
    if source is not None and (not isinstance(source, str) or not 0 < len(source) <= MAX_PATH_CHARS):
        raise InputTypeError(f"source: expected a text of 1 to {MAX_PATH_CHARS} characters, got "
                             f"{type(source).__name__}")
    return fit(path, gpu, lomo=lomo, source=source)


__all__ = [
    "ENGINES",
    "AnalyticCostModel",
    "AnalyticParams",
    "CalibrationReport",
    "CostModel",
    "ProfileRangeWarning",
    "StepTerms",
    "TableCostModel",
    "bw_share",
    "calibrate",
    "calibrate_vidur",
    "check_engine",
    "cost_model",
    "default_params",
    "load_params",
    "load_profile",
    "predict_rows",
]


class CostModel(Protocol):
    gpu: GPUSpec

    def prefill_ms(self, model: Any, batch: Any, seq_len: Any, tp: int = 1, sm: Any = 1.0) -> Any: ...

    def decode_ms(self, model: Any, batch: Any, seq_len: Any, tp: int = 1, sm: Any = 1.0) -> Any: ...

    def phase_ms(self, phase: str, model: Any, batch: Any, seq_len: Any, tp: int = 1, sm: Any = 1.0) -> Any: ...

    def forward_ms(self, model: Any, tokens: Any, seqs: Any, attn_pairs: Any, kv_tokens: Any,
                   tp: int = 1, sm: Any = 1.0) -> Any: ...

    def forward_terms(self, model: Any, tokens: Any, seqs: Any, attn_pairs: Any, kv_tokens: Any,
                      tp: int = 1, sm: Any = 1.0) -> StepTerms: ...


def cost_model(gpu: str | GPUSpec | None = "a100-80gb", *, profile: str | Path | None = None,
               params: AnalyticParams | dict | str | Path | None = None,
               engine: str | None = None) -> AnalyticCostModel | TableCostModel:
    """The cost model for a GPU: analytic with the GPU's default parameters (fitted, or
    scaled from the nearest fitted GPU), fitted ``params`` (a PARAMS.json from ``muxsim
    calibrate``), or a measured ``profile`` table on top of either. ``engine`` names the
    per-step overhead preset (``ENGINES``; default ``vllm-2024-ray``). ``gpu`` None takes
    the GPU the params or the profile name; there is no silent default."""
    check_engine(engine)
    p: AnalyticParams | None = None
    if isinstance(params, AnalyticParams):
        p = params
    elif params is not None:
        p, params_gpu = load_params(params)
        if gpu is None:
            gpu = params_gpu
    if gpu is None and profile is None:
        raise InputTypeError("gpu: expected a GPU name (a100-80gb, h100-80gb, ...), got None")
    if gpu is not None:
        gpu = get_gpu(gpu)
    if profile is not None:
        fallback = AnalyticCostModel(get_gpu(gpu), p, engine=engine) if gpu is not None else None
        table = TableCostModel(profile, gpu, fallback=fallback)
        if fallback is None and (p is not None or engine is not None):
            table.fallback = AnalyticCostModel(table.gpu, p, engine=engine)
        return table
    return AnalyticCostModel(gpu, p, engine=engine)


def _self_check() -> None:  # used by tests: the interface really is shared
    cm = AnalyticCostModel()
    assert np.isfinite(cm.prefill_ms("llama-7b", 1, 1))
