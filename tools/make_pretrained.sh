#!/bin/bash
# Builds the pretrained starting points for transfer learning, reproducibly, with our
# own tools (README, "Transfer learning"). Everything is trained on the first five
# Fashion-MNIST classes (T-shirt/top, Trouser, Pullover, Dress, Coat), so that the other
# five make a new task to transfer to:
#
#   cnn-fm04-dense.ckpt      cnn-small, dense, Fashion-MNIST 28x28 (10 epochs)
#   cnn-fm04-90.ckpt         the same pruned to 90% with recipes/classifier90.yaml,
#                            started from the dense checkpoint
#   torch-cnn-fm04-90.onnx   a CNN trained and pruned to 90% in PyTorch
#                            (tools/torch_prune_cnn.py; skipped without python3-torch)
#   yolov5n-fm04-dense.ckpt  yolov5n, dense, fashion-mosaic classes 0-4 at 320
#                            (recipes/yolo-dense.yaml, 8 epochs)
#   yolov5n-fm04-95.ckpt     the same pruned to 95% with recipes/yolo95.yaml, started
#                            from the dense checkpoint
# plus, for each checkpoint, NAME.onnx exported with BatchNorm kept (so it imports with
# the built-in model's parameter names).
#
#   tools/make_pretrained.sh [--out DIR] [--threads N] [--only cnn|yolo]
#
# DIR defaults to ./pretrained. A file that exists is kept (delete it to rebuild), so an
# interrupted build resumes where it stopped. The YOLO models take about an hour on 2
# cores; the classifiers a few minutes. Training runs and their logs go to DIR/runs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=pretrained threads=$(nproc) only=
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "make_pretrained.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
st=build/sparsetrain
for b in "$st" build/fmnist_to_png build/make_fashion_mosaic; do
    [ -x "$b" ] || { echo "make_pretrained.sh: $b is missing; build first (cmake -B build && cmake --build build)" >&2; exit 2; }
done
mkdir -p "$out/runs" "$out/data"
common=(--threads "$threads" --no-progress --seed 1)

# train NAME ARGS...: a run into $out/runs/NAME, its final checkpoint as $out/NAME.ckpt
# and an ONNX export with BatchNorm kept as $out/NAME.onnx.
train() {
    local name=$1; shift
    if [ ! -f "$out/$name.ckpt" ]; then
        echo "make_pretrained: training $name (log: $out/runs/$name.log)"
        rm -rf "$out/runs/$name"
        "$st" "$@" "${common[@]}" --out "$out/runs/$name" > "$out/runs/$name.log" 2>&1 ||
            { echo "make_pretrained: $name failed; see $out/runs/$name.log" >&2; tail -5 "$out/runs/$name.log" >&2; exit 1; }
        grep -E "^done:" "$out/runs/$name.log" || true
        cp "$out/runs/$name/last.ckpt" "$out/$name.ckpt.tmp" && mv "$out/$name.ckpt.tmp" "$out/$name.ckpt"
    fi
    [ -f "$out/$name.onnx" ] || "$st" export --checkpoint "$out/$name.ckpt" --out "$out/$name.onnx" --keep-bn
}

if [ "$only" != yolo ]; then
    [ -d "$out/data/fm04" ] || build/fmnist_to_png --classes 0-4 --out "$out/data/fm04"
    train cnn-fm04-dense --data "$out/data/fm04" --epochs 10
    train cnn-fm04-90 --data "$out/data/fm04" --model "$out/cnn-fm04-dense.ckpt" \
        --recipe recipes/classifier90.yaml
    if [ ! -f "$out/torch-cnn-fm04-90.onnx" ]; then
        if /usr/bin/python3 -c "import torch" 2>/dev/null; then
            echo "make_pretrained: training torch-cnn-fm04-90 in PyTorch"
            /usr/bin/python3 tools/torch_prune_cnn.py --threads "$threads" --out "$out/torch-cnn-fm04-90.onnx" \
                > "$out/runs/torch-cnn-fm04-90.log" 2>&1 || { tail -5 "$out/runs/torch-cnn-fm04-90.log" >&2; exit 1; }
            tail -1 "$out/runs/torch-cnn-fm04-90.log"
        else
            echo "make_pretrained: python3-torch is not installed (tools/install-deps.sh --peers): skipping torch-cnn-fm04-90.onnx"
        fi
    fi
fi
if [ "$only" != cnn ]; then
    [ -d "$out/data/mosaic04" ] || build/make_fashion_mosaic --classes 0-4 --out "$out/data/mosaic04"
    train yolov5n-fm04-dense --data "$out/data/mosaic04" --recipe recipes/yolo-dense.yaml --cache
    train yolov5n-fm04-95 --data "$out/data/mosaic04" --model "$out/yolov5n-fm04-dense.ckpt" \
        --recipe recipes/yolo95.yaml --cache
fi
echo "make_pretrained: done; starting points in $out/"
ls -l "$out"/*.ckpt "$out"/*.onnx 2>/dev/null || true
