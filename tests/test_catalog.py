"""Model and GPU catalogs against hand-computed figures."""

import json
import subprocess
import sys

import pytest

from muxsim.errors import InputError
from muxsim.gpus import CATALOG as GPUS
from muxsim.gpus import get_gpu
from muxsim.models import CATALOG, ModelSpec, from_hf_config, resolve_model


def test_llama_7b_parameter_count_by_hand():
    # per layer: 4 * 4096^2 (q, k, v, o) + 3 * 4096 * 11008 (gate, up, down) + 2 * 4096 (norms)
    per_layer = 4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096
    total = 32 * per_layer + 2 * 32000 * 4096 + 4096
    assert total == 6_738_415_616  # the published 6.74B
    assert CATALOG["llama-7b"].param_count() == total


@pytest.mark.parametrize(
    ("name", "billions"),
    [("llama-13b", 13.0), ("llama-30b", 32.5), ("llama-65b", 65.3), ("llama-2-70b", 69.0),
     ("llama-3-8b", 8.03), ("llama-3-70b", 70.6), ("mistral-7b", 7.24), ("qwen2.5-7b", 7.62),
     ("qwen2.5-14b", 14.8), ("qwen2.5-32b", 32.8), ("qwen2.5-72b", 72.7), ("codellama-34b", 33.7),
     ("qwen-72b", 72.3)],
)
def test_parameter_counts_match_published_sizes(name, billions):
    assert CATALOG[name].param_count() / 1e9 == pytest.approx(billions, rel=0.01)


def test_kv_bytes_per_token_by_hand():
    # 2 (K and V) * layers * kv_heads * head_dim * 2 bytes
    assert CATALOG["llama-7b"].kv_bytes_per_token() == 2 * 32 * 32 * 128 * 2 == 524_288
    assert CATALOG["llama-2-70b"].kv_bytes_per_token() == 2 * 80 * 8 * 128 * 2 == 327_680
    assert CATALOG["llama-3-8b"].kv_bytes_per_token() == 2 * 32 * 8 * 128 * 2


def test_tensor_parallel_weights_split_and_kv_heads_replicate():
    m = CATALOG["llama-65b"]
    total = m.weight_bytes()
    assert m.weight_bytes_per_gpu(1) == total
    # everything but the norms is split, so four GPUs hold a quarter plus the replicated norms
    assert m.weight_bytes_per_gpu(4) == pytest.approx(total / 4, rel=0.001)
    g = CATALOG["llama-2-70b"]  # 8 KV heads: at tp=16 each GPU keeps a whole KV head
    assert g.kv_heads_per_gpu(8) == 1
    with pytest.raises(InputError, match="tp: 3 does not divide"):
        g.weight_bytes_per_gpu(3)


def test_flops_per_token_is_twice_the_matmul_parameters_plus_attention():
    m = CATALOG["llama-7b"]
    matmul_params = m.param_count() - m.vocab * m.hidden - (2 * m.layers + 1) * m.hidden
    assert m.flops_per_token(0) == 2 * matmul_params
    assert m.flops_per_token(100) - m.flops_per_token(0) == 4 * 32 * 4096 * 100


def test_config_json_loading(tmp_path):
    cfg = {"model_type": "qwen2", "num_hidden_layers": 28, "hidden_size": 3584, "num_attention_heads": 28,
           "num_key_value_heads": 4, "intermediate_size": 18944, "vocab_size": 152064, "torch_dtype": "bfloat16",
           "tie_word_embeddings": False}
    p = tmp_path / "Qwen2.5-7B" / "config.json"
    p.parent.mkdir()
    p.write_text(json.dumps(cfg))
    spec = from_hf_config(p)
    assert spec.name == "Qwen2.5-7B"
    assert spec.param_count() == CATALOG["qwen2.5-7b"].param_count()
    assert resolve_model(str(p)).kv_heads == 4


