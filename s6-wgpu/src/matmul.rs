//! ONNX MatMul (numpy semantics: 1-D operands promoted, batch dimensions broadcast) on the GPU
//! through `shaders/matmul.wgsl` (tiled) or, for fewer than 16 rows, `shaders/matmul_rows.wgsl`.

use crate::act::{device_bytes, Act, ActVec};
use crate::context::{Binding, ConstSig, Kernel, WgpuContext};
use crate::error::WgpuError;
use s6_onnx::interp::ConstKey;

const OP: &str = "MatMul";
/// Tile edge of matmul.wgsl; fewer rows than this go to matmul_rows.wgsl.
const T: usize = 16;
/// Workgroup width of matmul_rows.wgsl.
const ROWS_WG: usize = 64;

/// Result of [`WgpuContext::matmul`].
#[derive(Clone, Debug)]
pub struct MatMulOutput {
    pub data: ActVec,
    pub shape: Vec<usize>,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    nbatch: u32,
}

/// numpy broadcast of two batch shapes.
fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, WgpuError> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], i: usize| {
        let pad = rank - s.len();
        if i < pad {
            1
        } else {
            s[i - pad]
        }
    };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            (x, y) => Err(WgpuError::Input {
                op: OP,
                input: "B",
                reason: format!(
                    "batch dimensions {a:?} and {b:?} do not broadcast (axis {i}: {x} vs {y})"
                ),
            }),
        })
        .collect()
}

/// Flat index into a batch of shape `src` (right-aligned, broadcast) for each flat index of
/// the batch shape `out`.
fn batch_indices(src: &[usize], out: &[usize]) -> Vec<usize> {
    let total: usize = out.iter().product();
    let pad = out.len() - src.len();
    let mut idx = Vec::with_capacity(total);
    for flat in 0..total {
        let (mut rem, mut s_flat, mut s_stride) = (flat, 0, 1);
        for axis in (0..out.len()).rev() {
            let coord = rem % out[axis];
            rem /= out[axis];
            if axis >= pad {
                let dim = src[axis - pad];
                if dim != 1 {
                    s_flat += coord * s_stride;
                }
                s_stride *= dim;
            }
        }
        idx.push(s_flat);
    }
    idx
}

fn to_u32(what: &str, v: usize) -> Result<u32, WgpuError> {
    u32::try_from(v).map_err(|_| WgpuError::Unsupported {
        op: OP,
        reason: format!("{what} = {v} does not fit 32-bit indexing"),
    })
}

impl WgpuContext {
    /// `a @ b` with ONNX MatMul semantics; `a` and `b` share one dtype (f32, f16 or bf16; f16
    /// stays f16 on an adapter with `SHADER_F16`, otherwise widened). Accumulates in f32.
    pub fn matmul(
        &self,
        a: Act,
        a_shape: &[usize],
        b: Act,
        b_shape: &[usize],
    ) -> Result<MatMulOutput, WgpuError> {
        self.matmul_keyed(a, a_shape, None, b, b_shape, None)
    }

    /// [`matmul`](Self::matmul) where an operand with a key is a constant: bound from its
    /// device copy when one is kept, uploaded (and kept) otherwise.
    pub(crate) fn matmul_keyed(
        &self,
        a: Act,
        a_shape: &[usize],
        a_key: Option<ConstKey>,
        b: Act,
        b_shape: &[usize],
        b_key: Option<ConstKey>,
    ) -> Result<MatMulOutput, WgpuError> {
        let err = |input: &'static str, reason: String| WgpuError::Input {
            op: OP,
            input,
            reason,
        };
        if a.dtype() != b.dtype() {
            return Err(err("B", format!("is {}, A is {}", b.dtype(), a.dtype())));
        }
        for (name, t, s) in [("A", &a, a_shape), ("B", &b, b_shape)] {
            if s.is_empty() {
                return Err(err(name, "is a scalar; MatMul needs rank >= 1".into()));
            }
            let n: usize = s.iter().product();
            if n != t.len() {
                return Err(err(
                    name,
                    format!("shape {s:?} needs {n} elements, got {}", t.len()),
                ));
            }
        }
        // 1-D operands: a (K) -> (1, K), b (K) -> (K, 1); the added axis is dropped at the end.
        let mut ash = a_shape.to_vec();
        let mut bsh = b_shape.to_vec();
        if ash.len() == 1 {
            ash.insert(0, 1);
        }
        if bsh.len() == 1 {
            bsh.push(1);
        }
        let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
        let (kb, n) = (bsh[bsh.len() - 2], bsh[bsh.len() - 1]);
        if k != kb {
            return Err(err(
                "B",
                format!("inner dimensions differ: A {a_shape:?}, B {b_shape:?}"),
            ));
        }
        let a_batch = &ash[..ash.len() - 2];
        let b_batch = &bsh[..bsh.len() - 2];
        let out_batch = broadcast(a_batch, b_batch)?;
        let mut shape = out_batch.clone();
        if a_shape.len() > 1 {
            shape.push(m);
        }
        if b_shape.len() > 1 {
            shape.push(n);
        }
        let nbatch: usize = out_batch.iter().product();
        let act = a.dtype();
        let out_len = nbatch * m * n;
        if out_len == 0 || k == 0 {
            return Ok(MatMulOutput {
                data: ActVec::from_f32(act, vec![0.0; out_len]),
                shape,
            });
        }

