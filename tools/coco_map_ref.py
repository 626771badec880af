#!/usr/bin/env python3
"""Reference COCO bbox AP for tests/test_detect_eval.c.

    coco_map_ref.py IN.json OUT.json [--require-pycocotools]

IN.json: {"nc": K, "images": [{"dets": [[x1, y1, x2, y2, score, cls], ...],
                               "gt":   [[x1, y1, x2, y2, cls], ...]}, ...]}
OUT.json: {"reference": "pycocotools" | "port", "ap50": [K], "ap50_95": [K],
           "precision": P, "recall": R}
(-1 for a class without ground truth). P and R: YOLOv5's summary (utils/metrics.py
ap_per_class) at IoU 0.5 on the COCO matches: per-class curves np.interp'ed on a
1000-point confidence grid, mean F1 smoothed (fraction 0.1), first maximum; detections in
COCOeval's order (YOLOv5's own quicksort may order equal scores differently).

With pycocotools importable, COCOeval itself runs (area range "all", no detection limit
per image: maxDets 10^6). Otherwise, unless --require-pycocotools (exit 77 then), a
line-by-line numpy port of COCOeval.evaluateImg/accumulate for that case runs: same
argsort(kind='mergesort'), matching loop, cumsum, envelope and searchsorted, written
independently of the C code so that the test still compares two implementations.
"""
import json
import sys

import numpy as np

MAX_DETS = 1000000


def load(path):
    with open(path) as f:
        return json.load(f)


def to_xywh(b):
    return [b[0], b[1], b[2] - b[0], b[3] - b[1]]


def with_pycocotools(data):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    nc = data["nc"]
    images, anns, dets = [], [], []
    for i, im in enumerate(data["images"]):
        images.append({"id": i + 1, "width": 10000, "height": 10000})
        for g in im["gt"]:
            xywh = to_xywh(g)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(g[4]) + 1,
                         "bbox": xywh, "area": xywh[2] * xywh[3], "iscrowd": 0})
        for d in im["dets"]:
            dets.append({"image_id": i + 1, "category_id": int(d[5]) + 1, "bbox": to_xywh(d),
                         "score": d[4]})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": c + 1, "name": str(c)} for c in range(nc)]}
    gt.createIndex()
    dt = gt.loadRes(dets) if dets else COCO()
    ev = COCOeval(gt, dt, "bbox")
    ev.params.maxDets = [1, 10, MAX_DETS]
    ev.params.areaRng = [[0, 1e10]]
    ev.params.areaRngLbl = ["all"]
    ev.evaluate()
    ev.accumulate()
    prec = ev.eval["precision"][:, :, :, 0, -1]  # [T, R, K]
    return per_class(prec, nc)


def per_class(prec, nc):
    ap50, ap = [], []
    for k in range(nc):
        p = prec[:, :, k]
        if (p > -1).any():
            ap50.append(float(np.mean(p[0][p[0] > -1])))
            ap.append(float(np.mean(p[p > -1])))
        else:
            ap50.append(-1.0)
            ap.append(-1.0)
    return ap50, ap


def bb_iou(d, g):
    """maskApi.c bbIou for non-crowd boxes, [x, y, w, h]."""
    out = np.zeros((len(d), len(g)))
    for j, gb in enumerate(g):
        ga = gb[2] * gb[3]
        for i, db in enumerate(d):
            da = db[2] * db[3]
            w = min(db[2] + db[0], gb[2] + gb[0]) - max(db[0], gb[0])
            if w <= 0:
                continue
            h = min(db[3] + db[1], gb[3] + gb[1]) - max(db[1], gb[1])
            if h <= 0:
                continue
            inter = w * h
            out[i, j] = inter / (da + ga - inter)
    return out


