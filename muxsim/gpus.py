"""GPU catalog: datasheet figures the analytic cost model and the memory model use.

Sources, per entry: NVIDIA datasheets for peak dense FP16/BF16 tensor-core FLOP/s
(without sparsity), HBM/GDDR bandwidth and NVLink bandwidth; ``memory_bytes`` is the
total ``nvidia-smi`` reports (MiB), which is what allocators see. NVLink and PCIe
figures are per direction per GPU (datasheets quote the bidirectional sum).

``node_topology`` says how the GPUs of one node talk to each other, which decides the
all-reduce model the cost model uses for tensor parallelism: ``nvswitch`` (every GPU
reaches every other over NVLink at full rate: DGX/HGX A100 and H100 boards),
``pairwise-nvlink`` (GPUs are NVLinked in pairs and pairs talk over PCIe, so 4- and
8-GPU groups run at PCIe speed) or ``pcie`` (no NVLink).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from muxsim.errors import InputError

MiB = 1 << 20
GiB = 1 << 30
TOPOLOGIES = ("nvswitch", "pairwise-nvlink", "pcie")


@dataclass(frozen=True)
class GPUSpec:
    name: str
    flops: float  # dense fp16/bf16 tensor-core FLOP/s
    hbm_bw: float  # bytes/s
    memory_bytes: int
    sms: int
    nvlink_bw: float  # bytes/s per direction per GPU (0: none, PCIe only)
    pcie_bw: float  # bytes/s per direction
    source: str = ""
    node_topology: str = "nvswitch"

    def __post_init__(self) -> None:
        if self.node_topology not in TOPOLOGIES:
            raise InputError(f"gpu {self.name!r}: node_topology must be one of {', '.join(TOPOLOGIES)}, "
                             f"got {self.node_topology!r}")

    def nvlink_group(self) -> int:
        """The largest tensor-parallel group whose all-reduce stays on NVLink (1: none)."""
        return {"nvswitch": 8, "pairwise-nvlink": 2}.get(self.node_topology, 1) if self.nvlink_bw > 0 else 1

    @property
    def interconnect_bw(self) -> float:
        """Bandwidth a tensor-parallel all-reduce inside a node can use."""
        return self.nvlink_bw if self.nvlink_bw > 0 else self.pcie_bw

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GiB

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CATALOG: dict[str, GPUSpec] = {
    g.name: g
    for g in [
        GPUSpec("a100-40gb", 312e12, 1555e9, 40960 * MiB, 108, 300e9, 32e9,
                "NVIDIA A100 datasheet (SXM4 40GB): 312 TF dense FP16, 1,555 GB/s, NVLink3 600 GB/s"),
        GPUSpec("a100-80gb", 312e12, 2039e9, 81920 * MiB, 108, 300e9, 32e9,
                "NVIDIA A100 datasheet (SXM4 80GB): 312 TF dense FP16, 2,039 GB/s, NVLink3 600 GB/s"),
        GPUSpec("h100-80gb", 989.4e12, 3350e9, 81559 * MiB, 132, 450e9, 64e9,
                "NVIDIA H100 datasheet (SXM5): 989 TF dense BF16, 3.35 TB/s, NVLink4 900 GB/s"),
        GPUSpec("h200-141gb", 989.4e12, 4800e9, 143771 * MiB, 132, 450e9, 64e9,
                "NVIDIA H200 datasheet (SXM): 989 TF dense BF16, 4.8 TB/s, NVLink4 900 GB/s"),
        GPUSpec("l40s", 362.05e12, 864e9, 46068 * MiB, 142, 0.0, 32e9,
                "NVIDIA L40S datasheet: 362 TF dense FP16 (FP32 accumulate), 864 GB/s, PCIe Gen4 x16", "pcie"),
        GPUSpec("a10g", 70e12, 600e9, 23028 * MiB, 80, 0.0, 32e9,
                "AWS G5 / NVIDIA A10G: 80 SMs at 1.71 GHz (about 70 TF dense FP16), 600 GB/s GDDR6, PCIe Gen4", "pcie"),
        GPUSpec("a10", 125e12, 600e9, 23028 * MiB, 72, 0.0, 32e9,
                "NVIDIA A10 datasheet: 125 TF dense FP16, 600 GB/s GDDR6, PCIe Gen4", "pcie"),
        # A pseudo-device for running tiny models through the executor on a CPU: the
        # figures are placeholders of the right order for one socket; its real costs
        # come from a CPU profile through calibration (`muxsim calibrate`).
        GPUSpec("cpu", 1e12, 50e9, 16 * GiB, 1, 0.0, 10e9,
                "pseudo-device: placeholders, calibrate against a CPU profile", "pcie"),
    ]
}


def get_gpu(name: str | GPUSpec, field: str = "gpu") -> GPUSpec:
    if isinstance(name, GPUSpec):
        return name
    if not isinstance(name, str):
        from muxsim.errors import InputTypeError

        raise InputTypeError(f"{field}: expected a GPU name, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in CATALOG:
        shown = repr(name) if len(name) <= 40 else repr(name[:37] + "...")
        raise InputError(f"{field}: unknown GPU {shown} (known: {', '.join(CATALOG)})")
    return CATALOG[key]
