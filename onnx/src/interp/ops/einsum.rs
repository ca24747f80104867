//! Einsum: any equation (explicit or implicit output, `...` broadcasting, repeated labels as
//! diagonals), evaluated directly as a sum of products over the contracted labels, in f32
//! (f64 for f64 inputs), parallel over the output.

use super::elementwise::from_f32;
use super::{input, strides, Registry};
use crate::interp::error::InterpError;
use crate::interp::graph::Node;
use crate::interp::tensor::{DataType, Tensor, TensorData};
use rayon::prelude::*;

pub fn register(r: &mut Registry) {
    r.insert(("", "Einsum"), einsum);
}

/// A parsed equation: per operand its labels (one per axis), the output labels, and the size
/// of every label.
struct Plan {
    operands: Vec<Vec<u32>>,
    output: Vec<u32>,
    contracted: Vec<u32>,
    size: std::collections::BTreeMap<u32, usize>,
}

/// Ellipsis axes get labels above the ASCII range, right-aligned across operands.
const ELLIPSIS_BASE: u32 = 0x1000;

fn parse(node: &Node, eq: &str, shapes: &[&[usize]]) -> Result<Plan, InterpError> {
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != shapes.len() {
        return Err(node.error(format!(
            "equation '{eq}' has {} operands, node has {} inputs",
            terms.len(),
            shapes.len()
        )));
    }
    let letters = |t: &str| -> Result<(Vec<u32>, Option<usize>), InterpError> {
        let mut out = Vec::new();
        let mut ell = None;
        let mut rest = t;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("...") {
                if ell.is_some() {
                    return Err(node.error(format!("two ellipses in '{t}'")));
                }
                ell = Some(out.len());
                rest = r;
                continue;
            }
            let c = rest.chars().next().expect("non-empty");
            if !c.is_ascii_alphabetic() {
                return Err(node.error(format!("bad label '{c}' in equation '{eq}'")));
            }
            out.push(c as u32);
            rest = &rest[1..];
        }
        Ok((out, ell))
    };
    let mut ell_rank = 0usize;
    let mut parsed = Vec::new();
    for (t, s) in terms.iter().zip(shapes) {
        let (l, e) = letters(t)?;
        let er = match e {
            Some(_) => s.len().checked_sub(l.len()).ok_or_else(|| {
                node.error(format!("term '{t}' has more labels than rank {}", s.len()))
            })?,
            None if l.len() != s.len() => {
                return Err(node.error(format!(
                    "term '{t}' has {} labels, its input has rank {}",
                    l.len(),
                    s.len()
                )))
            }
            None => 0,
        };
        ell_rank = ell_rank.max(er);
        parsed.push((l, e, er));
    }
    let ell_labels = |n: usize| -> Vec<u32> {
        (ell_rank - n..ell_rank)
            .map(|i| ELLIPSIS_BASE + i as u32)
            .collect()
    };
    let mut operands = Vec::new();
    let mut size = std::collections::BTreeMap::new();
    for ((l, e, er), s) in parsed.iter().zip(shapes) {
        let mut labels = l.clone();
        if let Some(at) = e {
            labels.splice(*at..*at, ell_labels(*er));
        }
        for (&lab, &d) in labels.iter().zip(s.iter()) {
            let cur = size.entry(lab).or_insert(d);
            if *cur == 1 {
                *cur = d;
            } else if d != 1 && d != *cur {
                return Err(node.error(format!(
                    "label '{}' has sizes {} and {d} in '{eq}' for shapes {shapes:?}",
                    char::from_u32(lab).unwrap_or('?'),
                    *cur
                )));
            }
        }
        operands.push(labels);
    }
    let output: Vec<u32> = match rhs {
        Some(r) => {
            let (l, e) = letters(&r)?;
            let mut labels = l;
            if let Some(at) = e {
                labels.splice(at..at, ell_labels(ell_rank));
            }
            for lab in &labels {
                if !size.contains_key(lab) {
                    return Err(node.error(format!(
                        "output label '{}' appears in no input",
                        char::from_u32(*lab).unwrap_or('?')
                    )));
                }
            }
            labels
        }
        None => {
            // Implicit form: broadcast axes, then labels seen once, alphabetically.
            let mut once: Vec<u32> = size
                .keys()
                .copied()
                .filter(|&l| {
                    l < ELLIPSIS_BASE && operands.iter().flatten().filter(|&&x| x == l).count() == 1
                })
                .collect();
            once.sort_unstable();
            let mut o = ell_labels(ell_rank);
            o.extend(once);
            o
        }
    };
    let contracted = size
        .keys()
        .copied()
        .filter(|l| !output.contains(l))
        .collect();
    Ok(Plan {
        operands,
        output,
        contracted,
        size,
    })
}

