//! A read-only index over a graph for the rules: who produces and who consumes each value, and
//! the values of constants (initializers and `Constant` nodes, external data included).

use super::error::PatchError;
use onnx_protobuf::{GraphProto, NodeProto, TensorProto};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::path::{Path, PathBuf};

/// ONNX `TensorProto.DataType` codes used here.
pub const FLOAT: i32 = 1;
pub const INT32: i32 = 6;
pub const INT64: i32 = 7;
pub const DOUBLE: i32 = 11;
pub const BOOL: i32 = 9;
pub const FLOAT16: i32 = 10;
pub const BFLOAT16: i32 = 16;

pub struct GraphIndex<'g> {
    pub graph: &'g GraphProto,
    producer: HashMap<&'g str, usize>,
    consumers: HashMap<&'g str, Vec<usize>>,
    inits: HashMap<&'g str, usize>,
    outputs: HashSet<&'g str>,
    /// Node names, built on first use (new names are checked against it).
    node_names: std::cell::OnceCell<HashSet<&'g str>>,
    base_dir: PathBuf,
}

/// A constant's value, decoded to f64 (exact for the small integer and fp32 values rules read).
#[derive(Clone, Debug)]
pub struct ConstValue {
    pub dims: Vec<i64>,
    pub data_type: i32,
    pub values: Vec<f64>,
}

impl ConstValue {
    /// The single value of a scalar or one-element tensor.
    pub fn scalar(&self) -> Option<f64> {
        (self.values.len() == 1).then(|| self.values[0])
    }
    pub fn ints(&self) -> Vec<i64> {
        self.values.iter().map(|&v| v as i64).collect()
    }
}

impl<'g> GraphIndex<'g> {
    pub fn new(graph: &'g GraphProto, base_dir: &Path) -> GraphIndex<'g> {
        let n = graph.node.len();
        let mut producer = HashMap::with_capacity_and_hasher(n, Default::default());
        let mut consumers: HashMap<&str, Vec<usize>> =
            HashMap::with_capacity_and_hasher(n, Default::default());
        for (i, n) in graph.node.iter().enumerate() {
            for o in &n.output {
                if !o.is_empty() {
                    producer.insert(o.as_str(), i);
                }
            }
            for x in &n.input {
                if !x.is_empty() {
                    consumers.entry(x.as_str()).or_default().push(i);
                }
            }
        }
        let inits = graph
            .initializer
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let outputs = graph.output.iter().map(|o| o.name.as_str()).collect();
        GraphIndex {
            graph,
            producer,
            consumers,
            inits,
            outputs,
            node_names: Default::default(),
            base_dir: base_dir.to_path_buf(),
        }
    }

    /// True when a node of the graph is called `name`.
    pub fn has_node_named(&self, name: &str) -> bool {
        self.node_names
            .get_or_init(|| self.graph.node.iter().map(|n| n.name.as_str()).collect())
            .contains(name)
    }

    pub fn node(&self, i: usize) -> &'g NodeProto {
        &self.graph.node[i]
    }

    /// The node producing `value`, if a node does (not for graph inputs and initializers).
    pub fn producer(&self, value: &str) -> Option<(usize, &'g NodeProto)> {
        self.producer.get(value).map(|&i| (i, &self.graph.node[i]))
    }

    /// The producer if it has op type `op` (default domain).
    pub fn producer_op(&self, value: &str, op: &str) -> Option<(usize, &'g NodeProto)> {
        self.producer(value)
            .filter(|(_, n)| n.op_type == op && is_default_domain(n))
    }

    pub fn consumers(&self, value: &str) -> &[usize] {
        self.consumers.get(value).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn is_graph_output(&self, value: &str) -> bool {
        self.outputs.contains(value)
    }

    /// Number of uses: consuming node inputs plus graph outputs.
    pub fn uses(&self, value: &str) -> usize {
        self.consumers(value).len() + self.is_graph_output(value) as usize
    }

    /// True when `value`'s only use is node `node`.
    pub fn only_used_by(&self, value: &str, node: usize) -> bool {
        !self.is_graph_output(value) && self.consumers(value).iter().all(|&c| c == node)
    }

    pub fn initializer(&self, value: &str) -> Option<&'g TensorProto> {
        self.inits.get(value).map(|&i| &self.graph.initializer[i])
    }

