//! Error metrics shared by the GPU tests (kernels and plugin harness) against the fp64 reference.

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
