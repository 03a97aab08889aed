"""The memory model: weights, reserves and the head-wise KV pool, by hand."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muxsim.gpus import GiB
from muxsim.memory import BLOCK_TOKENS, MemoryModel, MemoryParams
from muxsim.models import CATALOG


def test_pool_by_hand_with_muxserve_constants():
    mm = MemoryModel("a100-80gb", MemoryParams.muxserve())
    w = CATALOG["llama-7b"].weight_bytes()
    expected = 80 * GiB * 0.98 - w - 6 * GiB
    assert mm.kv_pool_bytes_per_gpu([("llama-7b", 1)]) == pytest.approx(expected)
    # a head-wise block: K and V of one 128-dim head for 32 fp16 tokens = 16 KiB
    assert mm.block_bytes(["llama-7b"]) == 2 * 32 * 128 * 2 == 16384
    blocks = mm.kv_blocks_per_gpu([("llama-7b", 1)])
    assert blocks == int(expected // 16384)
    # a 32-token block of llama-7b costs layers x kv heads = 1024 head-wise blocks
    assert mm.blocks_per_token_block("llama-7b", 1) == 32 * 32
    assert mm.kv_capacity_tokens("llama-7b", 1, blocks) == (blocks // 1024) * BLOCK_TOKENS


def test_colocated_models_share_one_pool():
    mm = MemoryModel("a100-80gb")
    alone = mm.kv_pool_bytes_per_gpu([("llama-65b", 4)])
    both = mm.kv_pool_bytes_per_gpu([("llama-65b", 4), ("llama-30b", 4)])
    assert both == pytest.approx(alone - mm.reserved_bytes_per_gpu("llama-30b", 4))
    # GQA: a 70B Llama-2 token costs 8x fewer blocks than a LLaMA-65B token
    assert mm.blocks_per_token_block("llama-65b", 4) == 8 * mm.blocks_per_token_block("llama-2-70b", 4)


def test_fit_and_min_tp():
    mm = MemoryModel("a100-80gb")
    assert mm.min_tp("llama-7b") == 1
    assert mm.min_tp("llama-65b") == 2  # 131 GB of weights
    assert MemoryModel("a10g").min_tp("llama-65b") == 8  # 8 x 24 GB
    assert MemoryModel("a10g").min_tp("llama-65b", max_tp=4) is None
    assert not mm.fits("llama-65b", 1)


@settings(max_examples=40, deadline=None)
@given(names=st.lists(st.sampled_from(sorted(CATALOG)), min_size=1, max_size=4),
       tp=st.sampled_from([1, 2, 4, 8]), gpu=st.sampled_from(["a100-80gb", "h100-80gb", "l40s"]))
def test_pool_blocks_never_exceed_free_memory(names, tp, gpu):
    mm = MemoryModel(gpu)
    units = [(n, tp) for n in names if CATALOG[n].heads % tp == 0]
    if not units:
        return
    pool = mm.kv_pool_bytes_per_gpu(units)
    blocks = mm.kv_blocks_per_gpu(units)
    used = sum(mm.reserved_bytes_per_gpu(m, t) for m, t in units)
    assert blocks >= 0
    assert used + blocks * mm.block_bytes([m for m, _ in units]) <= mm.usable_bytes() + 1e-6 or pool <= 0
