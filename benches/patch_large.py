#!/usr/bin/env python3
"""Benchmark of onnx-patch on a large export (a benchmark, not a test).

Builds a wide random transformers MambaForCausalLM (default ~1.5 GB of fp32 weights), exports
it with torch.onnx's TorchScript exporter at a short length, stores it with external data
(`model.onnx` + `model.onnx.data`), then runs `onnx-patch` on it and reports wall time and the
patcher's peak resident memory (ru_maxrss of the child) against the model's size.

Targets (issue #6): <= 10 s and peak memory <= 1.5x the model size. With --single-file (weights
inline, issue #12): <= 3 s and peak memory <= 0.2x the file.

Run:
  cargo build --release -p s6-tools --bin onnx-patch
  /work/pyenv/bin/python benches/patch_large.py --onnx-patch $CARGO_TARGET_DIR/release/onnx-patch
"""

import argparse
import os
import resource
import subprocess
import sys
import time
import warnings


def build_export(out_dir, hidden, layers, vocab, seq_len, single_file=False):
    import onnx
    import torch
    from transformers import MambaConfig, MambaForCausalLM

    cfg = MambaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        state_size=16,
        num_hidden_layers=layers,
        expand=2,
        use_cache=False,
        use_mambapy=False,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = MambaForCausalLM(cfg).eval()

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids):
            return self.inner(input_ids=input_ids, use_cache=False).logits

    ids = torch.randint(0, vocab, (1, seq_len))
    raw = os.path.join(out_dir, "raw.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Logits(model).eval(),
            (ids,),
            raw,
            input_names=["input_ids"],
            output_names=["logits"],
            dynamo=False,
            opset_version=17,
        )
    del model
    m = onnx.load(raw)
    path = os.path.join(out_dir, "model.onnx")
    if single_file:
        # Weights inline (protobuf's limit: < 2 GB in all).
        onnx.save_model(m, path, save_as_external_data=False)
    else:
        onnx.save_model(
            m,
            path,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="model.onnx.data",
            size_threshold=1024,
        )
    os.remove(raw)
    for f in os.listdir(out_dir):
        if f not in ("model.onnx", "model.onnx.data"):
            p = os.path.join(out_dir, f)
            if os.path.isfile(p):
                os.remove(p)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--onnx-patch", required=True, help="path of the onnx-patch binary")
    ap.add_argument("--out", default="/tmp/s6-patch-bench")
    ap.add_argument("--hidden", type=int, default=2560)
    ap.add_argument("--layers", type=int, default=9)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--seq-len", type=int, default=8)
    ap.add_argument("--reuse", action="store_true", help="reuse an export already in --out")
    ap.add_argument(
        "--single-file",
        action="store_true",
        help="keep the weights inline in model.onnx (no external data)",
    )
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "model.onnx")
    if not (args.reuse and os.path.exists(path)):
        t = time.time()
        path = build_export(
            args.out, args.hidden, args.layers, args.vocab, args.seq_len, args.single_file
        )
        print(f"export: {time.time() - t:.1f} s", file=sys.stderr)
    size = os.path.getsize(path)
    if os.path.exists(path + ".data"):
        size += os.path.getsize(path + ".data")

    out = os.path.join(args.out, "patched.onnx")
    t = time.time()
    proc = subprocess.run(
        [args.onnx_patch, path, "-o", out, "--report", os.path.join(args.out, "report.json")],
        capture_output=True,
        text=True,
    )
    wall = time.time() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"onnx-patch failed with {proc.returncode}")
    print(
        f"model {size / 1e9:.3f} GB (hidden {args.hidden}, {args.layers} layers, L {args.seq_len}): "
        f"patch {wall:.2f} s wall, peak RSS {peak / 1e6:.1f} MB = {peak / size:.3f}x model size "
        f"(targets: <= 10 s, <= 1.5x)"
    )


if __name__ == "__main__":
    main()
