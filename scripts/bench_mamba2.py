#!/usr/bin/env python3
"""Kernel-only timing of mamba_ssm 2.3.2.post1's Triton SSD kernels, the anchor for
benches/heads.rs, and the accuracy of both against one fp64 reference on the same inputs.

Runs on the GPU machine with the mamba_ssm sdist unpacked at --mamba-src (only its Triton
kernels are used, so its CUDA extension is not built: the package's __init__, which imports
that extension, is bypassed). Method as benches/heads.rs: a CUDA graph of REPS back-to-back
calls, replayed, timed with events, median replay / REPS. Prefill is
`mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size=256, D, dt_bias, dt_softplus=True)`
(Mamba2's call; the z gate lives in its gated norm), decode is `selective_state_update` in
the heads form, as Mamba2.step calls it (dt, A, D, dt_bias expanded over P and N with stride 0,
state updated in place).

--dump DIR: the inputs and our y written by `benches/heads.rs --dump DIR`; both outputs are
compared with a float64 recurrence of the same inputs.
--ours CSV: our timings (benches/heads.rs --csv); prints the joined markdown table.

usage: bench_mamba2.py --mamba-src DIR [--quick] [--decode-only] [--csv FILE] [--dump DIR]
                       [--ours CSV]
"""
import argparse
import csv
import os
import sys
import types

import numpy as np
import torch

from bench_graph import time_graph
P, N, G = 64, 128, 1


def import_mamba(src):
    pkg = types.ModuleType("mamba_ssm")
    pkg.__path__ = [os.path.join(src, "mamba_ssm")]
    sys.modules["mamba_ssm"] = pkg
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    from mamba_ssm.ops.triton.selective_state_update import selective_state_update

    return mamba_chunk_scan_combined, selective_state_update


def inputs(dt, b, h, l, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)

    def uni(lo, hi, *shape, dtype=torch.float32):
        return (lo + (hi - lo) * torch.rand(*shape, generator=g, device="cuda")).to(dtype)

    x = uni(-1, 1, b, l, h, P, dtype=dt)
    dtv = uni(-1, 1, b, l, h, dtype=dt)
    A = -uni(1, 16, h)
    B = uni(-1, 1, b, l, G, N, dtype=dt)
    C = uni(-1, 1, b, l, G, N, dtype=dt)
    D = uni(-1, 1, h)
    bias = torch.log(torch.expm1(uni(0.001, 0.1, h)))
    state = uni(-1, 1, b, h, P, N)
    return x, dtv, A, B, C, D, bias, state


def ref_f64(x, dtv, A, B, C, D, bias):
    """The op in float64: the recurrence of docs/s6scan_heads.md, step by step."""
    x, dtv, A, B, C, D, bias = (t.double() for t in (x, dtv, A, B, C, D, bias))
    b, l, h, p = x.shape
    rep = h // B.shape[2]
    Bh = B.repeat_interleave(rep, dim=2)
    Ch = C.repeat_interleave(rep, dim=2)
    delta = torch.nn.functional.softplus(dtv + bias)  # threshold 20, as mamba_ssm
    s = torch.zeros(b, h, p, B.shape[-1], dtype=torch.float64, device=x.device)
    ys = []
    for t in range(l):
        a = torch.exp(delta[:, t] * A)[..., None, None]
        s = a * s + (delta[:, t, :, None] * x[:, t])[..., None] * Bh[:, t, :, None, :]
        ys.append((s * Ch[:, t, :, None, :]).sum(-1))
    return torch.stack(ys, 1) + x * D[None, None, :, None]


def err(got, want):
    d = got.double() - want
    return (d.norm() / want.norm()).item(), (d.abs().max() / want.abs().max()).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mamba-src", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--csv")
    ap.add_argument("--dump")
    ap.add_argument("--ours")
    ap.add_argument("--decode-only", action="store_true", help="only the L = 1 shapes")
    args = ap.parse_args()
    scan, update = import_mamba(args.mamba_src)
    props = torch.cuda.get_device_properties(0)
    print(f"device: {props.name}, {props.multi_processor_count} SMs; torch {torch.__version__}")

    if args.dump:
        for tag, dt in (("f16", torch.float16), ("bf16", torch.bfloat16)):
            d = os.path.join(args.dump, tag)
            if not os.path.isdir(d):
                continue
            ld = lambda n: torch.from_numpy(np.load(os.path.join(d, n + ".npy"))).cuda()
            x, dtv, B, C = (ld(n).to(dt) for n in ("x", "dt", "B", "C"))
            A, D, bias = ld("A"), ld("D"), ld("dt_bias")
            ours = ld("y_ours")
            want = ref_f64(x, dtv, A, B, C, D, bias)
            theirs = scan(x, dtv, A, B, C, 256, D=D, dt_bias=bias, dt_softplus=True)
            eo, et = err(ours, want), err(theirs, want)
            print(
                f"accuracy {tag} 130m B1 L1024 vs fp64 (rel L2, max/max|ref|): "
                f"ours {eo[0]:.3e} {eo[1]:.3e}, mamba_ssm {et[0]:.3e} {et[1]:.3e}"
            )

    rows = ["impl,dtype,B,H,L,variant,us"]
    shapes = [(1, 24, 1024), (1, 24, 1)]
    if not args.quick:
        shapes = []
        for h in (24, 80):
            shapes += [(1, h, 1024), (1, h, 4096), (8, h, 1024), (1, h, 128), (1, h, 1), (8, h, 1)]
    if args.decode_only:
        shapes = [s for s in shapes if s[2] == 1]
    for tag, dt in (("f16", torch.float16), ("bf16", torch.bfloat16)):
        for b, h, l in shapes:
            x, dtv, A, B, C, D, bias, state = inputs(dt, b, h, l)
            if l == 1:
                xs, dts = x[:, 0], dtv[:, 0, :, None].expand(b, h, P)
                As = A[:, None, None].expand(h, P, N)
                Ds, bs = D[:, None].expand(h, P), bias[:, None].expand(h, P)
                Bs, Cs = B[:, 0], C[:, 0]
                fn = lambda: update(state, xs, dts, As, Bs, Cs, D=Ds, dt_bias=bs, dt_softplus=True)
                variant = "selective_state_update"
            else:
                fn = lambda: scan(x, dtv, A, B, C, 256, D=D, dt_bias=bias, dt_softplus=True)
                variant = "mamba_chunk_scan_combined"
            us = time_graph(fn)
            print(f"mamba_ssm {tag} B{b} H{h} L{l}: {us:.2f} us ({variant})")
            rows.append(f"mamba_ssm,{tag},{b},{h},{l},{variant},{us:.3f}")
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("\n".join(rows) + "\n")
    if args.ours:
        ours = {}
        with open(args.ours) as f:
            for r in csv.DictReader(f):
                if r["variant"] == "auto":
                    ours[(r["dtype"], r["B"], r["H"], r["L"])] = float(r["us"])
        print("\n| dtype | shape | B | L | ours µs | mamba_ssm µs | speed-up |")
        print("|---|---|---|---|---|---|---|")
        for r in rows[1:]:
            impl, tag, b, h, l, variant, us = r.split(",")
            o = ours.get((tag, b, h, l))
            if o is None:
                continue
            name = "130m (24 heads)" if h == "24" else "2.7b (80 heads)"
            kind = "decode" if l == "1" else "prefill"
            print(f"| {tag} | {name} {kind} | {b} | {l} | {o:.1f} | {float(us):.1f} | {float(us) / o:.2f}× |")


if __name__ == "__main__":
    main()
