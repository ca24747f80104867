//! The CPU ops, one file per family, and the registry that maps (domain, op_type) to them.
//! Each family file has a `register` function listing its ops.

pub mod activation;
pub mod conv;
pub mod einsum;
pub mod elementwise;
pub mod gemv;
pub mod matmul;
pub mod norm;
pub mod onehot;
pub mod reduce;
pub mod resize;
pub mod scan;
pub mod scan_heads;
pub mod shape;

use super::error::InterpError;
use super::graph::Node;
use super::tensor::Tensor;
use std::collections::HashMap;
use std::sync::OnceLock;

/// An op: node (parsed attributes) and inputs (`None` for an omitted optional input) to
/// outputs, one per node output.
pub type OpFn = fn(&Node, &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError>;

/// (domain — "" for the default ONNX domain —, op_type) → op.
pub type Registry = HashMap<(&'static str, &'static str), OpFn>;

/// The registry of every CPU op, built once.
pub fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| {
        let mut r = Registry::new();
        elementwise::register(&mut r);
        shape::register(&mut r);
        reduce::register(&mut r);
        matmul::register(&mut r);
        einsum::register(&mut r);
        conv::register(&mut r);
        scan::register(&mut r);
        activation::register(&mut r);
        norm::register(&mut r);
        onehot::register(&mut r);
        resize::register(&mut r);
        scan_heads::register(&mut r);
        r
    })
}

/// The names of every supported op, sorted, as `domain::op_type` (plain op_type for ONNX's).
pub fn supported_ops() -> Vec<String> {
    let mut v: Vec<String> = registry()
        .keys()
        .map(|(d, o)| {
            if d.is_empty() {
                o.to_string()
            } else {
                format!("{d}::{o}")
            }
        })
        .collect();
    v.sort();
    v
}

/// Input `i`, which the op requires.
pub(crate) fn input<'a>(
    node: &Node,
    inputs: &[Option<&'a Tensor>],
    i: usize,
) -> Result<&'a Tensor, InterpError> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| node.error(format!("input {i} is required")))
}

/// Optional input `i`.
pub(crate) fn opt_input<'a>(inputs: &[Option<&'a Tensor>], i: usize) -> Option<&'a Tensor> {
    inputs.get(i).copied().flatten()
}

/// Normalises a possibly negative axis against `rank` (ONNX: -rank ≤ axis < rank).
pub(crate) fn norm_axis(node: &Node, axis: i64, rank: usize) -> Result<usize, InterpError> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(node.error(format!("axis {axis} out of range for rank {rank}")));
    }
    Ok(if axis < 0 { axis + r } else { axis } as usize)
}

/// Element count of an output of `shape` with `elem_bytes`-sized elements, checked for overflow
/// and against the cap on one tensor (`crate::data::max_tensor_bytes`).
pub(crate) fn alloc_len(
    node: &Node,
    shape: &[usize],
    elem_bytes: usize,
) -> Result<usize, InterpError> {
    crate::data::checked_len(shape, elem_bytes)
        .map_err(|e| node.error(format!("output of shape {shape:?}: {e}")))
}

/// Row-major strides of `shape`.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// numpy broadcast of several shapes.
pub(crate) fn broadcast_shapes(
    node: &Node,
    shapes: &[&[usize]],
) -> Result<Vec<usize>, InterpError> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let off = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[off + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(node.error(format!("shapes {shapes:?} do not broadcast")));
            }
        }
    }
    // Broadcasting ops build an index per output element.
    alloc_len(node, &out, std::mem::size_of::<usize>())?;
    Ok(out)
}

/// For each element of `out_shape`, the index into a tensor of shape `shape` broadcast to it.
pub(crate) fn broadcast_index(shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let n: usize = out_shape.iter().product();
    let total: usize = shape.iter().product();
    if shape == out_shape {
        return (0..n).collect();
    }
    if total == 1 {
        return vec![0; n];
    }
    let off = out_shape.len() - shape.len();
    let src_strides = strides(shape);
    // Stride 0 on broadcast axes.
    let mut st = vec![0usize; out_shape.len()];
    for i in 0..shape.len() {
        st[off + i] = if shape[i] == 1 { 0 } else { src_strides[i] };
    }
    let mut idx = Vec::with_capacity(n);
    let mut counter = vec![0usize; out_shape.len()];
    let mut cur = 0usize;
    for _ in 0..n {
        idx.push(cur);
        for ax in (0..out_shape.len()).rev() {
            counter[ax] += 1;
            cur += st[ax];
            if counter[ax] < out_shape[ax] {
                break;
            }
            cur -= st[ax] * counter[ax];
            counter[ax] = 0;
        }
    }
    idx
}
