#!/usr/bin/env python3
"""Builds tiny vision-Mamba blocks and exports them to ONNX as test fixtures.

The blocks are written here from the papers' equations (VMamba's 2-D selective scan, SS2D, and
Vision Mamba's bidirectional block, Vim), with a reference scan of their own: the
discretisation by einsum and a Python loop over time, so that the TorchScript exporter unrolls
the recurrence the way a first export by a new user does.

  * ss2d  — input (batch, H, W, C) channels-last: in_proj → x, z; depthwise Conv2d 3×3 on x,
    SiLU; the feature map flattened in four directions (row-major, column-major and both
    reversed) and stacked into K = 4 groups; per-group x_proj / dt_proj (einsum over k); ONE scan
    call with u, Δ (batch, K·d, L) and B, C (batch, K, N, L), B/C spread over each group's
    channels with repeat_interleave; the four outputs flipped/transposed back and summed;
    LayerNormalization, the SiLU(z) gate, out_proj; then a LayerNorm + GELU MLP residual.
  * vim   — input (batch, 3, H, W): Conv2d patch embedding (patch 2), tokens (batch, L, C),
    RMS-style norm, in_proj → x, z; a forward and a backward branch (the backward one on the
    time-reversed sequence, each with its own causal conv1d, x_proj, dt_proj, A, D); TWO scan
    calls (B, C rank 3, no groups), spelled differently from SS2D's and from each other
    (broadcast Mul or einsum for Δ·A, Δ·u or Δ·B formed first, MatMul or einsum readout);
    the backward output flipped back, the two averaged, out_proj; mean-pooled head with
    HardSwish and a tanh-GELU.
  * mambavision — input (batch, C, H, W): MambaVision's mixer (x and z each through a
    non-causal conv and SiLU, one ungrouped channels-first scan on x, no gate, the halves
    concatenated), LayerNorm before and GroupNorm after.

Each is exported by TorchScript (dynamo=False) with a dynamic batch axis at two image sizes and
in fp32 and fp16, and by the dynamo exporter at one size in fp32. Two more SS2D exports spell
its scan otherwise: channels-last with expand + reshape (`ss2d_cl_expand_4x4`) and with B/C
tiled instead of interleaved (`ss2d_interleaved_4x4`, a different model the patcher refuses). For every export, fixtures/vision/<name>/ holds (the layout of
fixtures/models, see scripts/export_mamba.py)
  model.onnx             the export (input `x`, output `y`, batch dynamic)
  inputs/x.npy           an input at batch 2
  expected/y.npy         onnxruntime's output on the original export
  meta.json              block, image size, L, dtype, opset, node and op counts, ORT vs torch

Run: /work/pyenv/bin/python scripts/export_vision.py [--out fixtures/vision]
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

SEED = 4321
BATCH = 2
# (H, W) for the two exports of each block: square and non-square (so that the column-major
# direction of SS2D is not a plain transpose of the same shape).
SS2D_SIZES = ((4, 4), (3, 5))
VIM_SIZES = ((8, 8), (6, 10))


def perturb(model, seed):
    """Moves every parameter off its tidy initial value (norm weights 1, D 1, ...) so that a
    patch that drops a term shows up in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.05 if "A_log" in name else 0.2
            p.add_(torch.randn(p.shape, generator=g) * scale)


def a_log_init(d, n):
    return torch.log(torch.arange(1, n + 1, dtype=torch.float32).repeat(d, 1))


# ---------------------------------------------------------------- the reference scans


