//! `S6Scan` (domain `s6plugin`): the selective scan of `docs/s6scan.md`, computed by
//! `s6_contract::reference` in fp32. Activations of fp16 / bf16 are widened, and `y` narrowed
//! back, as the op's contract says.

use super::{input, Registry};
use crate::interp::error::InterpError;
use crate::interp::graph::Node;
use crate::interp::tensor::{DataType, Tensor};
use s6_contract::contract::{self, S6Attrs};

pub fn register(r: &mut Registry) {
    r.insert((contract::ONNX_DOMAIN, contract::OP_TYPE), s6scan);
}

/// Attribute names TensorRT's ONNX parser may see on the node that are no op flags.
pub(super) const IGNORED_ATTRS: [&str; 2] = ["plugin_version", "plugin_namespace"];

/// The node's `S6Attrs`, through the contract's one reader.
pub fn attrs_of(node: &Node) -> Result<S6Attrs, InterpError> {
    crate::patch::s6node::attrs_of(&node.proto).map_err(|e| node.error(e.to_string()))
}

fn s6scan(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let attrs = attrs_of(node)?;
    let roles = attrs.inputs();
    if inputs.len() != roles.len() {
        return Err(node.error(format!(
            "{} inputs, the flags call for {} ({:?})",
            inputs.len(),
            roles.len(),
            roles.iter().map(|r| r.name()).collect::<Vec<_>>()
        )));
    }
    let mut ts = Vec::with_capacity(roles.len());
    for i in 0..roles.len() {
        ts.push(input(node, inputs, i)?);
    }
    let dt = |t: &Tensor, role: &str| -> Result<contract::DType, InterpError> {
        match t.dtype() {
            DataType::F32 => Ok(contract::DType::F32),
            DataType::F16 => Ok(contract::DType::F16),
            DataType::BF16 => Ok(contract::DType::BF16),
            other => Err(node.error(format!("input '{role}' is {other}"))),
        }
    };
    let dtypes: Vec<contract::DType> = ts
        .iter()
        .zip(&roles)
        .map(|(t, r)| dt(t, r.name()))
        .collect::<Result<_, _>>()?;
    contract::check_dtypes(&attrs, &dtypes).map_err(|e| node.error(e.to_string()))?;
    let act = ts[0].dtype();
    let data: Vec<Vec<f32>> = ts.iter().map(|t| t.to_f32_vec()).collect();
    let packed: Vec<&[f32]> = data.iter().map(|v| v.as_slice()).collect();
    let shapes: Vec<Vec<i64>> = ts
        .iter()
        .map(|t| t.shape.iter().map(|&d| d as i64).collect())
        .collect();
    let shape_refs: Vec<&[i64]> = shapes.iter().map(|s| s.as_slice()).collect();
    let (dims, out) = s6_contract::reference::scan_packed_f32(&attrs, &packed, &shape_refs)
        .map_err(|e| node.error(e.to_string()))?;
    let y = super::elementwise::from_f32(act, dims.act_shape(&attrs).to_vec(), out.y);
    let mut outs = vec![y];
    if attrs.has_last_state {
        outs.push(Tensor::from_f32(
            dims.state_shape().to_vec(),
            out.last_state,
        )?);
    }
    Ok(outs)
}
