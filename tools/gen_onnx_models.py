#!/usr/bin/env python3
"""Exports the PyTorch models the ONNX import interop test (tests/test_onnx_interop.c)
reads: torchvision resnet18, mobilenet_v2, squeezenet1_1, our cnn-small, and a small
net using the patterns the importer folds (x.view(x.size(0), -1), SiLU, nearest
upsampling, concat), each twice:

  NAME_eval.onnx    eval mode, opset 13, dynamic batch (the exporter folds BatchNorm)
  NAME_train.onnx   training=TrainingMode.TRAINING, do_constant_folding=False: BatchNorm
                    kept with its extra outputs, Dropout with training_mode=True
  NAME_train_ref.onnx  the training export made deterministic for ONNX Runtime (BN with
                    only its Y output, i.e. inference mode; Dropout -> Identity): the
                    eval-mode reference the importer's forward is compared with
  NAME_in.npy       the input, batch 2

Weights are random with a fixed seed; BatchNorm statistics are randomised too so eval
mode is not the identity. Usage: gen_onnx_models.py OUTDIR [NAME...]
"""
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cnn_small_fixture import CnnSmall  # noqa: E402


class ViewNet(nn.Module):
    """Exercises the folded shape arithmetic and the fused patterns."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, 2, 1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, 1, 1, groups=4)
        self.c3 = nn.Conv2d(16, 6, 1)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        x = F.silu(self.bn(self.c1(x)))                      # 8 x 8 x 8
        y = F.leaky_relu(self.c2(x), 0.1)
        x = torch.cat([x, y], 1)                              # 16 x 8 x 8
        x = F.avg_pool2d(x, 2)                                # 16 x 4 x 4
        x = F.interpolate(x, scale_factor=2, mode="nearest")  # 16 x 8 x 8
        x = F.max_pool2d(F.relu6(self.c3(x)), 2)              # 6 x 4 x 4
        x = x.view(x.size(0), -1)
        return F.softmax(self.fc(x), dim=1)


def models():
    tv = torchvision.models
    return {
        "resnet18": (lambda: tv.resnet18(weights=None, num_classes=10), (3, 64, 64)),
        "mobilenet_v2": (lambda: tv.mobilenet_v2(weights=None, num_classes=10), (3, 64, 64)),
        "squeezenet1_1": (lambda: tv.squeezenet1_1(weights=None, num_classes=10), (3, 64, 64)),
        "cnn_small": (lambda: CnnSmall(28, dropout=0.25), (1, 28, 28)),
        "viewnet": (ViewNet, (3, 16, 16)),
    }


def randomise_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.2, 0.2, generator=gen)
                m.running_mean.uniform_(-0.2, 0.2, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)


def deterministic_copy(src, dst):
    """BatchNorm in inference mode and Dropout as Identity, for ONNX Runtime."""
    m = onnx.load(src)
    g = m.graph
    for n in g.node:
        if n.op_type == "BatchNormalization":
            del n.output[1:]
            for a in list(n.attribute):
                if a.name == "training_mode":
                    n.attribute.remove(a)
        elif n.op_type == "Dropout":
            del n.input[1:]
            del n.output[1:]
            n.op_type = "Identity"
            del n.attribute[:]
    onnx.checker.check_model(m)
    onnx.save(m, dst)


def export(name, make, chw, out):
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(99)
    model = make()
    randomise_bn(model, gen)
    x = torch.randn(2, *chw, generator=gen)
    np.save(os.path.join(out, f"{name}_in.npy"), x.numpy().astype(np.float32))
    dyn = {"input": {0: "N"}, "output": {0: "N"}}
    model.eval()
    torch.onnx.export(model, x, os.path.join(out, f"{name}_eval.onnx"), opset_version=13,
                      input_names=["input"], output_names=["output"], dynamic_axes=dyn)
    model.train()
    train = os.path.join(out, f"{name}_train.onnx")
    torch.onnx.export(model, x, train, opset_version=13, input_names=["input"],
                      output_names=["output"], dynamic_axes=dyn,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    deterministic_copy(train, os.path.join(out, f"{name}_train_ref.onnx"))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    want = sys.argv[2:]
    for name, (make, chw) in models().items():
        if not want or name in want:
            export(name, make, chw, out)
    # Written last: the test treats its presence as "all outputs complete".
    with open(os.path.join(out, "DONE"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main()
