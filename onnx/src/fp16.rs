//! fp32 → fp16 conversion of an ONNX model, for TensorRT's strongly typed builds (TensorRT 11
//! has no fp16 builder flag: the graph's own types decide the precision).
//!
//! Everything float32 becomes float16 — initializers, graph inputs/outputs, value_info, `Cast`
//! targets, `Constant` / `ConstantOfShape` values — except what the `S6Scan` contract keeps fp32
//! (`docs/s6scan.md`): the A, D, delta_bias and initial_state operands and the last_state
//! output. Constant work that only feeds those operands (e.g. A = -exp(A_log)) stays fp32 as a
//! whole, so A is not rounded through fp16. Where an fp32 tensor meets fp16 work, or the other
//! way round, a `Cast` is inserted. Subgraph-carrying ops (If, Loop, Scan) and external data are
//! refused rather than half converted.

use half::f16;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::{DataLocation, DataType as PDT};
use onnx_protobuf::{type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};
use s6_contract::contract::{ONNX_DOMAIN, OP_TYPE};
use std::collections::{HashMap, HashSet};
use thiserror::Error;

const F32: i32 = PDT::FLOAT as i32;
const F16: i32 = PDT::FLOAT16 as i32;

#[derive(Debug, Error)]
pub enum Fp16Error {
    #[error("initializer {tensor:?}: {reason}")]
    Tensor { tensor: String, reason: String },
    #[error("node {node:?} ({op}): {reason}")]
    Node {
        node: String,
        op: String,
        reason: String,
    },
}

/// What the conversion did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fp16Report {
    pub initializers_converted: usize,
    pub kept_fp32: Vec<String>,
    pub casts_inserted: usize,
}

fn is_s6scan(n: &NodeProto) -> bool {
    n.op_type == OP_TYPE && n.domain == ONNX_DOMAIN
}

fn node_err(n: &NodeProto, reason: impl Into<String>) -> Fp16Error {
    Fp16Error::Node {
        node: n.name.clone(),
        op: n.op_type.clone(),
        reason: reason.into(),
    }
}

/// Input slots of an S6Scan node that the contract fixes to fp32.
fn fp32_slots(n: &NodeProto) -> Result<Vec<usize>, Fp16Error> {
    let attrs = crate::patch::s6node::attrs_of(n).map_err(|e| node_err(n, e.to_string()))?;
    if n.input.len() != attrs.num_inputs() || n.output.len() != attrs.num_outputs() {
        return Err(node_err(
            n,
            format!(
                "{} inputs and {} outputs, the has_* flags call for {} and {}",
                n.input.len(),
                n.output.len(),
                attrs.num_inputs(),
                attrs.num_outputs()
            ),
        ));
    }
    Ok(attrs
        .inputs()
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.is_activation())
        .map(|(i, _)| i)
        .collect())
}

/// Element types of the graph's tensors: declared ones, then a light forward propagation
/// (enough to tell float tensors from integer/bool ones in exported graphs).
fn tensor_types(g: &GraphProto) -> HashMap<String, i32> {
    let mut t: HashMap<String, i32> = HashMap::new();
    for vi in g.input.iter().chain(&g.output).chain(&g.value_info) {
        if let Some(type_proto::Value::TensorType(tt)) = &vi.type_.value {
            t.insert(vi.name.clone(), tt.elem_type);
        }
    }
    for i in &g.initializer {
        t.insert(i.name.clone(), i.data_type);
    }
    for n in &g.node {
        let attr = |name: &str| n.attribute.iter().find(|a| a.name == name);
        let out_type = match n.op_type.as_str() {
            "Cast" => attr("to").map(|a| a.i as i32),
            "Constant" => attr("value")
                .map(|a| a.t.data_type)
                .or_else(|| attr("value_float").map(|_| F32))
                .or_else(|| attr("value_floats").map(|_| F32))
                .or(Some(PDT::INT64 as i32)),
            "ConstantOfShape" => Some(attr("value").map(|a| a.t.data_type).unwrap_or(F32)),
            "Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin" => Some(PDT::INT64 as i32),
            "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And"
            | "Or" | "Xor" | "IsNaN" | "IsInf" => Some(PDT::BOOL as i32),
            "Where" => n.input.get(1).and_then(|x| t.get(x).copied()),
            _ => n.input.first().and_then(|x| t.get(x).copied()),
        };
        for (k, o) in n.output.iter().enumerate() {
            if o.is_empty() || t.contains_key(o) {
                continue;
            }
            // Later outputs share the first's type only where the op says so (TopK's indices,
            // for one, do not); S6Scan's last_state is fp32.
            let ty = match k {
                0 => out_type,
                1 if is_s6scan(n) => Some(F32),
                _ if n.op_type == "Split" => out_type,
                _ => None,
            };
            if let Some(ty) = ty {
                t.insert(o.clone(), ty);
            }
        }
    }
    t
}

