//! ONNX nodes and tensors for the backend and session tests.
#![allow(dead_code)]

use super::{ctx, Rng};
use half::f16;
use s6_contract::contract::{S6Attrs, ScanDims};
use s6_contract::reference;
use s6_onnx::interp::{Tensor, TensorData};
use s6_onnx::proto::attribute_proto::AttributeType;
use s6_onnx::proto::{AttributeProto, NodeProto};
use s6_wgpu::WgpuBackend;

/// A fresh backend on the shared device's adapter, or `None` (skip).
pub fn backend(test: &str) -> Option<WgpuBackend> {
    ctx(test)?;
    Some(WgpuBackend::new().expect("an adapter was found a moment ago"))
}

pub fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: v,
        type_: AttributeType::INT.into(),
        ..Default::default()
    }
}

pub fn node(op: &str, domain: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: format!("test_{op}"),
        op_type: op.into(),
        domain: domain.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn scan_node(attrs: &S6Attrs) -> NodeProto {
    let inputs: Vec<&str> = attrs.inputs().iter().map(|r| r.name()).collect();
    let outputs: Vec<&str> = attrs.outputs().iter().map(|r| r.name()).collect();
    let mut n = node("S6Scan", "s6plugin", &inputs, &outputs);
    for (name, v) in S6Attrs::FIELD_NAMES.iter().zip(attrs.values()) {
        n.attribute.push(int_attr(name, v as i64));
    }
    n
}

pub fn t32(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor {
        shape: shape.to_vec(),
        data: TensorData::F32(v),
    }
}

/// Random packed inputs for a scan (all options on except where `attrs` says), as tensors.
pub fn scan_tensors(attrs: &S6Attrs, d: &ScanDims, f16_acts: bool, seed: u64) -> Vec<Tensor> {
    let mut r = Rng::new(seed);
    let act_shape = d.act_shape(attrs).to_vec();
    let bc_shape = if attrs.bc_channels_last {
        vec![d.batch, d.seqlen, d.groups, d.dstate]
    } else {
        vec![d.batch, d.groups, d.dstate, d.seqlen]
    };
    let act = |r: &mut Rng, shape: &[usize], lo: f32, hi: f32| {
        let v = r.vec(shape.iter().product(), lo, hi);
        if f16_acts {
            Tensor {
                shape: shape.to_vec(),
                data: TensorData::F16(v.into_iter().map(f16::from_f32).collect()),
            }
        } else {
            t32(shape, v)
        }
    };
    let mut out = vec![
        act(&mut r, &act_shape, -1.0, 1.0),
        act(&mut r, &act_shape, -4.0, 1.0),
        t32(&[d.dim, d.dstate], r.vec(d.dim * d.dstate, -8.0, -0.5)),
        act(&mut r, &bc_shape, -1.0, 1.0),
        act(&mut r, &bc_shape, -1.0, 1.0),
    ];
    if attrs.has_d {
        out.push(t32(&[d.dim], r.vec(d.dim, -1.0, 1.0)));
    }
    if attrs.has_z {
        out.push(act(&mut r, &act_shape, -3.0, 3.0));
    }
    if attrs.has_delta_bias {
        out.push(t32(&[d.dim], r.vec(d.dim, -1.0, 1.0)));
    }
    if attrs.has_initial_state {
        out.push(t32(&d.state_shape(), r.vec(d.state_len(), -1.0, 1.0)));
    }
    out
}

/// fp64 reference outputs of a scan given as tensors.
pub fn scan_reference(
    attrs: &S6Attrs,
    tensors: &[Tensor],
) -> (ScanDims, reference::ScanOutputs<f64>) {
    let data: Vec<Vec<f32>> = tensors.iter().map(|t| t.data.to_f32_vec()).collect();
    let packed: Vec<&[f32]> = data.iter().map(|v| &v[..]).collect();
    let shapes: Vec<Vec<i64>> = tensors
        .iter()
        .map(|t| t.shape.iter().map(|&x| x as i64).collect())
        .collect();
    let shape_refs: Vec<&[i64]> = shapes.iter().map(|s| &s[..]).collect();
    reference::scan_packed_f64(attrs, &packed, &shape_refs).expect("reference")
}

pub fn all_on() -> S6Attrs {
    S6Attrs {
        delta_softplus: true,
        has_d: true,
        has_z: true,
        has_delta_bias: true,
        has_initial_state: true,
        has_last_state: true,
        channels_last: true,
        bc_channels_last: true,
    }
}
