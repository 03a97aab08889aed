"""The analytic model's operators: one definition, for numpy arrays and Python floats.

Each function takes a math backend ``m`` (:data:`NUMPY` or :data:`FLOATS`) and the
operator's constants (per model, tensor-parallel degree and SM share, built once by
:mod:`muxsim.costmodel.analytic`), and returns milliseconds. With :data:`NUMPY` the
token counts are arrays; with :data:`FLOATS` they are floats and the result is the same
double bit for bit: only +, -, *, /, sqrt, ceil and min are used, in the same order,
and numpy computes those exactly as Python does. (A blend exponent other than 2 needs
``pow``, whose last bit numpy does not promise to share with C; the float path then
defers to the array path.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class Backend(NamedTuple):
    sqrt: Callable[[Any], Any]
    ceil: Callable[[Any], Any]
    minimum: Callable[[Any, Any], Any]


NUMPY = Backend(np.sqrt, np.ceil, np.minimum)
FLOATS = Backend(math.sqrt, lambda x: float(math.ceil(x)), min)


class Gemm(NamedTuple):
    """One GEMM of ``t`` rows (tokens) against an ``K x N`` weight shard.

    ``compute`` is the faster of a small-tile and a big-tile kernel, each ``ceil(tiles /
    SMs)`` waves of one tile's time; ``memory`` streams the weights once and the
    activations per token."""

    tile_m: float
    col_tiles: float  # ceil(N / tile_n)
    wave_ms: float
    big_tile_m: float
    big_col_tiles: float
    big_wave_ms: float
    sms: float
    weight_ms: float
    token_ms: float  # activation bytes per token at the streaming rate
    min_ms: float


class Elementwise(NamedTuple):
    """A streaming kernel: ``fixed_ms + token_ms * t``."""

    fixed_ms: float
    token_ms: float


class Attention(NamedTuple):
    pair_ms: float  # per query-key pair (compute)
    token_ms: float  # per new token (Q, K, V in, O out)
    kv_ms: float  # per K/V token read or written
    min_ms: float


class AllReduce(NamedTuple):
    """A collective: latency and transfer added (``p = 1``) or in quadrature (``p = 2``:
    the transfer hides the latency as the payload grows)."""

    latency_ms: float
    token_ms: float  # per token of hidden state (ring factor and bus bandwidth folded in)
    p: float = 1.0


def blend(m: Backend, p: float, comp: Any, mem: Any) -> Any:
    """How compute and memory time of one kernel add up: (c^p + m^p)^(1/p)."""
    if p == 2.0:
        return m.sqrt(comp * comp + mem * mem)
    return (comp**p + mem**p) ** (1.0 / p)


def row_tiles(m: Backend, g: Gemm, t: Any) -> tuple[Any, Any]:
    """Row tiles of ``t`` tokens for the small and the big tile (shared by GEMMs alike)."""
    return m.ceil(t / g.tile_m), m.ceil(t / g.big_tile_m)


def gemm(m: Backend, g: Gemm, p: float, t: Any, rows: tuple[Any, Any] | None = None) -> tuple[Any, Any, Any]:
    """(time, compute, memory) of GEMM ``g`` over ``t`` tokens (``rows``: its
    :func:`row_tiles`, when already known)."""
    rs, rb = rows if rows is not None else row_tiles(m, g, t)
    small = m.ceil(rs * g.col_tiles / g.sms) * g.wave_ms
    big = m.ceil(rb * g.big_col_tiles / g.sms) * g.big_wave_ms
    comp = m.minimum(small, big)
    mem = g.weight_ms + g.token_ms * t
    return g.min_ms + blend(m, p, comp, mem), comp, mem


def elementwise(e: Elementwise, t: Any) -> tuple[Any, Any]:
    """(time, streaming part) of an elementwise kernel over ``t`` tokens."""
    mem = e.token_ms * t
    return e.fixed_ms + mem, mem


def attention(m: Backend, a: Attention, p: float, t: Any, pairs: Any, kvt: Any) -> tuple[Any, Any, Any]:
    comp = a.pair_ms * pairs
    mem = a.token_ms * t + a.kv_ms * kvt
    return a.min_ms + blend(m, p, comp, mem), comp, mem


def all_reduce(m: Backend, r: AllReduce, t: Any) -> Any:
    x = r.token_ms * t
    if r.p == 2.0:
        return m.sqrt(r.latency_ms * r.latency_ms + x * x)
    return r.latency_ms + x
