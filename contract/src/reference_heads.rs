//! CPU reference of `S6ScanHeads` (`docs/s6scan_heads.md`): Mamba2's scan as the plain
//! recurrence over time, in fp32 ([`scan_heads_f32`]) or fp64 ([`scan_heads_f64`], for checking
//! others). The chunked (SSD) form computes the same values; the fixtures check both against it.
//!
//! Activations arrive as f32 (the caller widens fp16/bf16 first); the result is in the compute
//! type and the caller narrows `y` to the activation dtype, as the op does.

use crate::checks::{check_input_count, check_len, check_opt};
use crate::contract_heads::{infer_heads_dims, HeadsAttrs, HeadsDims, HeadsInputRole};
use crate::error::ContractError;
use crate::reference::{biased_step, load_state, silu, Real, ScanOutputs};

/// Input data of one scan, row-major in the contract's shapes. An optional input must be
/// `Some` exactly when its `has_*` flag is 1.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadsInputs<'a> {
    /// (batch, L, H, P).
    pub x: &'a [f32],
    /// (batch, L, H).
    pub dt: &'a [f32],
    /// (H), fp32.
    pub a: &'a [f32],
    /// (batch, L, G, N).
    pub b: &'a [f32],
    /// (batch, L, G, N).
    pub c: &'a [f32],
    /// (H), fp32.
    pub d: Option<&'a [f32]>,
    /// (batch, L, H, P).
    pub z: Option<&'a [f32]>,
    /// (H), fp32.
    pub dt_bias: Option<&'a [f32]>,
    /// (2) = [lo, hi], fp32.
    pub dt_limit: Option<&'a [f32]>,
    /// (batch, H, P, N), fp32.
    pub initial_state: Option<&'a [f32]>,
}

impl<'a> HeadsInputs<'a> {
    /// Assigns packed inputs (contract order, absent ones skipped) to their roles.
    pub fn from_packed(attrs: &HeadsAttrs, packed: &[&'a [f32]]) -> Result<Self, ContractError> {
        let roles = attrs.inputs();
        check_input_count(roles.len(), packed.len())?;
        let mut v = HeadsInputs::default();
        for (role, &data) in roles.iter().zip(packed) {
            match role {
                HeadsInputRole::X => v.x = data,
                HeadsInputRole::Dt => v.dt = data,
                HeadsInputRole::A => v.a = data,
                HeadsInputRole::B => v.b = data,
                HeadsInputRole::C => v.c = data,
                HeadsInputRole::D => v.d = Some(data),
                HeadsInputRole::Z => v.z = Some(data),
                HeadsInputRole::DtBias => v.dt_bias = Some(data),
                HeadsInputRole::DtLimit => v.dt_limit = Some(data),
                HeadsInputRole::InitialState => v.initial_state = Some(data),
            }
        }
        Ok(v)
    }
}

/// The scan in fp32. `last_state` is always computed; a caller whose `has_last_state` is 0
/// drops it.
pub fn scan_heads_f32(
    attrs: &HeadsAttrs,
    dims: &HeadsDims,
    x: &HeadsInputs,
) -> Result<ScanOutputs<f32>, ContractError> {
    scan_heads::<f32>(attrs, dims, x)
}

/// The scan in fp64 (inputs widened exactly), for checking other implementations.
pub fn scan_heads_f64(
    attrs: &HeadsAttrs,
    dims: &HeadsDims,
    x: &HeadsInputs,
) -> Result<ScanOutputs<f64>, ContractError> {
    scan_heads::<f64>(attrs, dims, x)
}

/// Packed inputs in contract order with their shapes → dims (via [`infer_heads_dims`]) and the
/// scan in compute type `T`.
pub fn scan_heads_packed<T: Real>(
    attrs: &HeadsAttrs,
    packed: &[&[f32]],
    shapes: &[&[i64]],
) -> Result<(HeadsDims, ScanOutputs<T>), ContractError> {
    let dims = infer_heads_dims(attrs, shapes)?;
    let x = HeadsInputs::from_packed(attrs, packed)?;
    Ok((dims, scan_heads::<T>(attrs, &dims, &x)?))
}

/// The step size of one (batch, time, head): bias, softplus, then the limits (rules 2–3 of the
/// contract).
pub fn step_size<T: Real>(raw: T, bias: Option<T>, softplus_on: bool, limit: Option<(T, T)>) -> T {
    let mut dt = biased_step(raw, bias, softplus_on);
    if let Some((lo, hi)) = limit {
        // torch.clamp(dt, lo, hi): max with lo first, then min with hi (hi wins if lo > hi).
        if dt < lo {
            dt = lo;
        }
        if dt > hi {
            dt = hi;
        }
    }
    dt
}

/// The optional inputs after [`validate`]: present exactly when flagged, of the right length.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Checked<'a> {
    pub d: Option<&'a [f32]>,
    pub z: Option<&'a [f32]>,
    pub dt_bias: Option<&'a [f32]>,
    pub dt_limit: Option<&'a [f32]>,
    pub initial_state: Option<&'a [f32]>,
}

