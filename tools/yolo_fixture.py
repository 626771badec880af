#!/usr/bin/env python3
# Regenerate:  /usr/bin/python3 tools/yolo_fixture.py        (Debian python3-torch 1.13)
#              add --check to recompute and compare with the file on disk.
"""PyTorch reference for sparsetrain's YOLOv5 (tests/fixtures/torch/yolo.stfx, read by
tests/test_yolo_model.c and tests/test_yolo_loss.c).

Everything here is restated from docs/yolov5.md and YOLOv5's published code (models/common.py
Conv/Bottleneck/C3/SPPF, utils/loss.py ComputeLoss, utils/metrics.py bbox_iou); nothing is
downloaded. The module layout makes state_dict() produce YOLOv5's parameter names, which
are also ours.

Weights are not stored (yolov5n alone is 1.78M floats): both sides compute them from each
parameter's name with a seed-free integer hash (det_values below, det_fill in the C test),
bit-identical in float32. The file then holds only inputs, head outputs and gradients.

Model cases (yolov5n, nc = 3, input 2x3x64x64): "eval.p{0,1,2}" the three raw head maps with
running statistics; "train.p{s}" in training mode, "train.g{s}" a random head gradient and
"grad.<param>" the gradients of loss = sum(p * g) for a few parameters; "after.<buffer>"
BatchNorm running statistics after that forward.
Loss cases ("<case>.out{s}", "<case>.boxes" rows img, cls, cx, cy, w, h, "<case>.parts" =
box, obj, cls, total, n_targets, "<case>.dout{s}" = d total / d out): YOLOv5's ComputeLoss
with build_targets in float32 (as YOLOv5 runs it, so the assignment decisions are the ones
our float code makes) and the loss itself in float64.
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gen_torch_fixtures import Gen, f32, read_stfx, write_stfx

# ------------------------------------------------------------------ deterministic weights
M64 = (1 << 64) - 1


def name_hash(name):
    """FNV-1a, 64 bit."""
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def det_uniform(name, n):
    """n float32 values in [0, 1) on a 2^-24 grid: splitmix64 of hash(name) + (i+1)*golden."""
    with np.errstate(over="ignore"):
        z = np.uint64(name_hash(name)) + (np.arange(n, dtype=np.uint64) + np.uint64(1)) * \
            np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)).astype(np.float32)


def det_values(name, shape):
    """The value of every parameter and buffer, by kind (the C test's det_fill)."""
    n = int(np.prod(shape))
    u = det_uniform(name, n)
    s = (np.float32(2) * u - np.float32(1)).astype(np.float32)  # exact in float32
    f = np.float32
    if name.endswith("running_var"):
        v = f(1) + f(0.5) * u
    elif name.endswith("running_mean"):
        v = f(0.2) * s
    elif name.endswith("bn.weight"):
        v = f(1) + f(0.25) * s
    elif name.endswith("bn.bias"):
        v = f(0.2) * s
    elif name.endswith("bias"):  # Detect
        v = f(0.5) * s
    else:  # conv weight [K, C, R, S]
        fan_in = int(np.prod(shape[1:]))
        v = (f(2) / np.sqrt(f(fan_in))) * s
    return torch.from_numpy(np.asarray(v, dtype=np.float32).reshape(shape))


# ------------------------------------------------------------------ the model
class Conv(nn.Module):
    def __init__(self, c1, c2, k=1, s=1, p=None):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)

    def forward(self, x):
        return F.silu(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1, c2, shortcut=True, e=1.0):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1, self.cv2 = Conv(c1, c_, 1), Conv(c_, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    def __init__(self, c1, c2, n=1, shortcut=True):
        super().__init__()
        c_ = c2 // 2
        self.cv1, self.cv2, self.cv3 = Conv(c1, c_), Conv(c1, c_), Conv(2 * c_, c2)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1, self.cv2 = Conv(c1, c_), Conv(4 * c_, c2)
        self.k = k

    def forward(self, x):
        x = self.cv1(x)
        y1 = F.max_pool2d(x, self.k, 1, self.k // 2)
        y2 = F.max_pool2d(y1, self.k, 1, self.k // 2)
        return self.cv2(torch.cat((x, y1, y2, F.max_pool2d(y2, self.k, 1, self.k // 2)), 1))


class Detect(nn.Module):
    def __init__(self, nc, ch):
        super().__init__()
        self.m = nn.ModuleList(nn.Conv2d(c, 3 * (nc + 5), 1) for c in ch)


class Cat(nn.Module):
    pass


class Up(nn.Module):
    pass


class YoloV5(nn.Module):
    """The layer table of docs/yolov5.md; forward follows its `input` column."""
    FROM = {12: (11, 6), 16: (15, 4), 19: (18, 14), 22: (21, 10)}

    def __init__(self, nc, depth, width):
        super().__init__()
        ch = lambda c: int(math.ceil(c * width / 8) * 8)
        n = lambda r: max(round(r * depth), 1) if r > 1 else r
        L = [Conv(3, ch(64), 6, 2, 2), Conv(ch(64), ch(128), 3, 2),
             C3(ch(128), ch(128), n(3)), Conv(ch(128), ch(256), 3, 2),
             C3(ch(256), ch(256), n(6)), Conv(ch(256), ch(512), 3, 2),
             C3(ch(512), ch(512), n(9)), Conv(ch(512), ch(1024), 3, 2),
             C3(ch(1024), ch(1024), n(3)), SPPF(ch(1024), ch(1024)),
             Conv(ch(1024), ch(512), 1), Up(), Cat(), C3(2 * ch(512), ch(512), n(3), False),
             Conv(ch(512), ch(256), 1), Up(), Cat(), C3(2 * ch(256), ch(256), n(3), False),
             Conv(ch(256), ch(256), 3, 2), Cat(), C3(2 * ch(256), ch(512), n(3), False),
             Conv(ch(512), ch(512), 3, 2), Cat(), C3(2 * ch(512), ch(1024), n(3), False),
             Detect(nc, (ch(256), ch(512), ch(1024)))]
        self.model = nn.ModuleList(L)

    def forward(self, x, trace=None):
        y = []
        for i, m in enumerate(self.model[:24]):
            if isinstance(m, Cat):
                x = torch.cat([y[j] for j in self.FROM[i]], 1)
            elif isinstance(m, Up):
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            else:
                if i == 9 and trace is not None:
                    trace.append(m.cv1(x).detach())
                x = m(x)
            y.append(x)
        return [conv(y[j]) for conv, j in zip(self.model[24].m, (17, 20, 23))]


def count_params(m):
    return sum(p.numel() for p in m.parameters())


def load_det(model):
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            t.copy_(det_values(name, tuple(t.shape)).double())


GRAD_PARAMS = ["model.0.conv.weight", "model.0.bn.weight", "model.2.m.0.cv2.conv.weight",
               "model.4.m.1.cv1.bn.bias", "model.9.cv1.bn.weight", "model.13.cv3.bn.bias",
               "model.23.m.0.cv2.bn.weight", "model.24.m.0.weight", "model.24.m.1.bias",
               "model.24.m.2.bias"]
AFTER_BUFFERS = ["model.0.bn.running_mean", "model.0.bn.running_var",
                 "model.9.cv2.bn.running_var", "model.23.cv3.bn.running_mean"]


def model_tensors():
    gen = Gen(2401)
    model = YoloV5(3, 0.33, 0.25).double()
    load_det(model)
    x = gen.randn(2, 3, 64, 64)
    res = [("x", f32(x))]
    model.eval()
    with torch.no_grad():
        for s, p in enumerate(model(x.double())):
            res.append(("eval.p%d" % s, f32(p)))
    model.train()
    trace = []
    outs = model(x.double(), trace)
    # SPPF's max pools: a near-tie in its input would let float32 pick another winner
    v = trace[0].flatten(2).sort(dim=2, descending=True)[0]
    gap = (v[..., 0] - v[..., 1]).min().item()
    assert gap > 1e-4, "SPPF max-pool near-tie (%g): change the seed" % gap
    loss = 0
    for s, p in enumerate(outs):
        g = gen.randn(*p.shape)
        res += [("train.p%d" % s, f32(p)), ("train.g%d" % s, f32(g))]
        loss = loss + (p * g.double()).sum()
    loss.backward()
    params = dict(model.named_parameters())
    res += [("grad." + n, f32(params[n].grad)) for n in GRAD_PARAMS]
    bufs = dict(model.named_buffers())
    res += [("after." + n, f32(bufs[n])) for n in AFTER_BUFFERS]
    return res


# ------------------------------------------------------------------ the loss (ComputeLoss)
ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
STRIDES = [8, 16, 32]
BALANCE = [4.0, 1.0, 0.4]


def bbox_ciou(box1, box2, eps=1e-7):
    """utils/metrics.py bbox_iou(xywh=True, CIoU=True), alpha under no_grad."""
    (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.chunk(4, -1), box2.chunk(4, -1)
    w1_, h1_, w2_, h2_ = w1 / 2, h1 / 2, w2 / 2, h2 / 2
    b1_x1, b1_x2, b1_y1, b1_y2 = x1 - w1_, x1 + w1_, y1 - h1_, y1 + h1_
    b2_x1, b2_x2, b2_y1, b2_y2 = x2 - w2_, x2 + w2_, y2 - h2_, y2 + h2_
    inter = (torch.min(b1_x2, b2_x2) - torch.max(b1_x1, b2_x1)).clamp(0) * \
            (torch.min(b1_y2, b2_y2) - torch.max(b1_y1, b2_y1)).clamp(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = torch.max(b1_x2, b2_x2) - torch.min(b1_x1, b2_x1)
    ch = torch.max(b1_y2, b2_y2) - torch.min(b1_y1, b2_y1)
    c2 = cw ** 2 + ch ** 2 + eps
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2 + (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4
    v = (4 / math.pi ** 2) * torch.pow(torch.atan(w2 / h2) - torch.atan(w1 / h1), 2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


def build_targets(shapes, targets, anchors_grid, anchor_t=4.0):
    """ComputeLoss.build_targets, float32. targets [nt, 6] image, class, x, y, w, h."""
    na, nt = 3, targets.shape[0]
    tcls, tbox, indices, anch = [], [], [], []
    gain = torch.ones(7)
    ai = torch.arange(na).float().view(na, 1).repeat(1, nt)
    targets = torch.cat((targets.repeat(na, 1, 1), ai[..., None]), 2)
    g = 0.5
    off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]]).float() * g
    for i, shape in enumerate(shapes):
        anchors = anchors_grid[i]
        gain[2:6] = torch.tensor(shape, dtype=torch.float32)[[3, 2, 3, 2]]
        t = targets * gain
        if nt:
            r = t[..., 4:6] / anchors[:, None]
            j = torch.max(r, 1 / r).max(2)[0] < anchor_t
            t = t[j]
            gxy = t[:, 2:4]
            gxi = gain[[2, 3]] - gxy
            j, k = ((gxy % 1 < g) & (gxy > 1)).T
            l, m = ((gxi % 1 < g) & (gxi > 1)).T
            j = torch.stack((torch.ones_like(j), j, k, l, m))
            t = t.repeat((5, 1, 1))[j]
            offsets = (torch.zeros_like(gxy)[None] + off[:, None])[j]
        else:
            t = targets[0]
            offsets = 0
        bc, gxy, gwh, a = t.split((2, 2, 2, 1), 1)
        a, (b, c) = a.long().view(-1), bc.long().T
        gij = (gxy - offsets).long()
        gi, gj = gij.T
        indices.append((b, a, gj.clamp_(0, shape[2] - 1), gi.clamp_(0, shape[3] - 1)))
        tbox.append(torch.cat((gxy - gij, gwh), 1))
        anch.append(anchors[a])
        tcls.append(c)
    return tcls, tbox, indices, anch


def compute_loss(outs, targets, nc, img):
    """ComputeLoss.__call__ on raw head maps [N, 3*(nc+5), ny, nx] (float64, requires grad).
    Returns total, (box, obj, cls) and the number of assigned pairs."""
    nl = 3
    hyp_box, hyp_obj, hyp_cls = 0.05 * 3 / nl, 1.0 * (img / 640) ** 2 * 3 / nl, 0.5 * nc / 80 * 3 / nl
    anchors_grid = [torch.tensor(a, dtype=torch.float32).view(3, 2) / s
                    for a, s in zip(ANCHORS, STRIDES)]
    p = [o.view(o.shape[0], 3, nc + 5, o.shape[2], o.shape[3]).permute(0, 1, 3, 4, 2)
         for o in outs]
    tcls, tbox, indices, anchors = build_targets([pi.shape for pi in p], targets, anchors_grid)
    lcls = lbox = lobj = torch.zeros(1, dtype=torch.float64)
    n_all = 0
    for i, pi in enumerate(p):
        b, a, gj, gi = indices[i]
        tobj = torch.zeros(pi.shape[:4], dtype=pi.dtype)
        n = b.shape[0]
        n_all += n
        if n:
            pxy, pwh, _, pcls = pi[b, a, gj, gi].split((2, 2, 1, nc), 1)
            pxy = pxy.sigmoid() * 2 - 0.5
            pwh = (pwh.sigmoid() * 2) ** 2 * anchors[i].double()
            pbox = torch.cat((pxy, pwh), 1)
            iou = bbox_ciou(pbox, tbox[i].double()).squeeze(-1)
            lbox = lbox + (1.0 - iou).mean()
            iou = iou.detach().clamp(0)
            # tobj[b, a, gj, gi] = iou, written in order so that the LAST duplicate wins
            # (what PyTorch's CPU index_put does; spelled out so the fixture relies on it)
            for q in range(n):
                tobj[b[q], a[q], gj[q], gi[q]] = iou[q]
            if nc > 1:
                t = torch.zeros_like(pcls)
                t[range(n), tcls[i]] = 1.0
                lcls = lcls + F.binary_cross_entropy_with_logits(pcls, t)
        lobj = lobj + F.binary_cross_entropy_with_logits(pi[..., 4], tobj) * BALANCE[i]
    lbox, lobj, lcls = lbox * hyp_box, lobj * hyp_obj, lcls * hyp_cls
    bs = p[0].shape[0]
    return (lbox + lobj + lcls) * bs, (lbox, lobj, lcls), n_all


# image, class, cx, cy, w, h (normalised). At 96x96 the grids are 12, 6, 3.
LOSS_BOXES = [
    (0, 0, 0.30, 0.40, 0.20, 0.25),     # ordinary box: P3 and P4 anchors
    (0, 1, 0.4575, 0.62, 0.15, 0.10),   # x*12 = 5.49: just left of a P3 cell centre
    (0, 2, 0.5425, 0.30, 0.12, 0.22),   # x*12 = 6.51: just right of one
    (0, 2, 0.70, 0.70, 0.005, 0.004),   # tiny: matches no anchor at any scale
    (1, 0, 0.21, 0.21, 0.30, 0.28),     # two boxes in one cell with the same anchors:
    (1, 1, 0.23, 0.22, 0.28, 0.30),     #   the second one's IoU is the objectness target
    (1, 2, 0.03, 0.97, 0.06, 0.05),     # at the image corner: no neighbour cells, gxy < 1
    (1, 1, 0.999, 0.50, 0.90, 0.70),    # huge, at the right edge: P5, cell clamped
]


def loss_case(gen, prefix, nc, img, N, boxes, scale=1.5):
    outs = [gen.randn(N, 3 * (nc + 5), img // s, img // s, scale=scale) for s in STRIDES]
    targets = torch.tensor(boxes, dtype=torch.float32).view(-1, 6)
    d = [o.double().requires_grad_(True) for o in outs]
    total, (lbox, lobj, lcls), n = compute_loss(d, targets, nc, img)
    total.backward()
    parts = np.array([lbox.item(), lobj.item(), lcls.item(), total.item(), n])
    res = [("cfg", np.array([nc, img, N])), ("boxes", targets.numpy().reshape(-1, 6)),
           ("parts", parts)]
    res += [("out%d" % s, f32(o)) for s, o in enumerate(outs)]
    res += [("dout%d" % s, f32(o.grad)) for s, o in enumerate(d)]
    return [(prefix + "." + n_, a) for n_, a in res]


def loss_tensors():
    gen = Gen(2402)
    res = loss_case(gen, "loss", 3, 96, 2, LOSS_BOXES)
    # one class (no class loss in YOLOv5), a non-square input and other boxes
    res += loss_case(gen, "loss1", 1, 64, 2, [(0, 0, 0.5, 0.5, 0.3, 0.6), (1, 0, 0.26, 0.7, 0.1, 0.1)])
    # no boxes at all: objectness only
    res += loss_case(gen, "loss0", 2, 64, 1, [])
    return res


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "torch", "yolo.stfx"))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    n_model = count_params(YoloV5(10, 0.33, 0.25)), count_params(YoloV5(10, 0.33, 0.5))
    print("params at nc=10: yolov5n %d, yolov5s %d" % n_model)
    tensors = model_tensors() + loss_tensors()
    if args.check:
        old = read_stfx(args.out)
        new = dict((n, np.asarray(a, dtype="<f4").reshape(-1)) for n, a in tensors)
        same = set(old) == set(new) and all(np.array_equal(old[n].reshape(-1), new[n]) for n in new)
        print("yolo.stfx", "identical" if same else "DIFFERS")
        return 0 if same else 1
    print("yolo.stfx: %d tensors, %d bytes" % (len(tensors), write_stfx(args.out, tensors)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
