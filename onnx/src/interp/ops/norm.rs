//! Normalisations: LayerNormalization (opset 17), RMSNormalization (opset 23),
//! GroupNormalization (opset 18 per-group and 21 per-channel scale/bias),
//! InstanceNormalization and BatchNormalization (inference). Statistics in f64, the result
//! rounded once to the input's type; scale and bias broadcast per the ONNX rules.

use super::{broadcast_index, input, norm_axis, opt_input, Registry};
use crate::interp::error::InterpError;
use crate::interp::graph::Node;
use crate::interp::tensor::{DataType, Tensor, TensorData};

pub fn register(r: &mut Registry) {
    r.insert(("", "LayerNormalization"), |n, i| layer_norm(n, i, false));
    r.insert(("", "RMSNormalization"), |n, i| layer_norm(n, i, true));
    r.insert(("", "GroupNormalization"), group_norm);
    r.insert(("", "InstanceNormalization"), instance_norm);
    r.insert(("", "BatchNormalization"), batch_norm);
}

fn float_input<'a>(
    node: &Node,
    inputs: &[Option<&'a Tensor>],
    i: usize,
) -> Result<&'a Tensor, InterpError> {
    let t = input(node, inputs, i)?;
    if !t.dtype().is_float() {
        return Err(node.error(format!("input {i} must be float, got {}", t.dtype())));
    }
    Ok(t)
}

/// `t` (broadcast unidirectionally to `shape`) as one f64 per element of `shape`.
fn spread(node: &Node, t: &Tensor, shape: &[usize], what: &str) -> Result<Vec<f64>, InterpError> {
    let fits = t.rank() <= shape.len()
        && t.shape
            .iter()
            .rev()
            .zip(shape.iter().rev())
            .all(|(&a, &b)| a == 1 || a == b);
    if !fits {
        return Err(node.error(format!(
            "{what} of shape {:?} does not broadcast to {shape:?}",
            t.shape
        )));
    }
    let v = t.to_f64_vec();
    Ok(broadcast_index(&t.shape, shape)
        .into_iter()
        .map(|i| v[i])
        .collect())
}

fn out(shape: &[usize], dtype: DataType, v: Vec<f64>) -> Tensor {
    Tensor {
        shape: shape.to_vec(),
        data: TensorData::from_f64_iter(dtype, v.into_iter()),
    }
}

/// LayerNormalization (`rms` false) or RMSNormalization (`rms` true) over axes `axis..rank`.
/// LayerNormalization's optional outputs Mean and InvStdDev are fp32 (stash_type 1).
fn layer_norm(
    node: &Node,
    inputs: &[Option<&Tensor>],
    rms: bool,
) -> Result<Vec<Tensor>, InterpError> {
    let x = float_input(node, inputs, 0)?;
    let scale = float_input(node, inputs, 1)?;
    let bias = if rms { None } else { opt_input(inputs, 2) };
    let r = x.rank();
    let axis = norm_axis(node, node.attrs.int_or("axis", -1)?, r.max(1))?;
    let eps = node.attrs.float_or("epsilon", 1e-5)? as f64;
    let inner: usize = x.shape[axis.min(r)..].iter().product();
    let outer: usize = x.shape[..axis.min(r)].iter().product();
    let xv = x.to_f64_vec();
    let s = spread(node, scale, &x.shape, "Scale")?;
    let b = match bias {
        Some(t) => Some(spread(node, t, &x.shape, "B")?),
        None => None,
    };
    let mut y = vec![0f64; xv.len()];
    let mut means = Vec::with_capacity(outer);
    let mut inv_stds = Vec::with_capacity(outer);
    for o in 0..outer {
        let row = &xv[o * inner..(o + 1) * inner];
        let n = inner.max(1) as f64;
        let mean = if rms {
            0.0
        } else {
            row.iter().sum::<f64>() / n
        };
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let inv = 1.0 / (var + eps).sqrt();
        for (k, &v) in row.iter().enumerate() {
            let at = o * inner + k;
            y[at] = (v - mean) * inv * s[at] + b.as_ref().map_or(0.0, |b| b[at]);
        }
        means.push(mean);
        inv_stds.push(inv);
    }
    let mut outs = vec![out(&x.shape, x.dtype(), y)];
    if !rms {
        let stat_shape: Vec<usize> = (0..r)
            .map(|i| if i < axis { x.shape[i] } else { 1 })
            .collect();
        outs.push(out(&stat_shape, DataType::F32, means));
        outs.push(out(&stat_shape, DataType::F32, inv_stds));
    }
    Ok(outs)
}