fn f16_tensor(t: &TensorProto) -> Result<TensorProto, Fp16Error> {
    let bad = |reason: &str| Fp16Error::Tensor {
        tensor: t.name.clone(),
        reason: reason.into(),
    };
    if t.data_location.enum_value_or_default() == DataLocation::EXTERNAL {
        return Err(bad(
            "stored as external data; --to-fp16 handles models with embedded weights only",
        ));
    }
    // The one reader of TensorProto data (raw or typed fields; dims checked).
    let vals = crate::interp::Tensor::from_proto(t, std::path::Path::new("."))
        .map_err(|e| bad(&e.to_string()))?
        .to_f32_vec();
    // A finite weight beyond fp16's range would silently become ±inf.
    if let Some((i, v)) = vals
        .iter()
        .enumerate()
        .find(|(_, v)| v.is_finite() && v.abs() > f16::MAX.to_f32())
    {
        return Err(bad(&format!(
            "element {i} is {v}, beyond fp16's range ±{}: it would become ±inf",
            f16::MAX
        )));
    }
    let mut out = t.clone();
    out.data_type = F16;
    out.float_data.clear();
    out.raw_data = vals
        .iter()
        .flat_map(|v| f16::from_f32(*v).to_le_bytes())
        .collect();
    Ok(out)
}

/// Converts a float attribute value (`Constant`'s value/value_float(s), `ConstantOfShape`'s
/// value) to fp16 in place.
fn convert_node_attrs(n: &mut NodeProto) -> Result<(), Fp16Error> {
    let (name, op) = (n.name.clone(), n.op_type.clone());
    convert_attrs(n).map_err(|e| match e {
        Fp16Error::Tensor { tensor, reason } if tensor.is_empty() => Fp16Error::Node {
            node: name,
            op,
            reason: format!("attribute value: {reason}"),
        },
        e => e,
    })
}

fn convert_attrs(n: &mut NodeProto) -> Result<(), Fp16Error> {
    let op = n.op_type.clone();
    for a in n.attribute.iter_mut() {
        match (op.as_str(), a.name.as_str()) {
            ("Cast", "to") if a.i == F32 as i64 => a.i = F16 as i64,
            ("Constant" | "ConstantOfShape", "value") if a.t.data_type == F32 => {
                let t = f16_tensor(&a.t)?;
                a.t = protobuf::MessageField::some(t);
            }
            ("Constant", "value_float" | "value_floats") => {
                let (dims, vals) = if a.name == "value_float" {
                    (vec![], vec![a.f])
                } else {
                    (vec![a.floats.len() as i64], a.floats.clone())
                };
                let mut t = TensorProto::new();
                t.dims = dims;
                t.data_type = F32;
                t.float_data = vals;
                let mut na = AttributeProto::new();
                na.name = "value".into();
                na.type_ = AttributeType::TENSOR.into();
                na.t = protobuf::MessageField::some(f16_tensor(&t)?);
                *a = na;
            }
            _ => {}
        }
    }
    Ok(())
}

