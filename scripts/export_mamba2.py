#!/usr/bin/env python3
"""Builds small random Mamba2 (SSD) models and exports them to ONNX as fixtures for the
S6ScanHeads patcher (docs/s6scan_heads.md), under fixtures/mamba2/<name>/.

Models (fixed seeds):
  * transformers' Mamba2ForCausalLM (its torch path: mamba_ssm is not installed), hidden 32,
    2 layers, 4 heads of dim 16, d_state 16, 2 groups, chunk 8, exported with torch.onnx's
    dynamo exporter with a dynamic sequence axis (`Dim("seq")`). The TorchScript exporter's
    export of this model is invalid (a Transpose with perm [0, -2, -1, 1], which onnxruntime
    refuses to load), see docs/exports.md.
  * the same transformers model in fp16 (`.half()`), and with the batch axis dynamic too;
  * a hand-written minimal SSD model (`MinimalSSD`): no conv, no gate, one group, and a chunked
    scan of our own formulation (Trilu masks, a four-operand Einsum, a cumulative sum over chunk
    totals for the chunk-to-chunk recurrence), exported the same way.

Each folder holds
  model.onnx                  the export (batch 1, input `input_ids`, sequence axis dynamic)
  inputs/input_ids.npy        the inputs at the export length (12: one and a half chunks)
  expected/logits.npy         onnxruntime's outputs on the original export
  expected_L<k>/inputs/...    inputs at other lengths k (5: under one chunk; 19; 1: one step)
  expected_L<k>/logits.npy    PyTorch's outputs at length k (onnxruntime on the original
                              agrees, checked here)
  meta.json                   config, exporter, op counts, agreement

Run: /work/pyenv/bin/python scripts/export_mamba2.py [--out fixtures/mamba2]
"""

import argparse
import json
import os
import shutil
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_mamba import HFLogits, op_counts, perturb, write_npys  # noqa: E402

VOCAB = 64
HIDDEN = 32
LAYERS = 2
HEADS = 4
HEAD_DIM = 16
STATE = 16
CHUNK = 8
EXPORT_L = 12
OTHER_L = (5, 19, 1)
SEED = 4321
# onnxruntime vs PyTorch, relative to max(1, max |logits|).
TOL = 1e-5


def build_hf():
    from transformers import Mamba2Config, Mamba2ForCausalLM

    cfg = Mamba2Config(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        state_size=STATE,
        num_hidden_layers=LAYERS,
        expand=2,
        head_dim=HEAD_DIM,
        num_heads=HEADS,
        n_groups=2,
        chunk_size=CHUNK,
        conv_kernel=4,
        use_cache=False,
        tie_word_embeddings=True,
    )
    torch.manual_seed(SEED)
    model = Mamba2ForCausalLM(cfg).eval()
    perturb(model)
    return HFLogits(model).eval()


class MinimalSSDMixer(nn.Module):
    """x, B, C, dt from one projection; dt = softplus(dt + dt_bias); y = SSD(x) + D·x."""

    def __init__(self):
        super().__init__()
        self.d_inner = HEADS * HEAD_DIM
        self.in_proj = nn.Linear(HIDDEN, self.d_inner + 2 * STATE + HEADS, bias=False)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, HEADS + 1, dtype=torch.float32)))
        self.D = nn.Parameter(torch.ones(HEADS))
        self.dt_bias = nn.Parameter(torch.full((HEADS,), -2.0))
        self.out_proj = nn.Linear(self.d_inner, HIDDEN, bias=False)

    def forward(self, u):
        b, l, _ = u.shape
        x, Bm, Cm, dt = torch.split(self.in_proj(u), [self.d_inner, STATE, STATE, HEADS], dim=-1)
        x = x.reshape(b, l, HEADS, HEAD_DIM)
        dt = F.softplus(dt + self.dt_bias)
        A = -torch.exp(self.A_log)
        y = ssd(x * dt[..., None], A * dt, Bm, Cm) + x * self.D[:, None]
        return self.out_proj(y.reshape(b, l, self.d_inner))


