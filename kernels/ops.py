"""Pick the implementation of the decoder's kernels: ``triton`` or ``reference``.

``auto`` means Triton on a CUDA device and the PyTorch references elsewhere; asking for
``triton`` on CPU tensors needs ``TRITON_INTERPRET=1`` set before triton is imported.
Both backends expose the same functions: ``rms_norm``, ``apply_rotary``,
``silu_and_mul``, ``prefill_attention``, ``paged_decode_attention``, ``write_kv_cache``.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

BACKENDS = ("auto", "triton", "reference")


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def resolve_backend(backend: str, device: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend: must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "triton" if str(device).startswith("cuda") else "reference"
    return backend


def get_ops(backend: str, device: str = "cpu") -> SimpleNamespace:
    """The kernel functions of ``backend`` (resolved for ``device``) as one namespace."""
    name = resolve_backend(backend, device)
    if name == "reference":
        from muxsim_kernels import reference as ref

        mods = [ref, ref]
    else:
        from muxsim_kernels import triton_attention, triton_layers

        mods = [triton_attention, triton_layers]
    attn, layers = mods
    return SimpleNamespace(
        name=name,
        rms_norm=layers.rms_norm,
        apply_rotary=layers.apply_rotary,
        silu_and_mul=layers.silu_and_mul,
        prefill_attention=attn.prefill_attention,
        paged_decode_attention=attn.paged_decode_attention,
        write_kv_cache=attn.write_kv_cache,
    )
