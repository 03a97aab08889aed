"""muxsim_kernels: GPU kernels for a MuxServe-style engine, each with a CPU reference.

Importing this package does not import torch or triton; the submodules do.
"""
