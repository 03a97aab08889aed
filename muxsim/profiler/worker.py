"""One profiling process: build the decoder, time a list of points, write JSON.

Run as ``python -m muxsim.profiler.worker JOB.json RESULT.json [RANK PORT]``. A process
measures at one SM share (MPS fixes the share when the CUDA context is created, so each
share needs its own process). With ``tp > 1`` the runner starts one such process per
rank and GPU (NCCL; gloo on a CPU); rank 0 times and reports.

Timing (the device machine's method): warm-up calls first, then each call timed alone
with CUDA events (``perf_counter`` on a CPU), and the median reported. The KV pool is
filled with random values, never zeros. In loop mode (co-location runs) the process
signals readiness through files and runs stages on signal: first alone (its partner
idles), then together, recording every step for a fixed duration and then stepping
unrecorded until told to stop, so that every recorded step overlaps its partner's.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from muxsim.models import ModelSpec
from muxsim.profiler.config import catalog_gpu_name


def _wait_for(path: Path, timeout_s: float = 600.0) -> None:
    end = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > end:
            raise TimeoutError(f"waited {timeout_s:.0f} s for {path.name}")
        time.sleep(0.002)


def _time_once(fn, cuda: bool) -> float:
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blocks_available(spec: ModelSpec, dtype: torch.dtype, device: torch.device, max_tokens: int) -> int:
    """Blocks that fit in 80% of free GPU memory after an activation reserve for the
    largest prefill (hidden states, Q/K/V, the MLP's gate/up, logits, all doubled)."""
    free, _ = torch.cuda.mem_get_info(device)
    item = torch.finfo(dtype).bits // 8
    act = 2 * max_tokens * (4 * spec.hidden + spec.q_dim + 2 * spec.kv_dim + 3 * spec.intermediate) * item
    block = 2 * 32 * spec.head_dim * item
    return max(1, int((0.8 * free - act) // block))


def run_rank(rank: int, job: dict[str, Any], group=None) -> dict[str, Any] | None:
    from muxsim_kernels import weights as wts
    from muxsim_kernels.decoder import Decoder

    tp, cuda = job["tp"], job["device"] == "cuda"
    spec = ModelSpec.from_dict(job["model"])
    dtype = getattr(torch, job["dtype"])
    if cuda:
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, job["threads"] // tp))
    if job.get("weights"):
        w = wts.load_weights_dir(job["weights"], spec, dtype=dtype, device=str(device), tp=tp, rank=rank)
    else:
        w = wts.random_weights(spec, seed=job["seed"], dtype=dtype, device=str(device), tp=tp, rank=rank)
    points = job["points"]
    kv_heads = max(1, spec.kv_heads // tp)
    blocks_needed = [p["batch"] * spec.layers * kv_heads * -(-p["seq_len"] // 32) for p in points]
    num_blocks = max([1, *blocks_needed])
    if cuda:
        max_tokens = max([1, *(p["batch"] * p["seq_len"] for p in points if p["phase"] == "prefill")])
        num_blocks = min(num_blocks, _blocks_available(spec, dtype, device, max_tokens))
    if group is not None:
        t = torch.tensor([num_blocks], device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN, group=group)
        num_blocks = int(t.item())
    dec = Decoder(spec, w, num_blocks=num_blocks, device=str(device), backend=job.get("backend", "auto"),
                  tp=tp, rank=rank, group=group)
    gen = torch.Generator(device=device).manual_seed(job["seed"] + 17)
    dec.k_cache.normal_(generator=gen)
    dec.v_cache.normal_(generator=gen)
    loop = job.get("loop")
    results = []
    for p, need in zip(points, blocks_needed):
        res = {"phase": p["phase"], "batch": p["batch"], "seq_len": p["seq_len"], "latency_ms": None,
               "skipped": None, "samples": 0}
        if need > num_blocks:
            res["skipped"] = f"KV cache does not fit ({need} blocks needed, {num_blocks} available)"
        results.append(res)
    # Several rounds over the grid (CPU default) spread a busy machine's noise over all
    # points instead of letting it land on a few; each round takes its share of repeats.
    rounds = 1 if loop is not None else max(1, int(job.get("rounds", 1)))
    per_round = {**job, "repeats": max(1, -(-job["repeats"] // rounds))}
    samples: list[list[float]] = [[] for _ in points]
    for _ in range(rounds):
        for res, times in zip(results, samples):
            if res["skipped"] is None:
                times += _measure_point(dec, res, spec, gen, device, cuda, tp, per_round, loop)
    for res, times in zip(results, samples):
        if times:
            res["latency_ms"] = statistics.median(times)
            res["samples"] = len(times)
    if rank != 0:
        return None
    if cuda:
        props = torch.cuda.get_device_properties(device)
        name, gpu = props.name, catalog_gpu_name(props.name, props.total_memory)
    else:
        name, gpu = f"{_cpu_name()} ({torch.get_num_threads()} threads)", "cpu"
    try:
        triton_version = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton_version = None
    return {"device_name": name, "gpu": gpu, "num_blocks": num_blocks, "dtype": job["dtype"],
            "backend": dec.ops.name, "torch": torch.__version__, "triton": triton_version,
            "mps_percentage": os.environ.get("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), "results": results}


def _measure_point(dec, res: dict[str, Any], spec: ModelSpec, gen, device, cuda: bool, tp: int,
                   job: dict[str, Any], loop: dict[str, Any] | None) -> list[float]:
    """Times of one grid point (``res`` gets ``skipped``/``cuda_graph``/``stages`` notes)."""
    b, s = res["batch"], res["seq_len"]
    ids = [dec.new_sequence(s) for _ in range(b)]
    try:
        bt = dec.block_tables(ids)
        if res["phase"] == "prefill":
            tokens = torch.randint(0, spec.vocab, (b * s,), generator=gen, device=device)

            def step():
                dec.prefill_step(ids, tokens, [s] * b, bt)
        else:
            tokens = torch.randint(0, spec.vocab, (b,), generator=gen, device=device)
            positions = torch.full((b,), s - 1, dtype=torch.int32, device=device)

            def step():
                dec.decode_step(ids, tokens, positions, bt, max_context=s)

            if cuda and tp == 1 and job.get("cuda_graphs", True):
                step, res["cuda_graph"] = _graphed(step)
        times = _measure(step, cuda, job, loop)
    except torch.OutOfMemoryError:
        res["skipped"] = "out of GPU memory"
        torch.cuda.empty_cache()
        return []
    finally:
        for i in ids:
            dec.release(i)
    if loop is not None and "medians" in loop:
        res["stages"] = loop.pop("medians")
    return times


def _graphed(step):
    """Capture one decode step in a CUDA graph, as serving engines do, so that kernel
    launch gaps do not count; on failure keep the eager step and say why."""
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
    except Exception as e:
        torch.cuda.synchronize()
        return step, f"failed ({type(e).__name__}: {str(e)[:120]})"
    return graph.replay, "captured"


def _measure(step, cuda: bool, job: dict[str, Any], loop: dict[str, Any] | None) -> list[float]:
    for _ in range(job["warmup"]):
        step()
    if cuda:
        torch.cuda.synchronize()
    if loop is None:
        return [_time_once(step, cuda) for _ in range(job["repeats"])]
    return _loop_stages(step, cuda, loop)


def _loop_stages(step, cuda: bool, loop: dict[str, Any]) -> list[float]:
    """Co-location protocol, one stage after another (e.g. ``alone`` then ``both``):
    announce ``<role>.ready``; per stage wait for ``go.<stage>.<role>``, record steps for
    ``duration_s``, announce ``<role>.<stage>.measured``, and where the stage is shared
    keep stepping, unrecorded, until ``stop.<stage>``. Returns the last stage's times
    and stores every stage's median in ``loop["medians"]``."""
    sync, role = Path(loop["sync_dir"]), loop["role"]
    (sync / f"{role}.ready").touch()
    medians: dict[str, float] = {}
    times: list[float] = []
    for stage in loop["stages"]:
        _wait_for(sync / f"go.{stage}.{role}")
        times = []
        end = time.monotonic() + loop["duration_s"]
        while time.monotonic() < end or len(times) < 3:
            times.append(_time_once(step, cuda))
        (sync / f"{role}.{stage}.measured").touch()
        if stage in loop.get("shared", []):
            while not (sync / f"stop.{stage}").exists():
                _time_once(step, cuda)
        medians[stage] = statistics.median(times)
    loop["medians"] = medians
    return times


def _rank_entry(rank: int, job: dict[str, Any], out: str, port: int) -> None:
    backend = "nccl" if job["device"] == "cuda" else "gloo"
    if job["device"] == "cuda":
        torch.cuda.set_device(rank)  # before NCCL binds a communicator to a device
    torch.distributed.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}",
                                         rank=rank, world_size=job["tp"])
    try:
        result = run_rank(rank, job, torch.distributed.group.WORLD)
        if result is not None:
            Path(out).write_text(json.dumps(result))
    finally:
        torch.distributed.destroy_process_group()


def main(argv: list[str]) -> int:
    """``JOB.json RESULT.json [RANK PORT]``: with ``tp > 1`` the runner starts one
    process per rank, all given the same rendezvous port."""
    job = json.loads(Path(argv[0]).read_text())
    if job["tp"] == 1:
        Path(argv[1]).write_text(json.dumps(run_rank(0, job)))
    else:
        _rank_entry(int(argv[2]), job, argv[1], int(argv[3]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