/// Checks groups, every slice's length against `dims`, and the optional inputs against their
/// flags.
pub(crate) fn validate<'a>(
    attrs: &HeadsAttrs,
    dims: &HeadsDims,
    x: &HeadsInputs<'a>,
) -> Result<Checked<'a>, ContractError> {
    let heads = dims.heads;
    if dims.groups == 0 || heads % dims.groups != 0 {
        return Err(ContractError::Dim {
            input: "B",
            axis: 2,
            got: dims.groups as i64,
            expected: heads as i64,
            why: "groups G must be ≥ 1 and divide the heads H (the expected value is H)",
        });
    }
    check_len("x", x.x, dims.x_len())?;
    check_len("dt", x.dt, dims.dt_len())?;
    check_len("A", x.a, heads)?;
    check_len("B", x.b, dims.bc_len())?;
    check_len("C", x.c, dims.bc_len())?;
    Ok(Checked {
        d: check_opt("has_D", attrs.has_d, "D", x.d, heads)?,
        z: check_opt("has_z", attrs.has_z, "z", x.z, dims.x_len())?,
        dt_bias: check_opt(
            "has_dt_bias",
            attrs.has_dt_bias,
            "dt_bias",
            x.dt_bias,
            heads,
        )?,
        dt_limit: check_opt(
            "has_dt_limit",
            attrs.has_dt_limit,
            "dt_limit",
            x.dt_limit,
            2,
        )?,
        initial_state: check_opt(
            "has_initial_state",
            attrs.has_initial_state,
            "initial_state",
            x.initial_state,
            dims.state_len(),
        )?,
    })
}

