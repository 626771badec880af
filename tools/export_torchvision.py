#!/usr/bin/env python3
# Run:  /usr/bin/python3 tools/export_torchvision.py --model resnet18 --size 224 --out r18.onnx
"""Exports a torchvision classifier (random weights, fixed seed) to ONNX opset 13 for
benchmarks, with dynamic batch and every initializer under its PyTorch name
(conv1.weight, ...), which the pruning recipes select (recipes/resnet18-oneshot*.yaml).
torch 1.13 folds BatchNorm into the convs (and renames them onnx::Conv_N) in any eval
export, so the model is exported in training mode without constant folding and then
turned into an inference graph: BatchNormalization keeps only its Y output (running
statistics), Dropout becomes Identity."""
import argparse
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_onnx_models import deterministic_copy  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.manual_seed(0)
    m = getattr(torchvision.models, a.model)(weights=None, num_classes=a.classes).train()
    x = torch.zeros(2, 3, a.size, a.size)
    tmp = a.out + ".train.onnx"
    torch.onnx.export(m, x, tmp, opset_version=13, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                      do_constant_folding=False, training=torch.onnx.TrainingMode.TRAINING)
    deterministic_copy(tmp, a.out)
    os.remove(tmp)


if __name__ == "__main__":
    main()
