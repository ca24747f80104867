//! Elementwise ops: unary math, binary arithmetic and comparisons with numpy broadcasting,
//! Where, Cast, Clip, Identity. fp16 / bf16 compute in f32 and round back, like onnxruntime.

use super::{broadcast_index, broadcast_shapes, input, opt_input, Registry};
use crate::interp::error::InterpError;
use crate::interp::graph::Node;
use crate::interp::tensor::{DataType, Tensor, TensorData};
use half::{bf16, f16};
use rayon::prelude::*;

pub fn register(r: &mut Registry) {
    r.insert(("", "Identity"), identity);
    r.insert(("", "Cast"), cast);
    r.insert(("", "CastLike"), cast_like);
    r.insert(("", "Where"), where_);
    r.insert(("", "Clip"), clip);
    r.insert(("", "Not"), not);

    macro_rules! unary {
        ($($name:literal),* $(,)?) => {$(
            r.insert(("", $name), |n, i| unary(n, i, $name));
        )*};
    }
    unary!(
        "Neg",
        "Abs",
        "Sign",
        "Exp",
        "Log",
        "Sqrt",
        "Reciprocal",
        "Sigmoid",
        "Softplus",
        "Tanh",
        "Relu",
        "Sin",
        "Cos",
        "Floor",
        "Ceil",
        "Round",
        "IsNaN",
    );
    macro_rules! binary {
        ($($name:literal),* $(,)?) => {$(
            r.insert(("", $name), |n, i| binary(n, i, $name));
        )*};
    }
    binary!(
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Mod",
        "Equal",
        "Less",
        "Greater",
        "LessOrEqual",
        "GreaterOrEqual",
        "And",
        "Or",
        "Xor",
        "BitwiseAnd",
        "BitwiseOr",
    );
    r.insert(("", "Max"), |n, i| variadic(n, i, "Max"));
    r.insert(("", "Min"), |n, i| variadic(n, i, "Min"));
    r.insert(("", "Sum"), |n, i| variadic(n, i, "Add"));
}

fn identity(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    Ok(vec![input(node, inputs, 0)?.clone()])
}

fn cast(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let to = node
        .attrs
        .int("to")?
        .ok_or_else(|| node.error("attribute 'to' is required"))?;
    let dt = DataType::from_onnx(to as i32)
        .ok_or_else(|| node.error(format!("cannot cast to ONNX type {to}")))?;
    Ok(vec![x.cast(dt)])
}

fn cast_like(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let like = input(node, inputs, 1)?;
    Ok(vec![x.cast(like.dtype())])
}

fn not(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    match &x.data {
        TensorData::Bool(v) => Ok(vec![Tensor {
            shape: x.shape.clone(),
            data: TensorData::Bool(v.iter().map(|b| !b).collect()),
        }]),
        _ => Err(node.error(format!("Not needs bool, got {}", x.dtype()))),
    }
}

/// Applies `f` in the tensor's own float type (f16 / bf16 through f32).
fn map_float(
    node: &Node,
    x: &Tensor,
    f32f: impl Fn(f32) -> f32 + Sync + Send,
    f64f: impl Fn(f64) -> f64 + Sync + Send,
) -> Result<TensorData, InterpError> {
    fn map<T: Sync, O: Send>(v: &[T], f: impl Fn(&T) -> O + Sync + Send) -> Vec<O> {
        if v.len() >= PAR_MIN {
            v.par_iter().map(f).collect()
        } else {
            v.iter().map(f).collect()
        }
    }
    Ok(match &x.data {
        TensorData::F32(v) => TensorData::F32(map(v, |&a| f32f(a))),
        TensorData::F64(v) => TensorData::F64(map(v, |&a| f64f(a))),
        TensorData::F16(v) => TensorData::F16(map(v, |&a| f16::from_f32(f32f(a.to_f32())))),
        TensorData::BF16(v) => TensorData::BF16(map(v, |&a| bf16::from_f32(f32f(a.to_f32())))),
        _ => return Err(node.error(format!("needs a float tensor, got {}", x.dtype()))),
    })
}