def ssd(xd, la, Bm, Cm):
    """Chunked scan: xd = Δ·x (b, l, h, p), la = Δ·A (b, l, h), B, C (b, l, n), one group."""
    b, l, h, p = xd.shape
    pad = (CHUNK - l % CHUNK) % CHUNK
    xd = F.pad(xd, (0, 0, 0, 0, 0, pad)).reshape(b, -1, CHUNK, h, p)
    la = F.pad(la, (0, 0, 0, pad)).reshape(b, -1, CHUNK, h)
    Bm = F.pad(Bm, (0, 0, 0, pad)).reshape(b, -1, CHUNK, STATE)
    Cm = F.pad(Cm, (0, 0, 0, pad)).reshape(b, -1, CHUNK, STATE)
    cum = torch.cumsum(la, dim=2).transpose(2, 3)  # (b, c, h, T)
    # decay[i, j] = exp(cum_i − cum_j) for j ≤ i; Trilu keeps the causal part.
    decay = torch.tril(torch.exp(cum[..., :, None] - cum[..., None, :]))
    y_intra = torch.einsum("bcin,bcjn,bchij,bcjhp->bcihp", Cm, Bm, decay, xd)
    to_end = torch.exp(cum[..., -1:] - cum)  # (b, c, h, T)
    states = torch.einsum("bcjn,bchj,bcjhp->bchpn", Bm, to_end, xd)
    # State entering chunk c: Σ_{k<c} exp(tot_{k+1} + … + tot_{c−1}) · states_k.
    ctot = torch.cumsum(cum[..., -1], dim=1)  # (b, c, h)
    gap = (ctot - cum[..., -1])[:, :, None, :] - ctot[:, None, :, :]  # (b, c, k, h)
    carry = torch.tril(torch.exp(gap.permute(0, 3, 1, 2)), diagonal=-1)  # (b, h, c, k)
    entering = torch.einsum("bhck,bkhpn->bchpn", carry, states)
    y_inter = torch.einsum("bcin,bchpn,bchi->bcihp", Cm, entering, torch.exp(cum))
    return (y_intra + y_inter).reshape(b, -1, h, p)[:, :l]


