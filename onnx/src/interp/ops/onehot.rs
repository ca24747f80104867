//! OneHot (opset 11): TorchScript's export of `repeat_interleave` builds its repeat counts
//! with it.

use super::{input, norm_axis, Registry};
use crate::interp::error::InterpError;
use crate::interp::graph::Node;
use crate::interp::tensor::{Tensor, TensorData};

pub fn register(r: &mut Registry) {
    r.insert(("", "OneHot"), one_hot);
}

/// Largest output accepted (elements), so that a corrupt depth cannot exhaust memory.
const MAX_ELEMENTS: usize = 1 << 28;

fn one_hot(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let indices = input(node, inputs, 0)?;
    let depth = input(node, inputs, 1)?;
    let values = input(node, inputs, 2)?;
    if depth.len() != 1 || values.len() != 2 {
        return Err(node.error(format!(
            "depth must have one element and values two, got {:?} and {:?}",
            depth.shape, values.shape
        )));
    }
    let depth_v = depth.to_f64_vec()[0];
    if depth_v.is_nan() || depth_v < 1.0 || depth_v > MAX_ELEMENTS as f64 {
        return Err(node.error(format!("depth {depth_v} out of range")));
    }
    let d = depth_v as usize;
    let r = indices.rank() + 1;
    let axis = norm_axis(node, node.attrs.int_or("axis", -1)?, r)?;
    let mut shape = indices.shape.clone();
    shape.insert(axis, d);
    let n = indices
        .len()
        .checked_mul(d)
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| node.error(format!("output shape {shape:?} is too large")))?;
    let outer: usize = indices.shape[..axis].iter().product();
    let inner: usize = indices.shape[axis..].iter().product();
    let idx = indices.to_f64_vec();
    let vals = values.to_f64_vec();
    let mut out = vec![vals[0]; n];
    for o in 0..outer {
        for i in 0..inner {
            let mut k = idx[o * inner + i].trunc();
            if k < 0.0 {
                k += d as f64;
            }
            if k >= 0.0 && k < d as f64 {
                out[(o * d + k as usize) * inner + i] = vals[1];
            }
        }
    }
    Ok(vec![Tensor {
        shape,
        data: TensorData::from_f64_iter(values.dtype(), out.into_iter()),
    }])
}
