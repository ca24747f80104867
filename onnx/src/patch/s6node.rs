//! The `S6Scan` node as the patcher builds and re-reads it (attributes as INTs, packed inputs,
//! per `contract/src/contract.rs`).

use super::graph::output;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, NodeProto};
use s6_contract::contract::{AttrValue, S6Attrs, ONNX_DOMAIN, OP_TYPE};
use s6_contract::ContractError;

/// The node's flags through the contract's one reader (`S6Attrs::from_attributes`): every
/// part of s6plugin that reads an `S6Scan` node applies the same rules.
pub fn attrs_of(n: &NodeProto) -> Result<S6Attrs, ContractError> {
    S6Attrs::from_attributes(n.attribute.iter().map(|a| {
        let v = match a.type_.enum_value() {
            Ok(AttributeType::INT) => AttrValue::Int(a.i),
            Ok(AttributeType::STRING) => AttrValue::Str(&a.s),
            Ok(AttributeType::FLOAT) => AttrValue::Other("a FLOAT"),
            Ok(AttributeType::TENSOR) => AttrValue::Other("a TENSOR"),
            Ok(AttributeType::INTS) => AttrValue::Other("INTS"),
            _ => AttrValue::Other("of another type"),
        };
        (a.name.as_str(), v)
    }))
}

#[derive(Clone, Debug, Default)]
pub struct ScanNode {
    pub name: String,
    pub attrs: S6Attrs,
    pub u: String,
    pub delta: String,
    pub a: String,
    pub b: String,
    pub c: String,
    pub d: Option<String>,
    pub z: Option<String>,
    pub delta_bias: Option<String>,
    pub initial_state: Option<String>,
    pub y: String,
    pub last_state: Option<String>,
}

impl ScanNode {
    pub fn to_node(&self) -> NodeProto {
        let mut n = NodeProto::new();
        n.name = self.name.clone();
        n.op_type = OP_TYPE.to_string();
        n.domain = ONNX_DOMAIN.to_string();
        n.input = vec![
            self.u.clone(),
            self.delta.clone(),
            self.a.clone(),
            self.b.clone(),
            self.c.clone(),
        ];
        for x in [&self.d, &self.z, &self.delta_bias, &self.initial_state]
            .into_iter()
            .flatten()
        {
            n.input.push(x.clone());
        }
        n.output = vec![self.y.clone()];
        if let Some(s) = &self.last_state {
            n.output.push(s.clone());
        }
        let mut attrs = self.attrs;
        attrs.has_d = self.d.is_some();
        attrs.has_z = self.z.is_some();
        attrs.has_delta_bias = self.delta_bias.is_some();
        attrs.has_initial_state = self.initial_state.is_some();
        attrs.has_last_state = self.last_state.is_some();
        for (name, v) in S6Attrs::FIELD_NAMES.iter().zip(attrs.values()) {
            let mut a = AttributeProto::new();
            a.name = name.to_string();
            a.type_ = AttributeType::INT.into();
            a.i = v as i64;
            n.attribute.push(a);
        }
        n
    }

    /// Reads back a node this module wrote (or any valid `S6Scan` node).
    pub fn from_node(n: &NodeProto) -> Option<ScanNode> {
        if n.op_type != OP_TYPE || n.domain != ONNX_DOMAIN {
            return None;
        }
        let attrs = attrs_of(n).ok()?;
        if n.input.len() != attrs.num_inputs() || n.output.len() != attrs.num_outputs() {
            return None;
        }
        let mut it = n.input.iter().cloned();
        let mut next = || it.next();
        let (u, delta, a, b, c) = (next()?, next()?, next()?, next()?, next()?);
        let d = if attrs.has_d { next() } else { None };
        let z = if attrs.has_z { next() } else { None };
        let delta_bias = if attrs.has_delta_bias { next() } else { None };
        let initial_state = if attrs.has_initial_state {
            next()
        } else {
            None
        };
        Some(ScanNode {
            name: n.name.clone(),
            attrs,
            u,
            delta,
            a,
            b,
            c,
            d,
            z,
            delta_bias,
            initial_state,
            y: output(n, 0).to_string(),
            last_state: n.output.get(1).cloned(),
        })
    }
}
