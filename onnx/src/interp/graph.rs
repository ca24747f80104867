//! Parsing: turns a `ModelProto` into an execution plan — value slots, decoded initializers
//! and attributes, nodes in dependency order with their op functions, and each value's last
//! use. Nothing here runs an op.

use super::attrs::Attrs;
use super::error::InterpError;
use super::ops::{self, OpFn};
use super::tensor::{DataType, Tensor};
use onnx_protobuf::{ModelProto, NodeProto, ValueInfoProto};
use std::collections::HashMap;
use std::path::Path;

/// One dimension of a declared graph input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    Symbolic(String),
    Unknown,
}

/// A graph input or output as the model declares it.
#[derive(Clone, Debug)]
pub struct IoInfo {
    pub name: String,
    /// `None` when undeclared or of a type the interpreter does not handle.
    pub dtype: Option<DataType>,
    /// `None` when the rank is undeclared.
    pub dims: Option<Vec<Dim>>,
}

/// A node ready to run: parsed attributes, resolved op and value slots.
pub struct Node {
    /// The node's name, or `#<index> <op_type>` when the model leaves it empty.
    pub name: String,
    pub op_type: String,
    pub domain: String,
    /// Opset version of the node's domain.
    pub opset: i64,
    pub attrs: Attrs,
    pub proto: NodeProto,
    pub(crate) op: OpFn,
    /// Slot per input; `None` for an omitted optional input ("" in ONNX).
    pub(crate) inputs: Vec<Option<usize>>,
    /// Slot per output; `None` for an unused optional output.
    pub(crate) outputs: Vec<Option<usize>>,
}

impl Node {
    /// Error about this node, for op code.
    pub fn error(&self, reason: impl Into<String>) -> InterpError {
        InterpError::Op {
            node: self.name.clone(),
            op_type: self.op_type.clone(),
            reason: reason.into(),
        }
    }
}

/// `last_use` of a graph output: kept to the end.
pub(crate) const KEEP: usize = usize::MAX;
/// `last_use` of a value nobody reads.
pub(crate) const NEVER_READ: usize = usize::MAX - 1;

/// The parsed graph.
pub struct Plan {
    pub(crate) slot_names: Vec<String>,
    /// Initializers by slot (decoded once; `None` for other values).
    pub(crate) constants: Vec<Option<Tensor>>,
    pub(crate) nodes: Vec<Node>,
    /// For each slot, the index of the last node reading it, [`KEEP`] for graph outputs,
    /// [`NEVER_READ`] for values no node reads (dropped as soon as they are made).
    pub(crate) last_use: Vec<usize>,
    pub(crate) inputs: Vec<(IoInfo, usize)>,
    pub(crate) outputs: Vec<(IoInfo, usize)>,
}

fn io_info(v: &ValueInfoProto) -> IoInfo {
    use onnx_protobuf::tensor_shape_proto::dimension::Value as DV;
    use onnx_protobuf::type_proto::Value as TV;
    let mut info = IoInfo {
        name: v.name.clone(),
        dtype: None,
        dims: None,
    };
    if let Some(TV::TensorType(t)) = v.type_.as_ref().and_then(|t| t.value.as_ref()) {
        info.dtype = DataType::from_onnx(t.elem_type);
        if let Some(shape) = t.shape.as_ref() {
            info.dims = Some(
                shape
                    .dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(DV::DimValue(n)) if *n >= 0 => Dim::Fixed(*n as usize),
                        Some(DV::DimParam(s)) if !s.is_empty() => Dim::Symbolic(s.clone()),
                        _ => Dim::Unknown,
                    })
                    .collect(),
            );
        }
    }
    info
}

