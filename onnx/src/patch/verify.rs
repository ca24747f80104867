//! Cross-checking a patched model against its original through the CPU interpreter.

use crate::interp::{DataType, Dim, Session, Tensor, TensorData};
use onnx_protobuf::ModelProto;
use std::collections::HashMap;
use std::path::Path;

/// Max errors of one output.
#[derive(Clone, Debug)]
pub struct OutputError {
    pub name: String,
    pub max_abs: f64,
    /// max |a - b| / max(|b|, 1e-6) over elements, b the original.
    pub max_rel: f64,
    /// max |a - b| / max |b|: the error relative to the output's scale.
    pub rel_to_scale: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{which} model: {source}")]
    Interp {
        which: &'static str,
        #[source]
        source: crate::interp::InterpError,
    },
    #[error("output '{name}': shapes differ: original {original:?}, patched {patched:?}")]
    Shape {
        name: String,
        original: Vec<usize>,
        patched: Vec<usize>,
    },
    #[error("input '{name}': {reason}")]
    Input { name: String, reason: String },
    #[error("the outputs differ: original {original:?}, patched {patched:?}")]
    Outputs {
        original: Vec<String>,
        patched: Vec<String>,
    },
}

/// The sizes generated inputs take: symbolic dims named `seq_dim` (and an unnamed axis 1, the
/// sequence axis of PyTorch's (B, L, …)) get `seq_len`, every other symbolic dim `batch`.
#[derive(Clone, Debug)]
pub struct Sizes<'a> {
    pub seq_dim: &'a str,
    pub seq_len: usize,
    pub batch: usize,
}

/// Deterministic inputs of the model's own types: integer ids below the vocabulary size (the
/// row count of the embedding table the input indexes), floats in [-1, 1). Symbolic dims take
/// `seq_len` (sequence, named [`super::dynamic::SEQ_DIM`]) or 1.
pub fn make_inputs(
    model: &ModelProto,
    session: &Session,
    seq_len: usize,
    seed: u64,
) -> Result<HashMap<String, Tensor>, VerifyError> {
    let sizes = Sizes {
        seq_dim: super::dynamic::SEQ_DIM,
        seq_len,
        batch: 1,
    };
    make_inputs_at(model, session, &sizes, seed)
}

/// [`make_inputs`] at `sizes`.
pub fn make_inputs_at(
    model: &ModelProto,
    session: &Session,
    sizes: &Sizes,
    seed: u64,
) -> Result<HashMap<String, Tensor>, VerifyError> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut out = HashMap::new();
    for info in session.inputs() {
        let err = |reason: &str| VerifyError::Input {
            name: info.name.clone(),
            reason: reason.into(),
        };
        let dims = info.dims.as_ref().ok_or_else(|| err("rank not declared"))?;
        let shape: Vec<usize> = dims
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Dim::Fixed(n) => *n,
                Dim::Symbolic(s) if s == sizes.seq_dim => sizes.seq_len,
                Dim::Unknown if i == 1 => sizes.seq_len,
                _ => sizes.batch,
            })
            .collect();
        let dtype = info.dtype.ok_or_else(|| err("element type not declared"))?;
        let n = crate::data::checked_len(&shape, dtype.size_bytes())
            .map_err(|e| err(&e.to_string()))?;
        let data = match dtype {
            DataType::I64 | DataType::I32 => {
                let vocab = vocab_of(model, &info.name).unwrap_or(2) as f64;
                let v: Vec<i64> = (0..n).map(|_| (next() * vocab) as i64).collect();
                if dtype == DataType::I64 {
                    TensorData::I64(v)
                } else {
                    TensorData::I32(v.into_iter().map(|x| x as i32).collect())
                }
            }
            d if d.is_float() => TensorData::from_f64_iter(d, (0..n).map(|_| next() * 2.0 - 1.0)),
            _ => return Err(err("unsupported input type")),
        };
        let t = Tensor::new(shape, data).map_err(|e| err(&e.to_string()))?;
        out.insert(info.name.clone(), t);
    }
    Ok(out)
}

/// Rows of the constant table a Gather indexes with `input`.
fn vocab_of(model: &ModelProto, input: &str) -> Option<i64> {
    let g = model.graph.as_ref()?;
    let n = g
        .node
        .iter()
        .find(|n| n.op_type == "Gather" && n.input.get(1).map(String::as_str) == Some(input))?;
    g.initializer
        .iter()
        .find(|t| Some(&t.name) == n.input.first())
        .and_then(|t| t.dims.first().copied())
}

/// Runs `session` on `inputs`.
pub fn run(
    session: &Session,
    inputs: &HashMap<String, Tensor>,
    which: &'static str,
) -> Result<Vec<(String, Tensor)>, VerifyError> {
    session
        .run(inputs)
        .map_err(|source| VerifyError::Interp { which, source })
}

