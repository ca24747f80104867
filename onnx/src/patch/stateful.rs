//! `onnx-patch --stateful`: turns a patched prefill graph into one that carries each layer's
//! recurrent state across calls, so that a prompt (states zero) and a one-token decode step are
//! the same graph.
//!
//! Per layer `i` (layers numbered by their `S6Scan` node in graph order):
//! - the causal conv `Slice(Conv(x, pads=[k-1, k-1]), 0, -(k-1))` becomes
//!   `Conv(Concat(conv_state.i, x), pads=[0, 0])`, and `conv_state_out.i` is the last `k - 1`
//!   steps of that concatenation: the conv inputs the next call needs;
//! - the scan gets `initial_state = ssm_state.i` and `last_state = ssm_state_out.i`.
//!
//! The states are fp32 graph inputs and outputs, `(batch, d_inner, d_conv - 1)` and
//! `(batch, d_inner, d_state)`. The batch axis of every graph input and output becomes the
//! symbolic `batch`.

use super::error::PatchError;
use super::graph::{attr_i, attr_ints, i64_tensor, is_default_domain, GraphIndex};
use super::graph::{BFLOAT16, FLOAT, FLOAT16};
use super::rewrite::{self, Ctx, Patch};
use super::s6node::ScanNode;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_shape_proto::{dimension::Value as DimValue, Dimension};
use onnx_protobuf::type_proto::Value as TypeValue;
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use std::collections::HashSet;
use std::path::Path;

/// Symbolic name of the batch axis in a stateful graph.
pub const BATCH_DIM: &str = "batch";

/// Graph input: layer `i`'s conv state.
pub fn conv_state_in(i: usize) -> String {
    format!("conv_state.{i}")
}
/// Graph output: layer `i`'s conv state after the call.
pub fn conv_state_out(i: usize) -> String {
    format!("conv_state_out.{i}")
}
/// Graph input: layer `i`'s SSM state.
pub fn ssm_state_in(i: usize) -> String {
    format!("ssm_state.{i}")
}
/// Graph output: layer `i`'s SSM state after the call.
pub fn ssm_state_out(i: usize) -> String {
    format!("ssm_state_out.{i}")
}

/// The state of one layer as the stateful graph declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerState {
    pub layer: usize,
    /// Channels (`d_inner`).
    pub d_inner: usize,
    /// Conv kernel size (`d_conv`); the conv state holds `d_conv - 1` steps.
    pub d_conv: usize,
    /// SSM state size `N`, where the graph makes it plain.
    pub d_state: Option<usize>,
    /// The `S6Scan` node of the layer.
    pub scan_node: String,
    /// The conv node of the layer.
    pub conv_node: String,
}

/// What `make_stateful` did.
#[derive(Clone, Debug, Default)]
pub struct StatefulReport {
    pub layers: Vec<LayerState>,
}

impl StatefulReport {
    /// The `"stateful"` object of `--report`.
    pub fn to_json_value(&self) -> serde_json::Value {
        let layers: Vec<serde_json::Value> = self
            .layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "layer": l.layer,
                    "conv_state": conv_state_in(l.layer),
                    "conv_state_out": conv_state_out(l.layer),
                    "conv_state_shape": [BATCH_DIM, l.d_inner, l.d_conv - 1],
                    "ssm_state": ssm_state_in(l.layer),
                    "ssm_state_out": ssm_state_out(l.layer),
                    "ssm_state_shape": [serde_json::json!(BATCH_DIM), serde_json::json!(l.d_inner), serde_json::json!(l.d_state)],
                    "dtype": "float32",
                    "conv_node": l.conv_node,
                    "scan_node": l.scan_node,
                })
            })
            .collect();
        serde_json::json!({ "layers": layers })
    }
}

/// One causal conv: `Slice(Conv(x), 0, -(k-1))` on the time axis.
struct CausalConv {
    conv: usize,
    slice: usize,
    k: usize,
    channels: usize,
}

fn unsupported(n: &NodeProto, what: impl Into<String>) -> PatchError {
    PatchError::Unsupported {
        what: what.into(),
        node: n.name.clone(),
        op_type: n.op_type.clone(),
    }
}

