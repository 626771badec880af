#!/usr/bin/env bash
# Epoch time of sparsetrain vs PyTorch for the same model (cnn-small on Fashion-MNIST),
# batch and thread count, run one after the other in the same environment (OpenBLAS
# settings included: both sides see the same OPENBLAS_* variables).
#   tools/bench_train_vs_torch.sh [THREADS] [BATCH] [LIMIT]
# LIMIT (default 0: all 60000) trains on the first LIMIT images only, for a quick look.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2} batch=${2:-64} limit=${3:-0}
data=/usr/share/datasets/fashion-mnist
[[ -x build/sparsetrain ]] || { echo "build first: cmake -B build && cmake --build build -j" >&2; exit 2; }
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "needs python3-torch: tools/install-deps.sh --peers" >&2; exit 2; }
lim=(); [[ $limit -gt 0 ]] && lim=(--train-limit "$limit")
tlim=(); [[ $limit -gt 0 ]] && tlim=(--limit "$limit")
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>} threads=$threads batch=$batch limit=$limit"
out=$(mktemp -d)
ours=$(build/sparsetrain --data "$data" --epochs 1 --batch "$batch" --threads "$threads" \
       "${lim[@]}" --out "$out/run" --no-progress | grep '^epoch 1/1')
echo "sparsetrain: $ours"
ours_s=$(sed -E 's/.*epoch ([0-9.]+)s.*/\1/' <<<"$ours")
theirs=$(/usr/bin/python3 tools/bench_torch_cnn.py --threads "$threads" --batch "$batch" --epochs 1 \
         --lr 0.05 "${tlim[@]}" | tail -1)
echo "pytorch:     $theirs"
torch_s=$(/usr/bin/python3 -c "import json,sys; print(json.loads(sys.argv[1])['epoch_seconds'])" "$theirs")
/usr/bin/python3 -c "import sys; o,t=map(float,sys.argv[1:]); print('epoch seconds: sparsetrain %.2f, pytorch %.2f, speedup %.2fx' % (o,t,t/o))" "$ours_s" "$torch_s"
rm -rf "$out"
