//! Activations beyond the plain unary math of `elementwise`: Erf, Gelu (both approximations),
//! HardSwish, HardSigmoid, LeakyRelu, Elu, Mish. Computed in f64 and rounded once to the
//! tensor's float type.

use super::{input, Registry};
use crate::interp::error::InterpError;
use crate::interp::graph::Node;
use crate::interp::tensor::{Tensor, TensorData};

pub fn register(r: &mut Registry) {
    r.insert(("", "Erf"), |n, i| apply(n, i, libm::erf));
    r.insert(("", "Gelu"), gelu);
    r.insert(("", "HardSwish"), |n, i| {
        apply(n, i, |x| x * (x / 6.0 + 0.5).clamp(0.0, 1.0))
    });
    r.insert(("", "HardSigmoid"), hard_sigmoid);
    r.insert(("", "LeakyRelu"), leaky_relu);
    r.insert(("", "Elu"), elu);
    r.insert(("", "Mish"), |n, i| apply(n, i, |x| x * softplus(x).tanh()));
}

fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// `f` on every element of float input 0.
fn apply(
    node: &Node,
    inputs: &[Option<&Tensor>],
    f: impl Fn(f64) -> f64,
) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    if !x.dtype().is_float() {
        return Err(node.error(format!("needs a float tensor, got {}", x.dtype())));
    }
    let data = TensorData::from_f64_iter(x.dtype(), x.to_f64_vec().into_iter().map(f));
    Ok(vec![Tensor {
        shape: x.shape.clone(),
        data,
    }])
}

/// Gelu (opset 20): `approximate` "none" (x·Φ(x), by erf) or "tanh".
fn gelu(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    match node.attrs.string("approximate")?.unwrap_or("none") {
        "none" => apply(node, inputs, |x| {
            0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))
        }),
        "tanh" => apply(node, inputs, |x| {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
        }),
        other => Err(node.error(format!(
            "approximate = '{other}' (expected 'none' or 'tanh')"
        ))),
    }
}

fn hard_sigmoid(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let alpha = node.attrs.float_or("alpha", 0.2)? as f64;
    let beta = node.attrs.float_or("beta", 0.5)? as f64;
    apply(node, inputs, |x| (alpha * x + beta).clamp(0.0, 1.0))
}

fn leaky_relu(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let alpha = node.attrs.float_or("alpha", 0.01)? as f64;
    apply(node, inputs, |x| if x < 0.0 { alpha * x } else { x })
}

fn elu(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let alpha = node.attrs.float_or("alpha", 1.0)? as f64;
    apply(
        node,
        inputs,
        |x| if x < 0.0 { alpha * x.exp_m1() } else { x },
    )
}