/// The causal convs of a patched graph (the Slice already reads `ends = -(k-1)`).
fn causal_convs(g: &GraphIndex) -> Vec<CausalConv> {
    let mut out = Vec::new();
    for (i, n) in g.graph.node.iter().enumerate() {
        if n.op_type != "Conv" || !is_default_domain(n) || n.input.len() < 2 {
            continue;
        }
        let Some(w) = g.constant_proto(&n.input[1]) else {
            continue;
        };
        if w.dims.len() != 3 || w.dims[1] != 1 {
            continue;
        }
        let (channels, k) = (w.dims[0], w.dims[2]);
        let ones = |name: &str| attr_ints(n, name).is_none_or(|v| v.iter().all(|&x| x == 1));
        if attr_ints(n, "pads").unwrap_or_default() != [k - 1, k - 1]
            || !ones("strides")
            || !ones("dilations")
            || attr_i(n, "group") != Some(channels)
            || k < 2
        {
            continue;
        }
        let y = &n.output[0];
        if g.is_graph_output(y) || g.consumers(y).len() != 1 {
            continue;
        }
        let si = g.consumers(y)[0];
        let s = g.node(si);
        if s.op_type != "Slice" || !is_default_domain(s) || s.input.len() < 4 {
            continue;
        }
        let c = |j: usize| {
            s.input
                .get(j)
                .filter(|x| !x.is_empty())
                .and_then(|x| g.constant(x))
        };
        let (Some(starts), Some(ends), Some(axes)) = (c(1), c(2), c(3)) else {
            continue;
        };
        let steps_ok =
            s.input.get(4).is_none_or(|x| x.is_empty()) || c(4).is_some_and(|x| x.ints() == [1]);
        if starts.ints() == [0]
            && ends.ints() == [-(k - 1)]
            && matches!(axes.ints().as_slice(), [2] | [-1])
            && steps_ok
        {
            out.push(CausalConv {
                conv: i,
                slice: si,
                k: k as usize,
                channels: channels as usize,
            });
        }
    }
    out
}

/// Node indices `value` depends on.
fn ancestors(g: &GraphIndex, value: &str) -> HashSet<usize> {
    let mut seen = HashSet::new();
    let mut stack = vec![value.to_string()];
    while let Some(v) = stack.pop() {
        if let Some((i, n)) = g.producer(&v) {
            if seen.insert(i) {
                stack.extend(n.input.iter().filter(|x| !x.is_empty()).cloned());
            }
        }
    }
    seen
}

/// `N` of a scan: the last axis of the constant its `A` is computed from (through unary ops
/// such as `Neg(Exp(A_log))`).
fn d_state_of(g: &GraphIndex, a: &str) -> Option<usize> {
    let mut v = a.to_string();
    for _ in 0..16 {
        if let Some(t) = g.constant_proto(&v) {
            return t.dims.last().map(|&n| n as usize);
        }
        let (_, n) = g.producer(&v)?;
        let unary = matches!(
            n.op_type.as_str(),
            "Neg" | "Exp" | "Cast" | "Identity" | "Squeeze" | "Reshape"
        );
        if !unary || !is_default_domain(n) {
            return None;
        }
        v = n.input.first()?.clone();
    }
    None
}

fn dim_value(v: i64) -> Dimension {
    let mut d = Dimension::new();
    d.value = Some(DimValue::DimValue(v));
    d
}

fn dim_param(s: &str) -> Dimension {
    let mut d = Dimension::new();
    d.value = Some(DimValue::DimParam(s.to_string()));
    d
}

fn value_info(name: &str, elem: i32, dims: Vec<Dimension>) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    shape.dim = dims;
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = elem;
    tt.shape = protobuf::MessageField::some(shape);
    let mut tp = TypeProto::new();
    tp.value = Some(TypeValue::TensorType(tt));
    let mut v = ValueInfoProto::new();
    v.name = name.to_string();
    v.type_ = protobuf::MessageField::some(tp);
    v
}

fn node(op: &str, name: String, inputs: Vec<String>, outputs: Vec<String>) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.to_string();
    n.name = name;
    n.input = inputs;
    n.output = outputs;
    n
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_string();
    a.type_ = AttributeType::INT.into();
    a.i = v;
    a
}

fn cast(name: String, input: String, output: String, to: i32) -> NodeProto {
    let mut n = node("Cast", name, vec![input], vec![output]);
    n.attribute.push(int_attr("to", to as i64));
    n
}

