//! Making the sequence axis symbolic in the graph's inputs, outputs and value_info, and warning
//! about shape constants that still bake the export length.

use super::graph::{is_default_domain, GraphIndex};
use super::PatchReport;
use onnx_protobuf::tensor_shape_proto::dimension::Value as DimValue;
use onnx_protobuf::type_proto::Value as TypeValue;
use onnx_protobuf::{GraphProto, ValueInfoProto};
use std::path::Path;

pub const SEQ_DIM: &str = "seq_len";

fn dims_mut(
    v: &mut ValueInfoProto,
) -> Option<&mut Vec<onnx_protobuf::tensor_shape_proto::Dimension>> {
    match v.type_.as_mut()?.value.as_mut()? {
        TypeValue::TensorType(t) => Some(&mut t.shape.as_mut()?.dim),
        _ => None,
    }
}

/// The sequence axis of a graph input/output: axis 1 (PyTorch's (B, L, …)) when it has the
/// export length, else the only axis that has it; in an export made with a dynamic sequence
/// axis (`dynamic_axes`), axis 1 when it is already symbolic.
fn seq_axis(v: &mut ValueInfoProto, len: usize) -> Option<usize> {
    let dims = dims_mut(v)?;
    let is_l = |d: &onnx_protobuf::tensor_shape_proto::Dimension| matches!(d.value, Some(DimValue::DimValue(x)) if x == len as i64);
    if dims.len() >= 2 && is_l(&dims[1]) {
        return Some(1);
    }
    // With L = 1, any size-1 axis (a batch of 1, say) would pass for the sequence axis.
    if len == 1 {
        return None;
    }
    let hits: Vec<usize> = dims
        .iter()
        .enumerate()
        .filter(|(_, d)| is_l(d))
        .map(|(i, _)| i)
        .collect();
    if hits.len() == 1 {
        return Some(hits[0]);
    }
    (hits.is_empty() && dims.len() >= 2 && !matches!(dims[1].value, Some(DimValue::DimValue(_))))
        .then_some(1)
}

/// The name a symbolic sequence axis already has (the user's `dynamic_axes` name), if any.
fn existing_seq_name(v: &mut ValueInfoProto, len: usize) -> Option<String> {
    let ax = seq_axis(v, len)?;
    match &dims_mut(v)?[ax].value {
        Some(DimValue::DimParam(p)) if !p.is_empty() => Some(p.clone()),
        _ => None,
    }
}

/// Makes the sequence axis of the graph's inputs and outputs symbolic. An axis that is already
/// symbolic keeps its name; the name of an input's (the user's `dynamic_axes` name) is used for
/// the fixed ones, else [`SEQ_DIM`]. Outputs' names are not taken: the TorchScript exporter
/// makes some up (`Castlogits_dim_1`). Returns the name.
pub fn make_seq_dynamic(graph: &mut GraphProto, len: usize, report: &mut PatchReport) -> String {
    let inits: std::collections::HashSet<String> =
        graph.initializer.iter().map(|t| t.name.clone()).collect();
    let name = graph
        .input
        .iter_mut()
        .filter(|v| !inits.contains(&v.name))
        .find_map(|v| existing_seq_name(v, len))
        .unwrap_or_else(|| SEQ_DIM.to_string());
    let mut any_input = false;
    for v in graph
        .input
        .iter_mut()
        .filter(|v| !inits.contains(&v.name))
        .chain(graph.output.iter_mut())
    {
        if let Some(ax) = seq_axis(v, len) {
            any_input = true;
            if let Some(d) = dims_mut(v) {
                if !matches!(&d[ax].value, Some(DimValue::DimParam(p)) if !p.is_empty()) {
                    d[ax].value = Some(DimValue::DimParam(name.clone()));
                }
            }
        }
    }
    if !any_input {
        report.warnings.push(format!(
            "no graph input or output has the export length {len}; shapes left as they were"
        ));
    }
    // value_info: the exporters write shapes with L baked in (dynamo: every value); an axis of
    // size L of a value computed from the graph inputs becomes symbolic (values computed from
    // weights alone keep their sizes). A hint only: runtimes infer shapes themselves.
    let mut dynamic: std::collections::HashSet<&str> = graph
        .input
        .iter()
        .filter(|v| !inits.contains(&v.name))
        .map(|v| v.name.as_str())
        .collect();
    for n in &graph.node {
        if n.input.iter().any(|x| dynamic.contains(x.as_str())) {
            dynamic.extend(n.output.iter().map(String::as_str));
        }
    }
    let dynamic: std::collections::HashSet<String> =
        dynamic.into_iter().map(str::to_string).collect();
    for v in graph
        .value_info
        .iter_mut()
        .filter(|v| dynamic.contains(&v.name))
    {
        if len == 1 {
            // Every size-1 axis looks like L = 1: drop the shape hint rather than rename them
            // all (runtimes infer shapes themselves).
            let ambiguous = dims_mut(v).is_some_and(|d| {
                d.iter()
                    .any(|x| matches!(x.value, Some(DimValue::DimValue(1))))
            });
            if ambiguous {
                if let Some(TypeValue::TensorType(t)) =
                    v.type_.as_mut().and_then(|t| t.value.as_mut())
                {
                    t.shape = Default::default();
                }
            }
            continue;
        }
        if let Some(dims) = dims_mut(v) {
            for d in dims.iter_mut() {
                if matches!(d.value, Some(DimValue::DimValue(x)) if x == len as i64) {
                    d.value = Some(DimValue::DimParam(name.clone()));
                }
            }
        }
    }
    name
}

/// Shape-taking ops whose constant shape contains the export length: they may still bake it.
pub fn warn_baked_shapes(
    graph: &GraphProto,
    base_dir: &Path,
    len: usize,
    report: &mut PatchReport,
) {
    let g = GraphIndex::new(graph, base_dir);
    for n in &graph.node {
        let shape_input = match n.op_type.as_str() {
            "Reshape" | "Expand" | "ConstantOfShape" | "Tile" => {
                1.min(n.input.len().saturating_sub(1))
            }
            _ => continue,
        };
        if !is_default_domain(n) {
            continue;
        }
        let idx = if n.op_type == "ConstantOfShape" {
            0
        } else {
            shape_input
        };
        if let Some(c) = n.input.get(idx).and_then(|x| g.constant(x)) {
            if c.ints().contains(&(len as i64)) {
                report.warnings.push(format!(
                    "node '{}' ({}) has a constant shape {:?} containing the export length {len}; it may not run at other lengths",
                    n.name, n.op_type, c.ints()
                ));
            }
        }
    }
}
