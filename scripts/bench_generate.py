#!/usr/bin/env python3
"""Generation and prefill timing on a 130m-shaped Mamba (random weights), for
docs/benchmarks-generate.md.

  1. Builds transformers' MambaForCausalLM with mamba-130m's shape (24 layers, d_model 768,
     d_inner 1536, N 16, d_conv 4, vocab 50280, tied embeddings), seeded, and exports it with
     the TorchScript exporter at L = 128 (batch 1) to WORK/model.onnx (kept between runs).
  2. Prefill at L = 128, each as a whole process, same machine, same run: onnxruntime on the
     original export (session + run) against `onnx-patch` + `s6-run` on the patched graph.
     Wall time and peak RSS per process.
  3. `s6-run generate` on the stateful graph: prefill time and ms per decode step after
     prompts of 16 … 1024 tokens (ms/token should not grow with the prefix).
  4. transformers' own generate(use_cache=True) on the CPU: ms per decode step.

On the GPU machine (its Vulkan driver stands in for Metal), `--backends cpu,gpu --prefixes 16
--skip-ort --skip-hf` times `s6-run generate --backend gpu` next to the CPU interpreter.

usage: bench_generate.py --bin target/release [--work /tmp/s6-bench-gen] [--threads 2]
                         [--backends cpu[,gpu]] [--prefixes 16,64,...] [--skip-ort] [--skip-hf]
"""

import argparse
import os
import re
import subprocess
import sys
import time
import warnings

import numpy as np

L_EXPORT = 128
PREFIXES = (16, 64, 256, 1024)
NEW_TOKENS = 16


def build(threads):
    import torch
    from transformers import MambaConfig, MambaForCausalLM

    torch.set_num_threads(threads)
    cfg = MambaConfig(
        vocab_size=50280,
        hidden_size=768,
        state_size=16,
        num_hidden_layers=24,
        expand=2,
        conv_kernel=4,
        use_cache=False,
        use_mambapy=False,
        tie_word_embeddings=True,
    )
    torch.manual_seed(130)
    return MambaForCausalLM(cfg).eval()


class Logits:
    def __init__(self, m):
        import torch.nn as nn

        class W(nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids):
                return self.inner(input_ids=input_ids, use_cache=False).logits

        self.module = W(m).eval()


def export(work, threads):
    import torch

    path = os.path.join(work, "model.onnx")
    if os.path.exists(path):
        return path
    m = build(threads)
    ids = torch.from_numpy(np.random.default_rng(1).integers(0, 50280, (1, L_EXPORT)))
    t = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Logits(m).module,
            (ids,),
            path + ".tmp",
            input_names=["input_ids"],
            output_names=["logits"],
            dynamo=False,
            opset_version=17,
            do_constant_folding=True,
        )
    os.replace(path + ".tmp", path)
    print(f"exported in {time.time() - t:.0f} s: {os.path.getsize(path) / 1e6:.0f} MB", file=sys.stderr)
    return path


def timed(cmd, env=None):
    """Runs cmd as its own process; returns (wall s, peak RSS MB of that process, output)."""
    t = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.time() - t
    if status != 0:
        sys.exit(f"{cmd[0]} failed: {out[-2000:]}")
    return wall, usage.ru_maxrss / 1024, out