/// Makes a patched `model` (one `S6Scan` per layer, causal convs with `ends = -(k-1)`, i.e.
/// the output of [`super::patch_model`]) stateful. Every check runs before the graph is
/// touched, so a refused model is left as it was.
pub fn make_stateful(
    model: &mut ModelProto,
    base_dir: &Path,
) -> Result<StatefulReport, PatchError> {
    let graph = model.graph.as_mut().ok_or(PatchError::NoGraph)?;
    let mut ctx = Ctx::new(base_dir);
    let mut report = StatefulReport::default();
    let mut patch = Patch::default();
    let mut new_inputs = Vec::new();
    let mut new_outputs = Vec::new();
    {
        let g = GraphIndex::new(graph, base_dir);
        for name in g.graph.input.iter().chain(&g.graph.output).map(|v| &v.name) {
            if name.starts_with("conv_state") || name.starts_with("ssm_state") {
                return Err(PatchError::NotMamba {
                    detail: format!("the graph already has a state input or output '{name}' (stateful already?)"),
                });
            }
        }
        let scans: Vec<(usize, ScanNode)> = g
            .graph
            .node
            .iter()
            .enumerate()
            .filter_map(|(i, n)| ScanNode::from_node(n).map(|s| (i, s)))
            .collect();
        if scans.is_empty() {
            return Err(PatchError::NotMamba {
                detail: "no S6Scan node to make stateful".into(),
            });
        }
        let convs = causal_convs(&g);
        let mut used = HashSet::new();
        let batch_elem = FLOAT;
        for (layer, (si, scan)) in scans.iter().enumerate() {
            let sn = g.node(*si);
            // The layer's conv: the last causal conv (graph order is topological) that the
            // scan's input u depends on.
            let anc = ancestors(&g, &scan.u);
            let conv = convs
                .iter()
                .filter(|c| anc.contains(&c.slice))
                .max_by_key(|c| c.slice)
                .ok_or_else(|| {
                    unsupported(sn, "no causal depthwise Conv(pads=[k-1, k-1]) + Slice(0, -(k-1)) feeds this scan's input u")
                })?;
            if !used.insert(conv.conv) {
                return Err(unsupported(
                    sn,
                    "two scans share one causal conv; cannot tell the layers apart",
                ));
            }
            if scan.initial_state.is_some() {
                return Err(unsupported(
                    sn,
                    "the scan already takes an initial state from the graph",
                ));
            }
            let cn = g.node(conv.conv);
            let slice = g.node(conv.slice);
            let x = cn.input[0].clone();
            let k = conv.k as i64;
            let x_type = g.dtype(&x).unwrap_or(FLOAT);
            if !matches!(x_type, FLOAT | FLOAT16 | BFLOAT16) {
                return Err(unsupported(
                    cn,
                    format!("conv input of element type {x_type}"),
                ));
            }

            // conv_state.i ++ x → Conv(pads 0); the tail of the concatenation is the new state.
            let state_in = conv_state_in(layer);
            let state_as_x = if x_type == FLOAT {
                state_in.clone()
            } else {
                let v = ctx.fresh(&g, "conv_state_cast");
                patch.add_nodes.push(cast(
                    ctx.fresh(&g, "conv_state_cast_node"),
                    state_in.clone(),
                    v.clone(),
                    x_type,
                ));
                v
            };
            let cat = ctx.fresh(&g, "conv_cat");
            let mut concat = node(
                "Concat",
                ctx.fresh(&g, "conv_cat_node"),
                vec![state_as_x, x],
                vec![cat.clone()],
            );
            concat.attribute.push(int_attr("axis", 2));
            patch.add_nodes.push(concat);
            let mut new_conv = cn.clone();
            new_conv.input[0] = cat.clone();
            new_conv.output = vec![slice.output[0].clone()];
            for a in new_conv.attribute.iter_mut() {
                if a.name == "pads" {
                    a.ints = vec![0, 0];
                }
            }
            patch.add_nodes.push(new_conv);
            let (starts, ends, axes) = (
                ctx.fresh(&g, "conv_state_start"),
                ctx.fresh(&g, "conv_state_end"),
                ctx.fresh(&g, "conv_state_axis"),
            );
            patch
                .add_initializers
                .push(i64_tensor(&starts, &[1], &[-(k - 1)]));
            patch
                .add_initializers
                .push(i64_tensor(&ends, &[1], &[i64::MAX]));
            patch.add_initializers.push(i64_tensor(&axes, &[1], &[2]));
            let tail = if x_type == FLOAT {
                conv_state_out(layer)
            } else {
                ctx.fresh(&g, "conv_state_tail")
            };
            patch.add_nodes.push(node(
                "Slice",
                ctx.fresh(&g, "conv_state_slice"),
                vec![cat, starts, ends, axes],
                vec![tail.clone()],
            ));
            if x_type != FLOAT {
                patch.add_nodes.push(cast(
                    ctx.fresh(&g, "conv_state_out_cast"),
                    tail,
                    conv_state_out(layer),
                    FLOAT,
                ));
            }
            patch.remove.push(conv.conv);
            patch.remove.push(conv.slice);

            // The scan starts from ssm_state.i and hands back its last state.
            let mut s = scan.clone();
            s.initial_state = Some(ssm_state_in(layer));
            match &scan.last_state {
                None => s.last_state = Some(ssm_state_out(layer)),
                Some(last) => patch.add_nodes.push(node(
                    "Identity",
                    ctx.fresh(&g, "ssm_state_out"),
                    vec![last.clone()],
                    vec![ssm_state_out(layer)],
                )),
            }
            let mut scan_proto = s.to_node();
            scan_proto.doc_string = sn.doc_string.clone();
            patch.remove.push(*si);
            patch.add_nodes.push(scan_proto);

            let d_state = d_state_of(&g, &scan.a);
            let batch = || dim_param(BATCH_DIM);
            let conv_dims = || vec![batch(), dim_value(conv.channels as i64), dim_value(k - 1)];
            let ssm_dims = || {
                vec![
                    batch(),
                    dim_value(conv.channels as i64),
                    match d_state {
                        Some(n) => dim_value(n as i64),
                        None => dim_param(&format!("d_state_{layer}")),
                    },
                ]
            };
            new_inputs.push(value_info(&conv_state_in(layer), batch_elem, conv_dims()));
            new_inputs.push(value_info(&ssm_state_in(layer), batch_elem, ssm_dims()));
            new_outputs.push(value_info(&conv_state_out(layer), batch_elem, conv_dims()));
            new_outputs.push(value_info(&ssm_state_out(layer), batch_elem, ssm_dims()));
            report.layers.push(LayerState {
                layer,
                d_inner: conv.channels,
                d_conv: conv.k,
                d_state,
                scan_node: sn.name.clone(),
                conv_node: cn.name.clone(),
            });
        }
    }
    make_batch_dynamic(graph);
    graph.input.extend(new_inputs);
    graph.output.extend(new_outputs);
    rewrite::apply(graph, patch)?;
    Ok(report)
}