/// Compares outputs position by position: the patch keeps outputs, their names and their order,
/// so a lost, added or renamed output is an error.
pub fn compare(
    original: &[(String, Tensor)],
    patched: &[(String, Tensor)],
) -> Result<Vec<OutputError>, VerifyError> {
    let names = |v: &[(String, Tensor)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    if names(original) != names(patched) {
        return Err(VerifyError::Outputs {
            original: names(original),
            patched: names(patched),
        });
    }
    let mut out = Vec::new();
    for ((name, a), (_, b)) in original.iter().zip(patched) {
        if a.shape != b.shape {
            return Err(VerifyError::Shape {
                name: name.clone(),
                original: a.shape.clone(),
                patched: b.shape.clone(),
            });
        }
        out.push(errors(name, &b.to_f64_vec(), &a.to_f64_vec()));
    }
    Ok(out)
}

/// Errors of `got` against `want`.
pub fn errors(name: &str, got: &[f64], want: &[f64]) -> OutputError {
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    let (mut abs, mut rel) = (0f64, 0f64);
    for (g, w) in got.iter().zip(want) {
        let d = (g - w).abs();
        let d = if d.is_nan() { f64::INFINITY } else { d };
        abs = abs.max(d);
        rel = rel.max(d / w.abs().max(1e-6));
    }
    OutputError {
        name: name.to_string(),
        max_abs: abs,
        max_rel: rel,
        rel_to_scale: if scale > 0.0 { abs / scale } else { abs },
    }
}

/// Runs original and patched on the same generated inputs at `seq_len` and compares.
pub fn verify(
    original: &ModelProto,
    original_dir: &Path,
    patched: &ModelProto,
    patched_dir: &Path,
    seq_len: usize,
) -> Result<Vec<OutputError>, VerifyError> {
    let sizes = Sizes {
        seq_dim: super::dynamic::SEQ_DIM,
        seq_len,
        batch: 1,
    };
    verify_at(original, original_dir, patched, patched_dir, &sizes)
}

/// [`verify`] at `sizes`.
pub fn verify_at(
    original: &ModelProto,
    original_dir: &Path,
    patched: &ModelProto,
    patched_dir: &Path,
    sizes: &Sizes,
) -> Result<Vec<OutputError>, VerifyError> {
    let so = Session::new(original, original_dir).map_err(|source| VerifyError::Interp {
        which: "original",
        source,
    })?;
    let sp = Session::new(patched, patched_dir).map_err(|source| VerifyError::Interp {
        which: "patched",
        source,
    })?;
    let inputs = make_inputs_at(original, &so, sizes, 7)?;
    let a = run(&so, &inputs, "original")?;
    let b = run(&sp, &inputs, "patched")?;
    compare(&a, &b)
}

/// True when some graph input of `session` has a symbolic dim other than the sequence axis
/// (a dynamic batch).
pub fn has_dynamic_batch(session: &Session, seq_dim: &str) -> bool {
    session.inputs().any(|i| {
        i.dims.iter().flatten().enumerate().any(|(ax, d)| match d {
            Dim::Symbolic(s) => s != seq_dim,
            Dim::Unknown => ax != 1,
            Dim::Fixed(_) => false,
        })
    })
}

/// One check per `S6Scan` node: original and patched run on the same generated inputs with
/// each scan's outputs exposed, compared where the original computes the same value (the
/// patch keeps value names, so a scan's `y` is the original's stacked — or gated, skipped —
/// output). Returns (node name, error) for each output that has a counterpart.
pub fn verify_scans(
    original: &ModelProto,
    original_dir: &Path,
    patched: &ModelProto,
    patched_dir: &Path,
    sizes: &Sizes,
) -> Result<Vec<(String, OutputError)>, VerifyError> {
    let og = original.graph.as_ref();
    let produced: std::collections::HashSet<&str> = og
        .into_iter()
        .flat_map(|g| {
            g.node
                .iter()
                .flat_map(|n| n.output.iter().map(String::as_str))
        })
        .collect();
    let mut checks: Vec<(String, String)> = Vec::new();
    for n in patched
        .graph
        .as_ref()
        .into_iter()
        .flat_map(|g| g.node.iter())
    {
        if super::s6node::ScanNode::from_node(n).is_some() {
            for o in &n.output {
                if produced.contains(o.as_str()) {
                    checks.push((n.name.clone(), o.clone()));
                }
            }
        }
    }
    let expose = |m: &ModelProto| {
        let mut m = m.clone();
        if let Some(g) = m.graph.as_mut() {
            for (_, v) in &checks {
                let mut vi = onnx_protobuf::ValueInfoProto::new();
                vi.name = v.clone();
                g.output.push(vi);
            }
        }
        m
    };
    let (om, pm) = (expose(original), expose(patched));
    let so = Session::new(&om, original_dir).map_err(|source| VerifyError::Interp {
        which: "original",
        source,
    })?;
    let sp = Session::new(&pm, patched_dir).map_err(|source| VerifyError::Interp {
        which: "patched",
        source,
    })?;
    let inputs = make_inputs_at(original, &so, sizes, 7)?;
    let a: HashMap<String, Tensor> = run(&so, &inputs, "original")?.into_iter().collect();
    let b: HashMap<String, Tensor> = run(&sp, &inputs, "patched")?.into_iter().collect();
    let mut out = Vec::new();
    for (node, v) in &checks {
        let (Some(x), Some(y)) = (a.get(v), b.get(v)) else {
            continue;
        };
        if x.shape != y.shape {
            return Err(VerifyError::Shape {
                name: v.clone(),
                original: x.shape.clone(),
                patched: y.shape.clone(),
            });
        }
        out.push((node.clone(), errors(v, &y.to_f64_vec(), &x.to_f64_vec())));
    }
    Ok(out)
}