/// Applies an integer function to any integer tensor (through i64, back to its own type).
fn map_int(x: &Tensor, f: impl Fn(i64) -> i64) -> TensorData {
    let v: Vec<i64> = x.to_i64_vec().into_iter().map(f).collect();
    TensorData::I64(v).cast(x.dtype())
}

fn softplus32(x: f32) -> f32 {
    // Stable log(1 + e^x): never overflows, exact to f32 for large |x|.
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

fn softplus64(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

fn sigmoid32(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn sigmoid64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn unary(node: &Node, inputs: &[Option<&Tensor>], op: &str) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let is_float = x.dtype().is_float();
    let data = match op {
        "Neg" if !is_float => map_int(x, |a| a.wrapping_neg()),
        "Abs" if !is_float => map_int(x, |a| a.wrapping_abs()),
        "Sign" if !is_float => map_int(x, |a| a.signum()),
        "Relu" if !is_float => map_int(x, |a| a.max(0)),
        "Neg" => map_float(node, x, |a| -a, |a| -a)?,
        "Abs" => map_float(node, x, f32::abs, f64::abs)?,
        "Sign" => map_float(
            node,
            x,
            |a| if a == 0.0 { 0.0 } else { a.signum() },
            |a| if a == 0.0 { 0.0 } else { a.signum() },
        )?,
        "Exp" => map_float(node, x, f32::exp, f64::exp)?,
        "Log" => map_float(node, x, f32::ln, f64::ln)?,
        "Sqrt" => map_float(node, x, f32::sqrt, f64::sqrt)?,
        "Reciprocal" => map_float(node, x, |a| 1.0 / a, |a| 1.0 / a)?,
        "Sigmoid" => map_float(node, x, sigmoid32, sigmoid64)?,
        "Softplus" => map_float(node, x, softplus32, softplus64)?,
        "Tanh" => map_float(node, x, f32::tanh, f64::tanh)?,
        "Relu" => map_float(node, x, |a| a.max(0.0), |a| a.max(0.0))?,
        "Sin" => map_float(node, x, f32::sin, f64::sin)?,
        "Cos" => map_float(node, x, f32::cos, f64::cos)?,
        "Floor" => map_float(node, x, f32::floor, f64::floor)?,
        "Ceil" => map_float(node, x, f32::ceil, f64::ceil)?,
        "Round" => map_float(node, x, f32::round_ties_even, f64::round_ties_even)?,
        "IsNaN" => TensorData::Bool(x.to_f64_vec().iter().map(|a| a.is_nan()).collect()),
        _ => return Err(node.error(format!("unary op {op} not implemented for {}", x.dtype()))),
    };
    Ok(vec![Tensor {
        shape: x.shape.clone(),
        data,
    }])
}

/// Broadcast binary map over two same-typed slices.
fn zip_bcast<A, B, O>(
    a: &[A],
    a_shape: &[usize],
    b: &[B],
    b_shape: &[usize],
    out_shape: &[usize],
    f: impl Fn(A, B) -> O + Sync + Send,
) -> Vec<O>
where
    A: Copy + Sync,
    B: Copy + Sync,
    O: Send,
{
    let n: usize = out_shape.iter().product();
    // Large outputs are split over rayon's threads; small ones are not worth the hand-off.
    let par = n >= PAR_MIN;
    let run = |g: &(dyn Fn(usize) -> O + Sync)| -> Vec<O> {
        if par {
            (0..n).into_par_iter().map(g).collect()
        } else {
            (0..n).map(g).collect()
        }
    };
    if a_shape == b_shape {
        return run(&|i| f(a[i], b[i]));
    }
    if b.len() == 1 && a.len() == n {
        let y = b[0];
        return run(&|i| f(a[i], y));
    }
    if a.len() == 1 && b.len() == n {
        let x = a[0];
        return run(&|i| f(x, b[i]));
    }
    let ai = broadcast_index(a_shape, out_shape);
    let bi = broadcast_index(b_shape, out_shape);
    run(&|k| f(a[ai[k]], b[bi[k]]))
}

/// Element count from which elementwise ops run in parallel.
const PAR_MIN: usize = 1 << 16;

fn float_op32(op: &str) -> Option<fn(f32, f32) -> f32> {
    Some(match op {
        "Add" => |a, b| a + b,
        "Sub" => |a, b| a - b,
        "Mul" => |a, b| a * b,
        "Div" => |a, b| a / b,
        "Pow" => pow32,
        "Max" => |a: f32, b: f32| {
            if a.is_nan() || b.is_nan() {
                f32::NAN
            } else {
                a.max(b)
            }
        },
        "Min" => |a: f32, b: f32| {
            if a.is_nan() || b.is_nan() {
                f32::NAN
            } else {
                a.min(b)
            }
        },
        _ => return None,
    })
}

fn float_op64(op: &str) -> Option<fn(f64, f64) -> f64> {
    Some(match op {
        "Add" => |a, b| a + b,
        "Sub" => |a, b| a - b,
        "Mul" => |a, b| a * b,
        "Div" => |a, b| a / b,
        "Pow" => |a: f64, b: f64| if b == 2.0 { a * a } else { a.powf(b) },
        "Max" => |a: f64, b: f64| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.max(b)
            }
        },
        "Min" => |a: f64, b: f64| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.min(b)
            }
        },
        _ => return None,
    })
}