        // b shared by every batch and a not broadcast: one (batch * M) x K product.
        let b_shared = b_batch.iter().all(|&d| d == 1);
        let a_full = a_batch.iter().product::<usize>() == nbatch;
        let (m_run, batches): (usize, Vec<(usize, usize)>) = if b_shared && a_full {
            (nbatch * m, vec![(0, 0)])
        } else {
            let ai = batch_indices(a_batch, &out_batch);
            let bi = batch_indices(b_batch, &out_batch);
            (
                m,
                ai.into_iter()
                    .zip(bi)
                    .map(|(x, y)| (x * m * k, y * k * n))
                    .collect(),
            )
        };
        let max = self.max_workgroups_per_dim() as usize;
        let (kernel, groups) = if m_run < T {
            (
                Kernel::MatMulRows,
                [n.div_ceil(ROWS_WG), m_run, batches.len()],
            )
        } else {
            (
                Kernel::MatMul,
                [n.div_ceil(T), m_run.div_ceil(T), batches.len()],
            )
        };
        if groups.iter().any(|&g| g > max) {
            return Err(WgpuError::Unsupported {
                op: OP,
                reason: format!("{groups:?} workgroups exceed the device's {max} per dimension"),
            });
        }

        let storage = self.storage_for(act);
        let elem = storage.elem_bytes();
        self.check_binding(OP, "A", a.len() as u64 * elem)?;
        self.check_binding(OP, "B", b.len() as u64 * elem)?;
        self.check_binding(OP, "the output", out_len as u64 * elem)?;
        let bytes = |t: &Act| device_bytes(&[*t], storage);
        let mut offs = Vec::with_capacity(batches.len() * 2);
        for (x, y) in &batches {
            offs.push(to_u32("offset into A", *x)?);
            offs.push(to_u32("offset into B", *y)?);
        }
        let params = Params {
            m: to_u32("M", m_run)?,
            n: to_u32("N", n)?,
            k: to_u32("K", k)?,
            nbatch: to_u32("batch", batches.len())?,
        };

        let pipeline = self.pipeline(kernel, storage)?;
        let out_bytes = out_len as u64 * elem;
        let (make_a, make_b) = (|| bytes(&a), || bytes(&b));
        let (a_bytes, b_bytes);
        let bind_a = match a_key {
            Some(key) => Binding::Const {
                key,
                sig: ConstSig {
                    dtype: act,
                    shape: a_shape.to_vec(),
                    storage,
                },
                data: &make_a,
            },
            None => {
                a_bytes = make_a();
                Binding::Input(&a_bytes)
            }
        };
        let bind_b = match b_key {
            Some(key) => Binding::Const {
                key,
                sig: ConstSig {
                    dtype: act,
                    shape: b_shape.to_vec(),
                    storage,
                },
                data: &make_b,
            },
            None => {
                b_bytes = make_b();
                Binding::Input(&b_bytes)
            }
        };
        let raw = self
            .run(
                OP,
                &pipeline,
                &[
                    Binding::Uniform(bytemuck::bytes_of(&params)),
                    bind_a,
                    bind_b,
                    Binding::Input(bytemuck::cast_slice(&offs)),
                    Binding::Output {
                        bytes: out_bytes,
                        read: true,
                    },
                ],
                [groups[0] as u32, groups[1] as u32, groups[2] as u32],
            )?
            .pop()
            .unwrap_or_default();
        let data = ActVec::from_device(storage, act, &raw);
        Ok(MatMulOutput { data, shape })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_and_batch_indices() {
        assert_eq!(broadcast(&[2, 1], &[3]).unwrap(), vec![2, 3]);
        assert!(broadcast(&[2], &[3]).is_err());
        // a batch (2, 1) under out (2, 3): rows repeat across the second axis.
        assert_eq!(batch_indices(&[2, 1], &[2, 3]), vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(batch_indices(&[3], &[2, 3]), vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(batch_indices(&[], &[2]), vec![0, 0]);
    }
}
