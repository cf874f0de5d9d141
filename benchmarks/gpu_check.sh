#!/usr/bin/env bash
# One short GPU lease (see benchmarks/gpu_check.py): renderer rows, ONNX Runtime providers, a ~60 s training run.
# Run from a folder holding .whl/ (kornia, kornia_rs wheels for the image's Python), noav/ (see the report: PyAV does
# not fit the transfer) and pp/tpsmm (this repo):
#   OUT=/some/dir bash pp/tpsmm/benchmarks/gpu_check.sh
set -u
HERE="$(cd "$(dirname "$0")/../.." && pwd)"           # the folder holding tpsmm/
BASE="$(dirname "$HERE")"
OUT="${OUT:-/tmp/gpu-out}"; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$BASE"/.whl/*.whl \
  >"$OUT/pip.log" 2>&1 || { echo "wheel install failed"; tail -5 "$OUT/pip.log"; }
export PYTHONPATH="/tmp/site:$HERE:$BASE/noav" PYTHONUNBUFFERED=1 TPSMM_CACHE_DIR=/tmp/tpsmm-cache
{
  nvidia-smi -L; nproc
  python3 -c "import torch, onnxruntime as o; print('torch', torch.__version__, 'ort', o.__version__, o.get_available_providers())"
} 2>&1 | tee "$OUT/env.txt"
timeout "${RENDER_S:-250}" python3 "$HERE/tpsmm/benchmarks/gpu_check.py" --json "$OUT/gpu.json" --batches 1,64 \
  --frames 128 --compile 2>&1 | grep -v -i warn | tee "$OUT/gpu.log"
echo "render rows exit ${PIPESTATUS[0]}"
T0=$(date +%s)
timeout 40 python3 -m tpsmm make-dataset /tmp/ds --videos 24 --frames 16 --size 64 --quiet --workers 8 2>&1 | tail -3
timeout "${TRAIN_S:-80}" python3 -m tpsmm train --config vox-256 --data /tmp/ds --out /tmp/run --model-size tiny \
  --image-size 64 --set model.dm_num_blocks=3 --steps 300 --batch-size 16 --amp bf16 --recon-loss l1-ssim \
  --cache-frames --no-tensorboard --no-progress --device cuda 2>&1 | grep -v -i warn | tail -4 | tee "$OUT/train.log"
echo "train wall $(( $(date +%s) - T0 )) s" | tee -a "$OUT/train.log"
cp /tmp/run/metrics.jsonl "$OUT/train_metrics.jsonl" 2>/dev/null
tail -2 /tmp/run/metrics.jsonl 2>/dev/null
