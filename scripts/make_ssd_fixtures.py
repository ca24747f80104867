#!/usr/bin/env python3
"""Writes the S6ScanHeads (Mamba2 / SSD) reference fixtures under fixtures/ssd/<case>/.

Each case holds its packed inputs as .npy (contract names: x, dt, A, B, C, D, z, dt_bias,
dt_limit, initial_state), the expected outputs y.npy and, where has_last_state is 1,
last_state.npy, and case.json (attributes, packed input and output order, sizes, activation
dtype, the chunk size the SSD form was checked with).

The expected values are computed in float64 from the values exactly as stored (fp16 cases: from
the fp16-rounded inputs) in two independent ways, which must agree before a case is written:

- `recurrence_f64`: the per-step recurrence of docs/s6scan_heads.md;
- `ssd_chunked_f64`: the chunked SSD evaluation (cumulative sums of dt·A per chunk, segment sums,
  intra-chunk products, the chunk-to-chunk state recurrence, L padded to a multiple of the chunk
  after the step sizes are final), as mamba_ssm's reference and transformers' torch path do.

Decode cases are also checked against `state_update_tied_f64`, a selective_state_update-style
single step that takes dt, A, D and dt_bias expanded over the head dim (the tied heads form).

Usage: python scripts/make_ssd_fixtures.py [OUT_DIR]   (default: fixtures/ssd next to scripts/)
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

FLAGS = ["dt_softplus", "has_D", "has_z", "has_dt_bias", "has_dt_limit", "has_initial_state",
         "has_last_state"]
INPUT_ORDER = ["x", "dt", "A", "B", "C", "D", "z", "dt_bias", "dt_limit", "initial_state"]
OPTIONAL_FLAG = {"D": "has_D", "z": "has_z", "dt_bias": "has_dt_bias",
                 "dt_limit": "has_dt_limit", "initial_state": "has_initial_state"}
# Relative agreement (to the output's scale) demanded of the two float64 evaluations.
AGREE = 1e-12
# ... and of transformers' Mamba2 torch path, which computes in float32.
AGREE_TRANSFORMERS = 1e-5


def step_sizes(dt, dt_bias, softplus, limit):
    """dt (b, l, h) -> final step sizes: bias, softplus (threshold 20), clamp."""
    if dt_bias is not None:
        dt = dt + dt_bias
    if softplus:
        dt = torch.where(dt > 20.0, dt, torch.log1p(torch.exp(dt)))
    if limit is not None:
        dt = torch.clamp(dt, min=float(limit[0]), max=float(limit[1]))
    return dt


def expand_groups(m, heads):
    """(b, l, g, n) -> (b, l, h, n): consecutive heads share a group."""
    return m.repeat_interleave(heads // m.shape[2], dim=2)


def gate(y, x, D, z):
    if D is not None:
        y = y + x * D[:, None]
    if z is not None:
        y = y * F.silu(z)
    return y


def recurrence_f64(x, dt, A, B, C, D=None, z=None, dt_bias=None, limit=None, h0=None,
                   softplus=False):
    """The op step by step. x (b, l, h, p); dt (b, l, h); A (h); B, C (b, l, g, n);
    D, dt_bias (h); h0 (b, h, p, n). Returns y (b, l, h, p) and the last state."""
    b, l, h, p = x.shape
    n = B.shape[-1]
    delta = step_sizes(dt, dt_bias, softplus, limit)
    Bh, Ch = expand_groups(B, h), expand_groups(C, h)
    s = torch.zeros(b, h, p, n, dtype=torch.float64) if h0 is None else h0.clone()
    y = torch.empty(b, l, h, p, dtype=torch.float64)
    for t in range(l):
        d_t = delta[:, t]  # (b, h)
        decay = torch.exp(d_t * A)[:, :, None, None]
        s = decay * s + (d_t[:, :, None] * x[:, t])[..., None] * Bh[:, t, :, None, :]
        y[:, t] = (s * Ch[:, t, :, None, :]).sum(-1)
    return gate(y, x, D, z), s


def ssd_chunked_f64(x, dt, A, B, C, chunk, D=None, z=None, dt_bias=None, limit=None, h0=None,
                    softplus=False):
    """The same function evaluated chunk-wise (SSD), written from the state-space duality:
    within a chunk y = (C Bᵀ ∘ decay mask) (Δx), across chunks a recurrence on the chunk states."""
    b, l, h, p = x.shape
    n = B.shape[-1]
    delta = step_sizes(dt, dt_bias, softplus, limit)
    Bh, Ch = expand_groups(B, h), expand_groups(C, h)
    xd = x * delta[..., None]  # Δ·x
    la = delta * A  # log-decay per step, (b, l, h)
    # Pad to whole chunks with zero steps (Δ = 0: decay 1, no input), after Δ is final.
    pad = (-l) % chunk
    if pad:
        xd = F.pad(xd, (0, 0, 0, 0, 0, pad))
        la = F.pad(la, (0, 0, 0, pad))
        Bh = F.pad(Bh, (0, 0, 0, 0, 0, pad))
        Ch = F.pad(Ch, (0, 0, 0, 0, 0, pad))
    nc = (l + pad) // chunk
    xd = xd.reshape(b, nc, chunk, h, p)
    la = la.reshape(b, nc, chunk, h)
    Bh = Bh.reshape(b, nc, chunk, h, n)
    Ch = Ch.reshape(b, nc, chunk, h, n)
    cum = torch.cumsum(la, dim=2)  # (b, c, T, h): log-decay from the chunk start to step i
    # Segment sums: seg[i, j] = cum[i] − cum[j] = Σ_{j<k≤i} la[k] for i ≥ j; −inf above.
    seg = cum[:, :, :, None, :] - cum[:, :, None, :, :]  # (b, c, i, j, h)
    causal = torch.ones(chunk, chunk, dtype=torch.bool).tril()
    seg = seg.masked_fill(~causal[None, None, :, :, None], float("-inf"))
    scores = torch.einsum("bcihn,bcjhn->bcijh", Ch, Bh) * torch.exp(seg)
    y_intra = torch.einsum("bcijh,bcjhp->bcihp", scores, xd)
    # State contributed by each chunk alone, at its end.
    to_end = torch.exp(cum[:, :, -1:, :] - cum)  # (b, c, T, h)
    chunk_state = torch.einsum("bcjh,bcjhn,bcjhp->bchpn", to_end, Bh, xd)
    total = torch.exp(cum[:, :, -1, :])  # decay over a whole chunk, (b, c, h)
    s = torch.zeros(b, h, p, n, dtype=torch.float64) if h0 is None else h0.clone()
    y_inter = torch.empty_like(y_intra)
    for c in range(nc):
        # Output of the state entering chunk c, decayed to each step of it.
        y_inter[:, c] = torch.einsum("bihn,bhpn,bih->bihp", Ch[:, c], s, torch.exp(cum[:, c]))
        s = total[:, c, :, None, None] * s + chunk_state[:, c]
    y = (y_intra + y_inter).reshape(b, nc * chunk, h, p)[:, :l]
    return gate(y, x, D, z), s


def state_update_tied_f64(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, softplus=False):
    """One decode step in selective_state_update's per-channel form, fed the tied heads views:
    x (b, h, p); dt (b, h) expanded to (b, h, p); A (h) to (h, p, n); D, dt_bias (h) to (h, p);
    B, C (b, g, n). Returns y (b, h, p) and the new state."""
    b, h, p = x.shape
    n = B.shape[-1]
    dt_e = dt[:, :, None].expand(b, h, p)
    A_e = A[:, None, None].expand(h, p, n)
    if dt_bias is not None:
        dt_e = dt_e + dt_bias[:, None].expand(h, p)
    if softplus:
        dt_e = torch.where(dt_e > 20.0, dt_e, torch.log1p(torch.exp(dt_e)))
    Bh = B.repeat_interleave(h // B.shape[1], dim=1)  # (b, h, n)
    Ch = C.repeat_interleave(h // C.shape[1], dim=1)
    dA = torch.exp(dt_e[..., None] * A_e)
    new = state * dA + (dt_e * x)[..., None] * Bh[:, :, None, :]
    y = (new * Ch[:, :, None, :]).sum(-1)
    if D is not None:
        y = y + x * D[:, None].expand(h, p)
    if z is not None:
        y = y * F.silu(z)
    return y, new


def transformers_check(x, dt, A, B, C, chunk, kw, y, last):
    """Relative difference of transformers' Mamba2 torch fallbacks (mamba2_chunk_scan, and
    mamba2_selective_state_update for a decode step) from our float64 result."""
    from transformers.models.mamba2 import modeling_mamba2 as m

    limit = kw["limit"]
    y_t, last_t = m.mamba2_chunk_scan(
        x, dt, A, B, C, chunk_size=chunk, D=kw["D"], dt_bias=kw["dt_bias"],
        initial_states=kw["h0"], dt_softplus=kw["softplus"],
        dt_limit=(0.0, float("inf")) if limit is None else (float(limit[0]), float(limit[1])),
        return_final_states=True)
    if kw["z"] is not None:
        y_t = y_t * F.silu(kw["z"])
    scale = max(1.0, float(y.abs().max()), float(last.abs().max()))
    diff = max(float((y - y_t).abs().max()), float((last - last_t).abs().max()))
    return diff / scale


def make_case(rng, *, batch, seqlen, heads, headdim, dstate, groups=1, chunk=4,
              act_dtype="float32", dt_softplus=0, has_D=0, has_z=0, has_dt_bias=0,
              has_dt_limit=0, has_initial_state=0, has_last_state=0, big_dt=False,
              limit=(0.05, 0.4)):
    attrs = dict(dt_softplus=dt_softplus, has_D=has_D, has_z=has_z, has_dt_bias=has_dt_bias,
                 has_dt_limit=has_dt_limit, has_initial_state=has_initial_state,
                 has_last_state=has_last_state)
    act_np = np.float16 if act_dtype == "float16" else np.float32
    x = rng.standard_normal((batch, seqlen, heads, headdim))
    if dt_softplus:
        dt = rng.normal(-1.0 if has_dt_bias else 0.0, 1.5, (batch, seqlen, heads))
        if big_dt:
            # Both sides of the softplus threshold (20), and far below it.
            dt.reshape(-1)[:4] = [19.5, 20.5, 25.0, -30.0]
    else:
        dt = rng.uniform(0.01, 0.6, (batch, seqlen, heads))
    # Mamba2's initialisation: A = -exp(A_log), A_log ~ log U[1, 16].
    A = -rng.uniform(1.0, 16.0, heads)
    Bm = rng.standard_normal((batch, seqlen, groups, dstate))
    Cm = rng.standard_normal((batch, seqlen, groups, dstate))
    D = rng.standard_normal(heads)
    z = rng.standard_normal((batch, seqlen, heads, headdim))
    dt0 = np.exp(rng.uniform(np.log(1e-3), np.log(0.1), heads))
    dt_bias = dt0 + np.log(-np.expm1(-dt0))  # inverse softplus, as Mamba2 initialises it
    dt_limit = np.array(limit, dtype=np.float64)
    h0 = rng.standard_normal((batch, heads, headdim, dstate))

    x, dt, z, Bm, Cm = (v.astype(act_np) for v in (x, dt, z, Bm, Cm))
    A, D, dt_bias, dt_limit, h0 = (v.astype(np.float32) for v in (A, D, dt_bias, dt_limit, h0))

    t = lambda v: torch.from_numpy(np.ascontiguousarray(v)).to(torch.float64)  # noqa: E731
    kw = dict(
        D=t(D) if has_D else None,
        z=t(z) if has_z else None,
        dt_bias=t(dt_bias) if has_dt_bias else None,
        limit=t(dt_limit) if has_dt_limit else None,
        h0=t(h0) if has_initial_state else None,
        softplus=bool(dt_softplus),
    )
    y, last = recurrence_f64(t(x), t(dt), t(A), t(Bm), t(Cm), **kw)
    y2, last2 = ssd_chunked_f64(t(x), t(dt), t(A), t(Bm), t(Cm), chunk, **kw)
    scale = max(1.0, float(y.abs().max()), float(last.abs().max()))
    diff = max(float((y - y2).abs().max()), float((last - last2).abs().max()))
    assert diff <= AGREE * scale, f"recurrence and chunked SSD differ by {diff:.3e} (scale {scale})"
    checks = {"chunked_vs_recurrence": diff / scale}
    if limit_ok_for_transformers(kw):
        rel = transformers_check(t(x), t(dt), t(A), t(Bm), t(Cm), chunk, kw, y, last)
        assert rel <= AGREE_TRANSFORMERS, f"transformers' Mamba2 torch path differs by {rel:.3e}"
        checks["transformers_fp32_vs_recurrence"] = rel
    if seqlen == 1:
        assert not has_dt_limit, "the tied decode check has no dt_limit (selective_state_update)"
        s0 = kw["h0"] if kw["h0"] is not None else torch.zeros(batch, heads, headdim, dstate,
                                                                 dtype=torch.float64)
        y3, last3 = state_update_tied_f64(
            s0, t(x)[:, 0], t(dt)[:, 0], t(A), t(Bm)[:, 0], t(Cm)[:, 0], D=kw["D"],
            z=kw["z"][:, 0] if kw["z"] is not None else None, dt_bias=kw["dt_bias"],
            softplus=kw["softplus"])
        d3 = max(float((y[:, 0] - y3).abs().max()), float((last - last3).abs().max()))
        assert d3 <= AGREE * scale, f"decode step differs from the tied update by {d3:.3e}"
        checks["decode_vs_tied_update"] = d3 / scale

    stored = {"x": x, "dt": dt, "A": A, "B": Bm, "C": Cm, "D": D, "z": z, "dt_bias": dt_bias,
              "dt_limit": dt_limit, "initial_state": h0}
    inputs = [k for k in INPUT_ORDER if k not in OPTIONAL_FLAG or attrs[OPTIONAL_FLAG[k]]]
    outputs = {"y": y.numpy().astype(np.float32)}
    if has_last_state:
        outputs["last_state"] = last.numpy().astype(np.float32)
    meta = {
        "attrs": attrs,
        "inputs": inputs,
        "outputs": list(outputs),
        "act_dtype": act_dtype,
        "dims": {"batch": batch, "seqlen": seqlen, "heads": heads, "headdim": headdim,
                 "dstate": dstate, "groups": groups},
        "chunk_checked": chunk,
        "checks": checks,
    }
    return {k: np.ascontiguousarray(stored[k]) for k in inputs}, outputs, meta


def limit_ok_for_transformers(kw):
    """transformers' chunk scan always clamps, with (0, inf) by default: without our limit the
    two agree only where the step sizes are ≥ 0, i.e. after a softplus."""
    return kw["limit"] is not None or kw["softplus"]


CASES = {
    # L a whole number of chunks (2 × 4), no options.
    "plain": dict(batch=1, seqlen=8, heads=2, headdim=3, dstate=4),
    # L = 11 with chunk 4: a partial last chunk; last state through the padding.
    "odd_l": dict(batch=1, seqlen=11, heads=2, headdim=2, dstate=3, has_last_state=1),
    "softplus_bias": dict(batch=1, seqlen=9, heads=3, headdim=2, dstate=4, dt_softplus=1,
                          has_dt_bias=1),
    "softplus_threshold": dict(batch=1, seqlen=6, heads=2, headdim=2, dstate=2, dt_softplus=1,
                               big_dt=True),
    # Limits that bite on both sides.
    "dt_limit": dict(batch=1, seqlen=10, heads=2, headdim=2, dstate=3, dt_softplus=1,
                     has_dt_bias=1, has_dt_limit=1, has_last_state=1),
    # transformers' default limits (0, inf): the identity after softplus.
    "dt_limit_default": dict(batch=1, seqlen=7, heads=2, headdim=2, dstate=2, dt_softplus=1,
                             has_dt_limit=1, limit=(0.0, float("inf"))),
    "groups": dict(batch=2, seqlen=9, heads=4, headdim=2, dstate=3, groups=2, has_D=1,
                   has_last_state=1),
    "d_and_z": dict(batch=1, seqlen=6, heads=2, headdim=3, dstate=2, has_D=1, has_z=1),
    "initial_state": dict(batch=2, seqlen=7, heads=2, headdim=2, dstate=3, has_initial_state=1,
                          has_last_state=1, chunk=3),
    # A Mamba2 layer's flags (D, bias, softplus, default limits) with groups and both states.
    "mamba2_layer": dict(batch=2, seqlen=19, heads=4, headdim=4, dstate=8, groups=2, chunk=8,
                         dt_softplus=1, has_D=1, has_dt_bias=1, has_dt_limit=1,
                         has_initial_state=1, has_last_state=1, limit=(0.0, float("inf"))),
    # One decode step, grouped, every option but the limits.
    "decode": dict(batch=2, seqlen=1, heads=4, headdim=3, dstate=4, groups=2, dt_softplus=1,
                   has_D=1, has_z=1, has_dt_bias=1, has_initial_state=1, has_last_state=1),
    "fp16": dict(batch=1, seqlen=10, heads=2, headdim=4, dstate=4, act_dtype="float16",
                 dt_softplus=1, has_D=1, has_dt_bias=1, has_last_state=1),
}


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "fixtures/ssd"
    rng = np.random.default_rng(20261201)
    if out.exists():
        shutil.rmtree(out)
    for name, kw in CASES.items():
        inputs, outputs, meta = make_case(rng, **kw)
        d = out / name
        d.mkdir(parents=True)
        for k, v in {**inputs, **outputs}.items():
            np.save(d / f"{k}.npy", v)
        (d / "case.json").write_text(json.dumps(meta, indent=1) + "\n")
        print(f"{name}: {meta['dims']} chunked/recurrence {meta['checks']}")


if __name__ == "__main__":
    main()