fn cast_node(input: &str, output: &str, to: i32, name: String) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = "Cast".into();
    n.name = name;
    n.input = vec![input.into()];
    n.output = vec![output.into()];
    let mut a = AttributeProto::new();
    a.name = "to".into();
    a.type_ = AttributeType::INT.into();
    a.i = to as i64;
    n.attribute.push(a);
    n
}

/// Converts `model` in place; see the module docs for what stays fp32.
pub fn convert(model: &mut ModelProto) -> Result<Fp16Report, Fp16Error> {
    let g = model.graph.mut_or_insert_default();
    for n in &g.node {
        if n.attribute
            .iter()
            .any(|a| a.g.is_some() || !a.graphs.is_empty())
        {
            return Err(node_err(
                n,
                "has a subgraph; --to-fp16 does not convert subgraphs",
            ));
        }
    }
    let types = tensor_types(g);
    let is_float = |name: &str| types.get(name) == Some(&F32);
    let producer: HashMap<String, usize> = g
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.clone(), i)))
        .collect();
    let inits: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();

    // (node, slot) pairs that must see fp32, and the S6Scan outputs that are fp32.
    let mut slot32: HashSet<(usize, usize)> = HashSet::new();
    let mut fp32_outputs: HashSet<String> = HashSet::new();
    for (i, n) in g.node.iter().enumerate() {
        if is_s6scan(n) {
            for s in fp32_slots(n)? {
                slot32.insert((i, s));
            }
            if let Some(ls) = n.output.get(1).filter(|o| !o.is_empty()) {
                fp32_outputs.insert(ls.clone());
            }
        }
    }

    // Constant-derived tensors (initializers, Constant outputs, and what only they feed).
    let mut constant: HashSet<String> = inits.clone();
    for n in &g.node {
        let all_const = n.input.iter().all(|x| x.is_empty() || constant.contains(x));
        if n.op_type == "Constant" || (all_const && !n.input.is_empty() && !is_s6scan(n)) {
            constant.extend(n.output.iter().cloned());
        }
    }
    // Keep-fp32 cone: constant work feeding an fp32 slot, traced back to initializers.
    let mut kept_nodes: HashSet<usize> = HashSet::new();
    let mut keep32: HashSet<String> = fp32_outputs.clone();
    let mut stack: Vec<String> = slot32
        .iter()
        .map(|&(i, s)| g.node[i].input[s].clone())
        .filter(|x| constant.contains(x))
        .collect();
    while let Some(x) = stack.pop() {
        if !keep32.insert(x.clone()) {
            continue;
        }
        if let Some(&p) = producer.get(&x) {
            kept_nodes.insert(p);
            stack.extend(g.node[p].input.iter().filter(|i| !i.is_empty()).cloned());
        }
    }
    // Graph inputs read only by fp32 slots (a decode graph's initial_state) stay fp32.
    for vi in &g.input {
        let uses: Vec<(usize, usize)> = g
            .node
            .iter()
            .enumerate()
            .flat_map(|(i, n)| {
                n.input
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| **x == vi.name)
                    .map(move |(s, _)| (i, s))
            })
            .collect();
        if !uses.is_empty() && uses.iter().all(|u| slot32.contains(u)) {
            keep32.insert(vi.name.clone());
        }
    }

    let mut report = Fp16Report::default();
    // Initializers.
    for t in g.initializer.iter_mut() {
        if t.data_type == F32 && !keep32.contains(&t.name) {
            *t = f16_tensor(t)?;
            report.initializers_converted += 1;
        }
    }
    // Declared types of graph inputs, outputs and value_info.
    for vi in g
        .input
        .iter_mut()
        .chain(g.output.iter_mut())
        .chain(g.value_info.iter_mut())
    {
        let keep = keep32.contains(&vi.name);
        let Some(tp) = vi.type_.as_mut() else {
            continue;
        };
        if let Some(type_proto::Value::TensorType(tt)) = &mut tp.value {
            if tt.elem_type == F32 && !keep {
                tt.elem_type = F16;
            }
        }
    }
    // Node attributes outside the kept cone.
    for (i, n) in g.node.iter_mut().enumerate() {
        if !kept_nodes.contains(&i) {
            convert_node_attrs(n)?;
        }
    }
    // Boundary casts, inserted in front of the consumer so the node list stays sorted.
    let mut new_nodes: Vec<NodeProto> = Vec::with_capacity(g.node.len());
    let mut taken: HashSet<String> = types.keys().cloned().collect();
    let mut fresh = |base: &str, suffix: &str| {
        let mut name = format!("{base}_{suffix}");
        let mut k = 1;
        while !taken.insert(name.clone()) {
            name = format!("{base}_{suffix}{k}");
            k += 1;
        }
        name
    };
    let old = std::mem::take(&mut g.node);
    for (i, mut n) in old.into_iter().enumerate() {
        let node_is_kept = kept_nodes.contains(&i);
        for s in 0..n.input.len() {
            let x = n.input[s].clone();
            if x.is_empty() || !is_float(&x) {
                continue;
            }
            let wants32 = node_is_kept || slot32.contains(&(i, s));
            let has32 = keep32.contains(&x);
            if wants32 != has32 {
                let (to, tag) = if wants32 {
                    (F32, "fp32")
                } else {
                    (F16, "fp16")
                };
                let y = fresh(&x, tag);
                new_nodes.push(cast_node(&x, &y, to, format!("{y}_cast")));
                report.casts_inserted += 1;
                n.input[s] = y;
            }
        }
        new_nodes.push(n);
    }
    g.node = new_nodes;
    let mut kept: Vec<String> = keep32
        .into_iter()
        .filter(|x| inits.contains(x) || is_float(x))
        .collect();
    kept.sort();
    report.kept_fp32 = kept;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::{tensor_shape_proto, TensorShapeProto, TypeProto, ValueInfoProto};
    use s6_contract::contract::S6Attrs;

    fn vi(name: &str, elem: i32, dims: &[i64]) -> ValueInfoProto {
        let mut shape = TensorShapeProto::new();
        for &d in dims {
            let mut dim = tensor_shape_proto::Dimension::new();
            dim.set_dim_value(d);
            shape.dim.push(dim);
        }
        let mut tt = type_proto::Tensor::new();
        tt.elem_type = elem;
        tt.shape = protobuf::MessageField::some(shape);
        let mut tp = TypeProto::new();
        tp.value = Some(type_proto::Value::TensorType(tt));
        let mut v = ValueInfoProto::new();
        v.name = name.into();
        v.type_ = protobuf::MessageField::some(tp);
        v
    }

    fn init(name: &str, dims: &[i64], vals: &[f32]) -> TensorProto {
        let mut t = TensorProto::new();
        t.name = name.into();
        t.dims = dims.to_vec();
        t.data_type = F32;
        t.raw_data = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        t
    }

    fn node(op: &str, domain: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        let mut n = NodeProto::new();
        n.op_type = op.into();
        n.domain = domain.into();
        n.name = format!("{op}_{}", outputs[0]);
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = outputs.iter().map(|s| s.to_string()).collect();
        n
    }

    fn int_attr(name: &str, v: i64) -> AttributeProto {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.type_ = AttributeType::INT.into();
        a.i = v;
        a
    }

    /// u → MatMul(W) → S6Scan(u, delta, A = -exp(A_log), B, C, D, initial_state) → y, last_state;
    /// last_state also feeds a Mul with an fp16-world tensor; A_log is also used by an Add.
    fn model() -> ModelProto {
        let mut g = GraphProto::new();
        g.input = vec![
            vi("x", F32, &[1, 4, 3]),
            vi("delta", F32, &[1, 4, 3]),
            vi("B", F32, &[1, 2, 3]),
            vi("C", F32, &[1, 2, 3]),
            vi("h0", F32, &[1, 4, 2]),
            vi("ids", PDT::INT64 as i32, &[1, 3]),
        ];
        g.output = vec![
            vi("y", F32, &[1, 4, 3]),
            vi("last", F32, &[1, 4, 2]),
            vi("scaled", F32, &[1, 4, 2]),
            vi("alog2", F32, &[4, 2]),
        ];
        g.initializer = vec![
            init("W", &[4, 4], &[0.5; 16]),
            init(
                "A_log",
                &[4, 2],
                &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0 / 3.0],
            ),
            init("D", &[4], &[1.0, 2.0, 3.0, 4.0]),
        ];
        let mut scan = node(
            "S6Scan",
            "s6plugin",
            &["u", "delta", "A", "B", "C", "D", "h0"],
            &["y", "last"],
        );
        // All eight flags, zeros included (the contract requires them).
        for k in S6Attrs::FIELD_NAMES {
            let on = [
                "has_D",
                "has_initial_state",
                "has_last_state",
                "delta_softplus",
            ];
            scan.attribute.push(int_attr(k, on.contains(&k) as i64));
        }
        let mut cast = node("Cast", "", &["ids"], &["idsf"]);
        cast.attribute.push(int_attr("to", F32 as i64));
        g.node = vec![
            node("MatMul", "", &["W", "x"], &["u"]),
            node("Exp", "", &["A_log"], &["A_exp"]),
            node("Neg", "", &["A_exp"], &["A"]),
            scan,
            cast,
            node("Mul", "", &["last", "last"], &["scaled"]),
            node("Add", "", &["A_log", "A_log"], &["alog2"]),
        ];
        let mut m = ModelProto::new();
        m.graph = protobuf::MessageField::some(g);
        m
    }

    fn elem(g: &GraphProto, name: &str) -> i32 {
        g.input
            .iter()
            .chain(&g.output)
            .find(|v| v.name == name)
            .map(|v| match &v.type_.value {
                Some(type_proto::Value::TensorType(t)) => t.elem_type,
                _ => -1,
            })
            .unwrap()
    }

    #[test]
    fn converts_activations_and_keeps_the_contracts_fp32_operands() {
        let mut m = model();
        let r = convert(&mut m).unwrap();
        let g = &m.graph;
        // Activations and weights in fp16; int64 untouched.
        for x in ["x", "delta", "B", "C", "y", "scaled", "alog2"] {
            assert_eq!(elem(g, x), F16, "{x}");
        }
        assert_eq!(elem(g, "ids"), PDT::INT64 as i32);
        // The contract's fp32 tensors: initial state in, last state out, A's constant cone, D.
        assert_eq!(elem(g, "h0"), F32);
        assert_eq!(elem(g, "last"), F32);
        let init = |n: &str| g.initializer.iter().find(|t| t.name == n).unwrap();
        assert_eq!(init("W").data_type, F16);
        assert_eq!(
            init("W").raw_data,
            half::f16::from_f32(0.5).to_le_bytes().repeat(16)
        );
        assert_eq!(init("A_log").data_type, F32);
        assert_eq!(init("D").data_type, F32);
        assert_eq!(r.initializers_converted, 1);
        assert_eq!(r.kept_fp32, vec!["A", "A_exp", "A_log", "D", "h0", "last"]);
        // Casts: last (fp32) into the fp16 Mul, twice; A_log (fp32) into the fp16 Add, twice.
        assert_eq!(r.casts_inserted, 4);
        let casts: Vec<&NodeProto> = g
            .node
            .iter()
            .filter(|n| n.op_type == "Cast" && n.input[0] != "ids")
            .collect();
        assert_eq!(casts.len(), 4);
        assert!(casts.iter().all(|c| c.attribute[0].i == F16 as i64));
        let mul = g.node.iter().find(|n| n.op_type == "Mul").unwrap();
        assert!(
            mul.input.iter().all(|i| i.starts_with("last_fp16")),
            "{:?}",
            mul.input
        );
        // Each cast sits before its consumer.
        let pos = |out: &str| {
            g.node
                .iter()
                .position(|n| n.output.iter().any(|o| o == out))
                .unwrap()
        };
        assert!(pos(&mul.input[0]) < pos("scaled"));
        // The Cast(ids → float) now targets fp16; the S6Scan inputs are untouched.
        let ids_cast = g
            .node
            .iter()
            .find(|n| n.op_type == "Cast" && n.input[0] == "ids")
            .unwrap();
        assert_eq!(ids_cast.attribute[0].i, F16 as i64);
        let scan = g.node.iter().find(|n| n.op_type == "S6Scan").unwrap();
        assert_eq!(scan.input, vec!["u", "delta", "A", "B", "C", "D", "h0"]);
    }

    #[test]
    fn computed_fp32_operand_gets_a_cast_and_external_data_is_refused() {
        // D computed from an fp16-world activation: a Cast to fp32 goes in front of the slot.
        let mut m = model();
        {
            let g = m.graph.mut_or_insert_default();
            g.input.push(vi("dx", F32, &[4]));
            g.node.insert(0, node("Relu", "", &["dx"], &["Dr"]));
            let scan = g.node.iter_mut().find(|n| n.op_type == "S6Scan").unwrap();
            scan.input[5] = "Dr".into();
            // dx also feeds fp16 work, so it is not an fp32-only input.
            g.node.push(node("Neg", "", &["dx"], &["dneg"]));
        }
        let r = convert(&mut m).unwrap();
        let g = &m.graph;
        let scan = g.node.iter().find(|n| n.op_type == "S6Scan").unwrap();
        assert_eq!(scan.input[5], "Dr_fp32");
        let c = g.node.iter().find(|n| n.output[0] == "Dr_fp32").unwrap();
        assert_eq!((c.op_type.as_str(), c.attribute[0].i), ("Cast", F32 as i64));
        assert_eq!(r.casts_inserted, 5);

        let mut m = model();
        m.graph.mut_or_insert_default().initializer[0].data_location =
            DataLocation::EXTERNAL.into();
        let e = convert(&mut m).unwrap_err().to_string();
        assert!(
            e.starts_with("initializer \"W\": stored as external data"),
            "{e}"
        );
    }

    #[test]
    fn constant_values_are_converted() {
        let mut m = model();
        {
            let g = m.graph.mut_or_insert_default();
            let mut c = node("Constant", "", &[], &["k"]);
            let mut a = AttributeProto::new();
            a.name = "value_float".into();
            a.type_ = AttributeType::FLOAT.into();
            a.f = 1.5;
            c.attribute.push(a);
            g.node.insert(0, c);
        }
        convert(&mut m).unwrap();
        let c = m
            .graph
            .node
            .iter()
            .find(|n| n.op_type == "Constant")
            .unwrap();
        assert_eq!(c.attribute[0].name, "value");
        assert_eq!(c.attribute[0].t.data_type, F16);
        assert_eq!(
            c.attribute[0].t.raw_data,
            half::f16::from_f32(1.5).to_le_bytes().to_vec()
        );
    }

    #[test]
    fn weights_beyond_fp16_range_are_refused_by_name() {
        let mut m = model();
        m.graph.mut_or_insert_default().initializer[0] = init("W", &[4, 4], &[7e4; 16]);
        let e = convert(&mut m).unwrap_err().to_string();
        assert!(
            e.contains("\"W\"") && e.contains("beyond fp16's range"),
            "{e}"
        );
        // Infinities stay infinities: nothing is lost.
        let mut m = model();
        m.graph.mut_or_insert_default().initializer[0] = init("W", &[4, 4], &[f32::INFINITY; 16]);
        convert(&mut m).unwrap();
    }

    #[test]
    fn scan_nodes_with_too_few_inputs_are_refused() {
        let mut m = model();
        let g = m.graph.mut_or_insert_default();
        let scan = g.node.iter_mut().find(|n| n.op_type == "S6Scan").unwrap();
        scan.input.truncate(5);
        let e = convert(&mut m).unwrap_err().to_string();
        assert!(e.contains("flags call for 7"), "{e}");
    }
}