/// (N, C, spatial...) → (N, C, S) sizes.
fn ncs(node: &Node, x: &Tensor) -> Result<(usize, usize, usize), InterpError> {
    if x.rank() < 2 {
        return Err(node.error(format!("input must be (N, C, ...), got {:?}", x.shape)));
    }
    Ok((x.shape[0], x.shape[1], x.shape[2..].iter().product()))
}

/// Per-channel vector of length `c` from a 1-D input.
fn per_channel(node: &Node, t: &Tensor, c: usize, what: &str) -> Result<Vec<f64>, InterpError> {
    if t.len() != c || t.rank() > 1 && t.shape.iter().filter(|&&d| d != 1).count() > 1 {
        return Err(node.error(format!("{what} of shape {:?} is not ({c})", t.shape)));
    }
    Ok(t.to_f64_vec())
}

/// GroupNormalization: statistics over each group of `C / num_groups` channels and the spatial
/// axes. Opset 21 scales per channel; opset 18 per group (its scale and bias have
/// `num_groups` elements).
fn group_norm(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = float_input(node, inputs, 0)?;
    let scale = float_input(node, inputs, 1)?;
    let bias = float_input(node, inputs, 2)?;
    let (n, c, s) = ncs(node, x)?;
    let groups = node
        .attrs
        .int("num_groups")?
        .ok_or_else(|| node.error("attribute 'num_groups' is required"))?;
    if groups <= 0 || c % groups as usize != 0 {
        return Err(node.error(format!("num_groups {groups} does not divide {c} channels")));
    }
    let groups = groups as usize;
    let cg = c / groups;
    let eps = node.attrs.float_or("epsilon", 1e-5)? as f64;
    let per_group = node.opset < 21;
    let want = if per_group { groups } else { c };
    let sv = per_channel(node, scale, want, "scale")?;
    let bv = per_channel(node, bias, want, "bias")?;
    let xv = x.to_f64_vec();
    let mut y = vec![0f64; xv.len()];
    let len = cg * s;
    for b in 0..n {
        for g in 0..groups {
            let start = (b * c + g * cg) * s;
            let chunk = &xv[start..start + len];
            let m = len.max(1) as f64;
            let mean = chunk.iter().sum::<f64>() / m;
            let var = chunk.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / m;
            let inv = 1.0 / (var + eps).sqrt();
            for (k, &v) in chunk.iter().enumerate() {
                let ch = g * cg + k / s.max(1);
                let p = if per_group { g } else { ch };
                y[start + k] = (v - mean) * inv * sv[p] + bv[p];
            }
        }
    }
    Ok(vec![out(&x.shape, x.dtype(), y)])
}

fn instance_norm(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = float_input(node, inputs, 0)?;
    let (n, c, s) = ncs(node, x)?;
    let sv = per_channel(node, float_input(node, inputs, 1)?, c, "scale")?;
    let bv = per_channel(node, float_input(node, inputs, 2)?, c, "B")?;
    let eps = node.attrs.float_or("epsilon", 1e-5)? as f64;
    let xv = x.to_f64_vec();
    let mut y = vec![0f64; xv.len()];
    for b in 0..n {
        for ch in 0..c {
            let start = (b * c + ch) * s;
            let chunk = &xv[start..start + s];
            let m = s.max(1) as f64;
            let mean = chunk.iter().sum::<f64>() / m;
            let var = chunk.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / m;
            let inv = 1.0 / (var + eps).sqrt();
            for (k, &v) in chunk.iter().enumerate() {
                y[start + k] = (v - mean) * inv * sv[ch] + bv[ch];
            }
        }
    }
    Ok(vec![out(&x.shape, x.dtype(), y)])
}

/// BatchNormalization in inference mode (running mean and variance given).
fn batch_norm(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    if node.attrs.int_or("training_mode", 0)? != 0 {
        return Err(node.error("training_mode = 1 is not supported (inference only)"));
    }
    let x = float_input(node, inputs, 0)?;
    let (_, c, s) = ncs(node, x)?;
    let p = |i: usize, what: &str| per_channel(node, float_input(node, inputs, i)?, c, what);
    let (sv, bv, mv, vv) = (p(1, "scale")?, p(2, "B")?, p(3, "mean")?, p(4, "var")?);
    let eps = node.attrs.float_or("epsilon", 1e-5)? as f64;
    let xv = x.to_f64_vec();
    let y = xv
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / s.max(1)) % c.max(1);
            (v - mv[ch]) / (vv[ch] + eps).sqrt() * sv[ch] + bv[ch]
        })
        .collect();
    Ok(vec![out(&x.shape, x.dtype(), y)])
}
