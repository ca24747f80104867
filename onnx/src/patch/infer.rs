//! Element types and symbolic shapes of values the graph does not declare, worked out the way
//! ONNX shape inference does: from the op's type constraints (`ConstantOfShape` takes its
//! `value`'s type, `Shape` gives int64, …), and for shapes by propagating dims — fixed sizes,
//! named dims of the graph inputs (`batch`, `seq`), or "axis k of value v" — through the ops
//! of the Mamba exports, including the small int64 shape vectors that `Shape`, `Gather`,
//! `Unsqueeze` and `Concat` build for `ConstantOfShape` and `Expand` in exports made with
//! `dynamic_axes` / `dynamic_shapes`.
//!
//! Everything here answers "known" or "unknown, because …": a rule that needs a fact it cannot
//! establish says which value and what about it is unknown.

use super::graph::{attr_i, attr_ints, attr_s, is_default_domain, norm_axis, GraphIndex};
use super::graph::{BOOL, FLOAT, INT32, INT64};
use onnx_protobuf::tensor_shape_proto::dimension::Value as DimValue;
use onnx_protobuf::type_proto::Value as TypeValue;
use onnx_protobuf::{NodeProto, ValueInfoProto};
use s6_contract::contract::{ONNX_DOMAIN, OP_TYPE};
use std::cell::OnceCell;
use std::collections::HashMap;
use std::fmt;

/// Longest int64 vector treated as a shape.
const MAX_SHAPE_LEN: i64 = 64;
/// How far back an "unknown shape" explanation follows a failing chain.
const MAX_EXPLAIN: usize = 8;

/// Dims and shape-vector values of node outputs (see [`Infer::forward`]).
#[derive(Default)]
struct Shapes {
    dims: HashMap<String, Vec<SymDim>>,
    vals: HashMap<String, Vec<SymDim>>,
}

/// Why a type or shape could not be established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unknown {
    pub value: String,
    pub what: String,
}

impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}': {}", self.value, self.what)
    }
}

fn unknown(value: &str, what: impl Into<String>) -> Unknown {
    Unknown {
        value: value.to_string(),
        what: what.into(),
    }
}

/// The ONNX name of an element type code, for messages.
pub fn type_name(t: i32) -> String {
    let s = match t {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        16 => "bfloat16",
        _ => return format!("type {t}"),
    };
    s.to_string()
}

/// One dim of a symbolic shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SymDim {
    /// A fixed size.
    Known(i64),
    /// A named dim of a graph input (or of a value_info), e.g. `batch`.
    Param(String),
    /// Axis `.1` of value `.0`, where nothing better is known (a fresh symbol).
    Of(String, usize),
}

impl fmt::Display for SymDim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SymDim::Known(n) => write!(f, "{n}"),
            SymDim::Param(p) => write!(f, "{p}"),
            SymDim::Of(v, a) => write!(f, "dim {a} of '{v}'"),
        }
    }
}

/// The declared element type and dims of a value (graph input/output or value_info).
fn declared(v: &ValueInfoProto) -> (Option<i32>, Option<Vec<SymDim>>) {
    let Some(TypeValue::TensorType(t)) = v.type_.value.as_ref() else {
        return (None, None);
    };
    let ty = (t.elem_type != 0).then_some(t.elem_type);
    let dims = t.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .enumerate()
            .map(|(i, d)| match &d.value {
                Some(DimValue::DimValue(n)) if *n >= 0 => SymDim::Known(*n),
                Some(DimValue::DimParam(p)) if !p.is_empty() => SymDim::Param(p.clone()),
                _ => SymDim::Of(v.name.clone(), i),
            })
            .collect()
    });
    (ty, dims)
}

/// Type and shape inference over one graph, memoised.
pub struct Infer<'a, 'g> {
    g: &'a GraphIndex<'g>,
    declared: HashMap<&'g str, &'g ValueInfoProto>,
    shapes: OnceCell<Shapes>,
}

impl<'a, 'g> Infer<'a, 'g> {
    pub fn new(g: &'a GraphIndex<'g>) -> Self {
        let gr = g.graph;
        let mut declared = HashMap::new();
        // Graph inputs first: they win over value_info of the same name.
        for v in gr.value_info.iter().chain(&gr.output).chain(&gr.input) {
            declared.insert(v.name.as_str(), v);
        }
        Infer {
            g,
            declared,
            shapes: OnceCell::new(),
        }
    }

    fn producer(&self, value: &str) -> Option<(&'g NodeProto, usize)> {
        let (_, n) = self.g.producer(value)?;
        let slot = n.output.iter().position(|o| o == value)?;
        Some((n, slot))
    }

    fn declared_type(&self, value: &str) -> Option<i32> {
        self.declared.get(value).and_then(|v| declared(v).0)
    }

    /// The element type of `value`.
    pub fn elem_type(&self, value: &str) -> Result<i32, Unknown> {
        let mut v = value.to_string();
        // A chain in a DAG visits each node at most once.
        for _ in 0..=self.g.graph.node.len() {
            if let Some(t) = self.g.initializer(&v) {
                return Ok(t.data_type);
            }
            if let Some(i) = self.g.graph.input.iter().find(|i| i.name == v) {
                return declared(i)
                    .0
                    .ok_or_else(|| unknown(&v, "graph input without a tensor element type"));
            }
            let Some((n, slot)) = self.producer(&v) else {
                return Err(unknown(&v, "no node, input or initializer produces it"));
            };
            match self.op_type_rule(n, slot, &v)? {
                Rule::Is(t) => return Ok(t),
                Rule::SameAs(x) => v = x,
                Rule::Unknown(why) => {
                    return self.declared_type(&v).ok_or_else(|| unknown(&v, why));
                }
            }
        }
        Err(unknown(
            value,
            "its type chain loops (the graph is not a DAG)",
        ))
    }

