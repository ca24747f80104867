#!/usr/bin/env python3
"""Builds small random Mamba models and exports them to ONNX as test fixtures.

Models (fixed seeds, so reruns give the same weights and inputs):
  * transformers' MambaForCausalLM, exported with torch.onnx's TorchScript exporter
    (dynamo=False) and with its dynamo exporter (dynamo=True), each at two sequence lengths;
  * a hand-written mamba-minimal-style model (einsum discretisation, a Python loop over time,
    torch.stack), exported with the TorchScript exporter at two lengths and with the dynamo
    exporter at one.

  * the same models exported with dynamic axes (TorchScript `dynamic_axes`: sequence only,
    batch and sequence, batch 1 and 2, opset 17 and 14; dynamo `dynamic_shapes` on batch),
    under fixtures/dynamic/<name>/, with references at other batch sizes and lengths
    (expected_b<B>_L<L>/, see make_dynamic_fixture).

For every export, fixtures/models/<name>/ (fp16 exports: fixtures/fp16/<name>/) holds
  model.onnx                 the export (use_cache off, batch 1, input `input_ids`)
  inputs/<input>.npy         the inputs at the export length
  expected/<output>.npy      onnxruntime's outputs on the original export
  expected_L<k>/inputs/...   inputs at the *other* length k
  expected_L<k>/<output>.npy PyTorch's outputs at length k (for the dynamic-length tests)
  meta.json                  config, exporter, lengths

Run: /work/pyenv/bin/python scripts/export_mamba.py [--out fixtures/models]
"""

import argparse
import json
import math
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

HIDDEN = 32
STATE = 16
LAYERS = 2
EXPAND = 2
VOCAB = 96
CONV = 4
LENGTHS = (12, 7)
BATCH = 1
SEED = 1234


# ---------------------------------------------------------------- transformers' Mamba


def build_hf():
    from transformers import MambaConfig, MambaForCausalLM

    cfg = MambaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        state_size=STATE,
        num_hidden_layers=LAYERS,
        expand=EXPAND,
        conv_kernel=CONV,
        use_cache=False,
        use_mambapy=False,
        tie_word_embeddings=True,
    )
    torch.manual_seed(SEED)
    model = MambaForCausalLM(cfg).eval()
    perturb(model)
    return model, cfg


def perturb(model):
    """Moves every parameter off its tidy initial value (D = 1, norms = 1, ...) so that a
    patch that drops a term shows up in the outputs."""
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * 0.1
            if name.endswith("A_log"):
                p.add_(noise * 0.5)
            else:
                p.add_(noise)


