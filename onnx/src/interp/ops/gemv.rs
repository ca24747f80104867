//! Products with few rows (a decode step: one row per sequence): `c = a · b` for a small `m`,
//! streaming the weight `b` once, column block by column block, in parallel. A general GEMM
//! packs all of `b` first, which for one row costs more than the product itself.

use rayon::prelude::*;

/// Up to this many rows of `a` take this path.
pub const MAX_ROWS: usize = 8;

/// Columns per task: enough tasks for every thread, each reading long contiguous runs of
/// `b`'s rows (few pages per row), its block of `c` staying in cache.
fn block(n: usize) -> usize {
    let per_task = n.div_ceil(4 * rayon::current_num_threads());
    per_task.next_multiple_of(64).clamp(64, 4096)
}

/// c (m×n) = a (m×k) · b (k×n), all dense row-major, `m ≤ MAX_ROWS`.
pub fn sgemm_small_m(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(m <= MAX_ROWS && a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    let bs = block(n);
    let blocks: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(bs))
        .into_par_iter()
        .map(|blk| {
            let j0 = blk * bs;
            let w = bs.min(n - j0);
            let mut acc = vec![0f32; m * w];
            for p in 0..k {
                let brow = &b[p * n + j0..p * n + j0 + w];
                for i in 0..m {
                    let s = a[i * k + p];
                    let out = &mut acc[i * w..(i + 1) * w];
                    for (o, &x) in out.iter_mut().zip(brow) {
                        *o += s * x;
                    }
                }
            }
            (j0, acc)
        })
        .collect();
    for (j0, acc) in blocks {
        let w = acc.len() / m;
        for i in 0..m {
            c[i * n + j0..i * n + j0 + w].copy_from_slice(&acc[i * w..(i + 1) * w]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_the_naive_product() {
        for (m, k, n) in [(1, 3, 5), (3, 17, 1030), (8, 64, 513), (2, 1, 1)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 11) as f32) - 5.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 3 % 13) as f32) * 0.25).collect();
            let mut c = vec![f32::NAN; m * n];
            sgemm_small_m(m, k, n, &a, &b, &mut c);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                    assert_eq!(c[i * n + j], want, "({m},{k},{n}) at ({i},{j})");
                }
            }
        }
    }
}