    /// The ONNX type constraint of output `slot` of `n`: a fixed type, the type of an input,
    /// or unknown.
    fn op_type_rule(&self, n: &NodeProto, slot: usize, v: &str) -> Result<Rule, Unknown> {
        if !is_default_domain(n) {
            return Ok(Rule::Unknown(format!(
                "produced by '{}' ({}, domain '{}'), whose output types are not known here",
                n.name, n.op_type, n.domain
            )));
        }
        let input = |i: usize| -> Result<Rule, Unknown> {
            n.input
                .get(i)
                .filter(|x| !x.is_empty())
                .map(|x| Rule::SameAs(x.clone()))
                .ok_or_else(|| unknown(v, format!("'{}' ({}) lacks input {i}", n.name, n.op_type)))
        };
        let dtype_attr = |default: Option<i32>| -> Result<Rule, Unknown> {
            match n.attribute.iter().find(|a| a.name == "dtype") {
                Some(a) => Ok(Rule::Is(a.i as i32)),
                None => match default {
                    Some(t) => Ok(Rule::Is(t)),
                    None => input(0),
                },
            }
        };
        Ok(match n.op_type.as_str() {
            "Cast" => match attr_i(n, "to") {
                Some(t) => Rule::Is(t as i32),
                None => Rule::Unknown(format!("Cast '{}' without 'to'", n.name)),
            },
            "CastLike" => input(1)?,
            "Constant" => match self.g.constant_proto(v) {
                Some(t) => Rule::Is(t.data_type),
                None => match n.attribute.first().map(|a| a.name.as_str()) {
                    Some("value_float" | "value_floats") => Rule::Is(FLOAT),
                    Some("value_int" | "value_ints") => Rule::Is(INT64),
                    _ => Rule::Unknown(format!("Constant '{}' of an unread kind", n.name)),
                },
            },
            // The fill value's type; float32 zero when `value` is absent (the ONNX default).
            "ConstantOfShape" => Rule::Is(
                n.attribute
                    .iter()
                    .find(|a| a.name == "value")
                    .and_then(|a| a.t.as_ref())
                    .map(|t| t.data_type)
                    .unwrap_or(FLOAT),
            ),
            "Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin" | "NonMaxSuppression" => {
                Rule::Is(INT64)
            }
            "Equal" | "Greater" | "Less" | "GreaterOrEqual" | "LessOrEqual" | "Not" | "And"
            | "Or" | "Xor" | "IsNaN" | "IsInf" => Rule::Is(BOOL),
            "TopK" if slot == 1 => Rule::Is(INT64),
            "MaxPool" if slot == 1 => Rule::Is(INT64),
            "Unique" if slot >= 1 => Rule::Is(INT64),
            "Dropout" if slot == 1 => Rule::Is(BOOL),
            "MatMulInteger" | "ConvInteger" => Rule::Is(INT32),
            "Where" => input(1)?,
            "EyeLike" | "RandomNormalLike" | "RandomUniformLike" | "Bernoulli" => dtype_attr(None)?,
            "RandomNormal" | "RandomUniform" => dtype_attr(Some(FLOAT))?,
            "Multinomial" => dtype_attr(Some(INT32))?,
            "DequantizeLinear" => input(1)?,
            "QuantizeLinear"
            | "DynamicQuantizeLinear"
            | "QLinearMatMul"
            | "QLinearConv"
            | "If"
            | "Loop"
            | "Scan"
            | "SequenceAt"
            | "SplitToSequence"
            | "ConcatFromSequence"
            | "StringNormalizer"
            | "TfIdfVectorizer"
            | "LabelEncoder" => Rule::Unknown(format!(
                "produced by '{}' ({}), whose output type is not inferred here",
                n.name, n.op_type
            )),
            // Every other standard op's outputs share its first input's type (elementwise,
            // data movement, reductions, MatMul/Conv/Einsum, Range, normalisations).
            _ => input(0)?,
        })
    }

    fn shapes(&self) -> &Shapes {
        self.shapes.get_or_init(|| self.forward())
    }

    /// Dims and shape values of every node output, in one pass over the nodes in graph
    /// (topological) order, so that no chain, however long, recurses.
    fn forward(&self) -> Shapes {
        let mut s = Shapes::default();
        for n in &self.g.graph.node {
            for (slot, out) in n.output.iter().enumerate() {
                if out.is_empty() {
                    continue;
                }
                if let Some(d) = self.node_dims(&s, n, slot, out) {
                    s.dims.insert(out.clone(), d);
                }
            }
            if let Some(out) = n.output.first().filter(|o| !o.is_empty()) {
                if let Ok(v) = self.op_value(&s, n, out, MAX_EXPLAIN) {
                    s.vals.insert(out.clone(), v);
                }
            }
        }
        s
    }

    /// The dims of `value`, as far as they can be worked out (None: not even the rank).
    pub fn dims(&self, value: &str) -> Option<Vec<SymDim>> {
        self.dims_in(self.shapes(), value)
    }

    fn dims_in(&self, s: &Shapes, value: &str) -> Option<Vec<SymDim>> {
        if let Some(d) = s.dims.get(value) {
            return Some(d.clone());
        }
        if let Some(t) = self.g.initializer(value) {
            return Some(t.dims.iter().map(|&d| SymDim::Known(d)).collect());
        }
        self.declared.get(value).and_then(|v| declared(v).1)
    }

