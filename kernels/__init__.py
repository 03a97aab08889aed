"""muxsim_kernels: GPU kernels for a MuxServe-style engine, each with a CPU reference.

Modules (importing this package imports neither torch nor triton; the modules do):

- ``cache``: head-wise paged KV cache bookkeeping (32-token blocks of one KV head of one
  layer, a block allocator, block tables); plain Python and numpy.
- ``reference``: PyTorch references of every kernel (the CPU path and the tests' truth).
- ``triton_attention``: paged decode attention (GQA), varlen causal prefill attention
  that writes K/V into the paged cache, and the K/V cache writer.
- ``triton_layers``: fused (add +) RMSNorm, rotary embedding, SiLU-and-multiply.
- ``ops``: picks ``triton`` (on CUDA) or ``reference`` (on CPU) behind one namespace.
- ``weights``: random or safetensors weights with Hugging Face LLaMA names; TP sharding.
- ``decoder``: a minimal LLaMA-style decoder over the paged cache (what the profiler times).

The Triton kernels use the language subset of Triton 3.6 to 3.9; with
``TRITON_INTERPRET=1`` set before triton is imported they run on CPU tensors.
"""
