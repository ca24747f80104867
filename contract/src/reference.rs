//! CPU reference of `S6Scan` (`docs/s6scan.md`): mamba_ssm 2.3's `selective_scan_ref` plus an
//! initial state, computed in fp32 ([`scan_f32`]) or fp64 ([`scan_f64`], for checking others).
//!
//! Activations arrive as f32 (the caller widens fp16/bf16 first); the result is in the compute
//! type and the caller narrows `y` to the activation dtype, as the op does.

use crate::checks::{check_input_count, check_len, check_opt};
use crate::contract::{infer_dims, DType, InputRole, S6Attrs, ScanDims};
use crate::error::ContractError;

/// Input data of one scan, in the layouts `attrs` selects (see [`ScanDims::act_strides`] and
/// [`ScanDims::bc_strides`]). An optional input must be `Some` exactly when its `has_*` flag is 1.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanInputs<'a> {
    pub u: &'a [f32],
    pub delta: &'a [f32],
    /// (D, N), fp32.
    pub a: &'a [f32],
    pub b: &'a [f32],
    pub c: &'a [f32],
    /// (D), fp32.
    pub d: Option<&'a [f32]>,
    pub z: Option<&'a [f32]>,
    /// (D), fp32.
    pub delta_bias: Option<&'a [f32]>,
    /// (B, D, N), fp32.
    pub initial_state: Option<&'a [f32]>,
}

impl<'a> ScanInputs<'a> {
    /// Assigns packed inputs (contract order, absent ones skipped) to their roles.
    pub fn from_packed(attrs: &S6Attrs, packed: &[&'a [f32]]) -> Result<Self, ContractError> {
        let roles = attrs.inputs();
        check_input_count(roles.len(), packed.len())?;
        let mut x = ScanInputs::default();
        for (role, &data) in roles.iter().zip(packed) {
            match role {
                InputRole::U => x.u = data,
                InputRole::Delta => x.delta = data,
                InputRole::A => x.a = data,
                InputRole::B => x.b = data,
                InputRole::C => x.c = data,
                InputRole::D => x.d = Some(data),
                InputRole::Z => x.z = Some(data),
                InputRole::DeltaBias => x.delta_bias = Some(data),
                InputRole::InitialState => x.initial_state = Some(data),
            }
        }
        Ok(x)
    }
}

/// Outputs: `y` in the activation layout, `last_state` (B, D, N). `last_state` is always
/// computed; a caller whose `has_last_state` is 0 drops it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanOutputs<T> {
    pub y: Vec<T>,
    pub last_state: Vec<T>,
}

