#!/usr/bin/env python3
# Run:  /usr/bin/python3 tools/torch_prune_cnn.py --out pretrained/torch-cnn-fm04-90.onnx
"""A pretrained sparse model from another framework, for the transfer-learning demo.

Trains a small CNN in PyTorch on the Fashion-MNIST classes 0-4 (T-shirt/top, Trouser,
Pullover, Dress, Coat), prunes it to 90% with torch.nn.utils.prune (global magnitude,
gradually: 50%, 75%, 87.5%, 90% over the pruning epochs), fine-tunes with the masks
held, makes the pruning permanent and exports ONNX (opset 13, eval mode: BatchNorm folded
into the convolutions by torch, which keeps the zeros). Inputs are standardised as
sparsetrain standardises gray images ((x/255 - 0.2860) / 0.3530) so that a transfer in
sparsetrain feeds the network what it was trained on.

Needs Debian's python3-torch and python3-onnx (tools/install-deps.sh --peers). Prints the
test accuracy on classes 0-4 and the sparsity of every exported weight; deterministic
for a fixed --seed and --threads.
"""
import argparse
import gzip
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.utils.prune as prune

MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    with gzip.open(path, "rb") as f:
        buf = f.read()
    magic, = struct.unpack_from(">I", buf, 0)
    if magic >> 8 != 0x08:
        raise ValueError("%s: not a ubyte IDX file" % path)
    ndim = magic & 0xFF
    dims = struct.unpack_from(">%dI" % ndim, buf, 4)
    return np.frombuffer(buf, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data, split, classes):
    x = read_idx(os.path.join(data, "%s-images-idx3-ubyte.gz" % split))
    y = read_idx(os.path.join(data, "%s-labels-idx1-ubyte.gz" % split)).astype(np.int64)
    keep = np.isin(y, classes)
    remap = {c: i for i, c in enumerate(classes)}
    x = (x[keep].astype(np.float32) / 255.0 - MEAN) / STD
    y = np.array([remap[v] for v in y[keep]], np.int64)
    return torch.from_numpy(x[:, None]), torch.from_numpy(y)


class TorchCNN(nn.Module):
    """Not our cnn-small: three convolutions, global pooling is not used so the flatten
    feeds a Linear, as many small PyTorch classifiers do."""

    def __init__(self, nc):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(2))
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, nc)

    def forward(self, x):
        x = torch.flatten(self.features(x), 1)
        return self.fc2(F.relu(self.fc1(x)))


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        correct = sum((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
                      for i in range(0, len(x), 1000))
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--classes", default="0,1,2,3,4")
    ap.add_argument("--epochs", type=int, default=2, help="dense epochs")
    ap.add_argument("--prune-epochs", type=int, default=2)
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    classes = [int(c) for c in a.classes.split(",")]
    xtr, ytr = load(a.data, "train", classes)
    xte, yte = load(a.data, "t10k", classes)
    model = TorchCNN(len(classes))
    # the first convolution (288 weights) stays dense, as in our own recipes
    targets = [(model.features[3], "weight"), (model.features[7], "weight"),
               (model.fc1, "weight"), (model.fc2, "weight")]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    total = a.epochs + a.prune_epochs + a.finetune_epochs
    steps_per_epoch = (len(xtr) + 63) // 64
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.05, total_steps=total * steps_per_epoch)
    prune_points = []  # (step, cumulative sparsity): cubic-like ramp over the pruning epochs
    for k in range(1, 5):
        frac = k / 4
        prune_points.append((int((a.epochs + frac * a.prune_epochs) * steps_per_epoch) - 1,
                             a.sparsity * (1 - (1 - frac) ** 3)))
    step, done = 0, 0.0
    for epoch in range(total):
        model.train()
        g = torch.Generator().manual_seed(a.seed * 1000 + epoch)
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            for s, target in prune_points:
                if s == step and target > done:
                    # global_unstructured prunes `amount` of the still-unpruned weights
                    amount = (target - done) / (1 - done)
                    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured,
                                              amount=amount)
                    done = target
            step += 1
        print("epoch %d/%d: loss %.4f, test accuracy %.4f, sparsity %.3f" %
              (epoch + 1, total, loss.item(), evaluate(model, xte, yte), done), flush=True)
    for m, name in targets:
        prune.remove(m, name)
    model.eval()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), tmp, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      opset_version=13)
    os.replace(tmp, a.out)
    try:
        import onnx
        from onnx import numpy_helper
        m = onnx.load(a.out)
        onnx.checker.check_model(m, full_check=True)
        for t in m.graph.initializer:
            w = numpy_helper.to_array(t)
            if w.ndim >= 2:
                print("  %-24s %-16s %.1f%% zero" % (t.name, "x".join(map(str, w.shape)),
                                                    100.0 * float((w == 0).mean())))
    except ImportError:
        print("(python3-onnx not installed: the file was not checked)")
    print("wrote %s: test accuracy %.4f on classes %s, %.1f%% of the pruned weights zero" %
          (a.out, evaluate(model, xte, yte), a.classes, 100 * done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
