"""Tensor-parallel decoding over torch.distributed (gloo on a CPU) equals tp=1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

SCRIPT = textwrap.dedent('''
    import json, sys
    import torch, torch.distributed as dist, torch.multiprocessing as mp
    from muxsim.models import ModelSpec
    from muxsim_kernels import weights as wts
    from muxsim_kernels.decoder import Decoder

    SPEC = ModelSpec("tiny-tp", layers=2, hidden=32, heads=4, kv_heads=1, intermediate=48, vocab=40)
    PROMPTS = [[1, 2, 3, 4, 5], [7] * 40]

    def run(rank, tp, port, out):
        group = None
        if tp > 1:
            dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=tp)
            group = dist.group.WORLD
            torch.set_num_threads(1)
        full = wts.random_weights(SPEC, seed=3)
        dec = Decoder(SPEC, wts.shard_weights(full, SPEC, tp, rank), num_blocks=64, tp=tp, rank=rank,
                      group=group, backend="reference")
        ids, first = dec.prefill(PROMPTS)
        second = dec.decode(ids, [9, 11])
        if rank == 0:
            with open(out, "w") as f:
                json.dump({"prefill": first.tolist(), "decode": second.tolist(),
                           "kv_heads": dec.kv_heads, "heads": dec.heads}, f)
        if group is not None:
            dist.destroy_process_group()

    if __name__ == "__main__":
        tp, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
        if tp == 1:
            run(0, 1, port, out)
        else:
            mp.spawn(run, args=(tp, port, out), nprocs=tp)
''')


def _run(tmp_path, tp: int) -> dict:
    script = tmp_path / "tp_run.py"
    script.write_text(SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / f"tp{tp}.json"
    r = subprocess.run([sys.executable, str(script), str(tp), str(port), str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text())


def test_tp2_with_replicated_kv_head_equals_tp1(tmp_path):
    namespace: dict = {"__name__": "tp_inline"}
    exec(SCRIPT, namespace)  # the same code at tp=1, in this process
    namespace["run"](0, 1, 0, str(tmp_path / "tp1.json"))
    one = json.loads((tmp_path / "tp1.json").read_text())
    two = _run(tmp_path, 2)  # 2 ranks > 1 KV head: both hold it; Q, O, MLP, LM head split
    assert (two["heads"], two["kv_heads"]) == (2, 1)
    for key in ("prefill", "decode"):
        a, b = torch.tensor(two[key]), torch.tensor(one[key])
        assert a.shape == b.shape == (2, 40)
        assert float((a - b).norm() / b.norm()) < 1e-5