class HFLogits(nn.Module):
    """Returns only the logits, so that the export has one output."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids):
        return self.inner(input_ids=input_ids, use_cache=False).logits


# ---------------------------------------------------------------- mamba-minimal-style model


class MinimalRMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MinimalMixer(nn.Module):
    """Channels-last (b, l, d) Mamba block: the discretisation by einsum, the scan as a Python
    loop over time whose per-step outputs are stacked."""

    def __init__(self, d_model, d_inner, d_state, dt_rank, d_conv):
        super().__init__()
        self.d_inner, self.d_state, self.dt_rank = d_inner, d_state, dt_rank
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def forward(self, x):
        _, l, _ = x.shape
        x, res = self.in_proj(x).split([self.d_inner, self.d_inner], dim=-1)
        x = self.conv1d(x.transpose(1, 2))[:, :, :l].transpose(1, 2)
        x = F.silu(x)
        y = self.ssm(x)
        y = y * F.silu(res)
        return self.out_proj(y)

    def ssm(self, x):
        A = -torch.exp(self.A_log)
        delta, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(delta))
        return self.scan(x, delta, A, B, C, self.D)

    @staticmethod
    def scan(u, delta, A, B, C, D):
        b, l, d = u.shape
        n = A.shape[1]
        deltaA = torch.exp(torch.einsum("bld,dn->bldn", delta, A))
        deltaB_u = torch.einsum("bld,bln,bld->bldn", delta, B, u)
        h = torch.zeros(b, d, n)
        ys = []
        for i in range(l):
            h = deltaA[:, i] * h + deltaB_u[:, i]
            ys.append(torch.einsum("bdn,bn->bd", h, C[:, i, :]))
        y = torch.stack(ys, dim=1)
        return y + u * D


class MinimalMamba(nn.Module):
    def __init__(self):
        super().__init__()
        d_inner = EXPAND * HIDDEN
        dt_rank = math.ceil(HIDDEN / 16)
        self.embedding = nn.Embedding(VOCAB, HIDDEN)
        self.norms = nn.ModuleList([MinimalRMSNorm(HIDDEN) for _ in range(LAYERS)])
        self.mixers = nn.ModuleList(
            [MinimalMixer(HIDDEN, d_inner, STATE, dt_rank, CONV) for _ in range(LAYERS)]
        )
        self.norm_f = MinimalRMSNorm(HIDDEN)
        self.lm_head = nn.Linear(HIDDEN, VOCAB, bias=False)
        self.lm_head.weight = self.embedding.weight

    def forward(self, input_ids):
        x = self.embedding(input_ids)
        for norm, mixer in zip(self.norms, self.mixers):
            x = x + mixer(norm(x))
        return self.lm_head(self.norm_f(x))


def build_minimal():
    torch.manual_seed(SEED + 2)
    model = MinimalMamba().eval()
    perturb(model)
    return model


# ---------------------------------------------------------------- Mamba2 (refusal fixture)


def export_mamba2(out_root):
    """A tiny transformers Mamba2ForCausalLM export: the patcher must refuse it clearly (SSD's
    chunked scan is not S6). Only the model is kept."""
    from transformers import Mamba2Config, Mamba2ForCausalLM

    cfg = Mamba2Config(
        vocab_size=64,
        hidden_size=32,
        state_size=16,
        num_hidden_layers=1,
        expand=2,
        head_dim=16,
        num_heads=4,
        n_groups=1,
        chunk_size=8,
        use_cache=False,
        conv_kernel=CONV,
    )
    torch.manual_seed(SEED + 3)
    model = HFLogits(Mamba2ForCausalLM(cfg).eval()).eval()
    folder = os.path.join(out_root, "mamba2_ts_L8")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    ids = make_ids(8, 0) % 64
    export(model, ids, os.path.join(folder, "model.onnx"), False, 17)
    print("mamba2_ts_L8: exported", file=sys.stderr)


# ---------------------------------------------------------------- export and fixtures


def make_ids(length, salt):
    rng = np.random.default_rng(SEED + 100 * length + salt)
    return rng.integers(0, VOCAB, size=(BATCH, length), dtype=np.int64)


def export(model, ids, path, dynamo, opset, dynamic=None):
    """`dynamic`: `dynamic_axes` for the TorchScript exporter, `dynamic_shapes` for dynamo."""
    args = (torch.from_numpy(ids),)
    extra = {}
    if dynamic is not None:
        extra["dynamic_shapes" if dynamo else "dynamic_axes"] = dynamic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            prog = torch.onnx.export(
                model,
                args,
                input_names=["input_ids"],
                output_names=["logits"],
                dynamo=True,
                opset_version=opset,
                external_data=False,
                verbose=False,
                **extra,
            )
            prog.save(path)
        else:
            torch.onnx.export(
                model,
                args,
                path,
                input_names=["input_ids"],
                output_names=["logits"],
                dynamo=False,
                opset_version=opset,
                do_constant_folding=True,
                **extra,
            )
    # The dynamo exporter may name its outputs itself; the fixtures use the graph's names.
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return m


def write_npys(folder, arrays):
    os.makedirs(folder, exist_ok=True)
    for name, arr in arrays.items():
        np.save(os.path.join(folder, f"{name}.npy"), arr)


def op_counts(m):
    counts = {}
    for n in m.graph.node:
        key = n.op_type if not n.domain else f"{n.domain}:{n.op_type}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def make_fixture(out_root, name, model, exporter, length, other, tol=1e-4):
    folder = os.path.join(out_root, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    path = os.path.join(folder, "model.onnx")
    ids = make_ids(length, 0)
    m = export(model, ids, path, exporter == "dynamo", 18 if exporter == "dynamo" else 17)
    in_name = m.graph.input[0].name
    out_name = m.graph.output[0].name

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (ort_out,) = sess.run(None, {in_name: ids})
    with torch.no_grad():
        torch_out = model(torch.from_numpy(ids)).numpy()
    err = float(np.max(np.abs(ort_out - torch_out)))
    if err > tol:
        sys.exit(f"{name}: onnxruntime and PyTorch disagree by {err}")
    write_npys(os.path.join(folder, "inputs"), {in_name: ids})
    write_npys(os.path.join(folder, "expected"), {out_name: ort_out})

    other_ids = make_ids(other, 1)
    with torch.no_grad():
        other_out = model(torch.from_numpy(other_ids)).numpy()
    other_dir = os.path.join(folder, f"expected_L{other}")
    write_npys(os.path.join(other_dir, "inputs"), {in_name: other_ids})
    write_npys(other_dir, {out_name: other_out})

    meta = {
        "exporter": exporter,
        "model": "transformers.MambaForCausalLM" if name.startswith("hf") else "mamba-minimal",
        "seq_len": length,
        "other_seq_len": other,
        "batch": BATCH,
        "hidden": HIDDEN,
        "d_inner": EXPAND * HIDDEN,
        "d_state": STATE,
        "layers": LAYERS,
        "vocab": VOCAB,
        "opset": [{"domain": o.domain, "version": o.version} for o in m.opset_import],
        "input": in_name,
        "output": out_name,
        "nodes": len(m.graph.node),
        "initializers": len(m.graph.initializer),
        "op_counts": op_counts(m),
        "ort_vs_torch_max_abs": err,
    }
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: {len(m.graph.node)} nodes, ort vs torch {err:.2e}", file=sys.stderr)


# ---------------------------------------------------------------- dynamic-axes exports

# (name, model, exporter, opset, batch, length, dynamic axes/shapes, spelled as the user would)
DYN_L = 6


def dynamic_jobs(hf, minimal):
    from torch.export import Dim

    both = {"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}
    return [
        # Sequence only, in the list form: the exporter names the axes itself.
        ("hf_ts_dynseq_b1_L6", hf, "ts", 17, 1, DYN_L, {"input_ids": [1], "logits": [1]}),
        ("hf_ts_dynbs_b1_L6", hf, "ts", 17, 1, DYN_L, both),
        ("hf_ts_dynb_b2_L6", hf, "ts", 17, 2, DYN_L,
         {"input_ids": {0: "batch"}, "logits": {0: "batch"}}),
        ("hf_ts_dynbs_op14_b2_L6", hf, "ts", 14, 2, DYN_L, both),
        ("minimal_ts_dynbs_b2_L6", minimal, "ts", 17, 2, DYN_L, both),
        # dynamo specialises batch 1 (0/1 specialisation), so the example has batch 2.
        ("hf_dynamo_dynb_b2_L6", hf, "dynamo", 18, 2, DYN_L,
         {"input_ids": {0: Dim("batch", min=1, max=64)}}),
    ]


def batch_ids(batch, length, salt):
    rng = np.random.default_rng(SEED + 1000 * batch + 100 * length + salt)
    return rng.integers(0, VOCAB, size=(batch, length), dtype=np.int64)


def declared_dims(v):
    return [d.dim_param if d.HasField("dim_param") else d.dim_value
            for d in v.type.tensor_type.shape.dim]


def write_onnx_shapes(model_path, out_path):
    """onnx's own shape inference (with data propagation, the export's value_info removed) as
    `value<TAB>element type<TAB>dims`, dims space-separated: a size, a name, or `?` (unknown,
    or onnx's `unk__` symbols). The reference for the patcher's shape inference (onnx/src/patch/infer.rs)."""
    m = onnx.load(model_path)
    del m.graph.value_info[:]
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True, data_prop=True)
    lines = []
    for v in m.graph.value_info:
        t = v.type.tensor_type
        if not t.HasField("shape"):
            continue
        dims = []
        for d in t.shape.dim:
            if d.HasField("dim_value"):
                dims.append(str(d.dim_value))
            elif d.HasField("dim_param") and not d.dim_param.startswith("unk__"):
                dims.append(d.dim_param)
            else:
                dims.append("?")
        lines.append(f"{v.name}\t{t.elem_type}\t{' '.join(dims)}")
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")


def make_dynamic_fixture(out_root, name, model, exporter, opset, batch, length, dynamic,
                         tol=1e-4):
    """An export with dynamic axes, with references at other batch sizes and lengths:
    expected/ (onnxruntime at the export shape) and expected_b<B>_L<L>/ (PyTorch; where the
    export's batch is dynamic, onnxruntime on the original at the export length must agree)."""
    folder = os.path.join(out_root, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    path = os.path.join(folder, "model.onnx")
    ids = batch_ids(batch, length, 0)
    m = export(model, ids, path, exporter == "dynamo", opset, dynamic)
    in_name, out_name = m.graph.input[0].name, m.graph.output[0].name
    in_dims = declared_dims(m.graph.input[0])
    dyn_batch = not isinstance(in_dims[0], int) or in_dims[0] == 0
    dyn_seq = not isinstance(in_dims[1], int) or in_dims[1] == 0

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (ort_out,) = sess.run(None, {in_name: ids})
    with torch.no_grad():
        torch_out = model(torch.from_numpy(ids)).numpy()
    worst = float(np.max(np.abs(ort_out - torch_out)))
    if worst > tol:
        sys.exit(f"{name}: onnxruntime and PyTorch disagree by {worst}")
    write_npys(os.path.join(folder, "inputs"), {in_name: ids})
    write_npys(os.path.join(folder, "expected"), {out_name: ort_out})

    other_batches = [b for b in (1, 3) if b != batch] if dyn_batch else []
    cases = [(batch, 9), (batch, 3)] + [(b, l) for b in other_batches for l in (length, 9)]
    for b, l in cases:
        case_ids = batch_ids(b, l, 1)
        with torch.no_grad():
            want = model(torch.from_numpy(case_ids)).numpy()
        if l == length:
            # The original runs at other batch sizes (its loop bakes only the length).
            (got,) = sess.run(None, {in_name: case_ids})
            e = float(np.max(np.abs(got - want)))
            if e > tol:
                sys.exit(f"{name}: onnxruntime at batch {b} differs from PyTorch by {e}")
            worst = max(worst, e)
        d = os.path.join(folder, f"expected_b{b}_L{l}")
        write_npys(os.path.join(d, "inputs"), {in_name: case_ids})
        write_npys(d, {out_name: want})

    write_onnx_shapes(path, os.path.join(folder, "onnx_shapes.tsv"))

    meta = {
        "exporter": exporter,
        "model": "transformers.MambaForCausalLM" if name.startswith("hf") else "mamba-minimal",
        "seq_len": length,
        "batch": batch,
        "dynamic": {k: {str(a): str(n) for a, n in (v.items() if isinstance(v, dict)
                                                    else enumerate(v))}
                    for k, v in dynamic.items()},
        "input_dims": in_dims,
        "dynamic_batch": dyn_batch,
        "dynamic_seq_declared": dyn_seq,
        "cases": [f"expected_b{b}_L{l}" for b, l in cases],
        "hidden": HIDDEN,
        "layers": LAYERS,
        "opset": [{"domain": o.domain, "version": o.version} for o in m.opset_import],
        "input": in_name,
        "output": out_name,
        "nodes": len(m.graph.node),
        "initializers": len(m.graph.initializer),
        "ort_vs_torch_max_abs": worst,
    }
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: {len(m.graph.node)} nodes, input {in_dims}, ort vs torch {worst:.2e}",
          file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "models"))
    ap.add_argument("--only", help="comma-separated fixture names")
    args = ap.parse_args()
    torch.set_num_threads(1)
    only = set(args.only.split(",")) if args.only else None

    hf, _ = build_hf()
    hf = HFLogits(hf).eval()
    minimal = build_minimal()
    jobs = []
    for exporter in ("ts", "dynamo"):
        for length, other in (LENGTHS, LENGTHS[::-1]):
            jobs.append((f"hf_{exporter}_L{length}", hf, exporter, length, other))
    # A one-step export has no Concat: the scan's only step is just Unsqueezed.
    jobs.append(("hf_dynamo_L1", hf, "dynamo", 1, 5))
    for length, other in (LENGTHS, LENGTHS[::-1]):
        jobs.append((f"minimal_ts_L{length}", minimal, "ts", length, other))
    jobs.append((f"minimal_dynamo_L{LENGTHS[0]}", minimal, "dynamo", LENGTHS[0], LENGTHS[1]))
    for name, model, exporter, length, other in jobs:
        if only and name not in only:
            continue
        make_fixture(args.out, name, model, exporter, length, other)
    # fp16: the same transformers model in half precision (outputs fp16; ORT and PyTorch agree
    # to fp16 rounding only).
    hf16 = HFLogits(build_hf()[0]).eval().half()
    # Kept apart (fixtures/fp16/) from the fp32 exports, whose tests hold them to 1e-4.
    fp16_root = os.path.join(args.out, "..", "fp16")
    for name, exporter in (("hf_ts_fp16_L6", "ts"), ("hf_dynamo_fp16_L6", "dynamo")):
        if not only or name in only:
            make_fixture(fp16_root, name, hf16, exporter, 6, 9, tol=2e-2)
    if not only or "mamba2_ts_L8" in only:
        export_mamba2(args.out)
    # Exports with dynamic axes (torch.onnx's dynamic_axes / dynamic_shapes), kept apart.
    dyn_root = os.path.join(args.out, "..", "dynamic")
    for name, model, exporter, opset, batch, length, dyn in dynamic_jobs(hf, minimal):
        if not only or name in only:
            make_dynamic_fixture(dyn_root, name, model, exporter, opset, batch, length, dyn)


if __name__ == "__main__":
    main()
