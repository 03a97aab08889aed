"""The analytic cost model: a per-operator roofline of a decoder step.

Every decoder layer is broken into its operators (QKV projection, attention over the KV
context, output projection, gate/up projection, SiLU-and-multiply, down projection,
norms, residual adds and rotary embedding), plus the LM head. For each operator

    compute_ms = flops / (peak_flops * eff * sm ** sm_compute_exp)
    memory_ms  = bytes / (hbm_bw * bw_eff * bw_share(sm))
    op_ms      = (compute_ms ** p + memory_ms ** p) ** (1 / p)

where ``bw_share(s) = (1 - exp(-s / tau)) / (1 - exp(-1 / tau))`` is the fraction of
the HBM bandwidth a share ``s`` of the SMs can draw (it saturates well before all SMs
are busy) and ``p`` blends "compute and memory overlap perfectly" (p -> inf, the plain
roofline max) with "they do not overlap at all" (p = 1). Tensor parallelism divides
the per-GPU work and adds two ring all-reduces of the hidden states per layer; a fixed
per-step and per-layer overhead covers kernel launches, scheduling and sampling.

Default parameters and where each comes from (see ``AnalyticParams``):

- ``gemm_eff = 0.75``: large FP16 GEMMs under cuBLAS reach 70-80% of the A100's
  312 TF/s dense peak (NVIDIA, "Matrix Multiplication Background" performance guide).
- ``attn_eff = 0.55``: FlashAttention-2's forward pass reaches 50-73% of the A100 peak
  (Dao, 2023); we take the middle of that range for mixed head counts and lengths.
- ``bw_eff = 0.85``: streaming kernels (memcpy, STREAM triad, paged-attention decode)
  reach about 85% of the HBM datasheet bandwidth on A100/H100.
- ``sm_compute_exp = 0.81``: MuxServe's profile (LLaMA-7B, A100) shows a batch-128
  prefill 2.65x slower at 30% of the SMs; 0.3 ** -0.81 = 2.65. MPS thread percentages
  are not a hard SM count, and fewer busy SMs clock higher and contend less for L2.
- ``bw_sat_tau = 0.30``: bw_share(0.3) = 0.66, which with the fixed overheads gives
  MuxServe's 1.4-1.5x slower decode at 30% of the SMs for batches of 1-32 (1.8x at 128).
- ``overlap_p = 2``: between no overlap and perfect overlap; reproduces the 1.9-2x
  prefill slowdown at batch 1 where compute and weight reads are of equal size.
- ``layer_overhead_us = 30``: about ten kernels a layer at ~3 us of launch and tail each
  (eager PyTorch execution).
- ``step_overhead_ms = 1.0``: per-iteration scheduling, input preparation and sampling
  in a vLLM-class engine.
- ``comm_eff = 0.75``, ``comm_latency_us = 10``: NCCL all-reduce bus bandwidth on
  NVLink reaches ~75% of the per-direction link rate; small all-reduces cost ~10 us.

``tests/test_costmodel.py`` pins the SM shape (decode 1.4-1.5x, prefill 1.9-2.7x at 30%).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from muxsim.errors import InputError, InputTypeError, check_fields
from muxsim.gpus import GPUSpec, get_gpu
from muxsim.limits import MIN_SM_SHARE
from muxsim.models import ModelSpec, check_tp, resolve_model

ArrayLike = Any


@dataclass(frozen=True)
class AnalyticParams:
    gemm_eff: float = 0.75
    attn_eff: float = 0.55
    bw_eff: float = 0.85
    sm_compute_exp: float = 0.81
    bw_sat_tau: float = 0.30
    overlap_p: float = 2.0
    layer_overhead_us: float = 30.0
    step_overhead_ms: float = 1.0
    comm_eff: float = 0.75
    comm_latency_us: float = 10.0

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not 0 < v <= 1e9:
                raise InputError(f"params.{k}: must be a positive finite number, got {v!r}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnalyticParams:
        check_fields(d, cls, "params", expected="an object of analytic-model parameters", noun="parameter(s)",
                     list_known=True)
        out = {}
        for k, v in d.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise InputError(f"params.{k}: must be a positive finite number, got {v!r}")
            out[k] = float(v)
        return replace(cls(), **out)


class StepTerms(NamedTuple):
    """Where a step's time goes (milliseconds, arrays broadcast like the inputs).

    ``compute_ms`` and ``memory_ms`` are summed over operators before blending, so
    ``memory_ms / (compute_ms + memory_ms)`` says how memory-bound the step is;
    ``total_ms`` is the cost model's answer.
    """

    compute_ms: np.ndarray
    memory_ms: np.ndarray
    comm_ms: np.ndarray
    overhead_ms: np.ndarray
    total_ms: np.ndarray


@dataclass(frozen=True)
class _Coeffs:
    """Per (model, tp) operator coefficients, per GPU, for one layer (and the LM head)."""

    layers: int
    # GEMMs: (flops per token, weight bytes, activation bytes per token)
    gemm_flops_tok: tuple[float, ...]
    gemm_wbytes: tuple[float, ...]
    gemm_abytes_tok: tuple[float, ...]
    # attention: flops per query-key pair, bytes per new token, bytes per KV token
    attn_flops_pair: float
    attn_bytes_tok: float
    attn_bytes_kv: float
    # elementwise: bytes per token (activation, norms, residuals, rotary)
    elem_bytes_tok: float
    # LM head: flops per sequence, weight bytes, bytes per sequence
    head_flops_seq: float
    head_wbytes: float
    head_bytes_seq: float
    # all-reduce payload per token per layer (bytes), logits gather per sequence (bytes)
    allreduce_bytes_tok: float
    gather_bytes_seq: float
    tp: int


@lru_cache(maxsize=4096)
def _coeffs(model: ModelSpec, tp: int) -> _Coeffs:
    check_tp(model, tp)
    d = float(model.dtype_bytes)
    h = float(model.hidden)
    q = model.q_dim / tp
    kv = float(model.kv_heads_per_gpu(tp) * model.head_dim)
    inter = model.intermediate / tp
    vocab = model.vocab / tp
    qkv_out = q + 2 * kv
    gemm_flops = (2 * h * qkv_out, 2 * q * h, 2 * h * 2 * inter, 2 * inter * h)
    gemm_w = (d * h * qkv_out, d * q * h, d * h * 2 * inter, d * inter * h)
    gemm_a = (d * (h + qkv_out), d * (q + h), d * (h + 2 * inter), d * (inter + h))
    return _Coeffs(
        layers=model.layers,
        gemm_flops_tok=gemm_flops,
        gemm_wbytes=gemm_w,
        gemm_abytes_tok=gemm_a,
        attn_flops_pair=4.0 * q,
        attn_bytes_tok=d * (2 * q + 2 * kv),
        attn_bytes_kv=d * 2 * kv,
        elem_bytes_tok=d * (3 * inter + 8 * h + 2 * (q + kv)),
        head_flops_seq=2 * h * vocab,
        head_wbytes=d * h * vocab,
        head_bytes_seq=d * h + 4 * vocab,
        allreduce_bytes_tok=d * h,
        gather_bytes_seq=4.0 * vocab,
        tp=tp,
    )


def bw_share(sm: ArrayLike, tau: float) -> np.ndarray:
    """Fraction of HBM bandwidth a share ``sm`` of the SMs can draw (1 at sm = 1)."""
    sm = np.asarray(sm, dtype=float)
    return -np.expm1(-sm / tau) / -math.expm1(-1.0 / tau)


class AnalyticCostModel:
    """Roofline cost model for one GPU type. See the module docstring for the formulas."""

    kind = "analytic"

    def __init__(self, gpu: str | GPUSpec = "a100-80gb", params: AnalyticParams | None = None) -> None:
        self.gpu = get_gpu(gpu)
        if params is not None and not isinstance(params, AnalyticParams):
            raise InputTypeError(f"params: expected AnalyticParams, got {type(params).__name__}")
        self.params = params or AnalyticParams()

    def __repr__(self) -> str:
        return f"AnalyticCostModel(gpu={self.gpu.name!r}, params={self.params})"

    def with_params(self, **changes: float) -> AnalyticCostModel:
        return AnalyticCostModel(self.gpu, replace(self.params, **changes))

    # ---- the general step ---------------------------------------------------------
    def forward_terms(self, model: str | ModelSpec | dict, tokens: ArrayLike, seqs: ArrayLike,
                      attn_pairs: ArrayLike, kv_tokens: ArrayLike, tp: int = 1,
                      sm: ArrayLike = 1.0) -> StepTerms:
        """Time of one forward step, split into its parts.

        ``tokens`` new tokens go through the GEMMs, ``seqs`` sequences get logits,
        attention covers ``attn_pairs`` query-key pairs and reads/writes ``kv_tokens``
        tokens of K and V. A ragged prefill of prompts p_i is tokens = sum p_i,
        seqs = n, attn_pairs = sum p_i (p_i + 1) / 2, kv_tokens = sum p_i; a decode step
        over contexts c_i is tokens = seqs = n, attn_pairs = kv_tokens = sum c_i.
        """
        spec = resolve_model(model)
        tp = _check_tp_arg(tp)
        c = _coeffs(spec, tp)
        p = self.params
        g = self.gpu
        t = _floats(tokens, "tokens")
        b = _floats(seqs, "seqs")
        pairs = _floats(attn_pairs, "attn_pairs")
        kvt = _floats(kv_tokens, "kv_tokens")
        s = _check_sm(sm)
        _check_shapes(t, b, pairs, kvt, s)
        flops_rate = g.flops * s ** p.sm_compute_exp  # FLOP/s at this SM share, before eff
        bw = g.hbm_bw * p.bw_eff * bw_share(s, p.bw_sat_tau)
        inv_gemm = 1e3 / (flops_rate * p.gemm_eff)
        inv_attn = 1e3 / (flops_rate * p.attn_eff)
        inv_bw = 1e3 / bw
        pn = p.overlap_p

        def blend(cm: np.ndarray, mm: np.ndarray) -> np.ndarray:
            if pn == 2.0:
                return np.sqrt(cm * cm + mm * mm)
            return (cm**pn + mm**pn) ** (1.0 / pn)

        comp_sum = 0.0
        mem_sum = 0.0
        layer = 0.0
        for fl, wb, ab in zip(c.gemm_flops_tok, c.gemm_wbytes, c.gemm_abytes_tok):
            cm = (fl * inv_gemm) * t
            mm = (wb + ab * t) * inv_bw
            layer = layer + blend(cm, mm)
            comp_sum = comp_sum + cm
            mem_sum = mem_sum + mm
        cm = (c.attn_flops_pair * inv_attn) * pairs
        mm = (c.attn_bytes_tok * t + c.attn_bytes_kv * kvt) * inv_bw
        layer = layer + blend(cm, mm)
        comp_sum = comp_sum + cm
        mem_sum = mem_sum + mm
        mm = (c.elem_bytes_tok * inv_bw) * t
        layer = layer + mm
        mem_sum = mem_sum + mm
        cm = (c.head_flops_seq * inv_gemm) * b
        mm = (c.head_wbytes + c.head_bytes_seq * b) * inv_bw
        body = c.layers * layer + blend(cm, mm)
        compute = c.layers * comp_sum + cm
        memory = c.layers * mem_sum + mm
        if tp > 1:
            link = g.interconnect_bw * p.comm_eff
            ring = 2.0 * (tp - 1) / tp
            comm = (c.layers * 2) * (ring * c.allreduce_bytes_tok * t * 1e3 / link + p.comm_latency_us * 1e-3)
            comm = comm + ((tp - 1) / tp) * c.gather_bytes_seq * b * 1e3 / link + p.comm_latency_us * 1e-3
        else:
            comm = np.zeros_like(body)
        overhead = p.step_overhead_ms + c.layers * p.layer_overhead_us * 1e-3
        total = body + comm + overhead
        z = np.zeros_like(total)
        return StepTerms(compute + z, memory + z, comm + z, overhead + z, total)

    def forward_terms_scalar(self, model: ModelSpec, tokens: float, seqs: float, attn_pairs: float,
                             kv_tokens: float, tp: int, sm: float) -> tuple[float, float, float, float, float]:
        """:meth:`forward_terms` for one step, as floats: the same operations in the same
        order on Python floats (bit-identical, without numpy's per-call cost). ``model``
        a resolved spec, ``tp`` and ``sm`` valid (the simulator's hot path)."""
        c, inv_gemm, inv_attn, inv_bw, pn, comm_k, overhead = self._scalar_consts(model, tp, sm)
        if pn != 2.0:  # numpy's power need not round like C's pow: take the array path
            return tuple(float(x) for x in self.forward_terms(model, tokens, seqs, attn_pairs, kv_tokens, tp, sm))
        t = float(tokens)
        b = float(seqs)
        pairs = float(attn_pairs)
        kvt = float(kv_tokens)
        comp_sum = 0.0
        mem_sum = 0.0
        layer = 0.0
        sqrt = math.sqrt
        for fl, wb, ab in zip(c.gemm_flops_tok, c.gemm_wbytes, c.gemm_abytes_tok):
            cm = (fl * inv_gemm) * t
            mm = (wb + ab * t) * inv_bw
            layer = layer + sqrt(cm * cm + mm * mm)
            comp_sum = comp_sum + cm
            mem_sum = mem_sum + mm
        cm = (c.attn_flops_pair * inv_attn) * pairs
        mm = (c.attn_bytes_tok * t + c.attn_bytes_kv * kvt) * inv_bw
        layer = layer + sqrt(cm * cm + mm * mm)
        comp_sum = comp_sum + cm
        mem_sum = mem_sum + mm
        mm = (c.elem_bytes_tok * inv_bw) * t
        layer = layer + mm
        mem_sum = mem_sum + mm
        cm = (c.head_flops_seq * inv_gemm) * b
        mm = (c.head_wbytes + c.head_bytes_seq * b) * inv_bw
        body = c.layers * layer + sqrt(cm * cm + mm * mm)
        compute = c.layers * comp_sum + cm
        memory = c.layers * mem_sum + mm
        if tp > 1:
            ring, link, lat = comm_k
            comm = (c.layers * 2) * (ring * c.allreduce_bytes_tok * t * 1e3 / link + lat)
            comm = comm + ((tp - 1) / tp) * c.gather_bytes_seq * b * 1e3 / link + lat
        else:
            comm = 0.0
        total = body + comm + overhead
        return compute + 0.0, memory + 0.0, comm + 0.0, overhead + 0.0, total

    def _scalar_consts(self, model: ModelSpec, tp: int, sm: float) -> tuple:
        key = (model, tp, sm)
        cache = self.__dict__.setdefault("_scalar_cache", {})
        hit = cache.get(key)
        if hit is None:  # exactly forward_terms's per-call constants, through numpy
            c = _coeffs(model, tp)
            p = self.params
            g = self.gpu
            s = _check_sm(sm)
            flops_rate = g.flops * s ** p.sm_compute_exp
            bw = g.hbm_bw * p.bw_eff * bw_share(s, p.bw_sat_tau)
            inv_gemm = 1e3 / (flops_rate * p.gemm_eff)
            inv_attn = 1e3 / (flops_rate * p.attn_eff)
            inv_bw = 1e3 / bw
            comm_k = None
            if tp > 1:
                comm_k = (2.0 * (tp - 1) / tp, g.interconnect_bw * p.comm_eff, p.comm_latency_us * 1e-3)
            overhead = p.step_overhead_ms + c.layers * p.layer_overhead_us * 1e-3
            hit = (c, float(inv_gemm), float(inv_attn), float(inv_bw), p.overlap_p, comm_k, float(overhead))
            cache[key] = hit
        return hit

    def forward_ms(self, model: str | ModelSpec | dict, tokens: ArrayLike, seqs: ArrayLike,
                   attn_pairs: ArrayLike, kv_tokens: ArrayLike, tp: int = 1, sm: ArrayLike = 1.0) -> Any:
        out = self.forward_terms(model, tokens, seqs, attn_pairs, kv_tokens, tp, sm).total_ms
        return _scalar_if_0d(out)

    # ---- the two phases -----------------------------------------------------------
    def prefill_ms(self, model: str | ModelSpec | dict, batch: ArrayLike, seq_len: ArrayLike,
                   tp: int = 1, sm: ArrayLike = 1.0) -> Any:
        """Whole forward pass over ``batch`` prompts of ``seq_len`` tokens each."""
        b, s = _check_batch_seq(batch, seq_len)
        out = self.forward_terms(model, b * s, b, b * s * (s + 1) / 2, b * s, tp, sm).total_ms
        return _scalar_if_0d(out)

    def decode_ms(self, model: str | ModelSpec | dict, batch: ArrayLike, seq_len: ArrayLike,
                  tp: int = 1, sm: ArrayLike = 1.0) -> Any:
        """One decode step for ``batch`` sequences each holding ``seq_len`` tokens of context."""
        b, s = _check_batch_seq(batch, seq_len)
        out = self.forward_terms(model, b, b, b * s, b * s, tp, sm).total_ms
        return _scalar_if_0d(out)

    def phase_ms(self, phase: str, model: str | ModelSpec | dict, batch: ArrayLike, seq_len: ArrayLike,
                 tp: int = 1, sm: ArrayLike = 1.0) -> Any:
        if phase == "prefill":
            return self.prefill_ms(model, batch, seq_len, tp, sm)
        if phase == "decode":
            return self.decode_ms(model, batch, seq_len, tp, sm)
        raise InputError(f"phase: must be prefill or decode, got {phase!r}")


def _scalar_if_0d(x: np.ndarray) -> Any:
    return float(x) if np.ndim(x) == 0 else x


def _check_tp_arg(tp: Any) -> int:
    if isinstance(tp, bool) or not isinstance(tp, int | np.integer | float) or tp != int(tp) or tp < 1:
        raise InputError(f"tp: must be a positive integer, got {tp!r}")
    return int(tp)


def _floats(x: ArrayLike, name: str) -> np.ndarray:
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name}: expected numbers (a number or an array), got {type(x).__name__}") from None


def _check_shapes(*arrays: np.ndarray) -> None:
    try:
        np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise InputError(f"arguments: array shapes {shapes} do not broadcast together") from None


def _check_sm(sm: ArrayLike) -> np.ndarray:
    s = _floats(sm, "sm")
    ok = (s >= MIN_SM_SHARE) & (s <= 1)
    if not np.all(ok):
        bad = s[~ok].flat[0] if s.ndim else s
        raise InputError(f"sm: must be in [{MIN_SM_SHARE:g}, 1], got {float(bad)!r}")
    return s


def _check_batch_seq(batch: ArrayLike, seq_len: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    b = _floats(batch, "batch")
    s = _floats(seq_len, "seq_len")
    _check_shapes(b, s)
    if not np.all(b >= 1):
        raise InputError(f"batch: must be >= 1, got {float(np.min(b))!r}")
    if not np.all(s >= 1):
        raise InputError(f"seq_len: must be >= 1, got {float(np.min(s))!r}")
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(s))):
        raise InputError("batch/seq_len: must be finite")
    return b, s
