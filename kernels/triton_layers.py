"""Triton kernels for the rest of a decoder layer: fused (add +) RMSNorm, rotary
embedding, SiLU-and-multiply. Signatures and semantics match ``reference.py``."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rms_norm_kernel(x_ptr, res_ptr, w_ptr, y_ptr, res_out_ptr, n_cols,
                     stride_x, stride_r, stride_y, stride_ro, eps,
                     HAS_RESIDUAL: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_RESIDUAL:
        x += tl.load(res_ptr + row * stride_r + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(res_out_ptr + row * stride_ro + cols, x.to(res_out_ptr.dtype.element_ty), mask=mask)
    var = tl.sum(x * x, 0) / n_cols
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    y = x * tl.rsqrt(var + eps) * w
    tl.store(y_ptr + row * stride_y + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6,
             residual: torch.Tensor | None = None):
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    assert x2.stride(-1) == 1 and weight.is_contiguous()
    rows, cols = x2.shape
    y = torch.empty_like(x2)
    if residual is not None:
        r2 = residual.reshape(-1, shape[-1])
        r_out = torch.empty_like(x2)
    else:
        r2, r_out = x2, y  # unused placeholders
    block = triton.next_power_of_2(cols)
    if rows:
        _rms_norm_kernel[(rows,)](
            x2, r2, weight, y, r_out, cols, x2.stride(0), r2.stride(0), y.stride(0),
            r_out.stride(0), float(eps), HAS_RESIDUAL=residual is not None, BLOCK=block,
            num_warps=min(max(block // 256, 1), 8),
        )
    if residual is None:
        return y.reshape(shape)
    return y.reshape(shape), r_out.reshape(shape)


@triton.jit
def _rotary_kernel(q_ptr, k_ptr, qo_ptr, ko_ptr, pos_ptr, freq_ptr,
                   stride_qt, stride_qh, stride_kt, stride_kh,
                   stride_qot, stride_qoh, stride_kot, stride_koh,
                   Q_HEADS: tl.constexpr, HALF: tl.constexpr, HALF_PAD: tl.constexpr):
    tok = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    i = tl.arange(0, HALF_PAD)
    mask = i < HALF
    ang = tl.load(pos_ptr + tok).to(tl.float32) * tl.load(freq_ptr + i, mask=mask, other=0.0)
    cos = tl.cos(ang)
    sin = tl.sin(ang)
    if head < Q_HEADS:
        src = q_ptr + tok * stride_qt + head * stride_qh
        dst = qo_ptr + tok * stride_qot + head * stride_qoh
    else:
        src = k_ptr + tok * stride_kt + (head - Q_HEADS) * stride_kh
        dst = ko_ptr + tok * stride_kot + (head - Q_HEADS) * stride_koh
    x1 = tl.load(src + i, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(src + HALF + i, mask=mask, other=0.0).to(tl.float32)
    tl.store(dst + i, (x1 * cos - x2 * sin).to(dst.dtype.element_ty), mask=mask)
    tl.store(dst + HALF + i, (x2 * cos + x1 * sin).to(dst.dtype.element_ty), mask=mask)


def apply_rotary(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor,
                 inv_freq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    tokens, heads, head_dim = q.shape
    assert q.stride(2) == 1 and k.stride(2) == 1 and inv_freq.is_contiguous()
    qo, ko = torch.empty_like(q), torch.empty_like(k)
    if tokens:
        half = head_dim // 2
        _rotary_kernel[(tokens, heads + k.shape[1])](
            q, k, qo, ko, positions, inv_freq,
            q.stride(0), q.stride(1), k.stride(0), k.stride(1),
            qo.stride(0), qo.stride(1), ko.stride(0), ko.stride(1),
            Q_HEADS=heads, HALF=half, HALF_PAD=triton.next_power_of_2(half),
        )
    return qo, ko


@triton.jit
def _silu_mul_kernel(x_ptr, out_ptr, n_cols, stride_x, stride_o, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < n_cols
    gate = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_ptr + row * stride_x + n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    out = gate * tl.sigmoid(gate) * up
    tl.store(out_ptr + row * stride_o + cols, out.to(out_ptr.dtype.element_ty), mask=mask)


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    assert x2.stride(-1) == 1
    rows, cols = x2.shape[0], x2.shape[1] // 2
    out = torch.empty(rows, cols, dtype=x.dtype, device=x.device)
    block = min(1024, triton.next_power_of_2(cols))
    if rows:
        _silu_mul_kernel[(rows, triton.cdiv(cols, block))](
            x2, out, cols, x2.stride(0), out.stride(0), BLOCK=block)
    return out.reshape(*shape[:-1], cols)