impl Plan {
    /// Parses `model`; `base_dir` is the model's folder (for external data).
    pub fn parse(model: &ModelProto, base_dir: &Path) -> Result<Plan, InterpError> {
        let graph = model.graph.as_ref().ok_or_else(|| InterpError::Graph {
            reason: "model has no graph".into(),
        })?;
        let opsets: HashMap<String, i64> = model
            .opset_import
            .iter()
            .map(|o| {
                let d = if o.domain == "ai.onnx" { "" } else { &o.domain };
                (d.to_string(), o.version)
            })
            .collect();
        let registry = ops::registry();

        let mut slots: HashMap<String, usize> = HashMap::new();
        let mut slot_names = Vec::new();
        let mut slot_of = |name: &str, slot_names: &mut Vec<String>| -> usize {
            *slots.entry(name.to_string()).or_insert_with(|| {
                slot_names.push(name.to_string());
                slot_names.len() - 1
            })
        };

        // Decoded in parallel: reading a large model's weights is page faults and copies,
        // which spread over the cores.
        let decoded: Vec<Tensor> = {
            use rayon::prelude::*;
            graph
                .initializer
                .par_iter()
                .map(|init| Tensor::from_proto(init, base_dir))
                .collect::<Result<_, _>>()?
        };
        let mut constants: Vec<(usize, Tensor)> = Vec::with_capacity(decoded.len());
        for (init, t) in graph.initializer.iter().zip(decoded) {
            let slot = slot_of(&init.name, &mut slot_names);
            constants.push((slot, t));
        }
        let mut inputs = Vec::new();
        for vi in &graph.input {
            let slot = slot_of(&vi.name, &mut slot_names);
            // An input that is also an initializer is a default value; only true inputs are
            // asked of the caller.
            if !constants.iter().any(|(s, _)| *s == slot) {
                inputs.push((io_info(vi), slot));
            }
        }

        // Parse the nodes and resolve their slots.
        let mut nodes = Vec::with_capacity(graph.node.len());
        for (idx, np) in graph.node.iter().enumerate() {
            let name = if np.name.is_empty() {
                format!("#{idx} {}", np.op_type)
            } else {
                np.name.clone()
            };
            let domain = if np.domain == "ai.onnx" {
                String::new()
            } else {
                np.domain.clone()
            };
            let op = *registry
                .get(&(domain.as_str(), np.op_type.as_str()))
                .ok_or_else(|| InterpError::UnsupportedOp {
                    node: name.clone(),
                    op_type: np.op_type.clone(),
                    domain: np.domain.clone(),
                })?;
            let attrs = Attrs::parse(&np.attribute, base_dir).map_err(|e| match e {
                InterpError::Op { reason, .. } => InterpError::Op {
                    node: name.clone(),
                    op_type: np.op_type.clone(),
                    reason,
                },
                other => other,
            })?;
            let ins = np
                .input
                .iter()
                .map(|n| (!n.is_empty()).then(|| slot_of(n, &mut slot_names)))
                .collect();
            let outs = np
                .output
                .iter()
                .map(|n| (!n.is_empty()).then(|| slot_of(n, &mut slot_names)))
                .collect();
            nodes.push(Node {
                name,
                op_type: np.op_type.clone(),
                opset: opsets.get(&domain).copied().unwrap_or(1),
                domain,
                attrs,
                proto: np.clone(),
                op,
                inputs: ins,
                outputs: outs,
            });
        }
        let mut outputs = Vec::new();
        for vi in &graph.output {
            let slot = slot_of(&vi.name, &mut slot_names);
            outputs.push((io_info(vi), slot));
        }

        let n_slots = slot_names.len();
        let mut const_by_slot: Vec<Option<Tensor>> = vec![None; n_slots];
        for (s, t) in constants {
            const_by_slot[s] = Some(t);
        }
        let nodes = topo_sort(nodes, &const_by_slot, &inputs, n_slots, &slot_names)?;

        let mut last_use = vec![NEVER_READ; n_slots];
        for (i, n) in nodes.iter().enumerate() {
            for s in n.inputs.iter().flatten() {
                last_use[*s] = i;
            }
        }
        for (_, s) in &outputs {
            last_use[*s] = KEEP;
        }
        Ok(Plan {
            slot_names,
            constants: const_by_slot,
            nodes,
            last_use,
            inputs,
            outputs,
        })
    }
}

/// Orders nodes so that each runs after the producers of its inputs (Kahn's algorithm, stable
/// for graphs already in order, as ONNX requires). Errors name a value nobody produces.
fn topo_sort(
    nodes: Vec<Node>,
    constants: &[Option<Tensor>],
    inputs: &[(IoInfo, usize)],
    n_slots: usize,
    slot_names: &[String],
) -> Result<Vec<Node>, InterpError> {
    let mut available = vec![false; n_slots];
    for (s, c) in constants.iter().enumerate() {
        available[s] = c.is_some();
    }
    for (_, s) in inputs {
        available[*s] = true;
    }
    let mut producer = vec![usize::MAX; n_slots];
    for (i, n) in nodes.iter().enumerate() {
        for s in n.outputs.iter().flatten() {
            producer[*s] = i;
        }
    }
    for n in &nodes {
        for s in n.inputs.iter().flatten() {
            if !available[*s] && producer[*s] == usize::MAX {
                return Err(InterpError::Graph {
                    reason: format!(
                        "node '{}' reads '{}', which is no input, initializer or node output",
                        n.name, slot_names[*s]
                    ),
                });
            }
        }
    }
    let ready = |n: &Node, available: &[bool]| n.inputs.iter().flatten().all(|s| available[*s]);
    let mut pending: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    let mut order = Vec::with_capacity(pending.len());
    let mut progress = true;
    while progress {
        progress = false;
        for slot in pending.iter_mut() {
            if slot.as_ref().is_some_and(|n| ready(n, &available)) {
                let n = slot.take().expect("checked above");
                for s in n.outputs.iter().flatten() {
                    available[*s] = true;
                }
                order.push(n);
                progress = true;
            }
        }
    }
    if let Some(n) = pending.into_iter().flatten().next() {
        return Err(InterpError::Graph {
            reason: format!("cycle through node '{}'", n.name),
        });
    }
    Ok(order)
}