fn dims_mut(v: &mut ValueInfoProto) -> Option<&mut Vec<Dimension>> {
    match v.type_.as_mut()?.value.as_mut()? {
        TypeValue::TensorType(t) => Some(&mut t.shape.as_mut()?.dim),
        _ => None,
    }
}

/// Axis 0 of the graph's (non-initializer) inputs and outputs becomes `batch`; so does axis 0
/// of value_info entries of rank ≥ 2 computed from the inputs when it has the export's batch
/// size (a hint only: runtimes infer shapes themselves).
fn make_batch_dynamic(graph: &mut GraphProto) {
    let inits: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    let mut export_batch = None;
    for v in graph
        .input
        .iter_mut()
        .filter(|v| !inits.contains(&v.name))
        .chain(graph.output.iter_mut())
    {
        if let Some(d) = dims_mut(v).and_then(|d| d.first_mut()) {
            if let Some(DimValue::DimValue(b)) = d.value {
                export_batch.get_or_insert(b);
            }
            d.value = Some(DimValue::DimParam(BATCH_DIM.to_string()));
        }
    }
    let Some(b) = export_batch else { return };
    let mut dynamic: HashSet<String> = graph
        .input
        .iter()
        .filter(|v| !inits.contains(&v.name))
        .map(|v| v.name.clone())
        .collect();
    for n in &graph.node {
        if n.input.iter().any(|x| dynamic.contains(x)) {
            dynamic.extend(n.output.iter().cloned());
        }
    }
    for v in graph.value_info.iter_mut() {
        if !dynamic.contains(&v.name) {
            continue;
        }
        if let Some(dims) = dims_mut(v) {
            if dims.len() >= 2 && matches!(dims[0].value, Some(DimValue::DimValue(x)) if x == b) {
                dims[0].value = Some(DimValue::DimParam(BATCH_DIM.to_string()));
            }
        }
    }
}
