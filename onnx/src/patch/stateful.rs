//! `onnx-patch --stateful`: turns a patched prefill graph into one that carries each layer's
//! recurrent state across calls, so that a prompt (states zero) and a one-token decode step are
//! the same graph.
//!
//! Per layer `i` (layers numbered by their `S6Scan` or `S6ScanHeads` node in graph order):
//! - the causal conv `Slice(Conv(x, pads=[k-1, k-1]), 0, -(k-1) | L)` becomes
//!   `Conv(Concat(conv_state.i, x), pads=[0, 0])`, and `conv_state_out.i` is the last `k - 1`
//!   steps of that concatenation: the conv inputs the next call needs;
//! - the scan gets `initial_state = ssm_state.i` and `last_state = ssm_state_out.i`.
//!
//! The states are fp32 graph inputs and outputs: `(batch, channels, d_conv - 1)` for the conv
//! (Mamba1: d_inner; Mamba2: the x‖B‖C channels, d_inner + 2·G·N) and the scan's state,
//! `(batch, d_inner, d_state)` for `S6Scan`, `(batch, H, P, N)` for `S6ScanHeads`. The batch
//! axis of every graph input and output becomes the symbolic `batch`, unless a Reshape of the
//! export bakes its batch size (then it stays fixed: the graph could not run at another).

use super::error::PatchError;
use super::graph::{attr_i, attr_ints, i64_tensor, is_default_domain, GraphIndex};
use super::graph::{BFLOAT16, FLOAT, FLOAT16};
use super::infer::{Infer, SymDim};
use super::rewrite::{self, Ctx, Patch};
use super::s6node::ScanNode;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_shape_proto::{dimension::Value as DimValue, Dimension};
use onnx_protobuf::type_proto::Value as TypeValue;
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use s6_contract::contract_heads::{self as heads, HeadsAttrs};
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
    /// Channels of the conv (Mamba1: `d_inner`; Mamba2: `d_inner + 2·G·N`).
    pub d_inner: usize,
    /// Conv kernel size (`d_conv`); the conv state holds `d_conv - 1` steps.
    pub d_conv: usize,
    /// SSM state size `N`, where the graph makes it plain.
    pub d_state: Option<usize>,
    /// The SSM state's dims after the batch axis (`None`: not plain from the graph):
    /// `[d_inner, N]` for `S6Scan`, `[H, P, N]` for `S6ScanHeads`.
    pub ssm_dims: Vec<Option<usize>>,
    /// The op of the layer's scan node (`S6Scan` or `S6ScanHeads`).
    pub scan_op: &'static str,
    /// The scan node of the layer.
    pub scan_node: String,
    /// The conv node of the layer.
    pub conv_node: String,
}

/// What `make_stateful` did.
#[derive(Clone, Debug, Default)]
pub struct StatefulReport {
    pub layers: Vec<LayerState>,
    /// `Some(b)` where the export baked its batch `b` into the scans' inputs (e.g. a Reshape
    /// to `(1, -1, H, P)`): axis 0 then stays fixed at `b` instead of becoming `batch`.
    pub fixed_batch: Option<usize>,
}

impl StatefulReport {
    /// The `"stateful"` object of `--report`.
    pub fn to_json_value(&self) -> serde_json::Value {
        let batch = match self.fixed_batch {
            Some(b) => serde_json::json!(b),
            None => serde_json::json!(BATCH_DIM),
        };
        let layers: Vec<serde_json::Value> = self
            .layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "layer": l.layer,
                    "conv_state": conv_state_in(l.layer),
                    "conv_state_out": conv_state_out(l.layer),
                    "conv_state_shape": [batch, l.d_inner, l.d_conv - 1],
                    "ssm_state": ssm_state_in(l.layer),
                    "ssm_state_out": ssm_state_out(l.layer),
                    "ssm_state_shape": std::iter::once(batch.clone())
                        .chain(l.ssm_dims.iter().map(|d| serde_json::json!(d)))
                        .collect::<Vec<_>>(),
                    "dtype": "float32",
                    "scan_op": l.scan_op,
                    "conv_node": l.conv_node,
                    "scan_node": l.scan_node,
                })
            })
            .collect();
        serde_json::json!({ "layers": layers, "batch": batch })
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