    fn node_dims(
        &self,
        s: &Shapes,
        n: &NodeProto,
        slot: usize,
        value: &str,
    ) -> Option<Vec<SymDim>> {
        let decl = self.declared.get(value).and_then(|v| declared(v).1);
        let inferred = if n.op_type == "Constant" && is_default_domain(n) {
            self.g
                .constant_proto(value)
                .map(|t| t.dims.iter().map(|&d| SymDim::Known(d)).collect())
                .or_else(|| match n.attribute.first() {
                    Some(a) if a.name == "value_floats" => {
                        Some(vec![SymDim::Known(a.floats.len() as i64)])
                    }
                    Some(a) if a.name == "value_ints" => {
                        Some(vec![SymDim::Known(a.ints.len() as i64)])
                    }
                    Some(a) if a.name == "value_float" || a.name == "value_int" => Some(vec![]),
                    _ => None,
                })
        } else if is_default_domain(n) {
            self.op_dims(s, n, slot, value)
        } else if n.domain == ONNX_DOMAIN && n.op_type == OP_TYPE && slot == 0 {
            // A scan patched earlier: y has u's shape (docs/s6scan.md).
            n.input.first().and_then(|u| self.dims_in(s, u))
        } else {
            None
        };
        if inferred.is_none() {
            tracing::trace!(value, node = %n.name, op = %n.op_type, "dims not inferred");
        }
        // A declared named or fixed dim beats a fresh symbol of our own.
        match (inferred, decl) {
            (Some(i), Some(d)) if i.len() == d.len() => Some(
                i.into_iter()
                    .zip(d)
                    .map(|(a, b)| match (&a, &b) {
                        (SymDim::Of(..), SymDim::Known(_) | SymDim::Param(_)) => b,
                        _ => a,
                    })
                    .collect(),
            ),
            (Some(i), _) => Some(i),
            (None, d) => d,
        }
    }

    /// Fresh symbols for a value of known rank.
    fn fresh(value: &str, rank: usize) -> Vec<SymDim> {
        (0..rank)
            .map(|i| SymDim::Of(value.to_string(), i))
            .collect()
    }

