//! MatMul shader against an f64 CPU loop: 2-D, batched, broadcast, 1-D operands, tile edges,
//! f16. Skips (prints SKIP) without a GPU adapter.

mod common;

use common::{assert_close, ctx, Rng};
use half::f16;
use s6_wgpu::{Act, ActVec, WgpuError};

/// numpy matmul in f64 on row-major data.
fn cpu_matmul(a: &[f32], ash: &[usize], b: &[f32], bsh: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let mut ash2 = ash.to_vec();
    let mut bsh2 = bsh.to_vec();
    if ash2.len() == 1 {
        ash2.insert(0, 1);
    }
    if bsh2.len() == 1 {
        bsh2.push(1);
    }
    let (m, k) = (ash2[ash2.len() - 2], ash2[ash2.len() - 1]);
    let n = bsh2[bsh2.len() - 1];
    let ab = &ash2[..ash2.len() - 2];
    let bb = &bsh2[..bsh2.len() - 2];
    let rank = ab.len().max(bb.len());
    let pad = |s: &[usize]| {
        let mut v = vec![1; rank - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (ap, bp) = (pad(ab), pad(bb));
    let ob: Vec<usize> = ap.iter().zip(&bp).map(|(&x, &y)| x.max(y)).collect();
    let total: usize = ob.iter().product();
    let mut out = Vec::with_capacity(total * m * n);
    for flat in 0..total {
        // Coordinates in the output batch, then flat indices into a's and b's batches.
        let mut coord = vec![0; rank];
        let mut rem = flat;
        for ax in (0..rank).rev() {
            coord[ax] = rem % ob[ax];
            rem /= ob[ax];
        }
        let index = |shape: &[usize]| {
            coord
                .iter()
                .zip(shape)
                .fold(0, |acc, (&c, &d)| acc * d + if d == 1 { 0 } else { c })
        };
        let (ai, bi) = (index(&ap), index(&bp));
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    s += a[ai * m * k + i * k + p] as f64 * b[bi * k * n + p * n + j] as f64;
                }
                out.push(s);
            }
        }
    }
    let mut shape = ob;
    if ash.len() > 1 {
        shape.push(m);
    }
    if bsh.len() > 1 {
        shape.push(n);
    }
    (out, shape)
}

fn check(name: &str, ash: &[usize], bsh: &[usize], seed: u64) {
    let Some(gpu) = ctx(name) else { return };
    let mut r = Rng::new(seed);
    let a = r.vec(ash.iter().product(), -1.0, 1.0);
    let b = r.vec(bsh.iter().product(), -1.0, 1.0);
    let (want, want_shape) = cpu_matmul(&a, ash, &b, bsh);
    let got = gpu
        .matmul(Act::F32(&a), ash, Act::F32(&b), bsh)
        .expect("gpu matmul");
    assert_eq!(got.shape, want_shape, "{name}: shape");
    assert_close(name, &got.data.to_f32(), &want, 1e-4, 1e-4);
}

#[test]
fn plain_2d_and_tile_edges() {
    // Fewer than 16 rows: matmul_rows.wgsl; 16 and more: the tiled matmul.wgsl.
    check("2d", &[3, 5], &[5, 7], 1);
    check("2d_15_rows", &[15, 70], &[70, 65], 12);
    check("2d_16_rows", &[16, 70], &[70, 65], 13);
    check("2d_tiles", &[33, 37], &[37, 17], 2);
    check("2d_one_row", &[1, 64], &[64, 129], 3);
}

#[test]
fn batched_and_broadcast() {
    // Mamba's projections: (B, L, D) @ (D, E) — folded into one (B*L) x D product.
    check("proj", &[2, 12, 32], &[32, 128], 4);
    // Both batched.
    check("batched", &[3, 4, 5], &[3, 5, 6], 5);
    // Broadcast on both sides.
    check("broadcast", &[2, 1, 4, 5], &[3, 5, 6], 6);
    check("b_batched_a_not", &[4, 5], &[2, 5, 3], 7);
}

#[test]
fn one_dimensional_operands() {
    check("vec_mat", &[5], &[2, 5, 3], 8);
    check("mat_vec", &[2, 4, 5], &[5], 9);
    check("dot", &[7], &[7], 10);
}

#[test]
fn empty_and_zero_k() {
    let Some(gpu) = ctx("empty_and_zero_k") else {
        return;
    };
    let got = gpu
        .matmul(Act::F32(&[]), &[0, 3], Act::F32(&[0.0; 6]), &[3, 2])
        .unwrap();
    assert_eq!(got.shape, vec![0, 2]);
    assert!(got.data.is_empty());
    let got = gpu
        .matmul(Act::F32(&[]), &[2, 0], Act::F32(&[]), &[0, 3])
        .unwrap();
    assert_eq!(got.shape, vec![2, 3]);
    assert_eq!(got.data.to_f32(), vec![0.0; 6]);
}

#[test]
fn f16_inputs() {
    let Some(gpu) = ctx("f16_inputs") else { return };
    let mut r = Rng::new(11);
    let (ash, bsh) = ([2, 9, 40], [40, 24]);
    let a: Vec<f16> = (0..720)
        .map(|_| f16::from_f32(r.uniform(-1.0, 1.0)))
        .collect();
    let b: Vec<f16> = (0..960)
        .map(|_| f16::from_f32(r.uniform(-1.0, 1.0)))
        .collect();
    let af: Vec<f32> = a.iter().map(|x| x.to_f32()).collect();
    let bf: Vec<f32> = b.iter().map(|x| x.to_f32()).collect();
    let (want, shape) = cpu_matmul(&af, &ash, &bf, &bsh);
    let got = gpu.matmul(Act::F16(&a), &ash, Act::F16(&b), &bsh).unwrap();
    assert_eq!(got.shape, shape);
    assert!(matches!(got.data, ActVec::F16(_)));
    // f32 accumulation, one f16 rounding of the result.
    assert_close("f16 matmul", &got.data.to_f32(), &want, 1e-4, 1.0 / 1024.0);
}

#[test]
fn mismatches_are_refused() {
    let Some(gpu) = ctx("mismatches_are_refused") else {
        return;
    };
    let err = gpu
        .matmul(Act::F32(&[0.0; 6]), &[2, 3], Act::F32(&[0.0; 8]), &[4, 2])
        .unwrap_err();
    assert!(matches!(err, WgpuError::Input { .. }), "{err}");
    let err = gpu
        .matmul(
            Act::F32(&[0.0; 12]),
            &[2, 2, 3],
            Act::F32(&[0.0; 18]),
            &[3, 3, 2],
        )
        .unwrap_err();
    assert!(err.to_string().contains("broadcast"), "{err}");
    let h = [f16::ZERO; 6];
    let err = gpu
        .matmul(Act::F32(&[0.0; 6]), &[2, 3], Act::F16(&h), &[3, 2])
        .unwrap_err();
    assert!(matches!(err, WgpuError::Input { .. }), "{err}");
}