    /// The value of a constant: an initializer or a `Constant` node's output.
    pub fn constant(&self, value: &str) -> Option<ConstValue> {
        let value = &self.through_identity(value);
        if let Some(t) = self.initializer(value) {
            return decode(t, &self.base_dir).ok();
        }
        let (_, n) = self.producer_op(value, "Constant")?;
        let a = n.attribute.first()?;
        match a.name.as_str() {
            "value" => decode(&a.t, &self.base_dir).ok(),
            "value_float" => Some(ConstValue {
                dims: vec![],
                data_type: FLOAT,
                values: vec![a.f as f64],
            }),
            "value_floats" => Some(ConstValue {
                dims: vec![a.floats.len() as i64],
                data_type: FLOAT,
                values: a.floats.iter().map(|&v| v as f64).collect(),
            }),
            "value_int" => Some(ConstValue {
                dims: vec![],
                data_type: INT64,
                values: vec![a.i as f64],
            }),
            "value_ints" => Some(ConstValue {
                dims: vec![a.ints.len() as i64],
                data_type: INT64,
                values: a.ints.iter().map(|&v| v as f64).collect(),
            }),
            _ => None,
        }
    }

    /// The TensorProto of a constant (initializer or `Constant(value=…)`), for copying.
    pub fn constant_proto(&self, value: &str) -> Option<&'g TensorProto> {
        let value = &self.through_identity(value);
        if let Some(t) = self.initializer(value) {
            return Some(t);
        }
        let (_, n) = self.producer_op(value, "Constant")?;
        n.attribute
            .iter()
            .find(|a| a.name == "value")
            .and_then(|a| a.t.as_ref())
    }

    /// Follows `Identity` nodes (the TorchScript exporter shares equal initializers through
    /// them) back to the value they copy.
    pub fn through_identity(&self, value: &str) -> String {
        let mut v = value.to_string();
        while let Some((_, n)) = self.producer_op(&v, "Identity") {
            v = input(n, 0).to_string();
        }
        v
    }

    /// Follows `Cast(to=FLOAT)` and `Identity` nodes back to the value they copy.
    pub fn strip_casts(&self, value: &str) -> String {
        let mut v = value.to_string();
        while let Some((_, n)) = self.producer(&v) {
            let copies = is_default_domain(n)
                && (n.op_type == "Identity"
                    || (n.op_type == "Cast" && attr_i(n, "to") == Some(FLOAT as i64)));
            if !copies {
                break;
            }
            v = input(n, 0).to_string();
        }
        v
    }

    /// The element type of `value` (ONNX code) where it can be worked out
    /// ([`super::infer::Infer::elem_type`] says why when it cannot).
    pub fn dtype(&self, value: &str) -> Option<i32> {
        super::infer::Infer::new(self).elem_type(value).ok()
    }

    /// Follows Casts between floating types (fp32, fp16, bf16, fp64) and Identity nodes. Used
    /// only where the op computes in fp32 anyway (the state an fp16 export casts down before its
    /// readout).
    pub fn strip_float_casts(&self, value: &str) -> String {
        let mut v = value.to_string();
        while let Some((_, n)) = self.producer(&v) {
            let float_to = matches!(attr_i(n, "to"), Some(1) | Some(10) | Some(11) | Some(16));
            let copies = is_default_domain(n)
                && (n.op_type == "Identity" || (n.op_type == "Cast" && float_to));
            if !copies {
                break;
            }
            v = input(n, 0).to_string();
        }
        v
    }
}

/// Input `k` of `n`, or "" (ONNX's omitted input, which no node produces) when the node has
/// fewer inputs: a malformed node then simply fails to match.
pub fn input(n: &NodeProto, k: usize) -> &str {
    n.input.get(k).map_or("", String::as_str)
}

/// Output `k` of `n`, or "" when the node has fewer outputs.
pub fn output(n: &NodeProto, k: usize) -> &str {
    n.output.get(k).map_or("", String::as_str)
}

pub fn is_default_domain(n: &NodeProto) -> bool {
    n.domain.is_empty() || n.domain == "ai.onnx"
}

pub fn attr_i(n: &NodeProto, name: &str) -> Option<i64> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

pub fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
}

pub fn attr_s(n: &NodeProto, name: &str) -> Option<String> {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// Normalises a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

/// Decodes a numeric tensor to f64 values (through the interpreter's decoder, the one reader
/// of TensorProto data).
pub fn decode(t: &TensorProto, base_dir: &Path) -> Result<ConstValue, PatchError> {
    let v = crate::interp::Tensor::from_proto(t, base_dir).map_err(|e| PatchError::Tensor {
        name: t.name.clone(),
        reason: e.to_string(),
    })?;
    Ok(ConstValue {
        dims: t.dims.clone(),
        data_type: t.data_type,
        values: v.to_f64_vec(),
    })
}

/// A new fp32 initializer.
pub fn f32_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.dims = dims.to_vec();
    t.data_type = FLOAT;
    t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    t
}

/// A new int64 initializer.
pub fn i64_tensor(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.dims = dims.to_vec();
    t.data_type = INT64;
    t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    t
}
