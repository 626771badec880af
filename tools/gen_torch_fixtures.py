#!/usr/bin/env python3
# Regenerate:  /usr/bin/python3 tools/gen_torch_fixtures.py   (Debian python3-torch 1.13)
#              add --check to re-run everything and compare with the files on disk.
"""PyTorch reference fixtures for sparsetrain's C ops (tests/test_torch_ops.c) and for the
cnn-small network (graph tests). The files are committed so the C tests never need torch.

File format (.stfx), all little-endian:
    b"STFX", u32 count, then `count` tensors, each:
    u32 name_len, name (utf-8, no NUL), u32 ndim, ndim x u32 dims, prod(dims) x float32.
Integer labels are stored as float32 (exact for small ints). A scalar has ndim 1, dims [1].

Conventions. Inputs and parameters are drawn in float32; references are computed in
float64 from those exact float32 values and rounded to float32 once at the end, so the
stored outputs carry no float32 accumulation error of their own. Every op fixture stores
a fixed random `g` and the gradients of loss = sum(y * g). Cases inside a file share a
name prefix ("<case>.x", "<case>.y", ...); the C test finds cases by their "<case>.cfg".
Each file has its own seed, so adding a case to one file leaves the others unchanged.
"""
import argparse
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

from cnn_small_fixture import cnn_small_tensors

MAGIC = b"STFX"


# ------------------------------------------------------------------ file I/O
def write_stfx(path, tensors):
    """tensors: list of (name, array-like). Returns the file size."""
    names = [n for n, _ in tensors]
    assert len(names) == len(set(names)), "duplicate tensor name in " + path
    out = bytearray(MAGIC + struct.pack("<I", len(tensors)))
    for name, arr in tensors:
        a = np.ascontiguousarray(np.asarray(arr, dtype="<f4"))
        if a.ndim == 0:
            a = a.reshape(1)
        nb = name.encode("utf-8")
        out += struct.pack("<I", len(nb)) + nb
        out += struct.pack("<I", a.ndim) + struct.pack("<%dI" % a.ndim, *a.shape)
        out += a.tobytes()
    with open(path, "wb") as f:
        f.write(out)
    return len(out)


def read_stfx(path):
    """Inverse of write_stfx: dict name -> float32 array (used by --check)."""
    with open(path, "rb") as f:
        buf = f.read()
    assert buf[:4] == MAGIC, path
    (count,), off, res = struct.unpack_from("<I", buf, 4), 8, {}
    for _ in range(count):
        (nl,) = struct.unpack_from("<I", buf, off)
        name = buf[off + 4:off + 4 + nl].decode("utf-8")
        off += 4 + nl
        (nd,) = struct.unpack_from("<I", buf, off)
        dims = struct.unpack_from("<%dI" % nd, buf, off + 4)
        off += 4 + 4 * nd
        n = int(np.prod(dims)) if nd else 1
        res[name] = np.frombuffer(buf, "<f4", n, off).reshape(dims)
        off += 4 * n
    assert off == len(buf), "trailing bytes in " + path
    return res


# ------------------------------------------------------------------ helpers
class Gen:
    """float32 random tensors from a private generator (one per file)."""

    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def randn(self, *shape, scale=1.0, offset=0.0):
        return torch.randn(*shape, generator=self.g, dtype=torch.float32) * scale + offset

    def rand(self, *shape, lo=0.0, hi=1.0):
        return torch.rand(*shape, generator=self.g, dtype=torch.float32) * (hi - lo) + lo

    def randint(self, hi, *shape):
        return torch.randint(0, hi, shape, generator=self.g)


def f32(t):
    return t.detach().to(torch.float32).numpy()


def with_grads(gen, fn, **inputs):
    """Evaluate fn in float64 on the float32 inputs; return y, g and d<name> for each
    input (loss = sum(y * g), g drawn in float32)."""
    d = {k: v.double().requires_grad_(True) for k, v in inputs.items()}
    y = fn(**d)
    g = gen.randn(*y.shape)
    (y * g.double()).sum().backward()
    out = [("y", f32(y)), ("g", f32(g))]
    out += [("d" + k, f32(v.grad)) for k, v in d.items()]
    return out