def scan_grouped(u, delta, A, B, C, D, delta_bias):
    """S6 over (b, d, L) activations with B, C (b, G, N, L): channel d uses group d // (d/G).
    Δ = softplus(delta + bias); h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t; y_t = C_t · h_t."""
    b, d, L = u.shape
    g = B.shape[1]
    delta = F.softplus(delta + delta_bias[:, None])
    dA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    Bx = B.repeat_interleave(d // g, dim=1)  # (b, d, N, L)
    Cx = C.repeat_interleave(d // g, dim=1)
    dBu = torch.einsum("bdl,bdnl,bdl->bdln", delta, Bx, u)
    h = u.new_zeros((b, d, A.shape[1]))
    ys = []
    for t in range(L):
        h = dA[:, :, t] * h + dBu[:, :, t]
        ys.append(torch.einsum("bdn,bdn->bd", h, Cx[:, :, :, t]))
    y = torch.stack(ys, dim=2)
    return y + u * D[:, None]


def scan_single(u, delta, A, B, C, D):
    """S6 over channels-last (b, L, d) activations with B, C (b, L, N); Δ already positive.
    Spelled differently from scan_grouped on purpose: dA by broadcasting (A first), Δ·u formed
    before the einsum with B, the readout as a MatMul."""
    b, L, d = u.shape
    dA = torch.exp(A[None, None] * delta.unsqueeze(-1))  # (b, L, d, N)
    dBu = torch.einsum("bln,bld->bldn", B, delta * u)
    h = torch.zeros(b, d, A.shape[1], dtype=u.dtype)
    ys = []
    for t in range(L):
        h = dBu[:, t] + h * dA[:, t]
        ys.append((h @ C[:, t].unsqueeze(-1)).squeeze(-1))
    y = torch.stack(ys, dim=1)
    return y + u * D


def scan_grouped_cl(u, delta, A, B, C, D, delta_bias):
    """The grouped scan of scan_grouped spelled another way, channels-last: u, Δ (b, L, d),
    B, C (b, L, G, N); B/C spread over the channels by unsqueeze + expand + reshape; other
    einsum letters and operand orders; the readout as a product summed over N."""
    b, L, d = u.shape
    g = B.shape[2]
    delta = F.softplus(delta_bias + delta)
    dA = torch.exp(torch.einsum("xs,btx->btxs", A, delta))
    Bx = B.unsqueeze(3).expand(b, L, g, d // g, B.shape[3]).reshape(b, L, d, B.shape[3])
    Cx = C.unsqueeze(3).expand(b, L, g, d // g, C.shape[3]).reshape(b, L, d, C.shape[3])
    dBu = torch.einsum("btx,btxs,btx->btxs", u, Bx, delta)
    h = torch.zeros(b, d, A.shape[1], dtype=u.dtype)
    ys = []
    for t in range(L):
        h = dBu[:, t] + dA[:, t] * h
        ys.append((h * Cx[:, t]).sum(-1))
    return torch.stack(ys, dim=1) + D * u


def scan_interleaved(u, delta, A, B, C, D, delta_bias):
    """NOT the contract's grouping: B/C tiled over the channels (channel d uses group d mod G,
    `repeat` instead of `repeat_interleave`). The patcher must refuse it."""
    b, d, L = u.shape
    g = B.shape[1]
    delta = F.softplus(delta + delta_bias[:, None])
    dA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    Bx = B.repeat(1, d // g, 1, 1)
    Cx = C.repeat(1, d // g, 1, 1)
    dBu = torch.einsum("bdl,bdnl,bdl->bdln", delta, Bx, u)
    h = u.new_zeros((b, d, A.shape[1]))
    ys = []
    for t in range(L):
        h = dA[:, :, t] * h + dBu[:, :, t]
        ys.append(torch.einsum("bdn,bdn->bd", h, Cx[:, :, :, t]))
    return torch.stack(ys, dim=2) + u * D[:, None]


def scan_channels_first(u, delta, A, B, C, D, delta_bias):
    """The ungrouped scan, channels-first: u, Δ (b, d, L), B, C (b, N, L) (MambaVision)."""
    b, d, L = u.shape
    delta = F.softplus(delta + delta_bias[..., None])
    dA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    dBu = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    h = u.new_zeros((b, d, A.shape[1]))
    ys = []
    for t in range(L):
        h = dA[:, :, t] * h + dBu[:, :, t]
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, :, t]))
    return torch.stack(ys, dim=2) + u * D[:, None]


def scan_single_alt(u, delta, A, B, C, D):
    """scan_single spelled a third way (Vim's backward branch): dA by an einsum with A first,
    Δ·B formed first and multiplied by u, the readout an einsum with C_t first."""
    b, L, d = u.shape
    dA = torch.exp(torch.einsum("dn,bld->bldn", A, delta))
    dB = torch.einsum("bld,bln->bldn", delta, B)
    dBu = dB * u.unsqueeze(-1)
    h = torch.zeros(b, d, A.shape[1], dtype=u.dtype)
    ys = []
    for t in range(L):
        h = dA[:, t] * h + dBu[:, t]
        ys.append(torch.einsum("bn,bdn->bd", C[:, t], h))
    y = torch.stack(ys, dim=1)
    return D * u + y


# ---------------------------------------------------------------- SS2D (VMamba)


class SS2D(nn.Module):
    K = 4

    def __init__(self, c=8, expand=2, n=4, rank=2, spelling="reference"):
        super().__init__()
        self.spelling = spelling
        d = expand * c
        self.d, self.n, self.rank = d, n, rank
        k = self.K
        self.in_proj = nn.Linear(c, 2 * d, bias=False)
        self.conv2d = nn.Conv2d(d, d, 3, padding=1, groups=d)
        self.x_proj_weight = nn.Parameter(torch.randn(k, rank + 2 * n, d) * d**-0.5)
        self.dt_projs_weight = nn.Parameter(torch.randn(k, d, rank) * rank**-0.5)
        self.dt_projs_bias = nn.Parameter(torch.randn(k, d) * 0.5 - 2.0)
        self.A_logs = nn.Parameter(a_log_init(k * d, n))
        self.Ds = nn.Parameter(torch.ones(k * d))
        self.out_norm = nn.LayerNorm(d)
        self.out_proj = nn.Linear(d, c, bias=False)
        self.norm2 = nn.LayerNorm(c)
        self.fc1 = nn.Linear(c, 2 * c)
        self.fc2 = nn.Linear(2 * c, c)

    def forward(self, inp):
        b, hh, ww, _ = inp.shape
        L, k, d = hh * ww, self.K, self.d
        x, z = self.in_proj(inp).chunk(2, dim=-1)
        x = F.silu(self.conv2d(x.permute(0, 3, 1, 2)))  # (b, d, H, W)
        # Four directions: row-major, column-major, and both reversed.
        x_hw = x.flatten(2)
        x_wh = x.transpose(2, 3).flatten(2)
        xs = torch.stack([x_hw, x_wh, x_hw.flip(-1), x_wh.flip(-1)], dim=1)  # (b, K, d, L)
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)
        dts, Bs, Cs = x_dbl.split([self.rank, self.n, self.n], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight)
        args = (-torch.exp(self.A_logs),)
        if self.spelling == "channels_last":
            y = scan_grouped_cl(
                xs.reshape(b, k * d, L).transpose(1, 2),
                dts.reshape(b, k * d, L).transpose(1, 2),
                *args,
                Bs.permute(0, 3, 1, 2),
                Cs.permute(0, 3, 1, 2),
                self.Ds,
                self.dt_projs_bias.reshape(-1),
            ).transpose(1, 2)
        else:
            scan = scan_interleaved if self.spelling == "interleaved" else scan_grouped
            y = scan(
                xs.reshape(b, k * d, L),
                dts.reshape(b, k * d, L),
                *args,
                Bs,
                Cs,
                self.Ds,
                self.dt_projs_bias.reshape(-1),
            )
        y = y.reshape(b, k, d, L)
        # Back to row-major order and summed.
        y_rev = y[:, 2:].flip(-1)
        y_hw = y[:, 0] + y_rev[:, 0]
        y_wh = y[:, 1] + y_rev[:, 1]
        y_wh = y_wh.reshape(b, d, ww, hh).transpose(2, 3).reshape(b, d, L)
        y = (y_hw + y_wh).transpose(1, 2).reshape(b, hh, ww, d)
        y = self.out_norm(y) * F.silu(z)
        out = inp + self.out_proj(y)
        return out + self.fc2(F.gelu(self.fc1(self.norm2(out))))


# ---------------------------------------------------------------- Vim (bidirectional)


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Branch(nn.Module):
    """One direction of the Vim block: causal conv1d, x_proj, dt_proj, the scan."""

    def __init__(self, d, n, rank, d_conv=3, scan=None):
        super().__init__()
        self.n, self.rank = n, rank
        self.scan = scan or scan_single
        self.conv1d = nn.Conv1d(d, d, d_conv, groups=d, padding=d_conv - 1)
        self.x_proj = nn.Linear(d, rank + 2 * n, bias=False)
        self.dt_proj = nn.Linear(rank, d, bias=True)
        self.A_log = nn.Parameter(a_log_init(d, n))
        self.D = nn.Parameter(torch.ones(d))

    def forward(self, x, z):  # (b, L, d)
        L = x.shape[1]
        x = F.silu(self.conv1d(x.transpose(1, 2))[:, :, :L].transpose(1, 2))
        dt, B, C = self.x_proj(x).split([self.rank, self.n, self.n], dim=-1)
        dt = F.softplus(self.dt_proj(dt))
        y = self.scan(x, dt, -torch.exp(self.A_log), B, C, self.D)
        return y * F.silu(z)


class VimBlock(nn.Module):
    def __init__(self, c=8, expand=2, n=4, rank=2, patch=2):
        super().__init__()
        d = expand * c
        self.d = d
        self.patch_embed = nn.Conv2d(3, c, patch, stride=patch)
        self.norm = RMSNorm(c)
        self.in_proj = nn.Linear(c, 2 * d, bias=False)
        self.fwd = Branch(d, n, rank)
        self.bwd = Branch(d, n, rank, scan=scan_single_alt)
        self.out_proj = nn.Linear(d, c, bias=False)
        self.head = nn.Linear(c, 5)

    def forward(self, img):
        t = self.patch_embed(img).flatten(2).transpose(1, 2)  # (b, L, c)
        x, z = self.in_proj(self.norm(t)).chunk(2, dim=-1)
        y_f = self.fwd(x, z)
        y_b = self.bwd(x.flip(1), z.flip(1)).flip(1)
        t = t + self.out_proj((y_f + y_b) / 2)
        pooled = F.hardswish(t.mean(1))
        return F.gelu(self.head(pooled), approximate="tanh")


# ---------------------------------------------------------------- MambaVision mixer


class MambaVisionBlock(nn.Module):
    """MambaVision's mixer: x and z both through a non-causal conv and SiLU, the scan on x
    only (no gate), then the two halves concatenated; GroupNorm on the feature map."""

    def __init__(self, c=8, expand=2, n=4, rank=2):
        super().__init__()
        d = expand * c // 2
        self.n, self.rank = n, rank
        self.norm = nn.LayerNorm(c)
        self.in_proj = nn.Linear(c, 2 * d, bias=False)
        self.conv_x = nn.Conv1d(d, d, 3, padding=1, groups=d, bias=False)
        self.conv_z = nn.Conv1d(d, d, 3, padding=1, groups=d, bias=False)
        self.x_proj = nn.Linear(d, rank + 2 * n, bias=False)
        self.dt_proj = nn.Linear(rank, d, bias=True)
        self.A_log = nn.Parameter(a_log_init(d, n))
        self.D = nn.Parameter(torch.ones(d))
        self.out_proj = nn.Linear(2 * d, c, bias=False)
        self.gn = nn.GroupNorm(2, c)

    def forward(self, fmap):  # (b, c, H, W)
        b, c, hh, ww = fmap.shape
        t = fmap.flatten(2).transpose(1, 2)  # (b, L, c)
        x, z = self.in_proj(self.norm(t)).chunk(2, dim=-1)
        x = F.silu(self.conv_x(x.transpose(1, 2)))  # (b, d, L)
        z = F.silu(self.conv_z(z.transpose(1, 2)))
        dt, B, C = self.x_proj(x.transpose(1, 2)).split([self.rank, self.n, self.n], dim=-1)
        dt = (dt @ self.dt_proj.weight.t()).transpose(1, 2)
        y = scan_channels_first(
            x,
            dt,
            -torch.exp(self.A_log),
            B.transpose(1, 2),
            C.transpose(1, 2),
            self.D,
            self.dt_proj.bias,
        )
        t = t + self.out_proj(torch.cat([y, z], dim=1).transpose(1, 2))
        return self.gn(t.transpose(1, 2).reshape(b, c, hh, ww))


# ---------------------------------------------------------------- export and fixtures


def op_counts(m):
    counts = {}
    for n in m.graph.node:
        key = n.op_type if not n.domain else f"{n.domain}:{n.op_type}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def export(model, x, path, opset, dynamo=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch", min=1, max=64)
            prog = torch.onnx.export(
                model,
                (x,),
                input_names=["x"],
                output_names=["y"],
                dynamic_shapes=({0: batch},),
                dynamo=True,
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
            prog.save(path)
            m = onnx.load(path)
            # The exporter's per-node metadata (stack traces, module names) is 80 % of the
            # file; the graph and its value_info stay as exported.
            for n in m.graph.node:
                del n.metadata_props[:]
                n.doc_string = ""
            onnx.save(m, path)
            onnx.checker.check_model(m, full_check=True)
            return m
        torch.onnx.export(
            model,
            (x,),
            path,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            dynamo=False,
            opset_version=opset,
            do_constant_folding=True,
        )
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    return m


def make_fixture(out_root, name, model, block, shape, dtype, opset, tol, exporter="ts"):
    folder = os.path.join(out_root, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(folder, "inputs"))
    os.makedirs(os.path.join(folder, "expected"))
    rng = np.random.default_rng(SEED + sum(shape))
    x = rng.uniform(-1, 1, size=(BATCH,) + shape).astype(dtype)
    path = os.path.join(folder, "model.onnx")
    m = export(model, torch.from_numpy(x), path, opset, dynamo=exporter == "dynamo")
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (ort_y,) = sess.run(None, {"x": x})
    with torch.no_grad():
        # PyTorch in fp32 on the same rounded weights and inputs: the fp16 export's reference.
        torch_y = model.float()(torch.from_numpy(x.astype(np.float32))).numpy()
        model.to(torch.float16 if dtype == np.float16 else torch.float32)
    err = float(np.max(np.abs(ort_y.astype(np.float32) - torch_y)))
    if err > tol:
        sys.exit(f"{name}: onnxruntime and PyTorch disagree by {err}")
    np.save(os.path.join(folder, "inputs", "x.npy"), x)
    np.save(os.path.join(folder, "expected", "y.npy"), ort_y)
    h, w = shape[:2] if block == "ss2d" else shape[-2:]
    seq_len = {"vim": (h // 2) * (w // 2)}.get(block, h * w)
    meta = {
        "block": block,
        "exporter": exporter,
        "dtype": np.dtype(dtype).name,
        "input_shape": list(x.shape),
        "image": [h, w],
        "seq_len": seq_len,
        "batch": "dynamic",
        "opset": [{"domain": o.domain, "version": o.version} for o in m.opset_import],
        "nodes": len(m.graph.node),
        "initializers": len(m.graph.initializer),
        "op_counts": op_counts(m),
        "ort_vs_torch_max_abs": err,
    }
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    kb = os.path.getsize(path) / 1024
    print(f"{name}: {len(m.graph.node)} nodes, {kb:.0f} KiB, ort vs torch {err:.2e}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures", "vision"))
    ap.add_argument("--only", help="comma-separated fixture names")
    args = ap.parse_args()
    torch.set_num_threads(1)
    only = set(args.only.split(",")) if args.only else None

    torch.manual_seed(SEED)
    ss2d = SS2D().eval()
    perturb(ss2d, SEED + 1)
    torch.manual_seed(SEED + 2)
    vim = VimBlock().eval()
    perturb(vim, SEED + 3)

    # The same SS2D weights with the scan spelled differently: channels-last with expand +
    # reshape and a summed-product readout (patched like the reference), and B/C tiled
    # instead of interleaved (a different model: refused).
    variants = {}
    for spelling in ("channels_last", "interleaved"):
        torch.manual_seed(SEED)
        variants[spelling] = SS2D(spelling=spelling).eval()
        perturb(variants[spelling], SEED + 1)

    # Two SS2D blocks in a row: two grouped scans in one graph.
    torch.manual_seed(SEED + 6)
    ss2d_x2 = nn.Sequential(SS2D(), SS2D()).eval()
    perturb(ss2d_x2, SEED + 7)
    torch.manual_seed(SEED + 4)
    mvision = MambaVisionBlock().eval()
    perturb(mvision, SEED + 5)

    jobs = [
        ("mambavision_4x6", mvision, "mambavision", (8, 4, 6), np.float32, 17, 1e-4),
        ("ss2d_x2_3x5", ss2d_x2, "ss2d", (3, 5, 8), np.float32, 17, 1e-4),
        ("ss2d_cl_expand_4x4", variants["channels_last"], "ss2d", (4, 4, 8), np.float32, 17, 1e-4),
        ("ss2d_interleaved_4x4", variants["interleaved"], "ss2d", (4, 4, 8), np.float32, 17, 1e-4),
    ]
    for dtype, tag, tol in ((np.float32, "", 1e-4), (np.float16, "_fp16", 3e-2)):
        for h, w in SS2D_SIZES:
            jobs.append((f"ss2d{tag}_{h}x{w}", ss2d, "ss2d", (h, w, 8), dtype, 17, tol))
        for h, w in VIM_SIZES:
            jobs.append((f"vim{tag}_{h}x{w}", vim, "vim", (3, h, w), dtype, 20, tol))
    for name, model, block, shape, dtype, opset, tol in jobs:
        if only and name not in only:
            continue
        model.to(torch.float16 if dtype == np.float16 else torch.float32)
        make_fixture(args.out, name, model, block, shape, dtype, opset, tol)
    # The dynamo exporter (torch.export), fp32, one size each.
    for name, model, block, shape, opset in (
        ("ss2d_dynamo_4x4", ss2d, "ss2d", (4, 4, 8), 18),
        ("vim_dynamo_8x8", vim, "vim", (3, 8, 8), 20),
    ):
        if only and name not in only:
            continue
        model.to(torch.float32)
        make_fixture(args.out, name, model, block, shape, np.float32, opset, 1e-4, "dynamo")


if __name__ == "__main__":
    main()