fn pow32(a: f32, b: f32) -> f32 {
    // The exports square in RMSNorm; x*x is what onnxruntime computes for exponent 2.
    if b == 2.0 {
        a * a
    } else if b == 0.5 {
        a.sqrt()
    } else {
        a.powf(b)
    }
}

fn int_op(op: &str) -> Option<fn(i64, i64) -> i64> {
    Some(match op {
        "Add" => |a: i64, b: i64| a.wrapping_add(b),
        "Sub" => |a: i64, b: i64| a.wrapping_sub(b),
        "Mul" => |a: i64, b: i64| a.wrapping_mul(b),
        // Division by zero is caught before this runs.
        "Div" => |a: i64, b: i64| a.wrapping_div(b),
        "Pow" => |a: i64, b: i64| {
            if b < 0 {
                0
            } else {
                a.wrapping_pow(b.min(u32::MAX as i64) as u32)
            }
        },
        "Max" => |a: i64, b: i64| a.max(b),
        "Min" => |a: i64, b: i64| a.min(b),
        "BitwiseAnd" => |a: i64, b: i64| a & b,
        "BitwiseOr" => |a: i64, b: i64| a | b,
        _ => return None,
    })
}

/// Elementwise binary op with numpy broadcasting.
pub(crate) fn binary_tensors(
    node: &Node,
    a: &Tensor,
    b: &Tensor,
    op: &str,
) -> Result<Tensor, InterpError> {
    let out_shape = broadcast_shapes(node, &[&a.shape, &b.shape])?;
    // Comparisons: bool out, any matching numeric types.
    let cmp: Option<fn(std::cmp::Ordering) -> bool> = match op {
        "Equal" => Some(|o| o.is_eq()),
        "Less" => Some(|o| o.is_lt()),
        "Greater" => Some(|o| o.is_gt()),
        "LessOrEqual" => Some(|o| o.is_le()),
        "GreaterOrEqual" => Some(|o| o.is_ge()),
        _ => None,
    };
    if let Some(c) = cmp {
        let data = if a.dtype().is_float() || b.dtype().is_float() {
            let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
            zip_bcast(&x, &a.shape, &y, &b.shape, &out_shape, |p, q| {
                p.partial_cmp(&q).is_some_and(c)
            })
        } else {
            let (x, y) = (a.to_i64_vec(), b.to_i64_vec());
            zip_bcast(&x, &a.shape, &y, &b.shape, &out_shape, |p, q| c(p.cmp(&q)))
        };
        return Ok(Tensor {
            shape: out_shape,
            data: TensorData::Bool(data),
        });
    }
    if matches!(op, "And" | "Or" | "Xor") {
        let (TensorData::Bool(x), TensorData::Bool(y)) = (&a.data, &b.data) else {
            return Err(node.error(format!("{op} needs bool inputs")));
        };
        let f: fn(bool, bool) -> bool = match op {
            "And" => |p, q| p && q,
            "Or" => |p, q| p || q,
            _ => |p, q| p ^ q,
        };
        return Ok(Tensor {
            shape: out_shape.clone(),
            data: TensorData::Bool(zip_bcast(x, &a.shape, y, &b.shape, &out_shape, f)),
        });
    }
    if op == "Mod" {
        return modulo(node, a, b, out_shape);
    }
    // Pow may take an exponent of another type: bring it to the base's type.
    let b_conv;
    let b = if op == "Pow" && b.dtype() != a.dtype() {
        b_conv = b.cast(a.dtype());
        &b_conv
    } else {
        b
    };
    if a.dtype() != b.dtype() {
        return Err(node.error(format!(
            "inputs have different types: {} and {}",
            a.dtype(),
            b.dtype()
        )));
    }
    let unsupported = || node.error(format!("{op} not implemented for {}", a.dtype()));
    let data = match (&a.data, &b.data) {
        (TensorData::F32(x), TensorData::F32(y)) => {
            let f = float_op32(op).ok_or_else(unsupported)?;
            TensorData::F32(zip_bcast(x, &a.shape, y, &b.shape, &out_shape, f))
        }
        (TensorData::F64(x), TensorData::F64(y)) => {
            let f = float_op64(op).ok_or_else(unsupported)?;
            TensorData::F64(zip_bcast(x, &a.shape, y, &b.shape, &out_shape, f))
        }
        (TensorData::F16(x), TensorData::F16(y)) => {
            let f = float_op32(op).ok_or_else(unsupported)?;
            TensorData::F16(zip_bcast(x, &a.shape, y, &b.shape, &out_shape, |p, q| {
                f16::from_f32(f(p.to_f32(), q.to_f32()))
            }))
        }
        (TensorData::BF16(x), TensorData::BF16(y)) => {
            let f = float_op32(op).ok_or_else(unsupported)?;
            TensorData::BF16(zip_bcast(x, &a.shape, y, &b.shape, &out_shape, |p, q| {
                bf16::from_f32(f(p.to_f32(), q.to_f32()))
            }))
        }
        (TensorData::Bool(_), _) => return Err(unsupported()),
        _ => {
            let f = int_op(op).ok_or_else(unsupported)?;
            let (x, y) = (a.to_i64_vec(), b.to_i64_vec());
            if op == "Div" && y.contains(&0) {
                return Err(node.error("integer division by zero"));
            }
            TensorData::I64(zip_bcast(&x, &a.shape, &y, &b.shape, &out_shape, f)).cast(a.dtype())
        }
    };
    Ok(Tensor {
        shape: out_shape,
        data,
    })
}