/// The arithmetic the reference needs, for f32 and f64.
pub trait Real:
    Copy
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::Div<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    /// mamba_ssm's (torch's) softplus threshold: above it softplus(x) = x.
    const SOFTPLUS_THRESHOLD: Self;
    fn from_f32(x: f32) -> Self;
    fn exp(self) -> Self;
    fn ln_1p(self) -> Self;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const SOFTPLUS_THRESHOLD: Self = 20.0;
    fn from_f32(x: f32) -> Self {
        x
    }
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn ln_1p(self) -> Self {
        f32::ln_1p(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const SOFTPLUS_THRESHOLD: Self = 20.0;
    fn from_f32(x: f32) -> Self {
        x as f64
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln_1p(self) -> Self {
        f64::ln_1p(self)
    }
}

/// softplus(x) = log(1 + e^x), and x itself above the threshold 20 (torch's default, which
/// mamba_ssm's reference and kernels use).
pub fn softplus<T: Real>(x: T) -> T {
    if x > T::SOFTPLUS_THRESHOLD {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// silu(z) = z · sigmoid(z).
pub fn silu<T: Real>(z: T) -> T {
    z / (T::ONE + (-z).exp())
}

/// The step size before any op-specific limit: `raw + bias`, then softplus when asked (both
/// ops' rule: `delta_bias`/`delta_softplus`, `dt_bias`/`dt_softplus`).
pub(crate) fn biased_step<T: Real>(raw: T, bias: Option<T>, softplus_on: bool) -> T {
    let mut dt = raw;
    if let Some(b) = bias {
        dt = dt + b;
    }
    if softplus_on {
        dt = softplus(dt);
    }
    dt
}

/// Loads one row's state `h` from `init` at element offset `off` (widened exactly), or zeros
/// when there is no initial state.
pub(crate) fn load_state<T: Real>(h: &mut [T], init: Option<&[f32]>, off: usize) {
    match init {
        Some(s) => {
            let row = &s[off..off + h.len()];
            for (hv, &s0) in h.iter_mut().zip(row) {
                *hv = T::from_f32(s0);
            }
        }
        None => h.fill(T::ZERO),
    }
}

/// Rounds fp32 values to the activation dtype in place (round to nearest even), as the op does
/// once with `y`; a no-op for fp32. Lets f32 callers reproduce fp16/bf16 outputs exactly.
pub fn round_to_dtype(dtype: DType, values: &mut [f32]) {
    match dtype {
        DType::F32 => {}
        DType::F16 => values
            .iter_mut()
            .for_each(|v| *v = half::f16::from_f32(*v).to_f32()),
        DType::BF16 => values
            .iter_mut()
            .for_each(|v| *v = half::bf16::from_f32(*v).to_f32()),
    }
}

/// The scan in fp32.
pub fn scan_f32(
    attrs: &S6Attrs,
    dims: &ScanDims,
    x: &ScanInputs,
) -> Result<ScanOutputs<f32>, ContractError> {
    scan::<f32>(attrs, dims, x)
}

/// The scan in fp64 (inputs widened exactly), for checking other implementations.
pub fn scan_f64(
    attrs: &S6Attrs,
    dims: &ScanDims,
    x: &ScanInputs,
) -> Result<ScanOutputs<f64>, ContractError> {
    scan::<f64>(attrs, dims, x)
}

/// Packed inputs in contract order with their shapes → dims (via [`infer_dims`]) and the fp32
/// scan.
pub fn scan_packed_f32(
    attrs: &S6Attrs,
    packed: &[&[f32]],
    shapes: &[&[i64]],
) -> Result<(ScanDims, ScanOutputs<f32>), ContractError> {
    scan_packed::<f32>(attrs, packed, shapes)
}

/// As [`scan_packed_f32`], computed in fp64.
pub fn scan_packed_f64(
    attrs: &S6Attrs,
    packed: &[&[f32]],
    shapes: &[&[i64]],
) -> Result<(ScanDims, ScanOutputs<f64>), ContractError> {
    scan_packed::<f64>(attrs, packed, shapes)
}

/// Generic entry point over the packed form.
pub fn scan_packed<T: Real>(
    attrs: &S6Attrs,
    packed: &[&[f32]],
    shapes: &[&[i64]],
) -> Result<(ScanDims, ScanOutputs<T>), ContractError> {
    let dims = infer_dims(attrs, shapes)?;
    let x = ScanInputs::from_packed(attrs, packed)?;
    Ok((dims, scan::<T>(attrs, &dims, &x)?))
}

/// The scan in compute type `T`, after checking every slice against `dims`.
pub fn scan<T: Real>(
    attrs: &S6Attrs,
    dims: &ScanDims,
    x: &ScanInputs,
) -> Result<ScanOutputs<T>, ContractError> {
    let ScanDims {
        batch,
        dim,
        seqlen,
        dstate,
        groups,
    } = *dims;
    if groups == 0 || dim % groups != 0 {
        return Err(ContractError::Groups {
            input: "B",
            groups: groups as i64,
            dim: dim as i64,
        });
    }
    check_len("u", x.u, dims.act_len())?;
    check_len("delta", x.delta, dims.act_len())?;
    check_len("A", x.a, dim * dstate)?;
    check_len("B", x.b, dims.bc_len())?;
    check_len("C", x.c, dims.bc_len())?;
    let d_skip = check_opt("has_D", attrs.has_d, "D", x.d, dim)?;
    let z = check_opt("has_z", attrs.has_z, "z", x.z, dims.act_len())?;
    let bias = check_opt(
        "has_delta_bias",
        attrs.has_delta_bias,
        "delta_bias",
        x.delta_bias,
        dim,
    )?;
    let init = check_opt(
        "has_initial_state",
        attrs.has_initial_state,
        "initial_state",
        x.initial_state,
        dims.state_len(),
    )?;

    let act = dims.act_strides(attrs);
    let bc = dims.bc_strides(attrs);
    let per_group = dim / groups;
    let w = T::from_f32;

    let mut y = vec![T::ZERO; dims.act_len()];
    let mut last_state = vec![T::ZERO; dims.state_len()];
    // h[n]: the state of one (batch, channel) row, carried along time.
    let mut h = vec![T::ZERO; dstate];
    for bi in 0..batch {
        for ch in 0..dim {
            let g = ch / per_group;
            let state_off = (bi * dim + ch) * dstate;
            load_state(&mut h, init, state_off);
            let a_row = &x.a[ch * dstate..(ch + 1) * dstate];
            let d_ch = d_skip.map(|v| w(v[ch]));
            let bias_ch = bias.map(|v| w(v[ch]));
            for t in 0..seqlen {
                let ai = bi * act.batch + ch * act.chan + t * act.time;
                let uv = w(x.u[ai]);
                let dt = biased_step(w(x.delta[ai]), bias_ch, attrs.delta_softplus);
                let dt_u = dt * uv;
                let bc_base = bi * bc.batch + g * bc.group + t * bc.time;
                let mut acc = T::ZERO;
                for (n, hn) in h.iter_mut().enumerate() {
                    let bci = bc_base + n * bc.state;
                    *hn = (dt * w(a_row[n])).exp() * *hn + dt_u * w(x.b[bci]);
                    acc = acc + *hn * w(x.c[bci]);
                }
                if let Some(dv) = d_ch {
                    acc = acc + uv * dv;
                }
                if let Some(zv) = z {
                    acc = acc * silu(w(zv[ai]));
                }
                y[ai] = acc;
            }
            last_state[state_off..state_off + dstate].copy_from_slice(&h);
        }
    }
    Ok(ScanOutputs { y, last_state })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// N = 1, L = 2, D = 1, no options: h1 = dt1·B1·u1, h2 = e^{dt2·A}·h1 + dt2·B2·u2.
    #[test]
    fn closed_form_two_steps() {
        let attrs = S6Attrs::default();
        let (u, dt, a, b, c) = (
            [2.0f32, -1.0],
            [0.5f32, 0.25],
            [-1.5f32],
            [3.0f32, 0.5],
            [0.75f32, 2.0],
        );
        let x = ScanInputs {
            u: &u,
            delta: &dt,
            a: &a,
            b: &b,
            c: &c,
            ..Default::default()
        };
        let out = scan_f64(&attrs, &ScanDims::new(1, 1, 2, 1, 1), &x).unwrap();
        let h1 = 0.5 * 3.0 * 2.0;
        let (u2, b2) = (-1.0f64, 0.5f64);
        let h2 = (0.25f64 * -1.5).exp() * h1 + 0.25 * b2 * u2;
        assert!((out.y[0] - h1 * 0.75).abs() < 1e-15);
        assert!((out.y[1] - h2 * 2.0).abs() < 1e-15);
        assert!((out.last_state[0] - h2).abs() < 1e-15);
        let out32 = scan_f32(&attrs, &ScanDims::new(1, 1, 2, 1, 1), &x).unwrap();
        assert!((out32.y[1] as f64 - h2 * 2.0).abs() < 1e-6);
    }

    /// Every option at once on a single step, against a hand expansion (values exact in f32).
    #[test]
    fn one_step_with_all_options() {
        let attrs = S6Attrs {
            delta_softplus: true,
            has_d: true,
            has_z: true,
            has_delta_bias: true,
            has_initial_state: true,
            has_last_state: true,
            ..Default::default()
        };
        let (u, dt, a, b, c) = (
            [1.5f32],
            [0.25f32],
            [-0.5f32, -2.0],
            [1.0f32, -2.0],
            [0.5f32, 0.25],
        );
        let (dsk, z, bias, h0) = ([0.375f32], [0.75f32], [-0.125f32], [0.5f32, -0.625]);
        let x = ScanInputs {
            u: &u,
            delta: &dt,
            a: &a,
            b: &b,
            c: &c,
            d: Some(&dsk),
            z: Some(&z),
            delta_bias: Some(&bias),
            initial_state: Some(&h0),
        };
        let out = scan_f64(&attrs, &ScanDims::new(1, 1, 1, 2, 1), &x).unwrap();
        let delta = (1.0f64 + (0.25f64 - 0.125).exp()).ln();
        let hs: Vec<f64> = [(-0.5f64, 1.0f64, 0.5f64), (-2.0, -2.0, -0.625)]
            .iter()
            .map(|&(a, b, h)| (delta * a).exp() * h + delta * b * 1.5)
            .collect();
        let sig = 1.0 / (1.0 + (-0.75f64).exp());
        let y = (hs[0] * 0.5 + hs[1] * 0.25 + 1.5 * 0.375) * 0.75 * sig;
        assert!((out.y[0] - y).abs() < 1e-12, "{} vs {y}", out.y[0]);
        assert!((out.last_state[0] - hs[0]).abs() < 1e-12);
        assert!((out.last_state[1] - hs[1]).abs() < 1e-12);
    }

    #[test]
    fn rounding_to_activation_dtypes() {
        // 1 + 2^-11 is halfway between two fp16 values: ties go to even (1.0).
        let mut v = [1.0f32 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11), 0.1];
        round_to_dtype(DType::F16, &mut v);
        assert_eq!(v[0], 1.0);
        assert_eq!(v[1], 1.0 + 2f32.powi(-9));
        assert_eq!(v[2], half::f16::from_f32(0.1).to_f32());
        let mut w = [1.0f32 + 2f32.powi(-8)];
        round_to_dtype(DType::BF16, &mut w);
        assert_eq!(w[0], 1.0);
        let mut x = [0.1f32];
        round_to_dtype(DType::F32, &mut x);
        assert_eq!(x[0], 0.1);
    }

    #[test]
    fn softplus_threshold() {
        assert_eq!(softplus(25.0f64), 25.0);
        assert!((softplus(20.0f64) - (1.0 + 20.0f64.exp()).ln()).abs() < 1e-12);
        assert!((softplus(0.0f64) - 2.0f64.ln()).abs() < 1e-15);
    }

    /// Two groups: channel 1 reads group 0, channel 2 group 1 (D = 4, G = 2).
    #[test]
    fn groups_pick_their_b_and_c() {
        let attrs = S6Attrs::default();
        let u = [1.0f32; 4];
        let dt = [1.0f32; 4];
        let a = [0.0f32; 4];
        let b = [1.0f32, 10.0];
        let c = [1.0f32, 1.0];
        let x = ScanInputs {
            u: &u,
            delta: &dt,
            a: &a,
            b: &b,
            c: &c,
            ..Default::default()
        };
        let out = scan_f64(&attrs, &ScanDims::new(1, 4, 1, 1, 2), &x).unwrap();
        assert_eq!(out.y, vec![1.0, 1.0, 10.0, 10.0]);
    }

    #[test]
    fn checks_lengths_and_flags() {
        let attrs = S6Attrs::default();
        let one = [1.0f32];
        let two = [1.0f32, 2.0];
        let mut x = ScanInputs {
            u: &one,
            delta: &one,
            a: &one,
            b: &one,
            c: &two,
            ..Default::default()
        };
        let d1 = ScanDims::new(1, 1, 1, 1, 1);
        assert_eq!(
            scan_f32(&attrs, &d1, &x).unwrap_err(),
            ContractError::DataLen {
                input: "C",
                got: 2,
                expected: 1
            }
        );
        x.c = &one;
        x.z = Some(&one);
        assert!(matches!(
            scan_f32(&attrs, &d1, &x),
            Err(ContractError::Attribute { name, .. }) if name == "has_z"
        ));
    }
}
