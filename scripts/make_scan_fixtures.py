#!/usr/bin/env python3
"""Writes the S6Scan reference fixtures under fixtures/scan/<case>/.

Each case holds its inputs as .npy (contract names: u, delta, A, B, C, D, z, delta_bias,
initial_state; stored in the layout the case's attributes select), the expected outputs y.npy
and, where has_last_state is 1, last_state.npy, and case.json (attributes, packed input and
output order, sizes, activation dtype).

Expected outputs are computed here in float64 by a PyTorch implementation of docs/s6scan.md
(mamba_ssm 2.3 selective_scan_ref semantics plus an initial state), from the values exactly as
stored (fp16 cases: from the fp16-rounded inputs), then saved as float32 without rounding to the
activation dtype.

Usage: python scripts/make_scan_fixtures.py [OUT_DIR]   (default: fixtures/scan next to scripts/)
"""

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

FLAGS = [
    "delta_softplus",
    "has_D",
    "has_z",
    "has_delta_bias",
    "has_initial_state",
    "has_last_state",
    "channels_last",
    "bc_channels_last",
]
INPUT_ORDER = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state"]
OPTIONAL_FLAG = {"D": "has_D", "z": "has_z", "delta_bias": "has_delta_bias",
                 "initial_state": "has_initial_state"}