fn modulo(
    node: &Node,
    a: &Tensor,
    b: &Tensor,
    out_shape: Vec<usize>,
) -> Result<Tensor, InterpError> {
    let fmod = node.attrs.int_or("fmod", 0)? != 0;
    if a.dtype() != b.dtype() {
        return Err(node.error("Mod inputs have different types"));
    }
    let data = if a.dtype().is_float() {
        let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
        let v = zip_bcast(&x, &a.shape, &y, &b.shape, &out_shape, |p, q| {
            let r = p % q;
            if fmod || r == 0.0 || (r < 0.0) == (q < 0.0) {
                r
            } else {
                r + q
            }
        });
        TensorData::F64(v).cast(a.dtype())
    } else {
        let (x, y) = (a.to_i64_vec(), b.to_i64_vec());
        if y.contains(&0) {
            return Err(node.error("integer modulo by zero"));
        }
        let v = zip_bcast(&x, &a.shape, &y, &b.shape, &out_shape, |p, q| {
            let r = p.wrapping_rem(q);
            if fmod || r == 0 || (r < 0) == (q < 0) {
                r
            } else {
                r + q
            }
        });
        TensorData::I64(v).cast(a.dtype())
    };
    Ok(Tensor {
        shape: out_shape,
        data,
    })
}

