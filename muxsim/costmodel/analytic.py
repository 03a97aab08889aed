"""The analytic cost model: a decoder step as the kernels and collectives it runs.

One step of ``t`` tokens over ``b`` sequences on one GPU of a tensor-parallel group is

    engine overhead                                   (CPU: scheduling, inputs, sampling)
  + embedding + final norm + LM head (b rows) + logits gather
  + layers x [ norm(s), QKV GEMM, rotary, KV-cache write, attention core, O GEMM,
               all-reduce, norm, gate/up GEMM, activation, down GEMM, all-reduce,
               two residual adds ]
  + one all-reduce of the embedding output (vocabulary-parallel embedding)

with each kernel timed by :mod:`muxsim.costmodel.ops` from the GPU's datasheet and the
parameters in :class:`~muxsim.costmodel.params.AnalyticParams`: GEMMs by wave-quantized
compute blended with their weight and activation streams, elementwise kernels by a fixed
time plus their bytes at a per-kind efficiency, the attention core by FLOPs and KV bytes,
all-reduces by a latency and a bus bandwidth measured per node topology. A share ``sm``
of the SMs (MPS) slows compute by ``sm ** -sm_compute_exp`` and bandwidth by
``bw_share(sm)``; fixed kernel times, all-reduces and the engine's CPU time do not
depend on it, so a small decode step barely slows down at 30% of the SMs while a big
prefill slows almost in proportion (MuxServe's observation; ``tests/test_costmodel.py``).

The defaults of A100-80GB and H100-80GB are fitted to public measurements, the others
scaled from the nearest fitted GPU (:func:`~muxsim.costmodel.params.default_params`);
``docs/fidelity.md`` reports the error. The attention core is not in those measurements:
its prefill efficiency is FlashAttention-2's published fraction of the peak (50-73% on
A100, Dao 2023; about 35% on H100, Shah et al. 2024), its decode reads the KV cache at
the HBM efficiency the fitted GEMMs stream weights with, less the 20-26% PagedAttention
costs over a contiguous kernel (Kwon et al., SOSP 2023).
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from muxsim.costmodel import ops
from muxsim.costmodel.ops import FLOATS, NUMPY, AllReduce, Attention, Elementwise, Gemm
from muxsim.costmodel.params import AnalyticParams, check_engine, default_params
from muxsim.errors import InputError, InputTypeError
from muxsim.gpus import GPUSpec, get_gpu
from muxsim.limits import MIN_SM_SHARE
from muxsim.models import ModelSpec, check_tp, resolve_model

ArrayLike = Any
GEMMS = ("qkv", "o", "up", "down")


class StepTerms(NamedTuple):
    """Where a step's time goes (milliseconds, arrays broadcast like the inputs).

    ``compute_ms`` and ``memory_ms`` are summed over kernels before blending, so
    ``memory_ms / (compute_ms + memory_ms)`` says how memory-bound the step is;
    ``total_ms`` is the cost model's answer.
    """

    compute_ms: np.ndarray
    memory_ms: np.ndarray
    comm_ms: np.ndarray
    overhead_ms: np.ndarray
    total_ms: np.ndarray


class _Consts(NamedTuple):
    """Everything a step needs besides its token counts, for one (model, tp, sm)."""

    layers: int
    gemms: tuple[Gemm, ...]  # qkv, o, up, down
    elems: tuple[Elementwise, ...]  # one layer's elementwise kernels, see _ELEMS
    elem_sum: Elementwise  # their sum (what a step uses)
    attn: Attention
    head: Gemm  # LM head: one row per sequence
    embed: Elementwise
    step_elems: Elementwise  # embedding + final norm
    ar: AllReduce | None  # per token of hidden state
    gather: AllReduce | None  # the logits, per sequence
    p: float
    over_ms: float
    seq_ms: float


def bw_share(sm: ArrayLike, tau: float) -> np.ndarray:
    """Fraction of HBM bandwidth a share ``sm`` of the SMs can draw (1 at sm = 1)."""
    sm = np.asarray(sm, dtype=float)
    return -np.expm1(-sm / tau) / -math.expm1(-1.0 / tau)


@lru_cache(maxsize=4096)
def _shapes(model: ModelSpec, tp: int) -> dict[str, Any]:
    """Per-GPU operator shapes: GEMM (N, K), elementwise (kind, bytes per token, row)."""
    check_tp(model, tp)
    d = float(model.dtype_bytes)
    h = float(model.hidden)
    q = model.q_dim / tp
    kv = float(model.kv_heads_per_gpu(tp) * model.head_dim)
    inter = model.intermediate / tp
    up = inter * (2 if model.gated_mlp else 1)
    elems = [("norm", 2 * d * h, h)] * model.norms_per_layer + [
        ("rope", 2 * d * (q + kv), 0.0),
        ("rope", 4 * d * kv, 0.0),  # KV-cache write: read K and V, scatter them into blocks
        ("act", d * (inter + up), 0.0),
        ("add", 3 * d * h, 0.0),
        ("add", 3 * d * h, 0.0),
    ]
    return {"d": d, "h": h, "gemms": ((q + 2 * kv, h), (h, q), (up, h), (h, inter)),
            "head": (model.vocab / tp, h), "elems": tuple(elems), "attn_q": q, "attn_kv": kv}


class AnalyticCostModel:
    """Cost model for one GPU type. See the module docstring for the formulas."""

    kind = "analytic"

    def __init__(self, gpu: str | GPUSpec = "a100-80gb", params: AnalyticParams | None = None, *,
                 engine: str | None = None) -> None:
        self.gpu = get_gpu(gpu)
        if params is not None and not isinstance(params, AnalyticParams):
            raise InputTypeError(f"params: expected AnalyticParams, got {type(params).__name__}")
        check_engine(engine)
        if params is None:
            params, self.params_source = default_params(self.gpu, engine)
        else:
            params = params.with_engine(engine) if engine else params
            self.params_source = "given parameters"
        self.params = params
        self._cache: dict[tuple[ModelSpec, int, float], _Consts] = {}

    def __repr__(self) -> str:
        return f"AnalyticCostModel(gpu={self.gpu.name!r}, params={self.params})"

    def with_params(self, **changes: Any) -> AnalyticCostModel:
        return AnalyticCostModel(self.gpu, replace(self.params, **changes))

    # ---- constants ------------------------------------------------------------------
    def _consts(self, spec: ModelSpec, tp: int, s: np.ndarray) -> _Consts:
        """The step constants at SM share ``s`` (cached, as floats, for a scalar share)."""
        if s.ndim:
            return self._build(spec, tp, s)
        key = (spec, tp, float(s))
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = _as_floats(self._build(spec, tp, s))
        return hit

    def _build(self, spec: ModelSpec, tp: int, s: np.ndarray) -> _Consts:
        p, g, sh = self.params, self.gpu, _shapes(spec, tp)
        d, h = sh["d"], sh["h"]
        rate = g.flops * s**p.sm_compute_exp  # FLOP/s at this share, before efficiency
        share = bw_share(s, p.bw_sat_tau)
        inv_bw = 1e3 / (g.hbm_bw * p.bw_eff * share)  # ms per byte streamed by a GEMM

        def gemm(n: float, k: float) -> Gemm:
            def wave(tm: float, tn: float, eff: float) -> Any:
                return 2.0 * tm * tn * k / (rate / g.sms * eff) * 1e3

            return Gemm(p.gemm_tile_m, float(math.ceil(n / p.gemm_tile_n)), wave(p.gemm_tile_m, p.gemm_tile_n, p.gemm_eff),
                        p.gemm_big_tile_m, float(math.ceil(n / p.gemm_big_tile_n)),
                        wave(p.gemm_big_tile_m, p.gemm_big_tile_n, p.gemm_big_eff), float(g.sms),
                        d * n * k * inv_bw, d * (n + k) * inv_bw, p.gemm_min_us * 1e-3)

        def elem(kind: str, nbytes: float, row: float) -> Elementwise:
            fixed = getattr(p, f"{kind}_min_us") * 1e-3 + (p.norm_row_ns * 1e-6 * row if kind == "norm" else 0.0)
            return Elementwise(fixed, nbytes * 1e3 / (g.hbm_bw * getattr(p, f"{kind}_eff") * share))

        q, kv = sh["attn_q"], sh["attn_kv"]
        attn_bw = 1e3 / (g.hbm_bw * p.attn_bw_eff * share)
        attn = Attention(4.0 * q * 1e3 / (rate * p.attn_eff), d * (2 * q + 2 * kv) * attn_bw, d * 2 * kv * attn_bw,
                         p.attn_min_us * 1e-3)
        ar = gather = None
        if tp > 1:
            lat_ms, ms_per_byte, blend = self._allreduce(tp)
            ar = AllReduce(lat_ms, d * h * ms_per_byte, blend)
            # rank 0 receives (tp - 1) / tp of the logits at the bus bandwidth
            gather = AllReduce(lat_ms, ms_per_byte / (2.0 * (tp - 1) / tp) * (tp - 1) / tp * d * spec.vocab, blend)
        over = p.step_overhead_ms + spec.layers * p.layer_overhead_us * 1e-3 + (p.tp_overhead_ms if tp > 1 else 0.0)
        elems = tuple(elem(*e) for e in sh["elems"])
        embed = elem("embed", 2 * d * h, 0.0)
        return _Consts(
            layers=spec.layers, gemms=tuple(gemm(n, k) for n, k in sh["gemms"]), elems=elems,
            elem_sum=_sum(elems), attn=attn, head=gemm(*sh["head"]), embed=embed,
            step_elems=_sum((embed, elem("norm", 2 * d * h, h))), ar=ar,
            gather=gather, p=p.overlap_p, over_ms=over,
            seq_ms=p.seq_overhead_us * 1e-3 + p.logit_overhead_ns * 1e-6 * spec.vocab)

    def _allreduce(self, tp: int) -> tuple[float, float, float]:
        """(latency ms, ms per byte of payload, blend) of an all-reduce over ``tp`` GPUs of a node."""
        g, p = self.gpu, self.params
        row = p.allreduce_for(g.node_topology, tp)
        if row is not None:
            lat, busbw, blend = row.latency_us, row.busbw_gbps * 1e9, row.blend_p
        else:  # no measurement for this topology: the datasheet link at comm_eff
            link = g.nvlink_bw if tp <= g.nvlink_group() else g.pcie_bw
            lat, busbw, blend = p.comm_latency_us, (link or g.pcie_bw) * p.comm_eff, 1.0
        return lat * 1e-3, 2.0 * (tp - 1) / tp / busbw * 1e3, blend

    # ---- the general step -------------------------------------------------------------
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
        check_tp(spec, tp)
        t, b, pairs, kvt = (_floats(x, name) for x, name in ((tokens, "tokens"), (seqs, "seqs"),
                                                             (attn_pairs, "attn_pairs"), (kv_tokens, "kv_tokens")))
        s = _check_sm(sm)
        _check_shapes(t, b, pairs, kvt, s)
        c = self._consts(spec, tp, s)
        comp, mem, comm, over, total = _step(NUMPY, c, t, b, pairs, kvt)
        z = np.zeros_like(total)
        return StepTerms(comp + z, mem + z, comm + z, over + z, total)

    def forward_terms_scalar(self, model: ModelSpec, tokens: float, seqs: float, attn_pairs: float,
                             kv_tokens: float, tp: int, sm: float) -> tuple[float, float, float, float, float]:
        """:meth:`forward_terms` for one step, as floats: the same code on Python floats
        (bit-identical, without numpy's per-call cost). ``model`` a resolved spec, ``tp``
        and ``sm`` valid (the simulator's hot path)."""
        c = self._consts(model, tp, np.asarray(sm, dtype=float))
        if c.p != 2.0:  # pow need not round alike in numpy and C: take the array path
            return tuple(float(x) for x in self.forward_terms(model, tokens, seqs, attn_pairs, kv_tokens, tp, sm))
        comp, mem, comm, over, total = _step(FLOATS, c, float(tokens), float(seqs), float(attn_pairs),
                                             float(kv_tokens))
        return comp + 0.0, mem + 0.0, comm + 0.0, over + 0.0, total

    def forward_ms(self, model: str | ModelSpec | dict, tokens: ArrayLike, seqs: ArrayLike,
                   attn_pairs: ArrayLike, kv_tokens: ArrayLike, tp: int = 1, sm: ArrayLike = 1.0) -> Any:
        out = self.forward_terms(model, tokens, seqs, attn_pairs, kv_tokens, tp, sm).total_ms
        return _scalar_if_0d(out)

    # ---- parts (what docs/fidelity.md compares with measurements) ----------------------
    def operator_ms(self, model: str | ModelSpec | dict, tokens: ArrayLike, tp: int = 1, sm: float = 1.0, *,
                    attn_pairs: ArrayLike | None = None, kv_tokens: ArrayLike | None = None) -> dict[str, np.ndarray]:
        """Per-GPU time of each kernel of a layer over ``tokens`` tokens (one norm, one add,
        one all-reduce), of the embedding and of the LM head (``tokens`` rows); with
        ``attn_pairs`` and ``kv_tokens`` (as :meth:`forward_terms` takes them) also of the
        attention core."""
        spec = resolve_model(model)
        tp = _check_tp_arg(tp)
        check_tp(spec, tp)
        c = self._consts(spec, tp, _check_sm(sm))
        t = _floats(tokens, "tokens")
        out = {name: ops.gemm(NUMPY, g, c.p, t)[0] for name, g in zip(GEMMS, c.gemms)}
        out |= {name: ops.elementwise(e, t)[0] for name, e in zip(_ELEMS[-5:], c.elems[-5:])}
        out["norm"] = ops.elementwise(c.elems[0], t)[0]
        out["embed"] = ops.elementwise(c.embed, t)[0]
        out["lm_head"] = ops.gemm(NUMPY, c.head, c.p, t)[0]
        if c.ar is not None:
            out["all_reduce"] = ops.all_reduce(NUMPY, c.ar, t)
        if attn_pairs is not None and kv_tokens is not None:
            pairs, kvt = _floats(attn_pairs, "attn_pairs"), _floats(kv_tokens, "kv_tokens")
            out["attention"] = ops.attention(NUMPY, c.attn, c.p, t, pairs, kvt)[0]
        return out

    def allreduce_ms(self, tp: int, nbytes: ArrayLike) -> np.ndarray:
        """Time of one all-reduce of ``nbytes`` bytes over ``tp`` GPUs of one node."""
        tp = _check_tp_arg(tp)
        if tp < 2:
            raise InputError(f"tp: an all-reduce needs at least 2 GPUs, got {tp}")
        return ops.all_reduce(NUMPY, AllReduce(*self._allreduce(tp)), _floats(nbytes, "nbytes"))

    def overhead_ms(self, model: str | ModelSpec | dict, seqs: ArrayLike, tp: int = 1) -> np.ndarray:
        """The engine's CPU time of one step over ``seqs`` sequences."""
        spec = resolve_model(model)
        tp = _check_tp_arg(tp)
        c = self._consts(spec, tp, np.asarray(1.0))
        return c.over_ms + c.seq_ms * _floats(seqs, "seqs")

    # ---- the two phases ---------------------------------------------------------------
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


# names of _Consts.elems after the norm(s), in _shapes order
_ELEMS = ("norm", "rope", "kv_write", "act", "add", "add")


def _step(m: ops.Backend, c: _Consts, t: Any, b: Any, pairs: Any, kvt: Any) -> tuple[Any, Any, Any, Any, Any]:
    """(compute, memory, comm, overhead, total) of one step; see the module docstring."""
    layer, mem = ops.elementwise(c.elem_sum, t)
    comp = 0.0
    rows = ops.row_tiles(m, c.gemms[0], t)
    for g in c.gemms:
        x, cc, mm = ops.gemm(m, g, c.p, t, rows)
        layer, comp, mem = layer + x, comp + cc, mem + mm
    x, cc, mm = ops.attention(m, c.attn, c.p, t, pairs, kvt)
    layer, comp, mem = layer + x, comp + cc, mem + mm
    body, compute, memory = c.layers * layer, c.layers * comp, c.layers * mem
    x, mm = ops.elementwise(c.step_elems, t)
    body, memory = body + x, memory + mm
    x, cc, mm = ops.gemm(m, c.head, c.p, b)
    body, compute, memory = body + x, compute + cc, memory + mm
    comm = 0.0
    if c.ar is not None:
        comm = (2 * c.layers + 1) * ops.all_reduce(m, c.ar, t) + ops.all_reduce(m, c.gather, b)
    overhead = c.over_ms + c.seq_ms * b
    return compute, memory, comm, overhead, body + comm + overhead


def _sum(elems: tuple[Elementwise, ...]) -> Elementwise:
    return Elementwise(sum(e.fixed_ms for e in elems), sum(e.token_ms for e in elems))


def _as_floats(c: _Consts) -> _Consts:
    def conv(x: Any) -> Any:
        if isinstance(x, tuple):  # a NamedTuple of constants, or a tuple of them
            vals = [conv(v) for v in x]
            return type(x)(*vals) if hasattr(x, "_fields") else tuple(vals)
        return x if isinstance(x, int) or x is None else float(x)

    return conv(c)


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
