#!/usr/bin/env python3
"""Kernel-only timing of mamba_ssm's selective scan, the anchor for benches/kernels.rs.

Runs on the GPU machine with mamba_ssm 2.3.2.post1 importable (its CUDA extension
`selective_scan_cuda` built; see scripts/bench_gpu.sh). Same method as the Rust bench: a CUDA
graph of REPS back-to-back calls, replayed, timed with events, median replay / REPS. Same
shapes and configuration (delta_bias + softplus, D skip, z gate, N = 16; the L = 1 decode step
is mamba_ssm's Triton `selective_state_update` with the state updated in place, and its
`selective_scan_fn` at L = 1 is listed too).

Also prints mamba_ssm's own error against an fp64 reference (the op in float64 on copies of
the same inputs) at B 1, D 1536, L 1024. With --dump DIR (written by
`benches/kernels.rs --dump DIR`): on the inputs our bench used, mamba_ssm's error and ours
against the same fp64 reference, per dtype at B 1, D 1536 and D 5120, L 1024.

usage: bench_mamba.py [--quick] [--csv FILE] [--dump DIR] [--accuracy-only]
"""
import argparse
import os

import numpy as np

import torch

from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
from mamba_ssm.ops.triton.selective_state_update import selective_state_update

from bench_graph import time_graph


def inputs(dt, b, d, l, n=16, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)

    def uni(lo, hi, *shape, dtype=torch.float32):
        return (lo + (hi - lo) * torch.rand(*shape, generator=g, device="cuda")).to(dtype)

    u = uni(-1, 1, b, d, l, dtype=dt)
    delta = uni(-1, 1, b, d, l, dtype=dt)
    A = -(torch.arange(n, device="cuda").float()[None, :] + 0.5 + uni(0, 1, d, n))
    B = uni(-1, 1, b, n, l, dtype=dt)
    C = uni(-1, 1, b, n, l, dtype=dt)
    D = uni(-1, 1, d)
    z = uni(-3, 3, b, d, l, dtype=dt)
    bias = uni(-6, -2, d)
    h0 = uni(-1, 1, b, d, n)
    return u, delta, A, B, C, D, z, bias, h0


def ref_f64(u, delta, A, B, C, D, z, bias):
    """The op in float64 (selective_scan_ref computes in float32, so it is not used here)."""
    u, delta, A, B, C, D, z, bias = (t.double() for t in (u, delta, A, B, C, D, z, bias))
    delta = torch.nn.functional.softplus(delta + bias[:, None])  # threshold 20, as mamba_ssm
    dA = torch.exp(delta[..., None] * A[None, :, None, :])  # (b, d, l, n)
    dBu = delta[..., None] * B.transpose(1, 2)[:, None] * u[..., None]
    x = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float64, device=u.device)
    ys = []
    for i in range(u.shape[2]):
        x = dA[:, :, i] * x + dBu[:, :, i]
        ys.append((x * C[:, None, :, i]).sum(-1))
    y = torch.stack(ys, -1) + u * D[:, None]
    return y * torch.nn.functional.silu(z)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--csv")
    ap.add_argument("--dump")
    ap.add_argument("--accuracy-only", action="store_true")
    args = ap.parse_args()
    props = torch.cuda.get_device_properties(0)
    print(f"device: {props.name}, {props.multi_processor_count} SMs; torch {torch.__version__}")

    # Accuracy vs fp64 at one shape.
    for dt in (torch.float16, torch.float32, torch.bfloat16):
        u, delta, A, B, C, D, z, bias, _ = inputs(dt, 1, 1536, 1024, seed=77)
        y = selective_scan_fn(u, delta, A, B, C, D, z, bias, delta_softplus=True)
        ref = ref_f64(u, delta, A, B, C, D, z, bias)
        err = ((y.double() - ref).norm() / ref.norm()).item()
        print(f"accuracy mamba_ssm {dt} B1 D1536 L1024 N16: y rel L2 vs fp64 = {err:.3e}")

    if args.dump:
        # The very inputs of our bench (fp32 .npy, already rounded to the dtype).
        dts = {"f16": torch.float16, "f32": torch.float32, "bf16": torch.bfloat16}
        for sub in sorted(os.listdir(args.dump)):
            tag, dim = sub.split("_d")
            ld = lambda n: torch.from_numpy(np.load(os.path.join(args.dump, sub, n + ".npy"))).cuda()
            u, delta, B, C, z = (ld(n).to(dts[tag]) for n in ("u", "delta", "B", "C", "z"))
            A, D, bias, ours = ld("A"), ld("D"), ld("delta_bias"), ld("y_ours")
            y = selective_scan_fn(u, delta, A, B, C, D, z, bias, delta_softplus=True)
            ref = ref_f64(u, delta, A, B, C, D, z, bias)
            err = lambda t: ((t.double() - ref).norm() / ref.norm()).item()
            print(
                f"accuracy {tag} B1 D{dim} L1024 N16, same inputs, y rel L2 vs fp64: "
                f"ours {err(ours):.3e}, mamba_ssm {err(y):.3e}"
            )
    if args.accuracy_only:
        return

    rows = ["impl,dtype,B,D,L,N,variant,us,gbps,exp_limit_us"]
    bs = [1] if args.quick else [1, 8]
    ds = [1536, 5120] if args.quick else [1536, 4096, 5120]
    ls = [1, 1024] if args.quick else [1, 128, 1024, 4096]
    print(f"{'dtype':>5} {'B':>2} {'D':>5} {'L':>5}  {'scan us':>9} {'update us':>9}")
    for dt, tag in ((torch.float16, "f16"), (torch.float32, "f32")):
        for b in bs:
            for d in ds:
                for l in ls:
                    u, delta, A, B, C, D, z, bias, h0 = inputs(dt, b, d, l)
                    t_scan = time_graph(
                        lambda: selective_scan_fn(u, delta, A, B, C, D, z, bias, delta_softplus=True)
                    )
                    rows.append(f"mamba_ssm,{tag},{b},{d},{l},16,selective_scan_fn,{t_scan:.3f},,")
                    t_upd = float("nan")
                    if l == 1:
                        state = h0.clone()
                        x, dtv, zz = u[..., 0], delta[..., 0], z[..., 0]
                        Bs, Cs = B[..., 0], C[..., 0]
                        t_upd = time_graph(
                            lambda: selective_state_update(
                                state, x, dtv, A, Bs, Cs, D=D, z=zz, dt_bias=bias, dt_softplus=True
                            )
                        )
                        rows.append(
                            f"mamba_ssm,{tag},{b},{d},{l},16,selective_state_update,{t_upd:.3f},,"
                        )
                    print(f"{tag:>5} {b:>2} {d:>5} {l:>5}  {t_scan:>9.2f} {t_upd:>9.2f}")
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("\n".join(rows) + "\n")
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
