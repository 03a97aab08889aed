#!/usr/bin/env bash
# The GPU runbook: everything a 15-minute H100/H200 loan should produce, in one folder.
#
#   experiments/gpu/run.sh [--device cuda|cpu] [--out DIR] [--skip-install]
#
# 1. install muxsim with the gpu extra, keeping the machine's CUDA build of torch
#    (the gpu extra accepts any torch >= 2.4; only the CPU test extra pins one);
# 2. profile llama-7b- and llama-13b-shaped models (random weights) at SM 30..100%
#    (tiny models on --device cpu);
# 3. run the kernel benchmark (a "skipped" line without CUDA);
# 4. execute a two-model flex plan on the device (experiments/gpu/case.py) and validate
#    it: `muxsim validate` profiles the plan's models, simulates, executes and compares.
# Everything lands in DIR: profile CSVs (with device and date), kernels.json,
# validate.json (the comparison and both results documents) and .txt, machine.txt.
# Meant to finish in under 9 minutes on the GPU; --device cpu is the rehearsal the test
# suite runs.
set -euo pipefail

DEVICE=cuda
OUT=""
INSTALL=1
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --skip-install) INSTALL=0; shift ;;
    *) echo "error: unknown argument $1 (use --device cuda|cpu, --out DIR, --skip-install)" >&2; exit 2 ;;
  esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "error: --device must be cuda or cpu, got $DEVICE" >&2; exit 2 ;; esac
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PY="${PYTHON:-python3}"
OUT="${OUT:-$REPO/experiments/gpu/results/$(date -u +%Y%m%dT%H%M%SZ)-$DEVICE}"
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then
  echo "error: --out: $OUT is not empty" >&2; exit 2
fi
mkdir -p "$OUT"
start=$(date +%s)
step() { echo "[$(( $(date +%s) - start ))s] $*" >&2; }

if [ "$DEVICE" = cuda ]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "error: --device cuda: no CUDA build of torch with a GPU on this machine" >&2; exit 2; }
fi
if [ "$INSTALL" = 1 ]; then
  step "install (the installed torch is kept)"
  "$PY" -m pip install -q -e "$REPO[gpu]"
fi
MUXSIM=("$PY" -m muxsim.cli.main)

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "device: $DEVICE"
  "$PY" -c "import torch; print('torch:', torch.__version__, 'cuda:', torch.version.cuda)"
  if [ "$DEVICE" = cuda ]; then nvidia-smi -L || true; else echo "cpu: $(nproc) cores"; fi
} > "$OUT/machine.txt"

if [ "$DEVICE" = cuda ]; then
  MODELS=(llama-7b llama-13b)
  GRID=(--sm-grid 30,50,70,100 --prefill-batches 1,4,16 --prefill-seq-lens 128,512,1024
        --decode-batches 1,8,32,128 --decode-seq-lens 128,512,1024 --repeats 5)
else
  MODELS=(tiny-2l-64h tiny-2l-32h)
  GRID=(--sm-grid 50,100 --prefill-batches 1,4 --prefill-seq-lens 16,32 --decode-batches 1,4
        --decode-seq-lens 16,64 --repeats 3 --rounds 1)
fi
for m in "${MODELS[@]}"; do
  step "profile $m"
  "${MUXSIM[@]}" profile --model "$m" --device "$DEVICE" "${GRID[@]}" --out "$OUT/profile-$m.csv" >&2
done

step "kernel benchmark"
"$PY" "$REPO/benchmarks/bench_kernels.py" --quick > "$OUT/kernels.json"

step "execute and validate a two-model flex plan"
"$PY" "$REPO/experiments/gpu/case.py" --device "$DEVICE" --out "$OUT"
"${MUXSIM[@]}" validate "$OUT/plan.json" "$OUT/workload.json" --device "$DEVICE" --out "$OUT/validate.json" -q \
  > "$OUT/validate.txt"
step "done: $OUT"