/// The scan in compute type `T`, after checking every slice against `dims`.
pub fn scan_heads<T: Real>(
    attrs: &HeadsAttrs,
    dims: &HeadsDims,
    x: &HeadsInputs,
) -> Result<ScanOutputs<T>, ContractError> {
    let HeadsDims {
        batch,
        seqlen,
        heads,
        headdim,
        dstate,
        groups,
    } = *dims;
    let Checked {
        d: d_skip,
        z,
        dt_bias: bias,
        dt_limit: limit,
        initial_state: init,
    } = validate(attrs, dims, x)?;

    let w = T::from_f32;
    let limit = limit.map(|l| (w(l[0]), w(l[1])));
    let per_group = dims.heads_per_group();
    let (p_sz, n_sz) = (headdim, dstate);
    let head_state = p_sz * n_sz;

    let mut y = vec![T::ZERO; dims.x_len()];
    let mut last_state = vec![T::ZERO; dims.state_len()];
    // h[p·N + n]: the state of one (batch, head), carried along time.
    let mut h = vec![T::ZERO; head_state];
    for bi in 0..batch {
        for hd in 0..heads {
            let g = hd / per_group;
            let state_off = (bi * heads + hd) * head_state;
            load_state(&mut h, init, state_off);
            let a_h = w(x.a[hd]);
            let d_h = d_skip.map(|v| w(v[hd]));
            let bias_h = bias.map(|v| w(v[hd]));
            for t in 0..seqlen {
                let row = bi * seqlen + t;
                let dt = step_size(w(x.dt[row * heads + hd]), bias_h, attrs.dt_softplus, limit);
                // One exponential per (batch, time, head), shared by its P·N state entries.
                let decay = (dt * a_h).exp();
                let bc_off = (row * groups + g) * n_sz;
                let b_t = &x.b[bc_off..bc_off + n_sz];
                let c_t = &x.c[bc_off..bc_off + n_sz];
                let x_off = (row * heads + hd) * p_sz;
                for p in 0..p_sz {
                    let xv = w(x.x[x_off + p]);
                    let dt_x = dt * xv;
                    let hp = &mut h[p * n_sz..(p + 1) * n_sz];
                    let mut acc = T::ZERO;
                    for ((hv, &bv), &cv) in hp.iter_mut().zip(b_t).zip(c_t) {
                        *hv = decay * *hv + dt_x * w(bv);
                        acc = acc + *hv * w(cv);
                    }
                    if let Some(dv) = d_h {
                        acc = acc + xv * dv;
                    }
                    if let Some(zv) = z {
                        acc = acc * silu(w(zv[x_off + p]));
                    }
                    y[x_off + p] = acc;
                }
            }
            last_state[state_off..state_off + head_state].copy_from_slice(&h);
        }
    }
    Ok(ScanOutputs { y, last_state })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// H = 1, P = 2, N = 1, L = 2: both channels of the head share dt and A.
    #[test]
    fn closed_form_two_steps_shared_decay() {
        let attrs = HeadsAttrs::default();
        let (xs, dt, a, b, c) = (
            [2.0f32, 1.0, -1.0, 0.5],
            [0.5f32, 0.25],
            [-1.5f32],
            [3.0f32, 0.5],
            [0.75f32, 2.0],
        );
        let inp = HeadsInputs {
            x: &xs,
            dt: &dt,
            a: &a,
            b: &b,
            c: &c,
            ..Default::default()
        };
        let out = scan_heads_f64(&attrs, &HeadsDims::new(1, 2, 1, 2, 1, 1), &inp).unwrap();
        let decay = (0.25f64 * -1.5).exp();
        for p in 0..2 {
            let h1 = 0.5 * xs[p] as f64 * 3.0;
            let h2 = decay * h1 + 0.25 * xs[2 + p] as f64 * 0.5;
            assert!((out.y[p] - h1 * 0.75).abs() < 1e-15);
            assert!((out.y[2 + p] - h2 * 2.0).abs() < 1e-15);
            assert!((out.last_state[p] - h2).abs() < 1e-15);
        }
    }

    /// Bias, softplus and both limits on one step.
    #[test]
    fn step_size_order() {
        let sp = |v: f64| (1.0 + v.exp()).ln();
        assert_eq!(step_size(0.5f64, Some(0.25), false, None), 0.75);
        assert!((step_size(0.5f64, Some(0.25), true, None) - sp(0.75)).abs() < 1e-15);
        assert_eq!(step_size(-3.0f64, None, true, Some((0.1, 0.5))), 0.1);
        assert_eq!(step_size(3.0f64, None, true, Some((0.1, 0.5))), 0.5);
        assert_eq!(
            step_size(30.0f64, None, true, Some((0.0, f64::INFINITY))),
            30.0
        );
        // lo > hi: torch.clamp returns hi.
        assert_eq!(step_size(0.3f64, None, false, Some((0.5, 0.2))), 0.2);
    }

    /// Four heads in two groups: heads 0, 1 read group 0 and heads 2, 3 group 1.
    #[test]
    fn groups_pick_their_b_and_c() {
        let attrs = HeadsAttrs::default();
        let xs = [1.0f32; 4];
        let dt = [1.0f32; 4];
        let a = [0.0f32; 4];
        let b = [1.0f32, 10.0];
        let c = [1.0f32, 1.0];
        let inp = HeadsInputs {
            x: &xs,
            dt: &dt,
            a: &a,
            b: &b,
            c: &c,
            ..Default::default()
        };
        let out = scan_heads_f64(&attrs, &HeadsDims::new(1, 1, 4, 1, 1, 2), &inp).unwrap();
        assert_eq!(out.y, vec![1.0, 1.0, 10.0, 10.0]);
    }

    /// L = 0: no output, and the last state is the initial state.
    #[test]
    fn empty_sequence_returns_the_initial_state() {
        let attrs = HeadsAttrs {
            has_initial_state: true,
            has_last_state: true,
            ..Default::default()
        };
        let h0 = [0.5f32, -1.0, 2.0, 0.25];
        let a = [-1.0f32];
        let inp = HeadsInputs {
            a: &a,
            initial_state: Some(&h0),
            ..Default::default()
        };
        let out = scan_heads_f32(&attrs, &HeadsDims::new(1, 0, 1, 2, 2, 1), &inp).unwrap();
        assert!(out.y.is_empty());
        assert_eq!(out.last_state, h0.to_vec());
    }

    #[test]
    fn checks_lengths_and_flags() {
        let attrs = HeadsAttrs::default();
        let one = [1.0f32];
        let two = [1.0f32, 2.0];
        let mut inp = HeadsInputs {
            x: &one,
            dt: &one,
            a: &one,
            b: &one,
            c: &two,
            ..Default::default()
        };
        let d1 = HeadsDims::new(1, 1, 1, 1, 1, 1);
        assert_eq!(
            scan_heads_f32(&attrs, &d1, &inp).unwrap_err(),
            ContractError::DataLen {
                input: "C",
                got: 2,
                expected: 1
            }
        );
        inp.c = &one;
        inp.dt_limit = Some(&two);
        assert!(matches!(
            scan_heads_f32(&attrs, &d1, &inp),
            Err(ContractError::Attribute { name, .. }) if name == "has_dt_limit"
        ));
        let err = scan_heads_f32(&attrs, &HeadsDims::new(1, 1, 3, 1, 1, 2), &inp).unwrap_err();
        assert!(matches!(err, ContractError::Dim { input: "B", .. }));
    }
}
