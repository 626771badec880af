#!/usr/bin/env python3
# Run:  /usr/bin/python3 tools/export_torchvision.py --model resnet18 --size 224 --out r18.onnx
"""Exports a torchvision classifier (random weights, fixed seed) to ONNX opset 13 for
benchmarks: eval mode, dynamic batch, and no constant folding, so BatchNorm stays a
separate node and every initializer keeps its PyTorch name (conv1.weight, ...), which
the pruning recipes select (recipes/resnet18-oneshot*.yaml)."""
import argparse

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.manual_seed(0)
    m = getattr(torchvision.models, a.model)(weights=None, num_classes=a.classes).eval()
    x = torch.zeros(1, 3, a.size, a.size)
    torch.onnx.export(m, x, a.out, opset_version=13, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                      do_constant_folding=False, training=torch.onnx.TrainingMode.EVAL)


if __name__ == "__main__":
    main()