    fn op_dims(&self, s: &Shapes, n: &NodeProto, slot: usize, value: &str) -> Option<Vec<SymDim>> {
        let inp = |i: usize| n.input.get(i).filter(|x| !x.is_empty());
        let dims_in = |i: usize| inp(i).and_then(|x| self.dims_in(s, x));
        // Only Split's and Dropout's later outputs are shaped like the first.
        if slot > 0 && !matches!(n.op_type.as_str(), "Split" | "Dropout") {
            return None;
        }
        match n.op_type.as_str() {
            "Identity" | "Cast" | "CastLike" | "Neg" | "Exp" | "Log" | "Sqrt" | "Reciprocal"
            | "Abs" | "Sigmoid" | "Tanh" | "Relu" | "Softplus" | "Softsign" | "Erf" | "Gelu"
            | "Silu" | "Not" | "Sign" | "Floor" | "Ceil" | "Round" | "IsNaN" | "IsInf"
            | "LeakyRelu" | "Elu" | "Selu" | "HardSigmoid" | "HardSwish" | "Mish" | "Clip"
            | "Softmax" | "LogSoftmax" | "LayerNormalization" | "Dropout" | "Sin" | "Cos" => {
                dims_in(0)
            }
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min" | "Sum" | "Mean" | "Where"
            | "Equal" | "Greater" | "Less" | "GreaterOrEqual" | "LessOrEqual" | "And" | "Or"
            | "Xor" | "Mod" | "PRelu" => {
                let all: Option<Vec<Vec<SymDim>>> = (0..n.input.len()).map(dims_in).collect();
                broadcast(value, &all?)
            }
            "Unsqueeze" => {
                let d = dims_in(0)?;
                let axes =
                    attr_ints(n, "axes").or_else(|| Some(self.g.constant(inp(1)?)?.ints()))?;
                let r = d.len() + axes.len();
                let mut ax: Vec<usize> = axes
                    .iter()
                    .map(|&a| norm_axis(a, r))
                    .collect::<Option<_>>()?;
                ax.sort_unstable();
                let mut rest = d.into_iter();
                (0..r)
                    .map(|i| {
                        if ax.contains(&i) {
                            Some(SymDim::Known(1))
                        } else {
                            rest.next()
                        }
                    })
                    .collect()
            }
            "Squeeze" => {
                let d = dims_in(0)?;
                let axes = attr_ints(n, "axes").or_else(|| Some(self.g.constant(inp(1)?)?.ints()));
                let ax: Vec<usize> = match axes {
                    Some(a) => a
                        .iter()
                        .map(|&a| norm_axis(a, d.len()))
                        .collect::<Option<_>>()?,
                    None => (0..d.len()).filter(|&i| d[i] == SymDim::Known(1)).collect(),
                };
                Some(
                    d.into_iter()
                        .enumerate()
                        .filter(|(i, _)| !ax.contains(i))
                        .map(|(_, x)| x)
                        .collect(),
                )
            }
            "Transpose" => {
                let d = dims_in(0)?;
                let perm =
                    attr_ints(n, "perm").unwrap_or_else(|| (0..d.len() as i64).rev().collect());
                perm.iter()
                    .map(|&p| d.get(usize::try_from(p).ok()?).cloned())
                    .collect()
            }
            "Gather" => {
                let d = dims_in(0)?;
                let idx = dims_in(1)?;
                let axis = norm_axis(attr_i(n, "axis").unwrap_or(0), d.len())?;
                let mut out = d[..axis].to_vec();
                out.extend(idx);
                out.extend_from_slice(&d[axis + 1..]);
                Some(out)
            }
            "MatMul" => {
                let (a, b) = (dims_in(0)?, dims_in(1)?);
                if a.len() < 2 || b.len() < 2 {
                    return None;
                }
                let mut out = broadcast(
                    value,
                    &[a[..a.len() - 2].to_vec(), b[..b.len() - 2].to_vec()],
                )?;
                out.push(a[a.len() - 2].clone());
                out.push(b[b.len() - 1].clone());
                Some(out)
            }
            "Einsum" => {
                let eq = attr_s(n, "equation")?.replace(' ', "");
                let (lhs, out) = eq.split_once("->")?;
                if eq.contains("...") {
                    return None;
                }
                let mut letter: HashMap<char, SymDim> = HashMap::new();
                for (i, t) in lhs.split(',').enumerate() {
                    let d = dims_in(i)?;
                    for (c, x) in t.chars().zip(d) {
                        let e = letter.entry(c).or_insert(x.clone());
                        if *e == SymDim::Known(1) {
                            *e = x;
                        }
                    }
                }
                out.chars().map(|c| letter.get(&c).cloned()).collect()
            }
            "Conv" => {
                let (x, w) = (dims_in(0)?, dims_in(1)?);
                let mut out = vec![x.first()?.clone(), w.first()?.clone()];
                // Fixed spatial sizes: ⌊(x + pads − dilation·(k − 1) − 1) / stride⌋ + 1
                // (explicit pads only).
                let sp = x.len().saturating_sub(2);
                let explicit = attr_s(n, "auto_pad").is_none_or(|a| a == "NOTSET");
                let pads = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 2 * sp]);
                let strides = attr_ints(n, "strides").unwrap_or_else(|| vec![1; sp]);
                let dil = attr_ints(n, "dilations").unwrap_or_else(|| vec![1; sp]);
                for i in 0..sp {
                    let size = (|| {
                        let (xi, k) = (known(&x[2 + i])?, known(w.get(2 + i)?)?);
                        let (p, st, dl) = (
                            pads.get(i)? + pads.get(sp + i)?,
                            *strides.get(i)?,
                            *dil.get(i)?,
                        );
                        (explicit && st > 0).then(|| (xi + p - dl * (k - 1) - 1).div_euclid(st) + 1)
                    })();
                    out.push(match size {
                        Some(v) => SymDim::Known(v),
                        None => SymDim::Of(value.to_string(), 2 + i),
                    });
                }
                Some(out)
            }
            "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL2" => {
                let d = dims_in(0)?;
                let keep = attr_i(n, "keepdims").unwrap_or(1) != 0;
                let axes = attr_ints(n, "axes").or_else(|| Some(self.g.constant(inp(1)?)?.ints()));
                let ax: Vec<usize> = match axes {
                    Some(a) => a
                        .iter()
                        .map(|&a| norm_axis(a, d.len()))
                        .collect::<Option<_>>()?,
                    None => (0..d.len()).collect(),
                };
                Some(
                    d.into_iter()
                        .enumerate()
                        .filter_map(|(i, x)| match (ax.contains(&i), keep) {
                            (false, _) => Some(x),
                            (true, true) => Some(SymDim::Known(1)),
                            (true, false) => None,
                        })
                        .collect(),
                )
            }
            // Slice and Split keep every axis but the ones they cut (sizes there are fresh).
            "Slice" => {
                let d = dims_in(0)?;
                // starts/ends/axes/steps: inputs since opset 10, attributes before.
                let vec_of = |i: usize, attr: &str| -> Option<Vec<SymDim>> {
                    match inp(i) {
                        Some(x) => self.val_in(s, x, MAX_EXPLAIN).ok(),
                        None if n.input.len() <= 1 => {
                            attr_ints(n, attr).map(|v| v.into_iter().map(SymDim::Known).collect())
                        }
                        None => None,
                    }
                };
                let starts = vec_of(1, "starts");
                let ends = vec_of(2, "ends");
                let axes: Vec<i64> = match vec_of(3, "axes") {
                    Some(a) => a.iter().map(known).collect::<Option<_>>()?,
                    None => (0..starts.as_ref().or(ends.as_ref())?.len() as i64).collect(),
                };
                let steps: Option<Vec<i64>> = match inp(4) {
                    Some(x) => self.g.constant(x).map(|c| c.ints()),
                    None => Some(vec![1; axes.len()]),
                };
                let mut out = d.clone();
                for (k, &a) in axes.iter().enumerate() {
                    let a = norm_axis(a, d.len())?;
                    let sliced = (|| {
                        let start = known(starts.as_ref()?.get(k)?)?;
                        let end = ends.as_ref()?.get(k)?;
                        let step = *steps.as_ref()?.get(k)?;
                        slice_dim(&d[a], start, end, step)
                    })();
                    out[a] = sliced.unwrap_or_else(|| SymDim::Of(value.to_string(), a));
                }
                Some(out)
            }
            "Split" => {
                let d = dims_in(0)?;
                let axis = norm_axis(attr_i(n, "axis").unwrap_or(0), d.len())?;
                let sizes = match inp(1) {
                    Some(x) => self.g.constant(x).map(|c| c.ints()),
                    None => attr_ints(n, "split"),
                };
                let size = match sizes {
                    Some(v) => v.get(slot).copied(),
                    // Equal parts of a known axis.
                    None => known(&d[axis]).and_then(|t| {
                        let k = n.output.len() as i64;
                        (t % k == 0).then(|| t / k)
                    }),
                };
                let mut out = cut_axes(value, d, &[axis]);
                if let Some(sz) = size {
                    out[axis] = SymDim::Known(sz);
                }
                Some(out)
            }
            "Concat" => {
                let all: Option<Vec<Vec<SymDim>>> = (0..n.input.len()).map(dims_in).collect();
                let all = all?;
                let r = all.first()?.len();
                let axis = norm_axis(attr_i(n, "axis")?, r)?;
                let mut out = all[0].clone();
                let total: Option<i64> = all.iter().map(|d| d.get(axis).and_then(known)).sum();
                out[axis] = match total {
                    Some(t) => SymDim::Known(t),
                    None => SymDim::Of(value.to_string(), axis),
                };
                Some(out)
            }
            "Shape" => {
                let r = self.dims_in(s, inp(0)?)?.len() as i64;
                let (s, e) = shape_range(n, r)?;
                Some(vec![SymDim::Known(e - s)])
            }
            "Size" => Some(vec![]),
            "ConstantOfShape" => {
                let s = self.val_in(s, inp(0)?, 0).ok()?;
                Some(s)
            }
            "Expand" => {
                let d = dims_in(0)?;
                let s = self.val_in(s, inp(1)?, 0).ok()?;
                broadcast(value, &[d, s])
            }
            "Reshape" => {
                let s = self.val_in(s, inp(1)?, 0).ok()?;
                if s.iter()
                    .any(|x| matches!(x, SymDim::Known(0) | SymDim::Known(-1)))
                {
                    return Some(Self::fresh(value, s.len()));
                }
                Some(s)
            }
            _ => None,
        }
    }

    /// The value of a small int64 tensor used as a shape (rank ≤ 1), element by element:
    /// constants, and `Shape` / `Gather` / `Unsqueeze` / `Squeeze` / `Concat` / `Cast` /
    /// `Slice` chains over the dims of other values (ONNX's data propagation).
    pub fn shape_value(&self, value: &str) -> Result<Vec<SymDim>, Unknown> {
        self.val_in(self.shapes(), value, 0)
    }

    /// A shape vector: computed by the forward pass, a small constant, or why not. Only the
    /// error path recomputes (to say what is unknown), along one failing chain, boundedly.
    fn val_in(&self, s: &Shapes, value: &str, depth: usize) -> Result<Vec<SymDim>, Unknown> {
        if let Some(v) = s.vals.get(value) {
            return Ok(v.clone());
        }
        if let Some(t) = self.g.constant_proto(value) {
            let numel: i64 = t.dims.iter().product();
            if t.dims.len() > 1 || numel > MAX_SHAPE_LEN {
                return Err(unknown(
                    value,
                    format!("a constant of dims {:?} is not a shape", t.dims),
                ));
            }
        }
        if let Some(c) = self.g.constant(value) {
            if !matches!(c.data_type, INT32 | INT64) {
                return Err(unknown(
                    value,
                    format!("a {} constant is not a shape", type_name(c.data_type)),
                ));
            }
            return Ok(c.ints().into_iter().map(SymDim::Known).collect());
        }
        let Some((n, _)) = self.producer(value) else {
            return Err(unknown(
                value,
                "a shape that is neither a constant nor computed",
            ));
        };
        if depth >= MAX_EXPLAIN {
            return Err(unknown(
                value,
                format!(
                    "computed by '{}' ({}) from values of unknown shape",
                    n.name, n.op_type
                ),
            ));
        }
        self.op_value(s, n, value, depth + 1)
    }

    /// The value of `n`'s output `value` from its inputs' values and dims (ONNX's data
    /// propagation): `Shape`, `Gather`, `Unsqueeze`, `Squeeze`, `Concat`, `Cast`, `Slice` and
    /// arithmetic on fixed sizes.
    fn op_value(
        &self,
        s: &Shapes,
        n: &NodeProto,
        value: &str,
        depth: usize,
    ) -> Result<Vec<SymDim>, Unknown> {
        let inp = |i: usize| {
            n.input.get(i).filter(|x| !x.is_empty()).ok_or_else(|| {
                unknown(
                    value,
                    format!("'{}' ({}) lacks input {i}", n.name, n.op_type),
                )
            })
        };
        let op_unknown = |what: &str| {
            unknown(
                value,
                format!("computed by '{}' ({}): {what}", n.name, n.op_type),
            )
        };
        if !is_default_domain(n) {
            return Err(op_unknown("not a standard op"));
        }
        match n.op_type.as_str() {
            "Shape" => {
                let x = inp(0)?;
                let d = self
                    .dims_in(s, x)
                    .ok_or_else(|| op_unknown(&format!("the rank of '{x}' is unknown")))?;
                let (a, e) =
                    shape_range(n, d.len() as i64).ok_or_else(|| op_unknown("bad start/end"))?;
                Ok(d[a as usize..e as usize].to_vec())
            }
            // Only integer values are shapes: a Cast to float leaves them.
            "Cast" if !matches!(attr_i(n, "to"), Some(6 | 7)) => {
                Err(op_unknown("a cast to a non-integer type"))
            }
            "Cast" | "Identity" => self.val_in(s, inp(0)?, depth),
            "Unsqueeze" | "Squeeze" | "Reshape" | "Flatten" => {
                let v = self.val_in(s, inp(0)?, depth)?;
                Ok(v)
            }
            "Concat" => {
                let mut out = Vec::new();
                for x in n.input.iter().filter(|x| !x.is_empty()) {
                    out.extend(self.val_in(s, x, depth)?);
                }
                Ok(out)
            }
            "Gather" => {
                // Shape(x)[k] without needing the whole of Shape(x) when k ≥ 0.
                let data = inp(0)?;
                let idx = inp(1)?;
                if self.g.constant_proto(idx).is_some_and(|t| {
                    t.dims.len() > 1 || t.dims.iter().product::<i64>() > MAX_SHAPE_LEN
                }) {
                    return Err(op_unknown("the index is not a small constant"));
                }
                let idx = self
                    .g
                    .constant(idx)
                    .ok_or_else(|| op_unknown("the index is not a constant"))?;
                if let Some((sh, _)) = self.producer(data).filter(|(p, _)| p.op_type == "Shape") {
                    let whole =
                        attr_i(sh, "start").unwrap_or(0) == 0 && attr_i(sh, "end").is_none();
                    if idx.values.iter().all(|&k| k >= 0.0) && whole && !sh.input.is_empty() {
                        let x = &sh.input[0];
                        return Ok(idx
                            .ints()
                            .into_iter()
                            .map(|k| {
                                let k = k as usize;
                                self.dims_in(s, x)
                                    .and_then(|d| d.get(k).cloned())
                                    .unwrap_or_else(|| SymDim::Of(x.clone(), k))
                            })
                            .collect());
                    }
                }
                let v = self.val_in(s, data, depth)?;
                idx.ints()
                    .into_iter()
                    .map(|k| {
                        norm_axis(k, v.len())
                            .map(|k| v[k].clone())
                            .ok_or_else(|| op_unknown("index out of range"))
                    })
                    .collect()
            }
            "Slice" => {
                let v = self.val_in(s, inp(0)?, depth)?;
                let c = |i: usize| -> Result<i64, Unknown> {
                    let x = inp(i)?;
                    self.g
                        .constant(x)
                        .and_then(|c| c.scalar())
                        .map(|s| s as i64)
                        .ok_or_else(|| op_unknown("starts/ends not constant"))
                };
                let (s, e) = (c(1)?, c(2)?);
                if n.input.len() > 4 {
                    return Err(op_unknown("a strided slice of a shape"));
                }
                let r = v.len() as i64;
                let clamp = |x: i64| if x < 0 { (x + r).max(0) } else { x.min(r) };
                let (s, e) = (clamp(s), clamp(e));
                Ok(v[s as usize..e.max(s) as usize].to_vec())
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let a = self.val_in(s, inp(0)?, depth)?;
                let b = self.val_in(s, inp(1)?, depth)?;
                let len = a.len().max(b.len());
                let get =
                    |v: &Vec<SymDim>, i: usize| v.get(if v.len() == 1 { 0 } else { i }).cloned();
                (0..len)
                    .map(|i| {
                        let (x, y) = (get(&a, i), get(&b, i));
                        match (x.as_ref().and_then(known), y.as_ref().and_then(known)) {
                            (Some(x), Some(y)) => Ok(SymDim::Known(match n.op_type.as_str() {
                                "Add" => x + y,
                                "Sub" => x - y,
                                "Mul" => x * y,
                                // ONNX integer division truncates.
                                _ if y != 0 => x / y,
                                _ => return Err(op_unknown("division by zero")),
                            })),
                            _ => match (n.op_type.as_str(), x, y) {
                                ("Mul", Some(x), Some(SymDim::Known(1))) => Ok(x),
                                ("Div", Some(x), Some(SymDim::Known(1))) => Ok(x),
                                _ => Err(op_unknown("arithmetic on a dynamic dim")),
                            },
                        }
                    })
                    .collect()
            }
            _ => Err(op_unknown("not an op whose value is worked out here")),
        }
    }

    /// When `value` is all zeros — a zero constant, `ConstantOfShape` of zero, or `Expand` of a
    /// zero constant — its dims.
    pub fn zero_fill(&self, value: &str) -> Option<Result<Vec<SymDim>, Unknown>> {
        let v = self.g.strip_casts(value);
        if let Some(c) = self.g.constant(&v) {
            return c
                .values
                .iter()
                .all(|&x| x == 0.0)
                .then(|| Ok(c.dims.iter().map(|&d| SymDim::Known(d)).collect()));
        }
        let (n, _) = self.producer(&v)?;
        if !is_default_domain(n) {
            return None;
        }
        match n.op_type.as_str() {
            "ConstantOfShape" => {
                let fill = match n.attribute.iter().find(|a| a.name == "value") {
                    // An inline tensor (external data in an attribute is not read here).
                    Some(a) => {
                        let t = a.t.as_ref()?;
                        if crate::model::is_external(t) {
                            return None;
                        }
                        super::graph::decode(t, std::path::Path::new(""))
                            .ok()?
                            .values
                    }
                    None => vec![0.0],
                };
                if !fill.iter().all(|&x| x == 0.0) {
                    return None;
                }
                Some(self.shape_value(n.input.first()?))
            }
            "Expand" => {
                let c = self.g.constant(n.input.first()?)?;
                if !c.values.iter().all(|&x| x == 0.0) {
                    return None;
                }
                let s = match self.shape_value(n.input.get(1)?) {
                    Ok(s) => s,
                    Err(e) => return Some(Err(e)),
                };
                let d: Vec<SymDim> = c.dims.iter().map(|&d| SymDim::Known(d)).collect();
                Some(
                    broadcast(&v, &[d, s])
                        .ok_or_else(|| unknown(&v, "Expand shapes do not broadcast")),
                )
            }
            _ => None,
        }
    }
}