/// The causal convs of a patched graph: the Slice reads `ends = -(k-1)` (what
/// `conv-slice-dynamic` writes), or an end that shape inference proves is the conv input's
/// own length L (a dynamic-length export, e.g. `Shape(input_ids)[1:2]`): both keep the first L
/// of the L + k - 1 steps.
fn causal_convs(g: &GraphIndex, inf: &Infer) -> Vec<CausalConv> {
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
        let (Some(starts), Some(axes)) = (c(1), c(3)) else {
            continue;
        };
        let end_ok = match c(2) {
            Some(ends) => ends.ints() == [-(k - 1)],
            None => {
                let len = inf.dims(&n.input[0]).and_then(|d| d.get(2).cloned());
                let end = s.input.get(2).and_then(|e| inf.shape_value(e).ok());
                matches!((len, end), (Some(l), Some(e)) if !matches!(l, SymDim::Known(_)) && e.len() == 1 && e[0] == l)
            }
        };
        let steps_ok =
            s.input.get(4).is_none_or(|x| x.is_empty()) || c(4).is_some_and(|x| x.ints() == [1]);
        if starts.ints() == [0]
            && end_ok
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

/// A layer's scan node: `S6Scan` (Mamba1) or `S6ScanHeads` (Mamba2).
enum LayerScan {
    S6(Box<ScanNode>),
    Heads(HeadsAttrs),
}

impl LayerScan {
    fn of(n: &NodeProto) -> Option<LayerScan> {
        if let Some(s) = ScanNode::from_node(n) {
            return Some(LayerScan::S6(Box::new(s)));
        }
        if n.op_type != heads::OP_TYPE || n.domain != heads::ONNX_DOMAIN {
            return None;
        }
        // The contract's reader: every flag exactly once (the STRING plugin_version /
        // plugin_namespace attributes are not flags).
        let flags = n
            .attribute
            .iter()
            .filter(|a| a.type_.enum_value() == Ok(AttributeType::INT))
            .map(|a| (a.name.as_str(), a.i));
        let attrs = HeadsAttrs::from_fields(flags).ok()?;
        (n.input.len() == attrs.num_inputs() && n.output.len() == attrs.num_outputs())
            .then_some(LayerScan::Heads(attrs))
    }

    fn op(&self) -> &'static str {
        match self {
            LayerScan::S6(_) => s6_contract::contract::OP_TYPE,
            LayerScan::Heads(_) => heads::OP_TYPE,
        }
    }

    fn has_initial_state(&self) -> bool {
        match self {
            LayerScan::S6(s) => s.initial_state.is_some(),
            LayerScan::Heads(a) => a.has_initial_state,
        }
    }

    /// The node with `initial_state = state_in` and, where it had no last state,
    /// `last_state = state_out`; else also the last state it already had (to be copied to
    /// `state_out`).
    fn with_states(
        &self,
        n: &NodeProto,
        state_in: String,
        state_out: String,
    ) -> (NodeProto, Option<String>) {
        match self {
            LayerScan::S6(scan) => {
                let mut s = (**scan).clone();
                s.initial_state = Some(state_in);
                let kept = s.last_state.clone();
                if kept.is_none() {
                    s.last_state = Some(state_out);
                }
                let mut p = s.to_node();
                p.doc_string = n.doc_string.clone();
                (p, kept)
            }
            LayerScan::Heads(_) => {
                let mut p = n.clone();
                // initial_state is the last input in packed order.
                p.input.push(state_in);
                let kept = p.output.get(1).cloned();
                if kept.is_none() {
                    p.output.push(state_out);
                }
                for a in p.attribute.iter_mut() {
                    if a.name == "has_initial_state" || a.name == "has_last_state" {
                        a.i = 1;
                    }
                }
                (p, kept)
            }
        }
    }

    /// The state's dims after batch: `[d_inner, N]` (`S6Scan`, d_inner = the conv's channels)
    /// or `[H, P, N]` (`S6ScanHeads`: from x (batch, L, H, P) and B (batch, L, G, N)).
    fn state_dims(
        &self,
        g: &GraphIndex,
        inf: &Infer,
        n: &NodeProto,
        channels: usize,
    ) -> Vec<Option<usize>> {
        let known = |v: &str, axis: usize| match inf.dims(v).and_then(|d| d.get(axis).cloned()) {
            Some(SymDim::Known(k)) if k >= 0 => Some(k as usize),
            _ => None,
        };
        match self {
            LayerScan::S6(s) => vec![Some(channels), d_state_of(g, &s.a)],
            LayerScan::Heads(_) => {
                let h = g
                    .constant_proto(&n.input[2])
                    .and_then(|a| a.dims.first().copied());
                vec![
                    known(&n.input[0], 2).or(h.map(|h| h as usize)),
                    known(&n.input[0], 3),
                    known(&n.input[3], 3),
                ]
            }
        }
    }
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
        let scans: Vec<(usize, LayerScan)> = g
            .graph
            .node
            .iter()
            .enumerate()
            .filter_map(|(i, n)| LayerScan::of(n).map(|s| (i, s)))
            .collect();
        if scans.is_empty() {
            return Err(PatchError::NotMamba {
                detail: "no S6Scan or S6ScanHeads node to make stateful".into(),
            });
        }
        let inf = Infer::new(&g);
        let convs = causal_convs(&g, &inf);
        let mut used = HashSet::new();
        let batch_elem = FLOAT;
        for (layer, (si, scan)) in scans.iter().enumerate() {
            let sn = g.node(*si);
            // The layer's conv: the last causal conv (graph order is topological) that the
            // scan's input u (x of S6ScanHeads) depends on.
            let anc = ancestors(&g, &sn.input[0]);
            let conv = convs
                .iter()
                .filter(|c| anc.contains(&c.slice))
                .max_by_key(|c| c.slice)
                .ok_or_else(|| {
                    unsupported(sn, "no causal depthwise Conv(pads=[k-1, k-1]) + Slice(0, -(k-1) or L) feeds this scan's input")
                })?;
            if !used.insert(conv.conv) {
                return Err(unsupported(
                    sn,
                    "two scans share one causal conv; cannot tell the layers apart",
                ));
            }
            if scan.has_initial_state() {
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
            let (scan_proto, last) =
                scan.with_states(sn, ssm_state_in(layer), ssm_state_out(layer));
            if let Some(last) = last {
                patch.add_nodes.push(node(
                    "Identity",
                    ctx.fresh(&g, "ssm_state_out"),
                    vec![last],
                    vec![ssm_state_out(layer)],
                ));
            }
            patch.remove.push(*si);
            patch.add_nodes.push(scan_proto);

            let ssm_dims = scan.state_dims(&g, &inf, sn, conv.channels);
            let d_state = ssm_dims.last().copied().flatten();
            let batch = || dim_param(BATCH_DIM);
            let conv_dims = || vec![batch(), dim_value(conv.channels as i64), dim_value(k - 1)];
            let ssm_shape = || {
                let named = ["d_inner", "d_state"];
                let named: &[&str] = if ssm_dims.len() == 3 {
                    &["heads", "head_dim", "d_state"]
                } else {
                    &named
                };
                let mut v = vec![batch()];
                for (d, name) in ssm_dims.iter().zip(named) {
                    v.push(match d {
                        Some(n) => dim_value(*n as i64),
                        None => dim_param(&format!("{name}_{layer}")),
                    });
                }
                v
            };
            new_inputs.push(value_info(&conv_state_in(layer), batch_elem, conv_dims()));
            new_inputs.push(value_info(&ssm_state_in(layer), batch_elem, ssm_shape()));
            new_outputs.push(value_info(&conv_state_out(layer), batch_elem, conv_dims()));
            new_outputs.push(value_info(&ssm_state_out(layer), batch_elem, ssm_shape()));
            report.layers.push(LayerState {
                layer,
                d_inner: conv.channels,
                d_conv: conv.k,
                d_state,
                ssm_dims: ssm_dims.clone(),
                scan_op: scan.op(),
                scan_node: sn.name.clone(),
                conv_node: cn.name.clone(),
            });
        }
    }
    let export_batch = make_batch_dynamic(graph);
    graph.input.extend(new_inputs);
    graph.output.extend(new_outputs);
    rewrite::apply(graph, patch)?;
    if let Some(b) = export_batch {
        if let Some(node) = batch_baked_at(graph, base_dir, b) {
            tracing::warn!(
                node,
                batch = b,
                "a Reshape bakes the export's batch: the stateful graph keeps batch {b}"
            );
            fix_batch(graph, b);
            report.fixed_batch = Some(b as usize);
        }
    }
    Ok(report)
}