def s6_scan_f64(u, delta, A, B, C, D=None, z=None, delta_bias=None, h0=None, softplus=False):
    """The op on canonical layouts: u/delta/z (b, d, l); A (d, n); B/C (b, g, n, l); D and
    delta_bias (d); h0 (b, d, n). Everything float64. Returns y (b, d, l) and the last state."""
    b, d, l = u.shape
    g, n = B.shape[1], B.shape[2]
    if delta_bias is not None:
        delta = delta + delta_bias.view(1, d, 1)
    if softplus:
        # torch's softplus keeps x where x > 20, as mamba_ssm relies on.
        delta = torch.where(delta > 20.0, delta, torch.log1p(torch.exp(delta)))
    # Expand each group to its D/G consecutive channels.
    Bc = B.repeat_interleave(d // g, dim=1)  # (b, d, n, l)
    Cc = C.repeat_interleave(d // g, dim=1)
    h = torch.zeros(b, d, n, dtype=torch.float64) if h0 is None else h0.clone()
    ys = torch.empty(b, d, l, dtype=torch.float64)
    for t in range(l):
        dt = delta[:, :, t].unsqueeze(-1)  # (b, d, 1)
        decay = torch.exp(dt * A.unsqueeze(0))  # (b, d, n)
        h = decay * h + dt * Bc[:, :, :, t] * u[:, :, t].unsqueeze(-1)
        ys[:, :, t] = (h * Cc[:, :, :, t]).sum(-1)
    if D is not None:
        ys = ys + u * D.view(1, d, 1)
    if z is not None:
        ys = ys * (z * torch.sigmoid(z))
    return ys, h


def make_case(rng, *, batch, dim, seqlen, dstate, groups=1, grouped_rank4=None, act_dtype="float32",
              delta_softplus=0, has_D=0, has_z=0, has_delta_bias=0, has_initial_state=0,
              has_last_state=0, channels_last=0, bc_channels_last=0, big_delta=False):
    """Random inputs for one case, the expected outputs, and the metadata."""
    attrs = dict(delta_softplus=delta_softplus, has_D=has_D, has_z=has_z,
                 has_delta_bias=has_delta_bias, has_initial_state=has_initial_state,
                 has_last_state=has_last_state, channels_last=channels_last,
                 bc_channels_last=bc_channels_last)
    rank4 = groups > 1 if grouped_rank4 is None else grouped_rank4
    act_np = np.float16 if act_dtype == "float16" else np.float32

    u = rng.standard_normal((batch, dim, seqlen))
    if delta_softplus:
        # Raw pre-softplus values, as a Mamba dt projection gives.
        delta = rng.normal(-1.0 if has_delta_bias else 0.0, 1.5, (batch, dim, seqlen))
        if big_delta:
            # Exercise both sides of the softplus threshold (20).
            delta.reshape(-1)[:4] = [19.5, 20.5, 25.0, -30.0]
    else:
        delta = rng.uniform(0.01, 0.6, (batch, dim, seqlen))
    # Mamba's initialisation: A = -exp(A_log) with A_log = log(1..N), jittered.
    A = -np.exp(np.log(np.arange(1, dstate + 1))[None, :] + rng.uniform(-0.3, 0.3, (dim, dstate)))
    Bm = rng.standard_normal((batch, groups, dstate, seqlen))
    Cm = rng.standard_normal((batch, groups, dstate, seqlen))
    D = rng.standard_normal(dim)
    z = rng.standard_normal((batch, dim, seqlen))
    # Inverse softplus of dt in [0.01, 0.3], as Mamba initialises dt_proj.bias.
    dt0 = rng.uniform(0.01, 0.3, dim)
    delta_bias = dt0 + np.log(-np.expm1(-dt0))
    h0 = rng.standard_normal((batch, dim, dstate))

    # Round to the stored dtypes first: expected values come from what the op will read.
    u, delta, z, Bm, Cm = (x.astype(act_np) for x in (u, delta, z, Bm, Cm))
    A, D, delta_bias, h0 = (x.astype(np.float32) for x in (A, D, delta_bias, h0))

    t = lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(torch.float64)  # noqa: E731
    y, last = s6_scan_f64(
        t(u), t(delta), t(A), t(Bm), t(Cm),
        D=t(D) if has_D else None,
        z=t(z) if has_z else None,
        delta_bias=t(delta_bias) if has_delta_bias else None,
        h0=t(h0) if has_initial_state else None,
        softplus=bool(delta_softplus),
    )

    def act_layout(x):  # (b, d, l) -> stored layout
        return x.transpose(0, 2, 1) if channels_last else x

    def bc_layout(x):  # (b, g, n, l) -> stored layout
        x = x.transpose(0, 3, 1, 2) if bc_channels_last else x  # (b, l, g, n)
        if not rank4:
            x = x[:, :, 0] if bc_channels_last else x[:, 0]
        return x

    stored = {
        "u": act_layout(u), "delta": act_layout(delta), "A": A,
        "B": bc_layout(Bm), "C": bc_layout(Cm), "D": D, "z": act_layout(z),
        "delta_bias": delta_bias, "initial_state": h0,
    }
    inputs = [k for k in INPUT_ORDER if k not in OPTIONAL_FLAG or attrs[OPTIONAL_FLAG[k]]]
    outputs = {"y": act_layout(y.numpy()).astype(np.float32)}
    if has_last_state:
        outputs["last_state"] = last.numpy().astype(np.float32)
    meta = {
        "attrs": attrs,
        "inputs": inputs,
        "outputs": list(outputs),
        "act_dtype": act_dtype,
        "dims": {"batch": batch, "dim": dim, "seqlen": seqlen, "dstate": dstate, "groups": groups},
    }
    return {k: np.ascontiguousarray(stored[k]) for k in inputs}, outputs, meta


CASES = {
    "plain": dict(batch=1, dim=4, seqlen=5, dstate=3),
    "softplus": dict(batch=1, dim=4, seqlen=6, dstate=4, delta_softplus=1, big_delta=True),
    "softplus_bias": dict(batch=1, dim=6, seqlen=8, dstate=4, delta_softplus=1, has_delta_bias=1),
    "bias_no_softplus": dict(batch=1, dim=4, seqlen=5, dstate=2, has_delta_bias=1),
    "d_skip": dict(batch=1, dim=5, seqlen=7, dstate=3, has_D=1),
    "z_gate": dict(batch=1, dim=5, seqlen=7, dstate=3, has_z=1),
    "d_and_z": dict(batch=2, dim=6, seqlen=9, dstate=4, has_D=1, has_z=1, delta_softplus=1,
                    has_delta_bias=1),
    "groups": dict(batch=2, dim=8, seqlen=6, dstate=4, groups=2, has_D=1, has_z=1,
                   delta_softplus=1, has_delta_bias=1, has_last_state=1),
    "groups_rank4_g1": dict(batch=1, dim=4, seqlen=5, dstate=3, groups=1, grouped_rank4=True),
    "last_state_only": dict(batch=1, dim=4, seqlen=10, dstate=5, has_last_state=1),
    "initial_state": dict(batch=2, dim=6, seqlen=7, dstate=4, has_initial_state=1,
                          has_last_state=1, has_D=1, delta_softplus=1),
    "decode": dict(batch=2, dim=8, seqlen=1, dstate=4, groups=2, has_D=1, has_z=1,
                   delta_softplus=1, has_delta_bias=1, has_initial_state=1, has_last_state=1),
    "odd_l": dict(batch=1, dim=6, seqlen=37, dstate=4, has_D=1, has_z=1, delta_softplus=1,
                  has_delta_bias=1, has_last_state=1),
    "channels_last": dict(batch=2, dim=6, seqlen=5, dstate=3, channels_last=1, has_z=1,
                          has_D=1),
    "bc_channels_last": dict(batch=2, dim=8, seqlen=5, dstate=3, groups=2, bc_channels_last=1,
                             has_D=1),
    "both_layouts": dict(batch=2, dim=8, seqlen=11, dstate=4, groups=4, channels_last=1,
                         bc_channels_last=1, has_D=1, has_z=1, delta_softplus=1,
                         has_delta_bias=1, has_initial_state=1, has_last_state=1),
    "batch3": dict(batch=3, dim=4, seqlen=6, dstate=3, has_D=1, delta_softplus=1),
    "fp16": dict(batch=2, dim=8, seqlen=13, dstate=4, groups=2, act_dtype="float16", has_D=1,
                 has_z=1, delta_softplus=1, has_delta_bias=1, has_initial_state=1,
                 has_last_state=1),
    "fp16_decode_channels_last": dict(batch=1, dim=6, seqlen=1, dstate=4, act_dtype="float16",
                                      channels_last=1, bc_channels_last=1, has_D=1, has_z=1,
                                      delta_softplus=1, has_delta_bias=1, has_initial_state=1,
                                      has_last_state=1),
}


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "fixtures" / "scan"
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for i, (name, kw) in enumerate(CASES.items()):
        rng = np.random.default_rng(1000 + i)
        inputs, outputs, meta = make_case(rng, **kw)
        tmp = out / f".{name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        for k, v in {**inputs, **outputs}.items():
            np.save(tmp / f"{k}.npy", v)
        (tmp / "case.json").write_text(json.dumps(meta, indent=1) + "\n")
        dest = out / name
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
        size = sum(f.stat().st_size for f in dest.iterdir())
        total += size
        assert all(math.isfinite(float(np.abs(v).max())) for v in outputs.values()), name
    print(f"wrote {len(CASES)} cases to {out} ({total} bytes)")


if __name__ == "__main__":
    main()