def prefixed(prefix, pairs):
    return [(prefix + "." + n, a) for n, a in pairs]


# ------------------------------------------------------------------ op fixtures
def conv2d_fixture():
    gen = Gen(101)
    # (name, N, C, H, W, K, R, S, stride, pad, dil, groups, bias)
    cases = [
        ("k3s1p1", 2, 4, 8, 8, 6, 3, 3, (1, 1), (1, 1), (1, 1), 1, True),
        ("k3s2p1_nobias", 3, 5, 9, 7, 8, 3, 3, (2, 2), (1, 1), (1, 1), 1, False),
        ("k1", 2, 16, 5, 6, 12, 1, 1, (1, 1), (0, 0), (1, 1), 1, True),
        ("k1s2", 2, 6, 7, 9, 5, 1, 1, (2, 2), (0, 0), (1, 1), 1, False),
        ("k5d2p4", 2, 3, 11, 10, 4, 5, 5, (1, 1), (4, 4), (2, 2), 1, True),
        ("groups2", 2, 6, 7, 8, 4, 3, 3, (1, 1), (1, 1), (1, 1), 2, True),
        ("dw3x3s2", 2, 8, 9, 10, 8, 3, 3, (2, 2), (1, 1), (1, 1), 8, False),
        ("stem6x6s2p2", 2, 3, 32, 32, 16, 6, 6, (2, 2), (2, 2), (1, 1), 1, False),
        ("odd_k3p0", 3, 5, 9, 7, 7, 3, 3, (1, 1), (0, 0), (1, 1), 1, True),
        # non-square kernel, stride and padding: catches h/w mix-ups
        ("rect", 3, 5, 9, 11, 7, 3, 5, (2, 1), (1, 2), (1, 1), 1, True),
        # big enough to take blocked / BLAS paths in the fast op
        ("c16k32", 2, 16, 12, 12, 32, 3, 3, (1, 1), (1, 1), (1, 1), 1, True),
    ]
    res = []
    for name, N, C, H, W, K, R, S, st, pd, dl, grp, bias in cases:
        fan_in = C // grp * R * S
        inp = {"x": gen.randn(N, C, H, W), "w": gen.randn(K, C // grp, R, S, scale=fan_in ** -0.5)}
        if bias:
            inp["b"] = gen.randn(K, scale=0.5)

        def fn(x, w, b=None):
            return F.conv2d(x, w, b, stride=st, padding=pd, dilation=dl, groups=grp)

        cfg = [st[0], st[1], pd[0], pd[1], dl[0], dl[1], grp, int(bias)]
        pairs = [(k, f32(v)) for k, v in inp.items()] + [("cfg", np.array(cfg))]
        res += prefixed(name, pairs + with_grads(gen, fn, **inp))
    return res


def linear_fixture():
    gen = Gen(102)
    res = []
    for name, N, I, O in [("small", 5, 37, 11), ("mid", 16, 160, 48), ("n1", 1, 9, 3)]:
        inp = {"x": gen.randn(N, I), "w": gen.randn(O, I, scale=I ** -0.5),
               "b": gen.randn(O, scale=0.5)}
        pairs = [(k, f32(v)) for k, v in inp.items()] + [("cfg", np.array([N, I, O]))]
        res += prefixed(name, pairs + with_grads(gen, lambda x, w, b: F.linear(x, w, b), **inp))
    return res


def batchnorm_fixture():
    gen = Gen(103)
    eps, mom = 1e-5, 0.1
    res = []
    # an offset mean checks the variance is not computed as E[x^2] - E[x]^2 carelessly
    for name, N, C, H, W, offset, training in [("train", 4, 6, 5, 7, 0.0, 1),
                                                ("train_offset", 8, 16, 6, 6, 3.0, 1),
                                                ("eval", 3, 5, 4, 6, 0.5, 0)]:
        x = gen.randn(N, C, H, W, scale=1.5, offset=offset)
        gamma, beta = gen.randn(C, scale=0.3, offset=1.0), gen.randn(C, scale=0.3)
        # non-default running stats so both the update and eval mode are really tested
        rm, rv = gen.randn(C, scale=0.5), gen.rand(C, lo=0.5, hi=2.0)
        rm64, rv64 = rm.double(), rv.double()  # updated in place by F.batch_norm

        def fn(x, gamma, beta):
            return F.batch_norm(x, rm64, rv64, gamma, beta, training=bool(training),
                                momentum=mom, eps=eps)

        pairs = [("x", f32(x)), ("gamma", f32(gamma)), ("beta", f32(beta)),
                 ("running_mean", f32(rm)), ("running_var", f32(rv)),
                 ("cfg", np.array([eps, mom, training], dtype=np.float64))]
        pairs += with_grads(gen, fn, x=x, gamma=gamma, beta=beta)
        pairs += [("running_mean_after", f32(rm64)), ("running_var_after", f32(rv64))]
        res += prefixed(name, pairs)
    return res


def activations_fixture():
    gen = Gen(104)
    x = gen.randn(3, 5, 7, 6, scale=3.0)
    flat = x.view(-1)
    # exact zeros pin PyTorch's convention (relu'(0) = 0, leaky'(0) = slope); large
    # magnitudes catch exp() overflow in sigmoid / silu
    flat[:4] = 0.0
    flat[4:12] = torch.tensor([20.0, -20.0, 40.0, -40.0, 90.0, -90.0, 100.0, -100.0])
    flat[12:20] = torch.tensor([1e-4, -1e-4, 1e-7, -1e-7, 0.5, -0.5, 8.0, -8.0])
    ops = [("relu", F.relu, []), ("leaky_relu", lambda t: F.leaky_relu(t, 0.1), [0.1]),
           ("silu", F.silu, []), ("sigmoid", torch.sigmoid, []),
           ("relu6", lambda t: torch.clamp(t, 0.0, 6.0), [0.0, 6.0]),
           ("clip", lambda t: torch.clamp(t, -1.5, 2.5), [-1.5, 2.5]),
           ("softmax", lambda t: torch.softmax(t, dim=1), [])]
    res = []
    for name, fn, cfg in ops:
        pairs = [("x", f32(x)), ("cfg", np.array(cfg or [0.0]))]
        res += prefixed(name, pairs + with_grads(gen, lambda x: fn(x), x=x))
    return res


def pool_fixture():
    gen = Gen(105)
    # (name, kind, N, C, H, W, k, s, p, ceil_mode, count_include_pad)
    cases = [
        ("max_k3s2p1", "max", 2, 3, 9, 8, 3, 2, 1, 0, 1),
        ("max_k2s2", "max", 2, 4, 8, 10, 2, 2, 0, 0, 1),
        ("max_k2s2_odd", "max", 2, 3, 7, 9, 2, 2, 0, 0, 1),
        ("max_k5s1p2", "max", 2, 4, 8, 7, 5, 1, 2, 0, 1),
        ("max_k3s2p1_ceil", "max", 2, 3, 8, 10, 3, 2, 1, 1, 1),
        ("avg_k3s2p1", "avg", 2, 3, 9, 8, 3, 2, 1, 0, 1),
        # ceil_mode: the last window runs past the padded edge; PyTorch's divisor counts
        # padding but not the part beyond it
        ("avg_k3s2p1_ceil", "avg", 2, 3, 8, 10, 3, 2, 1, 1, 1),
        ("avg_k2s2_ceil", "avg", 2, 3, 7, 9, 2, 2, 0, 1, 1),
        ("avg_k3s2p1_ceil_nopad", "avg", 2, 3, 8, 10, 3, 2, 1, 1, 0),
    ]
    res = []
    for name, kind, N, C, H, W, k, s, p, ceil, cip in cases:
        x = gen.randn(N, C, H, W)
        if kind == "max":
            fn = lambda x: F.max_pool2d(x, k, s, p, ceil_mode=bool(ceil))
        else:
            fn = lambda x: F.avg_pool2d(x, k, s, p, ceil_mode=bool(ceil),
                                        count_include_pad=bool(cip))
        cfg = np.array([k, k, s, s, p, p, ceil, cip])
        res += prefixed(name, [("x", f32(x)), ("cfg", cfg)] + with_grads(gen, fn, x=x))
    # global average pool (= adaptive_avg_pool2d(x, 1)), y is [N, C]
    x = gen.randn(3, 5, 6, 7)
    fn = lambda x: F.adaptive_avg_pool2d(x, 1).flatten(1)
    res += prefixed("global_avg", [("x", f32(x)), ("cfg", np.array([0.0]))] +
                    with_grads(gen, fn, x=x))
    return res


def shape_fixture():
    gen = Gen(106)
    res = []
    for f in (2, 3):
        x = gen.randn(2, 3, 5, 4)
        fn = lambda x: F.interpolate(x, scale_factor=f, mode="nearest")
        res += prefixed("upsample%d" % f, [("x", f32(x)), ("cfg", np.array([f]))] +
                        with_grads(gen, fn, x=x))
    cs = [3, 5, 2]
    xs = {"x%d" % i: gen.randn(2, c, 4, 3) for i, c in enumerate(cs)}
    pairs = [(k, f32(v)) for k, v in xs.items()] + [("cfg", np.array(cs))]
    res += prefixed("concat", pairs + with_grads(gen, lambda **a: torch.cat(
        [a["x%d" % i] for i in range(len(cs))], 1), **xs))
    return res


def xent_fixture():
    gen = Gen(107)
    res = []
    # scale 40: logits up to ~100 overflow a naive exp() in float32
    for name, N, C, scale in [("xent", 8, 10, 2.0), ("xent_large", 6, 7, 40.0),
                              ("xent_n1", 1, 5, 1.0)]:
        logits, labels = gen.randn(N, C, scale=scale), gen.randint(C, N)
        g = gen.rand(1, lo=0.5, hi=2.0)  # backward's `scale` argument
        lg = logits.double().requires_grad_(True)
        loss = F.cross_entropy(lg, labels, reduction="mean")
        (loss * g.double()).sum().backward()
        res += prefixed(name, [
            ("logits", f32(logits)), ("labels", labels.numpy()), ("cfg", np.array([N, C])),
            ("probs", f32(torch.softmax(lg.detach(), 1))), ("loss", f32(loss).reshape(1)),
            ("g", f32(g)), ("dlogits", f32(lg.grad))])
    return res


FIXTURES = {
    "conv2d": conv2d_fixture, "linear": linear_fixture, "batchnorm2d": batchnorm_fixture,
    "activations": activations_fixture, "pool": pool_fixture, "shape": shape_fixture,
    "xent": xent_fixture, "cnn_small": cnn_small_tensors,
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "torch"))
    ap.add_argument("--check", action="store_true",
                    help="regenerate in memory and compare bit-for-bit with the files on disk")
    ap.add_argument("--only", nargs="*", default=list(FIXTURES))
    args = ap.parse_args()
    torch.set_num_threads(1)  # deterministic float64 reductions; 2 shared cores
    torch.manual_seed(0)      # nothing should use the global generator; pinned anyway
    os.makedirs(args.out, exist_ok=True)
    total, bad = 0, 0
    for name in args.only:
        tensors = FIXTURES[name]()
        path = os.path.join(args.out, name + ".stfx")
        if args.check:
            old = read_stfx(path)
            new = dict((n, np.asarray(a, dtype="<f4").reshape(-1)) for n, a in tensors)
            same = set(old) == set(new) and all(
                np.array_equal(old[n].reshape(-1), new[n]) for n in new)
            print("%-12s %s" % (name, "identical" if same else "DIFFERS"))
            bad += not same
            continue
        size = write_stfx(path, tensors)
        total += size
        print("%-12s %3d tensors %9d bytes" % (name, len(tensors), size))
    if not args.check:
        print("total %d bytes" % total)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