fn binary(node: &Node, inputs: &[Option<&Tensor>], op: &str) -> Result<Vec<Tensor>, InterpError> {
    let a = input(node, inputs, 0)?;
    let b = input(node, inputs, 1)?;
    Ok(vec![binary_tensors(node, a, b, op)?])
}

fn variadic(node: &Node, inputs: &[Option<&Tensor>], op: &str) -> Result<Vec<Tensor>, InterpError> {
    let mut acc = input(node, inputs, 0)?.clone();
    for i in 1..inputs.len() {
        acc = binary_tensors(node, &acc, input(node, inputs, i)?, op)?;
    }
    Ok(vec![acc])
}

fn where_(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let c = input(node, inputs, 0)?;
    let x = input(node, inputs, 1)?;
    let y = input(node, inputs, 2)?;
    let TensorData::Bool(cv) = &c.data else {
        return Err(node.error(format!("condition must be bool, got {}", c.dtype())));
    };
    if x.dtype() != y.dtype() {
        return Err(node.error(format!(
            "X and Y have different types: {} and {}",
            x.dtype(),
            y.dtype()
        )));
    }
    let out_shape = broadcast_shapes(node, &[&c.shape, &x.shape, &y.shape])?;
    let ci = broadcast_index(&c.shape, &out_shape);
    let xi = broadcast_index(&x.shape, &out_shape);
    let yi = broadcast_index(&y.shape, &out_shape);
    macro_rules! pick {
        ($($v:ident),*) => {
            match (&x.data, &y.data) {
                $((TensorData::$v(a), TensorData::$v(b)) => TensorData::$v(
                    (0..ci.len())
                        .map(|k| if cv[ci[k]] { a[xi[k]] } else { b[yi[k]] })
                        .collect(),
                ),)*
                _ => unreachable!("types checked equal above"),
            }
        };
    }
    let data = pick!(F32, F16, BF16, F64, I64, I32, I16, I8, U8, U16, U32, U64, Bool);
    Ok(vec![Tensor {
        shape: out_shape,
        data,
    }])
}

fn clip(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    // Opset ≥ 11: min/max are optional inputs; before: attributes.
    let lo = match opt_input(inputs, 1) {
        Some(t) => Some(t.to_f64_vec().first().copied().unwrap_or(f64::NEG_INFINITY)),
        None => node.attrs.float("min")?.map(|v| v as f64),
    };
    let hi = match opt_input(inputs, 2) {
        Some(t) => Some(t.to_f64_vec().first().copied().unwrap_or(f64::INFINITY)),
        None => node.attrs.float("max")?.map(|v| v as f64),
    };
    let lo = lo.unwrap_or(f64::NEG_INFINITY);
    let hi = hi.unwrap_or(f64::INFINITY);
    let data = if x.dtype().is_float() {
        map_float(
            node,
            x,
            |a| a.max(lo as f32).min(hi as f32),
            |a| a.max(lo).min(hi),
        )?
    } else {
        map_int(x, |a| {
            let v = a as f64;
            v.max(lo).min(hi) as i64
        })
    };
    Ok(vec![Tensor {
        shape: x.shape.clone(),
        data,
    }])
}

/// `x` converted to f32 values (any type), for ops that compute in f32.
#[allow(dead_code)]
pub(crate) fn as_f32(x: &Tensor) -> Vec<f32> {
    x.to_f32_vec()
}

/// Builds a tensor of `dtype` from f32 results (the reverse of [`as_f32`]).
pub(crate) fn from_f32(dtype: DataType, shape: Vec<usize>, v: Vec<f32>) -> Tensor {
    let data = match dtype {
        DataType::F32 => TensorData::F32(v),
        DataType::F16 => TensorData::F16(v.into_iter().map(f16::from_f32).collect()),
        DataType::BF16 => TensorData::BF16(v.into_iter().map(bf16::from_f32).collect()),
        other => TensorData::from_f64_iter(other, v.into_iter().map(|x| x as f64)),
    };
    Tensor { shape, data }
}
