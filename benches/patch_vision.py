#!/usr/bin/env python3
"""Benchmark of onnx-patch on a VMamba-sized SS2D block (a benchmark, not a test).

Builds the SS2D block of scripts/export_vision.py at VMamba-T's first-stage width (C 96,
d_inner 192, N 16, K 4) and exports it with the TorchScript exporter at one or more image
sizes (L = H·W steps unrolled, K·d_inner = 768 channels in the one grouped scan), then runs
`onnx-patch --verify` on each and reports the export's size, node counts before and after,
the patch wall time (without --verify, best of three) and the time of the --verify run.

Run:
  cargo build --release -p s6-tools --bin onnx-patch
  /work/pyenv/bin/python benches/patch_vision.py --onnx-patch $CARGO_TARGET_DIR/release/onnx-patch
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--onnx-patch", required=True)
    ap.add_argument("--sizes", default="7x7,14x14", help="comma-separated HxW")
    ap.add_argument("--channels", type=int, default=96)
    ap.add_argument("--state", type=int, default=16)
    args = ap.parse_args()

    import numpy as np
    import onnx
    import torch
    import export_vision as ev

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = ev.SS2D(c=args.channels, n=args.state, rank=max(1, args.channels // 16)).eval()
    print("| image | L | nodes | patched | scans | export | patch | patch + verify |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            h, w = (int(v) for v in size.split("x"))
            path = os.path.join(tmp, f"ss2d_{h}x{w}.onnx")
            x = torch.rand(1, h, w, args.channels)
            t0 = time.perf_counter()
            ev.export(model, x, path, 17)
            t_export = time.perf_counter() - t0
            nodes = len(onnx.load(path).graph.node)
            out = os.path.join(tmp, f"ss2d_{h}x{w}.s6.onnx")
            # The best of three: the development VM is shared.
            t_patch = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                subprocess.run([args.onnx_patch, path, "-o", out], check=True, capture_output=True)
                t_patch = min(t_patch, time.perf_counter() - t0)
            m = onnx.load(out)
            scans = sum(n.op_type == "S6Scan" for n in m.graph.node)
            t0 = time.perf_counter()
            r = subprocess.run(
                [args.onnx_patch, path, "-o", out, "--verify"], capture_output=True, text=True
            )
            t_verify = time.perf_counter() - t0
            if r.returncode != 0:
                sys.exit(f"{size}: onnx-patch --verify failed:\n{r.stderr}")
            size_mb = os.path.getsize(path) / 1e6
            print(
                f"| {h}×{w} | {h * w} | {nodes} ({size_mb:.1f} MB) | {len(m.graph.node)} | "
                f"{scans} | {t_export:.1f} s | {t_patch:.2f} s | {t_verify:.1f} s |"
            )
            print(r.stderr.strip().splitlines()[1], file=sys.stderr)


if __name__ == "__main__":
    main()