ORT_CHILD = """
import sys, time, numpy as np, onnxruntime as ort
t = time.time()
o = ort.SessionOptions(); o.intra_op_num_threads = int(sys.argv[3])
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
t1 = time.time()
s.run(None, {"input_ids": np.load(sys.argv[2])})
print(f"session {t1 - t:.3f} s, run {time.time() - t1:.3f} s", file=sys.stderr)
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", default="/tmp/s6-bench-gen")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--skip-ort", action="store_true", help="no prefill comparison")
    ap.add_argument("--backends", default="cpu", help="s6-run generate backends, e.g. cpu,gpu")
    ap.add_argument("--prefixes", default=",".join(map(str, PREFIXES)))
    args = ap.parse_args()
    prefixes = [int(v) for v in args.prefixes.split(",")]
    os.makedirs(args.work, exist_ok=True)
    model = export(args.work, args.threads)
    w = lambda f: os.path.join(args.work, f)  # noqa: E731
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 50280, (1, max(PREFIXES + tuple(prefixes))), dtype=np.int64)
    np.save(w("ids128.npy"), ids[:, :L_EXPORT])
    for n in prefixes:
        np.save(w(f"prompt{n}.npy"), ids[:, :n])
    np.save(w("prompt16x4.npy"), rng.integers(0, 50280, (4, 16), dtype=np.int64))
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), RUST_LOG="error")
    mb = os.path.getsize(model) / 1e6
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: model {mb:.0f} MB, {args.threads} threads, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )

    # A previous output is removed first: replacing it would add the freeing of its blocks.
    for f in ("model.s6.onnx", "model.st.onnx"):
        if os.path.exists(w(f)):
            os.remove(w(f))
    if not args.skip_ort:
        prefill(args, model, w, env, mb)
    generate(args, model, w, env, prefixes, ids)


def prefill(args, model, w, env, mb):
    wall, rss, out = timed([sys.executable, "-c", ORT_CHILD, model, w("ids128.npy"), str(args.threads)])
    print(f"| onnxruntime, original export (session + run) | {wall:.2f} s | {rss:.0f} MB | {out.strip()} |")
    wp, rp, _ = timed([f"{args.bin}/onnx-patch", model, "-o", w("model.s6.onnx")], env)
    wr, rr, out = timed(
        [f"{args.bin}/s6-run", w("model.s6.onnx"), "--input", f"input_ids={w('ids128.npy')}", "--out-dir", w("out")],
        env,
    )
    line = [x for x in out.splitlines() if "nodes in" in x]
    print(f"| onnx-patch | {wp:.2f} s | {rp:.0f} MB | |")
    print(f"| s6-run prefill L=128 (patched) | {wr:.2f} s | {rr:.0f} MB | {line[-1] if line else ''} |")
    print(f"| onnx-patch + s6-run | {wp + wr:.2f} s | | ratio onnxruntime / ours {wall / (wp + wr):.2f} |")
    print(f"load average now {os.getloadavg()[0]:.1f}; model file {mb:.0f} MB: s6-run peak RSS {rr * 2**20 / os.path.getsize(model):.2f}x, onnx-patch {rp * 2**20 / os.path.getsize(model):.2f}x the file")



def generate(args, model, w, env, prefixes, ids):
    timed([f"{args.bin}/onnx-patch", model, "-o", w("model.st.onnx"), "--stateful"], env)
    for backend in args.backends.split(","):
        for n in [*prefixes, "16x4"]:
            _, rss, out = timed(
                [f"{args.bin}/s6-run", "generate", w("model.st.onnx"), "--prompt", w(f"prompt{n}.npy"),
                 "--max-new-tokens", str(NEW_TOKENS), "--backend", backend],
                env,
            )
            m = re.search(r"prefill ([\d.]+) ms; (\d+) decode steps: ([\d.]+) ms/token, ([\d.]+) tokens/s", out)
            if m is None:
                print(f"| s6-run generate --backend {backend}, prompt {n} | failed: {out[-300:]!r} |")
                continue
            print(
                f"| s6-run generate --backend {backend}, prompt {n} | prefill {m.group(1)} ms | "
                f"{m.group(3)} ms/step | {m.group(4)} tokens/s | {rss:.0f} MB |"
            )

    if not args.skip_hf:
        hf_generate(args, ids)


def hf_generate(args, ids):
    import torch

    hf = build(args.threads)
    prompt = torch.from_numpy(ids[:, :16])
    kw = dict(do_sample=False, use_cache=True, eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        hf.generate(prompt, max_new_tokens=2, **kw)
        t = time.time()
        hf.generate(prompt, max_new_tokens=1, **kw)
        t1 = time.time() - t
        t = time.time()
        hf.generate(prompt, max_new_tokens=1 + NEW_TOKENS, **kw)
        tn = time.time() - t
    print(f"| transformers generate (CPU, use_cache), prompt 16 | prefill {t1 * 1e3:.0f} ms | {(tn - t1) / NEW_TOKENS * 1e3:.1f} ms/token | |")


if __name__ == "__main__":
    main()
