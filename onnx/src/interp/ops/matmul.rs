//! MatMul (numpy batch broadcasting) and Gemm, through the `gemm` crate (multi-threaded
//! for large products); batches of small products run in parallel with rayon. fp16 / bf16
//! compute in f32.

use super::elementwise::from_f32;
use super::{alloc_len, broadcast_index, broadcast_shapes, input, opt_input, Registry};
use crate::interp::error::InterpError;
use crate::interp::graph::Node;
use crate::interp::tensor::{DataType, Tensor, TensorData};
use rayon::prelude::*;

pub fn register(r: &mut Registry) {
    r.insert(("", "MatMul"), matmul);
    r.insert(("", "Gemm"), gemm);
}

/// c (m×n, row-major) = a (m×k, strides rsa/csa) · b (k×n, strides rsb/csb), for f32 and
/// f64. `threads`: whether the product may spread over rayon's pool (not when it is one of a
/// batch already run in parallel).
#[allow(clippy::too_many_arguments)]
fn gemm_into<T: Copy + Default + 'static + GemmScalar>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    (rsa, csa): (usize, usize),
    b: &[T],
    (rsb, csb): (usize, usize),
    c: &mut [T],
    threads: bool,
) {
    assert!(c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].fill(T::default());
        return;
    }
    assert!(a.len() > (m - 1) * rsa + (k - 1) * csa);
    assert!(b.len() > (k - 1) * rsb + (n - 1) * csb);
    let par = if threads {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every element the strides reach inside `a`, `b` and
    // `c` (row-major m×n); the slices outlive the call and `c` (borrowed mutably) aliases
    // neither `a` nor `b`. `read_dst` is false: `c` is written, never read.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            csa as isize,
            rsa as isize,
            b.as_ptr(),
            csb as isize,
            rsb as isize,
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            par,
        );
    }
}

/// The element types the GEMM runs on.
trait GemmScalar {
    const ZERO: Self;
    const ONE: Self;
}
impl GemmScalar for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
}
impl GemmScalar for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
}

#[allow(clippy::too_many_arguments)]
fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    sa: (usize, usize),
    b: &[f32],
    sb: (usize, usize),
    c: &mut [f32],
) {
    gemm_into(m, k, n, a, sa, b, sb, c, true)
}

