//! `S6ScanHeads` evaluated chunk-wise (SSD, the state-space duality), as a chunked prefill
//! kernel does: within a chunk `y = (C·Bᵀ ∘ decay) (Δ·x)` plus the entering state read out by
//! `C`, and one state update per chunk. The same function as the recurrence of
//! [`crate::reference_heads`]; this form exists to show the algorithm and its rounding (fp32)
//! that a kernel will have, and to test chunk boundaries independently of any kernel.
//!
//! No padding: the last chunk is simply shorter, which is what the contract asks of a patched
//! graph too (the export's chunk padding is not part of the op).

use crate::contract_heads::{HeadsAttrs, HeadsDims};
use crate::error::ContractError;
use crate::reference::{load_state, silu, Real, ScanOutputs};
use crate::reference_heads::{step_size, validate, Checked, HeadsInputs};

/// The chunked scan in compute type `T`, with chunks of `chunk` steps (≥ 1).
pub fn scan_heads_chunked<T: Real>(
    attrs: &HeadsAttrs,
    dims: &HeadsDims,
    x: &HeadsInputs,
    chunk: usize,
) -> Result<ScanOutputs<T>, ContractError> {
    if chunk == 0 {
        return Err(ContractError::Attribute {
            name: "chunk".into(),
            reason: "chunk size must be ≥ 1".into(),
        });
    }
    let HeadsDims {
        batch,
        seqlen,
        heads,
        headdim: p_sz,
        dstate: n_sz,
        groups,
    } = *dims;
    let Checked {
        d: d_skip,
        z,
        dt_bias,
        dt_limit,
        initial_state,
    } = validate(attrs, dims, x)?;
    let w = T::from_f32;
    let limit = dt_limit.map(|l| (w(l[0]), w(l[1])));
    let per_group = dims.heads_per_group();
    let head_state = p_sz * n_sz;
    let mut y = vec![T::ZERO; dims.x_len()];
    let mut last_state = vec![T::ZERO; dims.state_len()];
    let mut s = vec![T::ZERO; head_state];
    // Per chunk: Δ, cumulative log-decay, and C_i·B_j.
    let mut delta = vec![T::ZERO; chunk];
    let mut cum = vec![T::ZERO; chunk];
    let mut cb = vec![T::ZERO; chunk * chunk];
    for bi in 0..batch {
        for hd in 0..heads {
            let g = hd / per_group;
            let state_off = (bi * heads + hd) * head_state;
            load_state(&mut s, initial_state, state_off);
            let a_h = w(x.a[hd]);
            let bias = dt_bias.map(|v| w(v[hd]));
            let row = |t: usize| bi * seqlen + t;
            let bc = |m: &[f32], t: usize, n: usize| w(m[(row(t) * groups + g) * n_sz + n]);
            let xv = |t: usize, p: usize| w(x.x[(row(t) * heads + hd) * p_sz + p]);
            let mut t0 = 0;
            while t0 < seqlen {
                let len = chunk.min(seqlen - t0);
                let mut acc = T::ZERO;
                for i in 0..len {
                    let raw = w(x.dt[row(t0 + i) * heads + hd]);
                    delta[i] = step_size(raw, bias, attrs.dt_softplus, limit);
                    acc = acc + delta[i] * a_h;
                    cum[i] = acc;
                }
                for i in 0..len {
                    for j in 0..=i {
                        let mut dot = T::ZERO;
                        for n in 0..n_sz {
                            dot = dot + bc(x.c, t0 + i, n) * bc(x.b, t0 + j, n);
                        }
                        cb[i * chunk + j] = dot;
                    }
                }
                for i in 0..len {
                    let t = t0 + i;
                    let into = cum[i].exp();
                    for p in 0..p_sz {
                        // Intra-chunk: Σ_{j ≤ i} (C_i·B_j) · exp(cum_i − cum_j) · Δ_j · x_j.
                        let mut yv = T::ZERO;
                        for j in 0..=i {
                            let decay = (cum[i] + -cum[j]).exp();
                            yv = yv + cb[i * chunk + j] * decay * delta[j] * xv(t0 + j, p);
                        }
                        // The state entering the chunk, decayed to step i, read out by C_i.
                        let mut carried = T::ZERO;
                        for n in 0..n_sz {
                            carried = carried + bc(x.c, t, n) * s[p * n_sz + n];
                        }
                        yv = yv + into * carried;
                        if let Some(dv) = d_skip {
                            yv = yv + xv(t, p) * w(dv[hd]);
                        }
                        if let Some(zv) = z {
                            yv = yv * silu(w(zv[(row(t) * heads + hd) * p_sz + p]));
                        }
                        y[(row(t) * heads + hd) * p_sz + p] = yv;
                    }
                }
                // State at the chunk's end: decayed entering state plus the chunk's inputs.
                let last = cum[len - 1];
                let whole = last.exp();
                for p in 0..p_sz {
                    for n in 0..n_sz {
                        let mut v = whole * s[p * n_sz + n];
                        for j in 0..len {
                            let to_end = (last + -cum[j]).exp();
                            v = v + to_end * delta[j] * xv(t0 + j, p) * bc(x.b, t0 + j, n);
                        }
                        s[p * n_sz + n] = v;
                    }
                }
                t0 += len;
            }
            last_state[state_off..state_off + head_state].copy_from_slice(&s);
        }
    }
    Ok(ScanOutputs { y, last_state })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference_heads::scan_heads_f64;

    #[test]
    fn chunk_zero_is_refused() {
        let err = scan_heads_chunked::<f64>(
            &HeadsAttrs::default(),
            &HeadsDims {
                batch: 0,
                seqlen: 0,
                heads: 1,
                headdim: 1,
                dstate: 1,
                groups: 1,
            },
            &HeadsInputs {
                a: &[-1.0],
                ..Default::default()
            },
            0,
        )
        .unwrap_err();
        assert!(matches!(err, ContractError::Attribute { ref name, .. } if name == "chunk"));
    }

    /// A hand-made case with every option, L = 7, chunks 1..=8: equal to the recurrence.
    #[test]
    fn equals_the_recurrence_at_every_chunk_size() {
        let dims = HeadsDims {
            batch: 2,
            seqlen: 7,
            heads: 2,
            headdim: 2,
            dstate: 3,
            groups: 2,
        };
        let attrs = HeadsAttrs {
            dt_softplus: true,
            has_d: true,
            has_z: true,
            has_dt_bias: true,
            has_dt_limit: true,
            has_initial_state: true,
            has_last_state: true,
        };
        let gen =
            |n: usize, k: f32| -> Vec<f32> { (0..n).map(|i| (i as f32 * k).sin() * 1.3).collect() };
        let (xs, dt, b, c, z) = (
            gen(dims.x_len(), 0.7),
            gen(dims.dt_len(), 1.1),
            gen(dims.bc_len(), 0.3),
            gen(dims.bc_len(), 0.9),
            gen(dims.x_len(), 0.5),
        );
        let h0 = gen(dims.state_len(), 0.2);
        let (a, d, bias, lim) = (
            [-0.5f32, -3.0],
            [0.25f32, -1.0],
            [0.1f32, -0.4],
            [0.05f32, 0.9],
        );
        let inp = HeadsInputs {
            x: &xs,
            dt: &dt,
            a: &a,
            b: &b,
            c: &c,
            d: Some(&d),
            z: Some(&z),
            dt_bias: Some(&bias),
            dt_limit: Some(&lim),
            initial_state: Some(&h0),
        };
        let want = scan_heads_f64(&attrs, &dims, &inp).unwrap();
        for chunk in 1..=8 {
            let got = scan_heads_chunked::<f64>(&attrs, &dims, &inp, chunk).unwrap();
            for (g, w) in got
                .y
                .iter()
                .chain(&got.last_state)
                .zip(want.y.iter().chain(&want.last_state))
            {
                assert!(
                    (g - w).abs() <= 1e-13 * (1.0 + w.abs()),
                    "chunk {chunk}: {g} vs {w}"
                );
            }
        }
    }
}