def with_port(data):
    nc = data["nc"]
    iou_thrs = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
    rec_thrs = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
    T, R = len(iou_thrs), len(rec_thrs)
    prec = -np.ones((T, R, nc))
    px = np.linspace(0, 1, 1000)
    pc, rc_grid, with_gt = np.zeros((nc, 1000)), np.zeros((nc, 1000)), []
    for k in range(nc):
        E = []
        for im in data["images"]:
            gt = [to_xywh(g) for g in im["gt"] if int(g[4]) == k]
            dt = [d for d in im["dets"] if int(d[5]) == k]
            if not gt and not dt:
                continue
            dtind = np.argsort([-d[4] for d in dt], kind="mergesort")
            dt = [dt[i] for i in dtind[0:MAX_DETS]]
            ious = bb_iou([to_xywh(d) for d in dt], gt)
            G, D = len(gt), len(dt)
            gtm = np.zeros((T, G))
            dtm = np.zeros((T, D))
            for tind, t in enumerate(iou_thrs):
                for dind in range(D):
                    iou = min([t, 1 - 1e-10])
                    m = -1
                    for gind in range(G):
                        if gtm[tind, gind] > 0:
                            continue
                        if ious[dind, gind] < iou:
                            continue
                        iou = ious[dind, gind]
                        m = gind
                    if m == -1:
                        continue
                    dtm[tind, dind] = m + 1
                    gtm[tind, m] = dind + 1
            E.append((np.array([d[4] for d in dt], dtype=float).reshape(-1), dtm, G))
        if not E:
            continue
        scores = np.concatenate([e[0] for e in E])
        inds = np.argsort(-scores, kind="mergesort")
        dtm = np.concatenate([e[1] for e in E], axis=1)[:, inds]
        npig = sum(e[2] for e in E)
        if npig == 0:
            continue
        with_gt.append(k)
        if len(scores):
            conf = scores[inds]
            tp0 = (dtm[0] > 0).astype(float)
            tpc, fpc = tp0.cumsum(), (1 - tp0).cumsum()
            rc_grid[k] = np.interp(-px, -conf, tpc / (npig + 1e-16), left=0)
            pc[k] = np.interp(-px, -conf, tpc / (tpc + fpc), left=1)
        tps = dtm > 0
        fps = np.logical_not(dtm > 0)
        tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
        fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
        for t, (tp, fp) in enumerate(zip(tp_sum, fp_sum)):
            nd = len(tp)
            rc = tp / npig
            pr = (tp / (fp + tp + np.spacing(1))).tolist()
            q = [0.0] * R
            for i in range(nd - 1, 0, -1):
                if pr[i] > pr[i - 1]:
                    pr[i - 1] = pr[i]
            for ri, pi in enumerate(np.searchsorted(rc, rec_thrs, side="left")):
                if pi >= nd:
                    break
                q[ri] = pr[pi]
            prec[t, :, k] = q
    p, r = 0.0, 0.0
    if with_gt:
        pk, rk = pc[with_gt], rc_grid[with_gt]
        f1 = 2 * pk * rk / (pk + rk + 1e-16)
        i = smooth(f1.mean(0), 0.1).argmax()
        p, r = float(pk[:, i].mean()), float(rk[:, i].mean())
    return per_class(prec, nc), p, r


def smooth(y, f=0.05):
    """YOLOv5's box filter of fraction f."""
    nf = round(len(y) * f * 2) // 2 + 1
    p = np.ones(nf // 2)
    yp = np.concatenate((p * y[0], y, p * y[-1]), 0)
    return np.convolve(yp, np.ones(nf) / nf, mode="valid")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    data = load(args[0])
    try:
        import pycocotools  # noqa: F401
        have = True
    except ImportError:
        have = False
    if not have and "--require-pycocotools" in sys.argv:
        print("pycocotools is not installed", file=sys.stderr)
        return 77
    (ap50, ap), p, r = with_port(data)
    if have:
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints progress
            ap50, ap = with_pycocotools(data)
    with open(args[1], "w") as f:
        json.dump({"reference": "pycocotools" if have else "port", "ap50": ap50, "ap50_95": ap,
                   "precision": p, "recall": r}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
