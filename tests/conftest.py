"""Shared pytest setup. Kept minimal on purpose.

Triton kernels run through Triton's CPU interpreter where there is no NVIDIA GPU; the
switch must be set before anything imports triton, hence here.
"""

import os

if not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("TRITON_INTERPRET", "1")
