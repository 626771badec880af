#!/usr/bin/env python3
# Run:  /usr/bin/python3 tools/bench_torch_yolo.py --threads 2 --batch 16 --imgsz 320
"""PyTorch training-step reference for yolov5n/s, to compare with build/bench_yolo_step
(and the trainer's epoch times) on the same machine, batch and thread count.

Model: the YOLOv5 module definitions of tools/yolo_fixture.py (the same architecture
and parameter count as our built-in model), float32, training mode. Loss: the same
restatement of YOLOv5's ComputeLoss (float32 here). One step = forward + loss +
backward + SGD (momentum 0.937, Nesterov) on synthetic images with a few boxes each.
Prints ms per step and images/s (median of the timed steps) as one JSON line.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import yolo_fixture as yf  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="yolov5n", choices=["yolov5n", "yolov5s"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    width = 0.25 if args.model == "yolov5n" else 0.50
    model = yf.YoloV5(args.classes, 0.33, width).float().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.937, nesterov=True)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(args.batch, 3, args.imgsz, args.imgsz, generator=g)
    # targets: [image, class, cx, cy, w, h] normalised, 4 boxes per image
    rows = []
    for i in range(args.batch):
        for k in range(4):
            c = torch.rand(4, generator=g)
            rows.append([i, (i + k) % args.classes, 0.2 + 0.6 * float(c[0]), 0.2 + 0.6 * float(c[1]),
                         0.05 + 0.2 * float(c[2]), 0.05 + 0.2 * float(c[3])])
    targets = torch.tensor(rows, dtype=torch.float32)
    times = []
    for step in range(args.steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        outs = model(x)
        total, _, _ = yf.compute_loss(outs, targets, args.classes, args.imgsz)[:3]
        total.backward()
        opt.step()
        if step:  # the first step warms up allocators and oneDNN
            times.append(time.perf_counter() - t0)
    times.sort()
    ms = 1000 * times[len(times) // 2]
    print(json.dumps({"framework": "pytorch " + torch.__version__, "model": args.model,
                      "threads": args.threads, "batch": args.batch, "imgsz": args.imgsz,
                      "ms_per_step": round(ms, 1),
                      "images_per_sec": round(args.batch * 1000 / ms, 2)}))


if __name__ == "__main__":
    sys.exit(main())