enum Rule {
    Is(i32),
    SameAs(String),
    Unknown(String),
}

fn known(d: &SymDim) -> Option<i64> {
    match d {
        SymDim::Known(n) => Some(*n),
        _ => None,
    }
}

/// `Shape`'s start/end attributes (opset 15) clamped to `rank`.
fn shape_range(n: &NodeProto, rank: i64) -> Option<(i64, i64)> {
    let clamp = |x: i64| {
        if x < 0 {
            (x + rank).max(0)
        } else {
            x.min(rank)
        }
    };
    let s = clamp(attr_i(n, "start").unwrap_or(0));
    let e = clamp(attr_i(n, "end").unwrap_or(rank));
    Some((s, e.max(s)))
}

/// The size of axis `d` after `Slice(start, end, step)` (ONNX clamping), where it can be told:
/// `d` fixed, or `[0, end)` with `end` past any size or equal to `d` itself.
fn slice_dim(d: &SymDim, start: i64, end: &SymDim, step: i64) -> Option<SymDim> {
    if step == 0 {
        return None;
    }
    if let (SymDim::Known(n), SymDim::Known(e)) = (d, end) {
        let (n, e) = (*n, *e);
        let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
        let fix = |x: i64| if x < 0 { x + n } else { x }.clamp(lo, hi);
        let (s, e) = (fix(start), fix(e));
        let len = if step > 0 {
            (e - s + step - 1).div_euclid(step)
        } else {
            (s - e - step - 1).div_euclid(-step)
        };
        return Some(SymDim::Known(len.max(0)));
    }
    if start == 0 && step == 1 && (end == d || known(end).is_some_and(|e| e >= i64::MAX / 2)) {
        return Some(d.clone());
    }
    None
}

