"""Each Triton kernel against its PyTorch reference on random inputs.

On a CPU the kernels run through Triton's interpreter (tests/conftest.py sets
``TRITON_INTERPRET=1``) in float32 and float16; on a CUDA machine they run on the GPU.
Errors are relative: ||out - ref|| / ||ref||.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from muxsim_kernels import reference as ref  # noqa: E402
from muxsim_kernels.cache import BLOCK_TOKENS, BlockAllocator, SequenceBlocks, stack_tables  # noqa: E402

CUDA = torch.cuda.is_available()
if not CUDA and os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
    pytest.skip("needs a CUDA device or TRITON_INTERPRET=1", allow_module_level=True)

from muxsim_kernels import triton_attention as tri_attn  # noqa: E402
from muxsim_kernels import triton_layers as tri_layers  # noqa: E402

DEVICE = "cuda" if CUDA else "cpu"
DTYPES = [torch.float32, torch.float16]  # the interpreter computes float16 too
# float32 on a GPU goes through tf32 matrix units inside tl.dot
TOL = {torch.float32: 2e-3 if CUDA else 1e-5, torch.float16: 1e-2}


def rel_err(out: torch.Tensor, want: torch.Tensor) -> float:
    out, want = out.double(), want.double()
    assert not torch.isnan(out).any(), "output holds NaN (unwritten or bad arithmetic)"
    return float((out - want).norm() / want.norm())


def randn(gen: torch.Generator, *shape: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=gen).to(device=DEVICE, dtype=dtype)


def make_cache(gen, lengths, kv_heads, head_dim, dtype, spare=7):
    """A NaN-poisoned pool and shuffled per-sequence block tables (one layer)."""
    per_seq = [kv_heads * -(-n // BLOCK_TOKENS) for n in lengths]
    num_blocks = sum(per_seq) + spare
    alloc = BlockAllocator(num_blocks)
    alloc.allocate(spare)  # the tables do not start at block 0
    seqs = []
    for n in lengths:
        s = SequenceBlocks(layers=1, kv_heads=kv_heads)
        s.reserve(alloc, n)
        seqs.append(s)
    tables = stack_tables(seqs)[:, 0]  # [n, Hk, max_blocks]
    perm = torch.randperm(num_blocks, generator=gen).numpy()
    tables = perm[tables]  # scatter blocks across the pool
    kc = torch.full((num_blocks, BLOCK_TOKENS, head_dim), float("nan"), dtype=dtype, device=DEVICE)
    vc = kc.clone()
    return kc, vc, torch.as_tensor(np.ascontiguousarray(tables), dtype=torch.int32, device=DEVICE)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 64), (2, 5, 48), (1, 1000)])
@pytest.mark.parametrize("with_residual", [False, True])
def test_rms_norm_matches_reference(shape, dtype, with_residual):
    gen = torch.Generator().manual_seed(hash((shape, with_residual)) % 2**31)
    x = randn(gen, *shape, dtype=dtype)
    w = randn(gen, shape[-1], dtype=dtype)
    res = randn(gen, *shape, dtype=dtype) if with_residual else None
    got = tri_layers.rms_norm(x, w, 1e-6, res)
    want = ref.rms_norm(x, w, 1e-6, res)
    if with_residual:
        assert rel_err(got[1], want[1]) < TOL[dtype]
        got, want = got[0], want[0]
    assert got.shape == x.shape and got.dtype == dtype
    assert rel_err(got, want) < TOL[dtype]


def test_rms_norm_reference_golden():
    x = torch.tensor([[3.0, 4.0]])
    y = ref.rms_norm(x, torch.tensor([1.0, 2.0]), eps=0.0)
    rms = math.sqrt((9 + 16) / 2)
    assert torch.allclose(y, torch.tensor([[3 / rms, 8 / rms]]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("heads,kv_heads,head_dim", [(4, 2, 16), (3, 3, 24), (8, 1, 64)])
def test_rotary_matches_reference(heads, kv_heads, head_dim, dtype):
    gen = torch.Generator().manual_seed(heads * 100 + head_dim)
    tokens = 7
    q = randn(gen, tokens, heads, head_dim, dtype=dtype)
    k = randn(gen, tokens, kv_heads, head_dim, dtype=dtype)
    pos = torch.randint(0, 2048, (tokens,), generator=gen).to(DEVICE)
    inv = ref.rotary_inv_freq(head_dim, device=DEVICE)
    gq, gk = tri_layers.apply_rotary(q, k, pos, inv)
    wq, wk = ref.apply_rotary(q, k, pos, inv)
    assert rel_err(gq, wq) < TOL[dtype] and rel_err(gk, wk) < TOL[dtype]


def test_rotary_reference_position_zero_is_identity_and_norm_preserving():
    gen = torch.Generator().manual_seed(1)
    q, k = torch.randn(3, 2, 8, generator=gen), torch.randn(3, 1, 8, generator=gen)
    inv = ref.rotary_inv_freq(8)
    rq, rk = ref.apply_rotary(q, k, torch.tensor([0, 5, 900]), inv)
    assert torch.equal(rq[0], q[0]) and torch.equal(rk[0], k[0])
    assert torch.allclose(rq.norm(dim=-1), q.norm(dim=-1), rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 80), (2, 3, 2 * 1500)])
def test_silu_and_mul_matches_reference(shape, dtype):
    gen = torch.Generator().manual_seed(shape[-1])
    x = randn(gen, *shape, dtype=dtype)
    got = tri_layers.silu_and_mul(x)
    assert got.shape == (*shape[:-1], shape[-1] // 2)
    assert rel_err(got, ref.silu_and_mul(x)) < TOL[dtype]


# ---- attention -------------------------------------------------------------------------

ATTN_CASES = [
    # (lengths, heads, kv_heads, head_dim): ragged, partial blocks, exact blocks, GQA
    ([1, 33, 70], 4, 2, 16),
    ([32, 5], 2, 2, 24),
    ([65, 17], 4, 1, 32),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lengths,heads,kv_heads,head_dim", ATTN_CASES)
def test_prefill_attention_matches_reference_and_fills_cache(lengths, heads, kv_heads, head_dim, dtype):
    gen = torch.Generator().manual_seed(sum(lengths) + heads)
    total = sum(lengths)
    q = randn(gen, total, heads, head_dim, dtype=dtype)
    k = randn(gen, total, kv_heads, head_dim, dtype=dtype)
    v = randn(gen, total, kv_heads, head_dim, dtype=dtype)
    cu = torch.tensor(np.cumsum([0, *lengths]), dtype=torch.int32, device=DEVICE)
    scale = head_dim ** -0.5
    kc, vc, bt = make_cache(gen, lengths, kv_heads, head_dim, dtype)
    kc_ref, vc_ref = kc.clone(), vc.clone()
    got = tri_attn.prefill_attention(q, k, v, cu, scale, kc, vc, bt)
    want = ref.prefill_attention(q, k, v, cu, scale, kc_ref, vc_ref, bt)
    assert rel_err(got, want) < TOL[dtype]
    # the same slots were written with the same values; untouched slots stay NaN
    assert torch.equal(torch.isnan(kc), torch.isnan(kc_ref))
    assert torch.equal(torch.nan_to_num(kc), torch.nan_to_num(kc_ref))
    assert torch.equal(torch.nan_to_num(vc), torch.nan_to_num(vc_ref))
    assert int((~torch.isnan(kc[:, :, 0])).sum()) == total * kv_heads


def test_prefill_reference_is_causal():
    """Changing a later token's K/V never changes an earlier token's output."""
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(10, 2, 8, generator=gen) for _ in range(3))
    cu = torch.tensor([0, 10])
    a = ref.prefill_attention(q, k, v, cu, 0.3)
    k2, v2 = k.clone(), v.clone()
    k2[6:] += 1.0
    v2[6:] -= 2.0
    b = ref.prefill_attention(q, k2, v2, cu, 0.3)
    assert torch.equal(a[:6], b[:6]) and not torch.allclose(a[6:], b[6:])
    assert torch.allclose(a[0], v[0].repeat_interleave(1, 0))  # first token sees only itself


DECODE_CASES = [
    ([1, 31, 32, 33, 100], 4, 4, 16),
    ([7, 64], 8, 2, 32),
    ([45, 2, 96], 16, 2, 24),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lengths,heads,kv_heads,head_dim", DECODE_CASES)
def test_paged_decode_attention_matches_reference(lengths, heads, kv_heads, head_dim, dtype):
    gen = torch.Generator().manual_seed(len(lengths) * 1000 + heads)
    kc, vc, bt = make_cache(gen, lengths, kv_heads, head_dim, dtype)
    # fill the used slots with random K/V through the reference writer
    seq_index = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths)).to(DEVICE)
    positions = torch.cat([torch.arange(n) for n in lengths]).to(DEVICE)
    ref.write_kv_cache(randn(gen, sum(lengths), kv_heads, head_dim, dtype=dtype),
                       randn(gen, sum(lengths), kv_heads, head_dim, dtype=dtype),
                       kc, vc, bt, seq_index, positions)
    q = randn(gen, len(lengths), heads, head_dim, dtype=dtype)
    lens = torch.tensor(lengths, dtype=torch.int32, device=DEVICE)
    scale = head_dim ** -0.5
    got = tri_attn.paged_decode_attention(q, kc, vc, bt, lens, scale)
    want = ref.paged_decode_attention(q, kc, vc, bt, lens, scale)
    assert rel_err(got, want) < TOL[dtype]


def test_decode_reference_context_one_returns_that_value():
    gen = torch.Generator().manual_seed(4)
    kc, vc, bt = make_cache(gen, [1], 2, 8, torch.float32)
    kc.normal_(generator=gen) if not CUDA else kc.normal_()
    vc.normal_(generator=gen) if not CUDA else vc.normal_()
    q = torch.randn(1, 4, 8, generator=gen).to(DEVICE)
    out = ref.paged_decode_attention(q, kc, vc, bt, torch.tensor([1]), 0.5)
    blocks = bt[0, :, 0].long()
    assert torch.allclose(out[0], vc[blocks, 0].repeat_interleave(2, 0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_write_kv_cache_matches_reference(dtype):
    gen = torch.Generator().manual_seed(9)
    lengths, kv_heads, head_dim = [40, 3, 64], 2, 16
    kc, vc, bt = make_cache(gen, lengths, kv_heads, head_dim, dtype)
    kc2, vc2 = kc.clone(), vc.clone()
    k = randn(gen, 3, kv_heads, head_dim, dtype=dtype)
    v = randn(gen, 3, kv_heads, head_dim, dtype=dtype)
    seq_index = torch.tensor([2, 0, 1], dtype=torch.int32, device=DEVICE)
    positions = torch.tensor([63, 39, 0], dtype=torch.int32, device=DEVICE)
    tri_attn.write_kv_cache(k, v, kc, vc, bt, seq_index, positions)
    ref.write_kv_cache(k, v, kc2, vc2, bt, seq_index, positions)
    assert torch.equal(torch.isnan(kc), torch.isnan(kc2))
    assert torch.equal(torch.nan_to_num(kc), torch.nan_to_num(kc2))
    assert torch.equal(torch.nan_to_num(vc), torch.nan_to_num(vc2))
    assert int((~torch.isnan(kc[:, :, 0])).sum()) == 3 * kv_heads


@settings(max_examples=4, deadline=None)
@given(lengths=st.lists(st.integers(1, 70), min_size=1, max_size=3),
       group=st.sampled_from([1, 2, 4]), kv_heads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_decode_matches_reference_on_any_lengths(lengths, group, kv_heads, seed):
    gen = torch.Generator().manual_seed(seed)
    head_dim, heads = 16, group * kv_heads
    kc, vc, bt = make_cache(gen, lengths, kv_heads, head_dim, torch.float32)
    seq_index = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths)).to(DEVICE)
    positions = torch.cat([torch.arange(n) for n in lengths]).to(DEVICE)
    k = randn(gen, sum(lengths), kv_heads, head_dim)
    v = randn(gen, sum(lengths), kv_heads, head_dim)
    tri_attn.write_kv_cache(k, v, kc, vc, bt, seq_index.int(), positions.int())
    q = randn(gen, len(lengths), heads, head_dim)
    lens = torch.tensor(lengths, dtype=torch.int32, device=DEVICE)
    got = tri_attn.paged_decode_attention(q, kc, vc, bt, lens, 0.25)
    # the truth, from the dense K/V directly: no paging at all
    for i in range(len(lengths)):
        rows = seq_index == i
        kk = k[rows].double().repeat_interleave(group, 1)  # [n, H, D]
        vv = v[rows].double().repeat_interleave(group, 1)
        p = torch.softmax(torch.einsum("hd,nhd->hn", q[i].double(), kk) * 0.25, dim=-1)
        want = torch.einsum("hn,nhd->hd", p, vv)
        assert rel_err(got[i], want) < TOL[torch.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lengths,group,partition_blocks", [
    ([1, 100, 257], 4, 2),   # empty slices for the short sequences, a partial last block
    ([64, 65], 1, 1),        # one block per slice
    ([300], 2, 16),          # one slice covers everything: split path, one partition
])
def test_split_kv_decode_matches_reference(lengths, group, partition_blocks, dtype):
    gen = torch.Generator().manual_seed(sum(lengths) + partition_blocks)
    kv_heads, head_dim = 2, 16
    kc, vc, bt = make_cache(gen, lengths, kv_heads, head_dim, dtype)
    seq_index = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths)).to(DEVICE)
    positions = torch.cat([torch.arange(n) for n in lengths]).to(DEVICE)
    ref.write_kv_cache(randn(gen, sum(lengths), kv_heads, head_dim, dtype=dtype),
                       randn(gen, sum(lengths), kv_heads, head_dim, dtype=dtype),
                       kc, vc, bt, seq_index, positions)
    q = randn(gen, len(lengths), group * kv_heads, head_dim, dtype=dtype)
    lens = torch.tensor(lengths, dtype=torch.int32, device=DEVICE)
    got = tri_attn.paged_decode_attention(q, kc, vc, bt, lens, 0.3, max_context=max(lengths),
                                          partition_blocks=partition_blocks)
    assert rel_err(got, ref.paged_decode_attention(q, kc, vc, bt, lens, 0.3)) < TOL[dtype]
