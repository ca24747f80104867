//! `S6ScanHeads` (domain `s6plugin`): Mamba2's scan in its heads form (`docs/s6scan_heads.md`),
//! computed by `s6_contract::reference_heads` in fp32. Activations of fp16 / bf16 are widened, and
//! `y` narrowed back, as the contract says.

use super::{input, Registry};
use crate::interp::error::InterpError;
use crate::interp::graph::Node;
use crate::interp::tensor::{DataType, Tensor};
use s6_contract::contract::DType;
use s6_contract::contract_heads::{self as contract, HeadsAttrs};

pub fn register(r: &mut Registry) {
    r.insert((contract::ONNX_DOMAIN, contract::OP_TYPE), s6scan_heads);
}

/// The node's attributes: all seven flags are required (the contract has no defaults);
/// `plugin_version` / `plugin_namespace` are TensorRT's lookup keys, no op flags.
pub fn attrs_of(node: &Node) -> Result<HeadsAttrs, InterpError> {
    let mut fields = Vec::new();
    for name in node.attrs.names() {
        if super::scan::IGNORED_ATTRS.contains(&name) {
            continue;
        }
        let v = node
            .attrs
            .int(name)?
            .ok_or_else(|| node.error(format!("attribute '{name}' is not an INT")))?;
        fields.push((name, v));
    }
    HeadsAttrs::from_fields(fields).map_err(|e| node.error(e.to_string()))
}

fn s6scan_heads(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
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
    let ts: Vec<&Tensor> = (0..roles.len())
        .map(|i| input(node, inputs, i))
        .collect::<Result<_, _>>()?;
    let dtypes: Vec<DType> = ts
        .iter()
        .zip(&roles)
        .map(|(t, r)| match t.dtype() {
            DataType::F32 => Ok(DType::F32),
            DataType::F16 => Ok(DType::F16),
            DataType::BF16 => Ok(DType::BF16),
            other => Err(node.error(format!("input '{}' is {other}", r.name()))),
        })
        .collect::<Result<_, _>>()?;
    contract::check_heads_dtypes(&attrs, &dtypes).map_err(|e| node.error(e.to_string()))?;
    let shapes: Vec<Vec<i64>> = ts
        .iter()
        .map(|t| t.shape.iter().map(|&d| d as i64).collect())
        .collect();
    let shape_refs: Vec<&[i64]> = shapes.iter().map(|s| s.as_slice()).collect();
    // Shapes first, so that a bad node is refused before its data is widened.
    contract::infer_heads_dims(&attrs, &shape_refs).map_err(|e| node.error(e.to_string()))?;
    let data: Vec<Vec<f32>> = ts.iter().map(|t| t.to_f32_vec()).collect();
    let packed: Vec<&[f32]> = data.iter().map(|v| v.as_slice()).collect();
    let (dims, out) =
        s6_contract::reference_heads::scan_heads_packed::<f32>(&attrs, &packed, &shape_refs)
            .map_err(|e| node.error(e.to_string()))?;
    let y = super::elementwise::from_f32(ts[0].dtype(), dims.x_shape().to_vec(), out.y);
    let mut outs = vec![y];
    if attrs.has_last_state {
        outs.push(Tensor::from_f32(
            dims.state_shape().to_vec(),
            out.last_state,
        )?);
    }
    Ok(outs)
}
