#!/usr/bin/env python3
# Run:  /usr/bin/python3 tools/bench_torch_cnn.py --threads 2 --epochs 1
"""PyTorch training-speed reference for cnn-small on Fashion-MNIST, to compare with
sparsetrain on the same machine and thread count.

Model: tools/cnn_small_fixture.py (CnnSmall, PyTorch default init). Data: the gzipped IDX
files in /usr/share/datasets/fashion-mnist, pixels scaled to [0, 1] (no mean/std
normalisation). SGD, momentum 0.9, Nesterov, softmax cross-entropy (mean); the training
set is reshuffled every epoch; the last partial batch is kept. Timing covers the training
loop only (forward, backward, step), not the test pass; images/s = train images /
epoch seconds. The final line is JSON, averaged over epochs (test accuracy: last epoch).
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cnn_small_fixture import CnnSmall  # noqa: E402


def read_idx(path):
    """IDX (big-endian header: magic with ndim in its low byte, then ndim u32 dims)."""
    with gzip.open(path, "rb") as f:
        buf = f.read()
    magic, = struct.unpack_from(">I", buf, 0)
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte data
        raise ValueError("%s: not a ubyte IDX file (magic %#x)" % (path, magic))
    ndim = magic & 0xFF
    dims = struct.unpack_from(">%dI" % ndim, buf, 4)
    data = np.frombuffer(buf, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError("%s: %d bytes of data for dims %s" % (path, data.size, dims))
    return data.reshape(dims)


def load_split(root, prefix):
    x = read_idx(os.path.join(root, prefix + "-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(root, prefix + "-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)  # [N, 1, 28, 28]
    return x, torch.from_numpy(y.astype(np.int64))


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N train images")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    xtr, ytr = load_split(args.data, "train")
    xte, yte = load_split(args.data, "t10k")
    if args.limit:
        xtr, ytr = xtr[:args.limit], ytr[:args.limit]
    model = CnnSmall(dropout=0.25).train()  # the same model sparsetrain trains
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                          weight_decay=args.weight_decay)
    print("pytorch %s, %d threads, batch %d, %d train / %d test images"
          % (torch.__version__, torch.get_num_threads(), args.batch, len(xtr), len(xte)))

    secs, acc = [], 0.0
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(len(xtr))
        loss_sum, batches = 0.0, 0
        t0 = time.perf_counter()
        for i in range(0, len(xtr), args.batch):
            idx = perm[i:i + args.batch]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            batches += 1
        secs.append(time.perf_counter() - t0)
        acc = evaluate(model, xte, yte)
        print("epoch %d: train loss %.4f  test accuracy %.4f  %.1f images/s  %.2f s"
              % (epoch, loss_sum / batches, acc, len(xtr) / secs[-1], secs[-1]), flush=True)

    mean_s = sum(secs) / len(secs)
    print(json.dumps({"framework": "pytorch", "epoch_seconds": round(mean_s, 3),
                      "images_per_sec": round(len(xtr) / mean_s, 1), "threads": args.threads,
                      "batch": args.batch, "test_accuracy": round(acc, 4)}))


if __name__ == "__main__":
    main()