class MinimalSSD(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.layers = nn.ModuleList(MinimalSSDMixer() for _ in range(LAYERS))
        self.head = nn.Linear(HIDDEN, VOCAB, bias=False)

    def forward(self, input_ids):
        h = self.embed(input_ids)
        for layer in self.layers:
            h = h + layer(h)
        return self.head(h)


def build_minimal():
    torch.manual_seed(SEED + 1)
    model = MinimalSSD().eval()
    perturb(model)
    return model


def recurrence(model_layer, u):
    """MinimalSSDMixer by the plain recurrence, to check `ssd` itself."""
    b, l, _ = u.shape
    m = model_layer
    x, Bm, Cm, dt = torch.split(m.in_proj(u), [m.d_inner, STATE, STATE, HEADS], dim=-1)
    x = x.reshape(b, l, HEADS, HEAD_DIM)
    dt = F.softplus(dt + m.dt_bias)
    A = -torch.exp(m.A_log)
    s = torch.zeros(b, HEADS, HEAD_DIM, STATE)
    ys = []
    for t in range(l):
        s = torch.exp(dt[:, t] * A)[..., None, None] * s + (dt[:, t, :, None] * x[:, t])[..., None] * Bm[:, t, None, None, :]
        ys.append((s * Cm[:, t, None, None, :]).sum(-1))
    y = torch.stack(ys, 1) + x * m.D[:, None]
    return m.out_proj(y.reshape(b, l, m.d_inner))


def ids_of(length, salt, batch=1):
    rng = np.random.default_rng(SEED + 100 * length + salt + 10000 * (batch - 1))
    return rng.integers(0, VOCAB, size=(batch, length), dtype=np.int64)


def make_fixture(out_root, name, model, description, tol=TOL, batch=None):
    """`batch`: the export batch with a dynamic batch axis too (references then at other batch
    sizes, expected_b<B>_L<L>/); None: batch 1, fixed."""
    folder = os.path.join(out_root, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    path = os.path.join(folder, "model.onnx")
    ids = ids_of(EXPORT_L, 0, batch or 1)
    dyn = {1: torch.export.Dim("seq", min=1, max=4096)}
    if batch:
        dyn[0] = torch.export.Dim("batch", min=1, max=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(
            model, (torch.from_numpy(ids),), input_names=["input_ids"], output_names=["logits"],
            dynamo=True, opset_version=18, external_data=False, verbose=False,
            dynamic_shapes={"input_ids": dyn},
        )
        prog.save(path)
    m = onnx.load(path)
    if batch:
        # Node annotations (stack traces, 80 % of the file) are dropped to keep the fixture
        # small; the graph is the export's.
        for n in m.graph.node:
            del n.metadata_props[:]
            n.doc_string = ""
        onnx.save(m, path)
    onnx.checker.check_model(m)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (ort_out,) = sess.run(None, {"input_ids": ids})
    worst = {}
    rel = lambda got, want: float(np.max(np.abs(got - want)) / max(1.0, np.max(np.abs(want))))  # noqa: E731
    with torch.no_grad():
        worst[EXPORT_L] = rel(ort_out, model(torch.from_numpy(ids)).numpy())
    write_npys(os.path.join(folder, "inputs"), {"input_ids": ids})
    write_npys(os.path.join(folder, "expected"), {"logits": ort_out})
    others = [(1, k) for k in OTHER_L] if not batch else [(3, 7), (1, 19), (2, 1)]
    for b, k in others:
        other = ids_of(k, 1, b)
        with torch.no_grad():
            want = model(torch.from_numpy(other)).numpy()
        (got,) = sess.run(None, {"input_ids": other})
        worst[f"b{b}_L{k}" if batch else k] = rel(got, want)
        d = os.path.join(folder, f"expected_b{b}_L{k}" if batch else f"expected_L{k}")
        write_npys(os.path.join(d, "inputs"), {"input_ids": other})
        write_npys(d, {"logits": want})
    if max(worst.values()) > tol:
        sys.exit(f"{name}: onnxruntime and PyTorch disagree: {worst}")
    meta = {
        "model": description,
        "exporter": "dynamo",
        "dynamic": {"input_ids": {"0": "batch", "1": "seq"} if batch else {"1": "seq"}},
        "batch": batch or 1,
        "seq_len": EXPORT_L,
        "others": [f"b{b}_L{k}" for b, k in others],
        "node_annotations_dropped": bool(batch),
        "vocab": VOCAB, "hidden": HIDDEN, "layers": LAYERS, "heads": HEADS,
        "head_dim": HEAD_DIM, "d_state": STATE, "chunk_size": CHUNK,
        "opset": [{"domain": o.domain, "version": o.version} for o in m.opset_import],
        "nodes": len(m.graph.node),
        "initializers": len(m.graph.initializer),
        "op_counts": op_counts(m),
        "ort_vs_torch_max_rel": {str(k): v for k, v in worst.items()},
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": ort.__version__},
    }
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: {len(m.graph.node)} nodes, ort vs torch {worst}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "mamba2"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    import transformers

    minimal = build_minimal()
    # The chunked form of the minimal model is the recurrence (fp32), checked before export.
    with torch.no_grad():
        u = torch.randn(1, 21, HIDDEN, generator=torch.Generator().manual_seed(SEED))
        d = float((minimal.layers[0](u) - recurrence(minimal.layers[0], u)).abs().max())
    assert d < 1e-4, f"MinimalSSD's chunked scan differs from its recurrence by {d}"
    make_fixture(args.out, "hf2_dynamo_dynseq_L12", build_hf(),
                 f"transformers {transformers.__version__} Mamba2ForCausalLM")
    make_fixture(args.out, "ssd_minimal_dynamo_dynseq_L12", minimal, "MinimalSSD (this script)")
    # Batch dynamic too (example batch 2: torch.export specialises 1): the chunk count becomes a
    # computed Reshape dim.
    make_fixture(args.out, "hf2_dynamo_dynbs_b2_L12", build_hf(),
                 f"transformers {transformers.__version__} Mamba2ForCausalLM", batch=2)
    # fp16 (`.half()`): transformers runs the chunked scan in fp32 between Casts; onnxruntime
    # and PyTorch agree to fp16 rounding only.
    make_fixture(args.out, "hf2_fp16_dynamo_dynseq_L12", build_hf().half(),
                 f"transformers {transformers.__version__} Mamba2ForCausalLM, .half()", tol=5e-3)


if __name__ == "__main__":
    main()
