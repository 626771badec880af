#!/bin/bash
# The transfer-learning demonstration (README, "Transfer learning"): a new task made of
# the five Fashion-MNIST classes the pretrained models never saw (Sandal, Shirt, Sneaker,
# Bag, Ankle boot), with only 500 training images, learnt three ways:
#   (a) sparse transfer: the pruned pretrained model, its zeros held (transfer recipes);
#   (b) the same model trained dense from scratch for the same number of epochs;
#   (c) dense transfer from the dense pretrained model, then pruning with the usual
#       recipe (yolo95 / classifier90) on the same 500 images.
# Classifier: cnn-small at 90% (and the PyTorch CNN of tools/torch_prune_cnn.py), 10
# epochs. Detector: yolov5n at 95%, 20 epochs, fashion-mosaic images at 320.
#
#   tools/demo_transfer.sh [--task cnn|yolo|all] [--pretrained DIR] [--out DIR] [--threads N]
#
# Needs the starting points in DIR (default ./pretrained): the sparse ones ship in the
# repository (ONNX, BatchNorm kept, loaded into the built-in model by name); the dense
# ones for (c) are built by tools/make_pretrained.sh (they do not compress).
# Prints one table per task: accuracy or mAP@0.5, final sparsity, wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
task=all pre=pretrained out=runs/transfer-demo threads=$(nproc)
while [ $# -gt 0 ]; do
    case "$1" in
        --task) task=$2; shift 2 ;;
        --pretrained) pre=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "demo_transfer.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
st=build/sparsetrain
mkdir -p "$out"
common=(--threads "$threads" --no-progress --seed 1)

need() {
    for f in "$@"; do
        [ -f "$f" ] || { echo "demo_transfer.sh: $f is missing: run tools/make_pretrained.sh first (it builds and caches the starting points)" >&2; exit 2; }
    done
}

# run NAME ARGS...: one training run into $out/NAME (kept if it finished before)
run() {
    local name=$1; shift
    [ -f "$out/$name/summary.json" ] && [ -f "$out/$name/model.onnx" ] && return 0
    echo "demo_transfer: $name" >&2
    rm -rf "$out/$name"
    local t0; t0=$(date +%s.%N)
    "$st" "$@" "${common[@]}" --out "$out/$name" > "$out/$name.log" 2>&1 ||
        { echo "demo_transfer: $name failed; see $out/$name.log" >&2; tail -5 "$out/$name.log" >&2; exit 1; }
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f\n", b-a}' > "$out/$name.wall"
}

json() { # json FILE KEY: the first number after "KEY":
    sed -n "s/.*\"$2\": *\([-0-9.eE]*\).*/\1/p" "$1" | head -1
}

row() { # row LABEL METRIC RUN...: metric and sparsity of the last run, wall time of all
        # (training, evaluation after every epoch, export)
    local label=$1 metric=$2; shift 2
    local secs=0 last=
    for r in "$@"; do
        secs=$(awk -v a="$secs" -v b="$(cat "$out/$r.wall")" 'BEGIN{print a+b}')
        last=$r
    done
    printf "%-44s %8.4f %9.1f%% %9.0f s\n" "$label" "$(json "$out/$last/summary.json" "$metric")" \
        "$(awk -v s="$(json "$out/$last/summary.json" overall)" 'BEGIN{print 100*s}')" "$secs"
}

if [ "$task" != yolo ]; then
    need "$pre/cnn-fm04-90.onnx" "$pre/cnn-fm04-dense.ckpt"
    [ -d "$out/data/fm59" ] || build/fmnist_to_png --classes 5-9 --train 500 --out "$out/data/fm59" >&2
    d=(--data "$out/data/fm59")
    run cnn-a-sparse "${d[@]}" --model cnn-small --pretrained "$pre/cnn-fm04-90.onnx" --recipe recipes/transfer.yaml
    have_torch=0
    if [ -f "$pre/torch-cnn-fm04-90.onnx" ]; then
        have_torch=1
        run cnn-a-torch "${d[@]}" --model "$pre/torch-cnn-fm04-90.onnx" --recipe recipes/transfer.yaml
    fi
    run cnn-b-scratch "${d[@]}" --model cnn-small --epochs 10
    run cnn-c-dense "${d[@]}" --model "$pre/cnn-fm04-dense.ckpt" --recipe recipes/transfer.yaml
    run cnn-c-prune "${d[@]}" --model "$out/cnn-c-dense/last.ckpt" --recipe recipes/classifier90.yaml
    echo
    echo "Fashion-MNIST classes 5-9, 500 training images, 5000 test images ($threads threads)"
    printf "%-44s %8s %10s %11s\n" "" accuracy sparsity "wall time"
    row "(a) sparse transfer from cnn-small 90%" accuracy cnn-a-sparse
    [ $have_torch = 1 ] && row "(a) sparse transfer from PyTorch CNN 90%" accuracy cnn-a-torch
    row "(b) dense from scratch, 10 epochs" accuracy cnn-b-scratch
    row "(c) dense transfer, then classifier90" accuracy cnn-c-dense cnn-c-prune
fi
if [ "$task" != cnn ]; then
    need "$pre/yolov5n-fm04-95.onnx" "$pre/yolov5n-fm04-dense.ckpt"
    [ -d "$out/data/mosaic59" ] || build/make_fashion_mosaic --classes 5-9 --train 500 --val 500 --seed 2 \
        --out "$out/data/mosaic59" >&2
    d=(--data "$out/data/mosaic59" --cache)
    run yolo-a-sparse "${d[@]}" --model yolov5n --pretrained "$pre/yolov5n-fm04-95.onnx" \
        --recipe recipes/yolo-transfer.yaml
    run yolo-b-scratch "${d[@]}" --model yolov5n --recipe recipes/yolo-dense.yaml --recipe-args '{"num_epochs": 20}'
    run yolo-c-dense "${d[@]}" --model "$pre/yolov5n-fm04-dense.ckpt" --recipe recipes/yolo-transfer.yaml
    run yolo-c-prune "${d[@]}" --model "$out/yolo-c-dense/last.ckpt" --recipe recipes/yolo95.yaml
    echo
    echo "fashion-mosaic classes 5-9 at 320, 500 training images, 500 val images ($threads threads)"
    printf "%-44s %8s %10s %11s\n" "" mAP50 sparsity "wall time"
    row "(a) sparse transfer from yolov5n 95%, 20 ep" mAP50 yolo-a-sparse
    row "(b) dense from scratch, 20 epochs" mAP50 yolo-b-scratch
    row "(c) dense transfer 20 ep, then yolo95 8 ep" mAP50 yolo-c-dense yolo-c-prune
fi