fn dims_mut(v: &mut ValueInfoProto) -> Option<&mut Vec<Dimension>> {
    match v.type_.as_mut()?.value.as_mut()? {
        TypeValue::TensorType(t) => Some(&mut t.shape.as_mut()?.dim),
        _ => None,
    }
}

/// The first Reshape whose constant target fixes axis 0 at `b` although its input's axis 0 is
/// the graph's `batch` (the export baked its batch size, e.g. `view(1, L, H, P)` as
/// `Reshape(x, (1, -1, H, P))`): a graph that runs at batch `b` only.
fn batch_baked_at(graph: &GraphProto, base_dir: &Path, b: i64) -> Option<String> {
    let g = GraphIndex::new(graph, base_dir);
    let inf = Infer::new(&g);
    let batch = SymDim::Param(BATCH_DIM.to_string());
    graph
        .node
        .iter()
        .filter(|n| n.op_type == "Reshape" && is_default_domain(n) && n.input.len() >= 2)
        .find(|n| {
            let fixed = g
                .constant(&n.input[1])
                .is_some_and(|t| t.ints().first() == Some(&b));
            fixed
                && inf
                    .dims(&n.input[0])
                    .is_some_and(|d| d.first() == Some(&batch))
        })
        .map(|n| n.name.clone())
}

/// Undoes [`make_batch_dynamic`]: every axis 0 named `batch` (inputs, outputs, value_info)
/// becomes the fixed `b`.
fn fix_batch(graph: &mut GraphProto, b: i64) {
    for v in graph
        .input
        .iter_mut()
        .chain(graph.output.iter_mut())
        .chain(graph.value_info.iter_mut())
    {
        if let Some(d) = dims_mut(v).and_then(|d| d.first_mut()) {
            if matches!(&d.value, Some(DimValue::DimParam(p)) if p == BATCH_DIM) {
                d.value = Some(DimValue::DimValue(b));
            }
        }
    }
}

/// Axis 0 of the graph's (non-initializer) inputs and outputs becomes `batch`; so does axis 0
/// of value_info entries of rank ≥ 2 computed from the inputs when it has the export's batch
/// size (a hint only: runtimes infer shapes themselves). Returns the export's fixed batch,
/// if it had one.
fn make_batch_dynamic(graph: &mut GraphProto) -> Option<i64> {
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
    let b = export_batch?;
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
    Some(b)
}