/// `d` with the axes in `cut` replaced by fresh symbols of `value`.
fn cut_axes(value: &str, d: Vec<SymDim>, cut: &[usize]) -> Vec<SymDim> {
    d.into_iter()
        .enumerate()
        .map(|(i, x)| {
            if cut.contains(&i) {
                SymDim::Of(value.to_string(), i)
            } else {
                x
            }
        })
        .collect()
}

/// Numpy broadcasting of symbolic shapes: 1 gives way, equal dims stay, a fixed size beats a
/// symbol (the model is valid, so the symbol must be that size or 1), two different symbols
/// give a fresh one.
pub fn broadcast(value: &str, shapes: &[Vec<SymDim>]) -> Option<Vec<SymDim>> {
    let r = shapes.iter().map(Vec::len).max()?;
    let mut out = Vec::with_capacity(r);
    for i in 0..r {
        let mut cur: Option<SymDim> = None;
        for s in shapes {
            let Some(d) = (i + s.len()).checked_sub(r).map(|j| &s[j]) else {
                continue;
            };
            cur = Some(match (cur, d) {
                (None, d) => d.clone(),
                (Some(SymDim::Known(1)), d) => d.clone(),
                (Some(c), SymDim::Known(1)) => c,
                (Some(c), d) if c == *d => c,
                (Some(SymDim::Known(a)), SymDim::Known(b)) if a != *b => return None,
                (Some(SymDim::Known(a)), _) => SymDim::Known(a),
                (Some(_), SymDim::Known(b)) => SymDim::Known(*b),
                (Some(_), _) => SymDim::Of(value.to_string(), i),
            });
        }
        out.push(cur?);
    }
    Some(out)
}