/// Batched a·b with numpy semantics; `a`, `b` of the same float type.
pub fn matmul_tensors(node: &Node, a: &Tensor, b: &Tensor) -> Result<Tensor, InterpError> {
    if a.rank() == 0 || b.rank() == 0 {
        return Err(node.error("MatMul of a scalar"));
    }
    if a.dtype() != b.dtype() {
        return Err(node.error(format!(
            "inputs have different types: {} and {}",
            a.dtype(),
            b.dtype()
        )));
    }
    // 1-D operands: a row vector on the left, a column vector on the right.
    let a_shape: Vec<usize> = if a.rank() == 1 {
        vec![1, a.shape[0]]
    } else {
        a.shape.clone()
    };
    let b_shape: Vec<usize> = if b.rank() == 1 {
        vec![b.shape[0], 1]
    } else {
        b.shape.clone()
    };
    let (m, k) = (a_shape[a_shape.len() - 2], a_shape[a_shape.len() - 1]);
    let (k2, n) = (b_shape[b_shape.len() - 2], b_shape[b_shape.len() - 1]);
    if k != k2 {
        return Err(node.error(format!(
            "shapes {:?} and {:?} do not multiply",
            a.shape, b.shape
        )));
    }
    let a_batch = &a_shape[..a_shape.len() - 2];
    let b_batch = &b_shape[..b_shape.len() - 2];
    let batch = broadcast_shapes(node, &[a_batch, b_batch])?;
    let mut full = batch.clone();
    full.extend([m, n]);
    alloc_len(node, &full, 8)?;
    let ai = broadcast_index(a_batch, &batch);
    let bi = broadcast_index(b_batch, &batch);
    let nb = ai.len();

    let mut out_shape = batch.clone();
    if a.rank() > 1 {
        out_shape.push(m);
    }
    if b.rank() > 1 {
        out_shape.push(n);
    }
    let data = match a.dtype() {
        DataType::F64 => {
            let (TensorData::F64(x), TensorData::F64(y)) = (&a.data, &b.data) else {
                unreachable!()
            };
            let mut out = vec![0.0f64; nb * m * n];
            out.par_chunks_mut((m * n).max(1))
                .enumerate()
                .for_each(|(i, c)| {
                    gemm_into(
                        m,
                        k,
                        n,
                        &x[ai[i] * m * k..],
                        (k, 1),
                        &y[bi[i] * k * n..],
                        (n, 1),
                        c,
                        nb == 1,
                    )
                });
            TensorData::F64(out)
        }
        DataType::F32 | DataType::F16 | DataType::BF16 => {
            let conv_a;
            let x: &[f32] = match &a.data {
                TensorData::F32(v) => v,
                _ => {
                    conv_a = a.to_f32_vec();
                    &conv_a
                }
            };
            let conv_b;
            let y: &[f32] = match &b.data {
                TensorData::F32(v) => v,
                _ => {
                    conv_b = b.to_f32_vec();
                    &conv_b
                }
            };
            let mut out = vec![0.0f32; nb * m * n];
            // A 2-D weight: the batch of `a` folds into its rows (one pass over the weight).
            if b_batch.is_empty() {
                let rows = nb * m;
                if rows <= super::gemv::MAX_ROWS {
                    super::gemv::sgemm_small_m(rows, k, n, x, y, &mut out);
                } else {
                    sgemm(rows, k, n, x, (k, 1), y, (n, 1), &mut out);
                }
                return Ok(Tensor {
                    shape: out_shape,
                    data: from_f32(a.dtype(), vec![out.len()], out).data,
                });
            }
            let one = |(i, c): (usize, &mut [f32])| {
                gemm_into(
                    m,
                    k,
                    n,
                    &x[ai[i] * m * k..],
                    (k, 1),
                    &y[bi[i] * k * n..],
                    (n, 1),
                    c,
                    nb == 1,
                )
            };
            if nb > 1 {
                out.par_chunks_mut((m * n).max(1)).enumerate().for_each(one);
            } else {
                out.chunks_mut((m * n).max(1)).enumerate().for_each(one);
            }
            from_f32(a.dtype(), vec![out.len()], out).data
        }
        DataType::I64 | DataType::I32 => {
            let (x, y) = (a.to_i64_vec(), b.to_i64_vec());
            let mut out = vec![0i64; nb * m * n];
            for bt in 0..nb {
                let (xa, yb) = (&x[ai[bt] * m * k..], &y[bi[bt] * k * n..]);
                for i in 0..m {
                    for j in 0..n {
                        out[(bt * m + i) * n + j] = (0..k)
                            .map(|p| xa[i * k + p].wrapping_mul(yb[p * n + j]))
                            .fold(0i64, i64::wrapping_add);
                    }
                }
            }
            TensorData::I64(out).cast(a.dtype())
        }
        other => return Err(node.error(format!("MatMul not implemented for {other}"))),
    };
    Ok(Tensor {
        shape: out_shape,
        data,
    })
}

fn matmul(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let a = input(node, inputs, 0)?;
    let b = input(node, inputs, 1)?;
    Ok(vec![matmul_tensors(node, a, b)?])
}

fn gemm(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let a = input(node, inputs, 0)?;
    let b = input(node, inputs, 1)?;
    let c = opt_input(inputs, 2);
    if a.rank() != 2 || b.rank() != 2 {
        return Err(node.error(format!(
            "A and B must be 2-D, got {:?} and {:?}",
            a.shape, b.shape
        )));
    }
    let alpha = node.attrs.float_or("alpha", 1.0)?;
    let beta = node.attrs.float_or("beta", 1.0)?;
    let ta = node.attrs.int_or("transA", 0)? != 0;
    let tb = node.attrs.int_or("transB", 0)? != 0;
    let (m, k) = if ta {
        (a.shape[1], a.shape[0])
    } else {
        (a.shape[0], a.shape[1])
    };
    let (k2, n) = if tb {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    };
    if k != k2 {
        return Err(node.error(format!(
            "A {:?} (transA={ta}) and B {:?} (transB={tb}) do not multiply",
            a.shape, b.shape
        )));
    }
    let x = a.to_f32_vec();
    let y = b.to_f32_vec();
    let sa = if ta { (1, m) } else { (k, 1) };
    let sb = if tb { (1, k) } else { (n, 1) };
    let mut out = vec![0.0f32; m * n];
    sgemm(m, k, n, &x, sa, &y, sb, &mut out);
    if alpha != 1.0 {
        out.iter_mut().for_each(|v| *v *= alpha);
    }
    if let Some(c) = c {
        let shape = broadcast_shapes(node, &[&c.shape, &[m, n]])?;
        if shape != [m, n] {
            return Err(node.error(format!("C {:?} does not broadcast to ({m}, {n})", c.shape)));
        }
        let ci = broadcast_index(&c.shape, &[m, n]);
        let cv = c.to_f32_vec();
        out.iter_mut()
            .zip(&ci)
            .for_each(|(o, &i)| *o += beta * cv[i]);
    }
    Ok(vec![from_f32(a.dtype(), vec![m, n], out)])
}