fn run<T>(plan: &Plan, shapes: &[&[usize]], data: &[&[T]]) -> Vec<T>
where
    T: Copy + Send + Sync + Default + std::ops::Add<Output = T> + std::ops::Mul<Output = T>,
{
    // Per operand, the element stride of each label (summed for repeated labels; 0 where
    // the operand broadcasts a size-1 axis).
    let lab_stride = |op: usize, lab: u32| -> usize {
        let st = strides(shapes[op]);
        plan.operands[op]
            .iter()
            .enumerate()
            .filter(|(i, &l)| l == lab && shapes[op][*i] != 1)
            .map(|(i, _)| st[i])
            .sum()
    };
    let out_dims: Vec<usize> = plan.output.iter().map(|l| plan.size[l]).collect();
    let red_dims: Vec<usize> = plan.contracted.iter().map(|l| plan.size[l]).collect();
    let n_ops = data.len();
    let out_st: Vec<Vec<usize>> = (0..n_ops)
        .map(|o| plan.output.iter().map(|&l| lab_stride(o, l)).collect())
        .collect();
    let red_st: Vec<Vec<usize>> = (0..n_ops)
        .map(|o| plan.contracted.iter().map(|&l| lab_stride(o, l)).collect())
        .collect();
    let n_out: usize = out_dims.iter().product();
    let n_red: usize = red_dims.iter().product();
    let row = out_dims.last().copied().unwrap_or(1).max(1);
    let mut out = vec![T::default(); n_out];
    if n_out == 0 {
        return out;
    }
    out.par_chunks_mut(row).enumerate().for_each(|(r, chunk)| {
        let mut ctr = vec![0usize; out_dims.len()];
        let mut rc = vec![0usize; red_dims.len()];
        let mut off = vec![0usize; n_ops];
        for (k, o) in chunk.iter_mut().enumerate() {
            // Decompose the flat output index.
            let mut flat = r * row + k;
            for ax in (0..out_dims.len()).rev() {
                ctr[ax] = flat % out_dims[ax];
                flat /= out_dims[ax];
            }
            for (op, b) in off.iter_mut().enumerate() {
                *b = ctr.iter().zip(&out_st[op]).map(|(c, s)| c * s).sum();
            }
            let mut acc = T::default();
            rc.fill(0);
            for _ in 0..n_red {
                let mut p = data[0][off[0]];
                for op in 1..n_ops {
                    p = p * data[op][off[op]];
                }
                acc = acc + p;
                for ax in (0..red_dims.len()).rev() {
                    rc[ax] += 1;
                    for op in 0..n_ops {
                        off[op] += red_st[op][ax];
                    }
                    if rc[ax] < red_dims[ax] {
                        break;
                    }
                    for op in 0..n_ops {
                        off[op] -= red_st[op][ax] * rc[ax];
                    }
                    rc[ax] = 0;
                }
            }
            *o = acc;
        }
    });
    out
}

fn einsum(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let eq = node
        .attrs
        .string("equation")?
        .ok_or_else(|| node.error("attribute 'equation' is required"))?
        .to_string();
    let ts: Vec<&Tensor> = (0..inputs.len())
        .map(|i| input(node, inputs, i))
        .collect::<Result<_, _>>()?;
    if ts.is_empty() {
        return Err(node.error("no inputs"));
    }
    let dtype = ts[0].dtype();
    if ts.iter().any(|t| t.dtype() != dtype) {
        return Err(node.error("inputs have different types"));
    }
    let shapes: Vec<&[usize]> = ts.iter().map(|t| t.shape.as_slice()).collect();
    let plan = parse(node, &eq, &shapes)?;
    let out_shape: Vec<usize> = plan.output.iter().map(|l| plan.size[l]).collect();
    let t = match dtype {
        DataType::F64 => {
            let v: Vec<Vec<f64>> = ts.iter().map(|t| t.to_f64_vec()).collect();
            let refs: Vec<&[f64]> = v.iter().map(|x| x.as_slice()).collect();
            Tensor {
                shape: out_shape,
                data: TensorData::F64(run(&plan, &shapes, &refs)),
            }
        }
        DataType::F32 | DataType::F16 | DataType::BF16 => {
            let v: Vec<Vec<f32>> = ts.iter().map(|t| t.to_f32_vec()).collect();
            let refs: Vec<&[f32]> = v.iter().map(|x| x.as_slice()).collect();
            from_f32(dtype, out_shape, run(&plan, &shapes, &refs))
        }
        DataType::I64 | DataType::I32 => {
            let v: Vec<Vec<i64>> = ts.iter().map(|t| t.to_i64_vec()).collect();
            let refs: Vec<&[i64]> = v.iter().map(|x| x.as_slice()).collect();
            Tensor {
                shape: out_shape,
                data: TensorData::I64(run(&plan, &shapes, &refs)).cast(dtype),
            }
        }
        other => return Err(node.error(format!("Einsum not implemented for {other}"))),
    };
    Ok(vec![t])
}
