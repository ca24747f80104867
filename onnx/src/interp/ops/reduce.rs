//! Reductions (ReduceMean/Sum/Max/Min/Prod/SumSquare/L2) and Softmax / LogSoftmax. Sums
//! accumulate in f64 and round to the tensor's type at the end.

use super::{input, norm_axis, opt_input, strides, Registry};
use crate::interp::error::InterpError;
use crate::interp::graph::Node;
use crate::interp::tensor::{Tensor, TensorData};

pub fn register(r: &mut Registry) {
    macro_rules! reduce {
        ($($name:literal),* $(,)?) => {$(
            r.insert(("", $name), |n, i| reduce(n, i, $name));
        )*};
    }
    reduce!(
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceSumSquare",
        "ReduceL2",
    );
    r.insert(("", "Softmax"), |n, i| softmax(n, i, false));
    r.insert(("", "LogSoftmax"), |n, i| softmax(n, i, true));
    r.insert(("", "CumSum"), cumsum);
}

fn cumsum(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let axis = input(node, inputs, 1)?
        .to_i64_vec()
        .first()
        .copied()
        .ok_or_else(|| node.error("empty axis input"))?;
    let axis = norm_axis(node, axis, x.rank())?;
    let exclusive = node.attrs.int_or("exclusive", 0)? != 0;
    let reverse = node.attrs.int_or("reverse", 0)? != 0;
    let dim = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let outer: usize = x.shape[..axis].iter().product();
    let float = x.dtype().is_float();
    let (vf, vi) = if float {
        (x.to_f64_vec(), Vec::new())
    } else {
        (Vec::new(), x.to_i64_vec())
    };
    let mut of = vec![0.0f64; vf.len()];
    let mut oi = vec![0i64; vi.len()];
    for o in 0..outer {
        for i in 0..inner {
            let (mut sf, mut si) = (0.0f64, 0i64);
            for step in 0..dim {
                let k = if reverse { dim - 1 - step } else { step };
                let at = (o * dim + k) * inner + i;
                if float {
                    if exclusive {
                        of[at] = sf;
                        sf += vf[at];
                    } else {
                        sf += vf[at];
                        of[at] = sf;
                    }
                } else if exclusive {
                    oi[at] = si;
                    si = si.wrapping_add(vi[at]);
                } else {
                    si = si.wrapping_add(vi[at]);
                    oi[at] = si;
                }
            }
        }
    }
    let data = if float {
        TensorData::F64(of).cast(x.dtype())
    } else {
        TensorData::I64(oi).cast(x.dtype())
    };
    Ok(vec![Tensor {
        shape: x.shape.clone(),
        data,
    }])
}

fn reduce(node: &Node, inputs: &[Option<&Tensor>], op: &str) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let r = x.rank();
    let keepdims = node.attrs.int_or("keepdims", 1)? != 0;
    // Axes: input 1 (ReduceSum ≥ 13, the others ≥ 18) or the attribute.
    let axes = match opt_input(inputs, 1) {
        Some(t) => Some(t.to_i64_vec()),
        None => node.attrs.ints("axes")?,
    };
    let axes = match axes {
        Some(a) if !a.is_empty() => a,
        _ if node.attrs.int_or("noop_with_empty_axes", 0)? != 0 => {
            return Ok(vec![x.clone()]);
        }
        _ => (0..r as i64).collect(),
    };
    let mut reduced = vec![false; r];
    for &a in &axes {
        reduced[norm_axis(node, a, r)?] = true;
    }
    let kept_shape: Vec<usize> = x
        .shape
        .iter()
        .zip(&reduced)
        .map(|(&d, &red)| if red { 1 } else { d })
        .collect();
    // A zero-size input can have huge other axes: the output need not be small.
    let out_n = super::alloc_len(node, &kept_shape, 8)?;
    let count: usize = x
        .shape
        .iter()
        .zip(&reduced)
        .filter(|(_, &red)| red)
        .map(|(&d, _)| d)
        .product();
    let out_st = strides(&kept_shape);
    let init = match op {
        "ReduceMax" => f64::NEG_INFINITY,
        "ReduceMin" => f64::INFINITY,
        "ReduceProd" => 1.0,
        _ => 0.0,
    };
    if count == 0 && matches!(op, "ReduceMax" | "ReduceMin") {
        return Err(node.error(format!("{op} over an empty axis of {:?}", x.shape)));
    }
    let mut acc = vec![init; out_n];
    let v = x.to_f64_vec();
    let mut ctr = vec![0usize; r];
    let mut off = 0usize;
    for &val in &v {
        let a = &mut acc[off];
        match op {
            // NaN wins, as in numpy and onnxruntime.
            "ReduceMax" if !(a.is_nan() || *a >= val) => *a = val,
            "ReduceMin" if !(a.is_nan() || *a <= val) => *a = val,
            "ReduceMax" | "ReduceMin" => {}
            "ReduceProd" => *a *= val,
            "ReduceSumSquare" | "ReduceL2" => *a += val * val,
            _ => *a += val,
        }
        for ax in (0..r).rev() {
            ctr[ax] += 1;
            if !reduced[ax] {
                off += out_st[ax];
            }
            if ctr[ax] < x.shape[ax] {
                break;
            }
            if !reduced[ax] {
                off -= out_st[ax] * ctr[ax];
            }
            ctr[ax] = 0;
        }
    }
    match op {
        "ReduceMean" => acc.iter_mut().for_each(|a| *a /= count as f64),
        "ReduceL2" => acc.iter_mut().for_each(|a| *a = a.sqrt()),
        _ => {}
    }
    let shape = if keepdims {
        kept_shape
    } else {
        x.shape
            .iter()
            .zip(&reduced)
            .filter(|(_, &red)| !red)
            .map(|(&d, _)| d)
            .collect()
    };
    Ok(vec![Tensor {
        shape,
        data: TensorData::F64(acc).cast(x.dtype()),
    }])
}

fn softmax(node: &Node, inputs: &[Option<&Tensor>], log: bool) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    if !x.dtype().is_float() {
        return Err(node.error(format!("needs a float tensor, got {}", x.dtype())));
    }
    let axis = norm_axis(node, node.attrs.int_or("axis", -1)?, x.rank())?;
    let dim = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let outer: usize = x.shape[..axis].iter().product();
    let mut v = x.to_f64_vec();
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * dim + k) * inner + i;
            let m = (0..dim).map(|k| v[at(k)]).fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..dim).map(|k| (v[at(k)] - m).exp()).sum();
            for k in 0..dim {
                let e = v[at(k)] - m;
                v[at(k)] = if log { e - s.ln() } else { e.exp() / s };
            }
        }
    }
    Ok(vec![Tensor {
        shape: x.shape.clone(),
        data: TensorData::F64(v).cast(x.dtype()),
    }])
}