def test_two_matrix_mlp_and_parallel_residual_by_hand(tmp_path):
    # phi-2: per layer q, k, v, o (4 * 2560^2) + up and down (2 * 2560 * 10240) + Q/K/V biases
    # + one norm; the published 2.78B counts every bias, this count only the Q/K/V ones
    phi = CATALOG["phi-2"]
    assert phi.layer_params() == 4 * 2560**2 + 2 * 2560 * 10240 + 3 * 2560 + 2560
    assert phi.param_count() / 1e9 == pytest.approx(2.78, rel=0.01)
    cfg = {"model_type": "phi", "num_hidden_layers": 32, "hidden_size": 2560, "num_attention_heads": 32,
           "intermediate_size": 10240, "vocab_size": 51200, "torch_dtype": "float16"}
    (tmp_path / "phi-2").mkdir()
    (tmp_path / "phi-2" / "config.json").write_text(json.dumps(cfg))
    spec = from_hf_config(tmp_path / "phi-2" / "config.json")
    assert (spec.gated_mlp, spec.parallel_residual, spec.param_count()) == (False, True, phi.param_count())
    qwen = {"model_type": "qwen", "num_hidden_layers": 80, "hidden_size": 8192, "num_attention_heads": 64,
            "intermediate_size": 49152, "vocab_size": 152064, "torch_dtype": "bfloat16"}
    (tmp_path / "qwen").mkdir()
    (tmp_path / "qwen" / "config.json").write_text(json.dumps(qwen))
    assert from_hf_config(tmp_path / "qwen" / "config.json").param_count() == CATALOG["qwen-72b"].param_count()
    with pytest.raises(InputError, match="gated_mlp must be true or false"):
        resolve_model({"layers": 1, "hidden": 64, "heads": 4, "intermediate": 64, "vocab": 10, "gated_mlp": "no"})


@pytest.mark.parametrize(("hf_id", "name", "window"), [
    ("microsoft/phi-2", "phi-2", 2048), ("codellama/CodeLlama-34b-hf", "codellama-34b", 16384),
    ("internlm/internlm-20b", "internlm-20b", 4096), ("Qwen/Qwen-72B", "qwen-72b", 32768)])
def test_the_profiled_models_have_hub_ids_and_context_windows(hf_id, name, window):
    """The models of the public operator profiles: a Hugging Face id resolves to them and
    their context window is their config.json's max_position_embeddings."""
    from muxsim.models import catalog_name

    assert catalog_name(hf_id) == name and resolve_model(hf_id) is CATALOG[name]
    assert CATALOG[name].context_window == window


def test_config_json_context_window_of_qwen_and_phi(tmp_path):
    for folder, cfg in [("phi", {"model_type": "phi", "max_position_embeddings": 2048}),
                        ("qwen", {"model_type": "qwen", "max_position_embeddings": 32768, "seq_length": 32768})]:
        base = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 256,
                "vocab_size": 100}
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config.json").write_text(json.dumps(base | cfg))
        spec = from_hf_config(tmp_path / folder / "config.json")
        assert spec.max_context == cfg["max_position_embeddings"]
        assert spec.intermediate == (128 if folder == "qwen" else 256)  # Qwen 1 counts both SwiGLU halves


def test_inline_architecture_and_errors(tmp_path):
    tiny = resolve_model({"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 4, "intermediate": 128, "vocab": 256})
    assert tiny.head_dim == 16 and tiny.param_count() == 2 * (4 * 64 * 64 + 3 * 64 * 128 + 128) + 2 * 256 * 64 + 64
    with pytest.raises(InputError, match="unknown model 'gpt-9'"):
        resolve_model("gpt-9")
    with pytest.raises(InputError, match=r"heads .* is not a multiple of kv_heads"):
        ModelSpec("x", 2, 64, 4, 3, 128, 256)
    with pytest.raises(InputError, match="missing vocab"):
        resolve_model({"layers": 2, "hidden": 64, "heads": 4, "intermediate": 128})
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="is not valid JSON"):
        resolve_model(str(bad))


def test_gpu_catalog():
    for name in ["a100-40gb", "a100-80gb", "h100-80gb", "h200-141gb", "l40s", "a10g", "cpu"]:
        g = get_gpu(name)
        assert g.flops > 0 and g.hbm_bw > 0 and g.memory_bytes > 0 and g.sms >= 1 and g.source
    assert GPUS["h100-80gb"].hbm_bw / GPUS["a100-80gb"].hbm_bw == pytest.approx(3350 / 2039)
    assert GPUS["l40s"].interconnect_bw == GPUS["l40s"].pcie_bw
    with pytest.raises(InputError, match="gpu: unknown GPU 'tpu-v9'"):
        get_gpu("tpu-v9")


def test_import_muxsim_does_not_import_torch():
    code = "import sys, muxsim; muxsim.cost_model; muxsim.MemoryModel; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