/// Whether a zero `h_{-1}` of dims `zero` can be dropped: it must not broadcast the state
/// (B, D, N) — the Gathers of `da` and `dbu` at time axis `ta` — beyond what dA and dBu
/// make it. Each of its dims (right-aligned) must be 1 or a dim of dA_t or dBu_t there.
pub fn zero_state_fits(
    inf: &Infer,
    name: &str,
    zero: &[SymDim],
    da: &str,
    dbu: &str,
    ta: usize,
) -> Result<(), Unknown> {
    if zero.len() > 3 {
        return Err(unknown(
            name,
            format!("a zero state of rank {} > 3", zero.len()),
        ));
    }
    let step = |v: &str| -> Option<Vec<SymDim>> {
        let mut d = inf.dims(v)?;
        (d.len() == 4).then(|| {
            d.remove(ta);
            d
        })
    };
    let (sa, sb) = (step(da), step(dbu));
    let off = 3 - zero.len();
    for (i, z) in zero.iter().enumerate() {
        let j = off + i;
        let fits = *z == SymDim::Known(1)
            || sa.as_ref().is_some_and(|s| s[j] == *z)
            || sb.as_ref().is_some_and(|s| s[j] == *z);
        if !fits {
            let show = |s: &Option<Vec<SymDim>>| {
                s.as_ref()
                    .map(|s| s[j].to_string())
                    .unwrap_or_else(|| "unknown".into())
            };
            return Err(unknown(
                name,
                format!(
                    "zero state dim {i} is {z}, neither 1 nor the state's ({} in dA_t, {} in dBu_t)",
                    show(&sa),
                    show(&sb)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::attribute_proto::AttributeType;
    use onnx_protobuf::tensor_shape_proto::Dimension;
    use onnx_protobuf::{AttributeProto, GraphProto, TensorProto, TypeProto};
    use std::path::Path;

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        let mut n = NodeProto::new();
        n.op_type = op.into();
        n.name = format!("n_{output}");
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = vec![output.into()];
        n
    }

    fn with_int(mut n: NodeProto, name: &str, i: i64) -> NodeProto {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.type_ = AttributeType::INT.into();
        a.i = i;
        n.attribute.push(a);
        n
    }

    fn with_tensor(mut n: NodeProto, name: &str, t: TensorProto) -> NodeProto {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.type_ = AttributeType::TENSOR.into();
        a.t = Some(t).into();
        n.attribute.push(a);
        n
    }

    /// A graph input of `elem` with dims: numbers fixed, names symbolic, "?" unnamed.
    fn input(name: &str, elem: i32, dims: &[&str]) -> ValueInfoProto {
        let mut v = ValueInfoProto::new();
        v.name = name.into();
        let mut t = onnx_protobuf::type_proto::Tensor::new();
        t.elem_type = elem;
        let mut shape = onnx_protobuf::TensorShapeProto::new();
        for d in dims {
            let mut dim = Dimension::new();
            dim.value = match d.parse::<i64>() {
                Ok(n) => Some(DimValue::DimValue(n)),
                Err(_) if *d == "?" => None,
                Err(_) => Some(DimValue::DimParam(d.to_string())),
            };
            shape.dim.push(dim);
        }
        t.shape = Some(shape).into();
        let mut ty = TypeProto::new();
        ty.value = Some(TypeValue::TensorType(t));
        v.type_ = Some(ty).into();
        v
    }

    fn graph(
        inputs: Vec<ValueInfoProto>,
        nodes: Vec<NodeProto>,
        inits: Vec<TensorProto>,
    ) -> GraphProto {
        let mut g = GraphProto::new();
        g.input = inputs;
        g.node = nodes;
        g.initializer = inits;
        g
    }

    fn i64s(name: &str, dims: &[i64], v: &[i64]) -> TensorProto {
        super::super::graph::i64_tensor(name, dims, v)
    }

    /// The shape vector of a dynamic export's zero state: [Shape(x)[0], Shape(x)[1], 16].
    fn zero_state_graph(fill: Option<TensorProto>) -> GraphProto {
        let mut cos = node("ConstantOfShape", &["shape"], "zeros");
        if let Some(t) = fill {
            cos = with_tensor(cos, "value", t);
        }
        graph(
            vec![input("x", FLOAT, &["batch", "64", "?"])],
            vec![
                node("Shape", &["x"], "s"),
                with_int(node("Gather", &["s", "k0"], "b"), "axis", 0),
                with_int(node("Gather", &["s", "k1"], "d"), "axis", 0),
                node("Unsqueeze", &["b", "ax0"], "b1"),
                node("Unsqueeze", &["d", "ax0"], "d1"),
                with_int(node("Concat", &["b1", "d1", "n"], "shape"), "axis", 0),
                cos,
                with_int(node("Gather", &["s", "k2"], "l"), "axis", 0),
            ],
            vec![
                i64s("k0", &[], &[0]),
                i64s("k1", &[], &[1]),
                i64s("k2", &[], &[2]),
                i64s("ax0", &[1], &[0]),
                i64s("n", &[1], &[16]),
            ],
        )
    }

    #[test]
    fn constant_of_shape_takes_its_fill_type_not_its_shape_type() {
        // ONNX: output type = the `value` attribute's type, float32 when absent.
        let g = zero_state_graph(None);
        let gi = GraphIndex::new(&g, Path::new("."));
        let inf = Infer::new(&gi);
        assert_eq!(inf.elem_type("shape"), Ok(INT64));
        assert_eq!(inf.elem_type("zeros"), Ok(FLOAT));
        let g = zero_state_graph(Some(i64s("v", &[1], &[0])));
        let gi = GraphIndex::new(&g, Path::new("."));
        assert_eq!(Infer::new(&gi).elem_type("zeros"), Ok(INT64));
    }

    #[test]
    fn shape_vectors_propagate_through_shape_gather_unsqueeze_concat() {
        let g = zero_state_graph(None);
        let gi = GraphIndex::new(&g, Path::new("."));
        let inf = Infer::new(&gi);
        let want = vec![
            SymDim::Param("batch".into()),
            SymDim::Known(64),
            SymDim::Known(16),
        ];
        assert_eq!(inf.shape_value("shape"), Ok(want.clone()));
        assert_eq!(inf.dims("zeros"), Some(want.clone()));
        assert_eq!(inf.zero_fill("zeros"), Some(Ok(want)));
        // The unnamed axis is "dim 2 of x", not a guess.
        assert_eq!(inf.shape_value("l"), Ok(vec![SymDim::Of("x".into(), 2)]));
    }

    #[test]
    fn unknown_shapes_are_explained() {
        let mut g = zero_state_graph(None);
        let mut custom = node("Custom", &["x"], "y");
        custom.domain = "com.example".into();
        g.node.insert(0, custom);
        g.node[1].input[0] = "y".into();
        let gi = GraphIndex::new(&g, Path::new("."));
        let inf = Infer::new(&gi);
        // Shape(y) as a whole needs y's rank; its elements by index do not.
        let e = inf.shape_value("s").unwrap_err();
        assert!(e.to_string().contains("the rank of 'y' is unknown"), "{e}");
        let of = |k| SymDim::Of("y".into(), k);
        assert_eq!(
            inf.shape_value("shape"),
            Ok(vec![of(0), of(1), SymDim::Known(16)])
        );
        let e = inf.elem_type("y").unwrap_err();
        assert!(e.to_string().contains("com.example"), "{e}");
    }

    #[test]
    fn broadcasting_follows_numpy_rules() {
        use SymDim::*;
        let b = || Param("batch".to_string());
        assert_eq!(
            broadcast(
                "v",
                &[vec![b(), Known(1), Known(16)], vec![Known(64), Known(1)]]
            ),
            Some(vec![b(), Known(64), Known(16)])
        );
        // A fixed size beats a symbol (which must be 1 or that size); two symbols give a new one.
        assert_eq!(
            broadcast("v", &[vec![b()], vec![Known(3)]]),
            Some(vec![Known(3)])
        );
        assert_eq!(
            broadcast("v", &[vec![b()], vec![Param("seq".into())]]),
            Some(vec![Of("v".into(), 0)])
        );
        assert_eq!(broadcast("v", &[vec![Known(2)], vec![Known(3)]]), None);
    }

    #[test]
    fn long_chains_do_not_recurse() {
        // 50k unary nodes: dims and type come out without growing the stack.
        let mut nodes = Vec::new();
        let mut prev = "x".to_string();
        for i in 0..50_000 {
            let out = format!("v{i}");
            nodes.push(node(
                if i % 2 == 0 { "Neg" } else { "Cast" },
                &[&prev],
                &out,
            ));
            if i % 2 == 1 {
                nodes.last_mut().unwrap().attribute.push({
                    let mut a = AttributeProto::new();
                    a.name = "to".into();
                    a.i = FLOAT as i64;
                    a
                });
            }
            prev = out;
        }
        let g = graph(vec![input("x", FLOAT, &["batch", "7"])], nodes, vec![]);
        let gi = GraphIndex::new(&g, Path::new("."));
        let inf = Infer::new(&gi);
        assert_eq!(
            inf.dims(&prev),
            Some(vec![SymDim::Param("batch".into()), SymDim::Known(7)])
        );
        assert_eq!(inf.elem_type(&prev), Ok(FLOAT));
    }
}
