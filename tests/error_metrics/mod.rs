//! Error metrics and bounds shared by the GPU tests (kernels and plugin harness) against the
//! fp64 reference, defined once so that every GPU test applies the same rule:
//!
//! an output passes when it has no non-finite value and both its relative L2 error
//! ‖got − ref‖ / ‖ref‖ and its max abs error over max |ref| are within the bound of its dtype:
//! - y fp32: 2e-5 (ex2.approx/lg2.approx are ~2 ulp; mamba_ssm uses the same fast exp)
//! - y fp16: 1e-3 (rounding to fp16 alone is up to 2^-11 = 4.9e-4 per element)
//! - y bf16: 8e-3 (rounding to bf16 alone is up to 2^-8 = 3.9e-3 per element)
//! - last_state (always fp32): 2e-5
#![allow(dead_code)]

use s6plugin::contract::DType;

/// (relative L2 error, max abs error / max |ref|, count of non-finite values)
pub fn errors(got: &[f32], want: &[f64]) -> (f64, f64, usize) {
    assert_eq!(got.len(), want.len());
    let (mut num, mut den, mut maxd, mut maxr, mut bad) = (0f64, 0f64, 0f64, 0f64, 0usize);
    for (&g, &w) in got.iter().zip(want) {
        if !g.is_finite() {
            bad += 1;
            continue;
        }
        let d = g as f64 - w;
        num += d * d;
        den += w * w;
        maxd = maxd.max(d.abs());
        maxr = maxr.max(w.abs());
    }
    ((num / den.max(1e-300)).sqrt(), maxd / maxr.max(1e-300), bad)
}

/// The bound on y of dtype `dt` (see the module docs).
pub fn y_bound(dt: DType) -> f64 {
    match dt {
        DType::F32 => 2e-5,
        DType::F16 => 1e-3,
        DType::BF16 => 8e-3,
    }
}

/// The bound on last_state (fp32 whatever the activation dtype).
pub const STATE_BOUND: f64 = 2e-5;

/// The one pass rule: no non-finite value, relative L2 and max-abs/max-ref both within `bound`.
pub fn within((rel_l2, max_rel, non_finite): (f64, f64, usize), bound: f64) -> bool {
    non_finite == 0 && rel_l2 <= bound && max_rel <= bound
}
