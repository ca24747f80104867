//! Which engine tensor is which for `s6-engine generate`: in an engine of a stateful graph
//! (`onnx-patch --stateful`), the token-id input, the logits output, and each state input
//! `conv_state.{i}` / `ssm_state.{i}` paired with its output `*_out.{i}`; and the shapes each
//! call sets. Pure (engine I/O names, types and shapes in, a plan out), so that it is tested
//! without a GPU.

use super::error::EngineError;
use super::glue::IoTensor;
use super::run::trt_dtype;
use s6_onnx::interp::DataType;
use s6_onnx::patch::stateful::{conv_state_in, conv_state_out, ssm_state_in, ssm_state_out};

/// One state tensor: the input it is read from, the output its next value is written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateBinding {
    pub input: String,
    pub output: String,
    pub dtype: DataType,
    /// The dims after the batch axis (fixed).
    pub dims: Vec<usize>,
}

impl StateBinding {
    /// Bytes of the tensor for `batch` rows.
    pub fn bytes(&self, batch: usize) -> usize {
        batch * self.dims.iter().product::<usize>() * self.dtype.size_bytes()
    }
}

/// The binding of every engine I/O tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingPlan {
    pub ids: String,
    pub ids_dtype: DataType,
    /// The ids input's engine shape (-1: dynamic).
    pub ids_shape: Vec<i64>,
    pub logits: String,
    pub logits_dtype: DataType,
    /// In layer order: conv then SSM state of layer 0, then layer 1, ...
    pub states: Vec<StateBinding>,
    /// Outputs that are neither logits nor a state (bound to scratch buffers, never read).
    pub other_outputs: Vec<(String, DataType)>,
}

fn not_stateful(reason: String) -> EngineError {
    EngineError::NotStateful(reason)
}

fn dtype_of(t: &IoTensor) -> Result<DataType, EngineError> {
    trt_dtype(t.dtype).ok_or_else(|| EngineError::Tensor {
        tensor: t.name.clone(),
        reason: format!("TensorRT data type {} not handled", t.dtype),
    })
}

fn is_state_name(name: &str) -> bool {
    [
        "conv_state.",
        "ssm_state.",
        "conv_state_out.",
        "ssm_state_out.",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

impl BindingPlan {
    /// Pairs the engine's I/O tensors (in the engine's order).
    pub fn new(io: &[IoTensor]) -> Result<BindingPlan, EngineError> {
        let input = |name: &str| io.iter().find(|t| t.is_input && t.name == name);
        let output = |name: &str| io.iter().find(|t| !t.is_input && t.name == name);
        let mut states = Vec::new();
        for layer in 0.. {
            let (c, s) = (conv_state_in(layer), ssm_state_in(layer));
            match (input(&c), input(&s)) {
                (None, None) => break,
                (Some(_), None) | (None, Some(_)) => {
                    return Err(not_stateful(format!(
                        "layer {layer} has only one of the inputs {c} and {s}"
                    )))
                }
                (Some(ci), Some(si)) => {
                    for (i, out_name) in [(ci, conv_state_out(layer)), (si, ssm_state_out(layer))] {
                        states.push(state_binding(i, output(&out_name), out_name)?);
                    }
                }
            }
        }
        if states.is_empty() {
            return Err(not_stateful(format!("no input {}", conv_state_in(0))));
        }
        let bound_in: Vec<&str> = states.iter().map(|s| s.input.as_str()).collect();
        let bound_out: Vec<&str> = states.iter().map(|s| s.output.as_str()).collect();
        // A state-like name left over (a gap in the layer numbers) would be fed garbage.
        if let Some(t) = io.iter().find(|t| {
            is_state_name(&t.name)
                && !bound_in.contains(&t.name.as_str())
                && !bound_out.contains(&t.name.as_str())
        }) {
            return Err(not_stateful(format!(
                "{} {:?} belongs to no layer 0..{} (the layers must be numbered without gaps)",
                if t.is_input { "input" } else { "output" },
                t.name,
                states.len() / 2
            )));
        }
        let rest: Vec<&IoTensor> = io
            .iter()
            .filter(|t| t.is_input && !bound_in.contains(&t.name.as_str()))
            .collect();
        let [ids] = rest.as_slice() else {
            return Err(not_stateful(format!(
                "expected one token-id input besides the states, found {:?}",
                rest.iter().map(|t| &t.name).collect::<Vec<_>>()
            )));
        };
        let ids_dtype = dtype_of(ids)?;
        if !matches!(ids_dtype, DataType::I64 | DataType::I32) {
            return Err(EngineError::Tensor {
                tensor: ids.name.clone(),
                reason: format!("token ids are {ids_dtype}, not int64/int32"),
            });
        }
        if ids.shape.len() != 2 {
            return Err(EngineError::Tensor {
                tensor: ids.name.clone(),
                reason: format!("shape {:?} is not (batch, sequence)", ids.shape),
            });
        }
        let outputs: Vec<&IoTensor> = io
            .iter()
            .filter(|t| !t.is_input && !bound_out.contains(&t.name.as_str()))
            .collect();
        // "logits" by name (the exports' name), else the first output that is no state.
        let logits = outputs
            .iter()
            .find(|t| t.name == "logits")
            .or(outputs.first())
            .ok_or_else(|| not_stateful("no logits output".into()))?;
        let logits_dtype = dtype_of(logits)?;
        if !logits_dtype.is_float() || logits.shape.len() != 3 {
            return Err(EngineError::Tensor {
                tensor: logits.name.clone(),
                reason: format!(
                    "{logits_dtype} {:?}: logits must be float (batch, sequence, vocab)",
                    logits.shape
                ),
            });
        }
        let mut other_outputs = Vec::new();
        for t in outputs.iter().filter(|t| t.name != logits.name) {
            other_outputs.push((t.name.clone(), dtype_of(t)?));
        }
        Ok(BindingPlan {
            ids: ids.name.clone(),
            ids_dtype,
            ids_shape: ids.shape.clone(),
            logits: logits.name.clone(),
            logits_dtype,
            states,
            other_outputs,
        })
    }

    /// Number of layers (two states each).
    pub fn layers(&self) -> usize {
        self.states.len() / 2
    }

    /// The input shapes of a call of `batch` rows of `len` tokens, ids first, then the states
    /// in order; refused where the engine fixes a size to another value.
    pub fn input_shapes(
        &self,
        batch: usize,
        len: usize,
    ) -> Result<Vec<(&str, Vec<i64>)>, EngineError> {
        let want = [batch as i64, len as i64];
        for (axis, (&e, &w)) in self.ids_shape.iter().zip(&want).enumerate() {
            if e >= 0 && e != w {
                return Err(EngineError::Tensor {
                    tensor: self.ids.clone(),
                    reason: format!(
                        "the engine fixes its {} to {e}; this call has {w} ({} rows of {len} tokens): rebuild it with s6-engine build --stateful",
                        ["batch", "sequence"][axis],
                        batch
                    ),
                });
            }
        }
        let mut out = vec![(self.ids.as_str(), want.to_vec())];
        for s in &self.states {
            let mut dims = vec![batch as i64];
            dims.extend(s.dims.iter().map(|&d| d as i64));
            out.push((s.input.as_str(), dims));
        }
        Ok(out)
    }
}

/// The byte ranges of each row's last position in `(batch, len, vocab)` logits of `elem`-byte
/// values: all that is copied back per call.
pub fn last_rows(
    batch: usize,
    len: usize,
    vocab: usize,
    elem: usize,
) -> Vec<std::ops::Range<usize>> {
    let row = vocab * elem;
    (0..batch)
        .map(|r| {
            let at = (r * len + len - 1) * row;
            at..at + row
        })
        .collect()
}

/// Checks a state input against its output and fixes its per-row dims.
fn state_binding(
    i: &IoTensor,
    o: Option<&IoTensor>,
    out_name: String,
) -> Result<StateBinding, EngineError> {
    let err = |reason: String| EngineError::Tensor {
        tensor: i.name.clone(),
        reason,
    };
    let o = o.ok_or_else(|| not_stateful(format!("input {} has no output {out_name}", i.name)))?;
    let dtype = dtype_of(i)?;
    if !dtype.is_float() {
        return Err(err(format!(
            "a state must be float, the engine has {dtype}"
        )));
    }
    let out_dtype = dtype_of(o)?;
    if out_dtype != dtype {
        return Err(err(format!(
            "{dtype}, but its output {out_name} is {out_dtype}: the output becomes the next call's input"
        )));
    }
    if i.shape.len() != 3 {
        return Err(err(format!(
            "shape {:?} is not (batch, channels, steps or N)",
            i.shape
        )));
    }
    let dims: Option<Vec<usize>> = i.shape[1..]
        .iter()
        .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
        .collect();
    let dims = dims.ok_or_else(|| {
        err(format!(
            "shape {:?}: axes 1 and 2 must have fixed sizes",
            i.shape
        ))
    })?;
    // The output's per-row dims may show as dynamic (-1) in some engines; fixed ones must agree.
    let fits = o.shape.len() == 3
        && o.shape[1..]
            .iter()
            .zip(&dims)
            .all(|(&e, &d)| e < 0 || e as usize == d);
    if !fits {
        return Err(err(format!(
            "shape {:?}, but its output {out_name} is {:?}",
            i.shape, o.shape
        )));
    }
    Ok(StateBinding {
        input: i.name.clone(),
        output: out_name,
        dtype,
        dims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, is_input: bool, dtype: i32, shape: &[i64]) -> IoTensor {
        IoTensor {
            name: name.into(),
            is_input,
            dtype,
            shape: shape.to_vec(),
        }
    }

    /// The I/O of an engine of the 2-layer stateful fixture as TensorRT lists it: inputs, then
    /// outputs, in the ONNX order (d_inner 64, d_conv 4, N 16, vocab 96; TensorRT 8's int32 ids).
    fn two_layers(ids_dtype: i32) -> Vec<IoTensor> {
        let mut io = vec![t("input_ids", true, ids_dtype, &[-1, -1])];
        for l in 0..2 {
            io.push(t(&format!("conv_state.{l}"), true, 0, &[-1, 64, 3]));
            io.push(t(&format!("ssm_state.{l}"), true, 0, &[-1, 64, 16]));
        }
        io.push(t("logits", false, 0, &[-1, -1, 96]));
        for l in 0..2 {
            io.push(t(&format!("conv_state_out.{l}"), false, 0, &[-1, 64, 3]));
            io.push(t(&format!("ssm_state_out.{l}"), false, 0, &[-1, 64, 16]));
        }
        io
    }

    #[test]
    fn pairs_states_and_finds_ids_and_logits() {
        let p = BindingPlan::new(&two_layers(8)).unwrap();
        assert_eq!((p.ids.as_str(), p.ids_dtype), ("input_ids", DataType::I64));
        assert_eq!(
            (p.logits.as_str(), p.logits_dtype),
            ("logits", DataType::F32)
        );
        assert_eq!(p.layers(), 2);
        let pairs: Vec<(&str, &str)> = p
            .states
            .iter()
            .map(|s| (s.input.as_str(), s.output.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("conv_state.0", "conv_state_out.0"),
                ("ssm_state.0", "ssm_state_out.0"),
                ("conv_state.1", "conv_state_out.1"),
                ("ssm_state.1", "ssm_state_out.1"),
            ]
        );
        assert_eq!(p.states[0].dims, [64, 3]);
        assert_eq!(p.states[1].bytes(2), 2 * 64 * 16 * 4);
        assert!(p.other_outputs.is_empty());
        // Prefill of 2 rows × 7 tokens, then a decode step.
        let shapes = p.input_shapes(2, 7).unwrap();
        assert_eq!(shapes[0], ("input_ids", vec![2, 7]));
        assert_eq!(shapes[1], ("conv_state.0", vec![2, 64, 3]));
        assert_eq!(shapes[4], ("ssm_state.1", vec![2, 64, 16]));
        assert_eq!(p.input_shapes(2, 1).unwrap()[0].1, [2, 1]);
        // TensorRT 8 turns int64 ids into int32.
        assert_eq!(
            BindingPlan::new(&two_layers(3)).unwrap().ids_dtype,
            DataType::I32
        );
    }

    #[test]
    fn last_rows_are_each_rows_final_position() {
        // (2, 3, 4) fp32: row 0's last position starts at element 8, row 1's at 20.
        assert_eq!(last_rows(2, 3, 4, 4), [32..48, 80..96]);
        // A decode step: every position is a last one.
        assert_eq!(last_rows(3, 1, 5, 2), [0..10, 10..20, 20..30]);
    }

    #[test]
    fn fixed_sizes_and_extra_outputs() {
        let mut io = two_layers(8);
        io[0].shape = vec![1, -1];
        io.push(t("hidden", false, 1, &[-1, -1, 32]));
        let p = BindingPlan::new(&io).unwrap();
        assert_eq!(p.other_outputs, [("hidden".to_string(), DataType::F16)]);
        assert!(p.input_shapes(1, 5).is_ok());
        let e = p.input_shapes(2, 5).unwrap_err().to_string();
        assert!(e.contains("fixes its batch to 1; this call has 2"), "{e}");
        // Logits found by name even when another output comes first.
        let mut io = two_layers(8);
        io.insert(1, t("aux", false, 0, &[-1, 4]));
        let p = BindingPlan::new(&io).unwrap();
        assert_eq!(p.logits, "logits");
        assert_eq!(p.other_outputs[0].0, "aux");
    }

    #[test]
    fn refuses_what_it_cannot_drive() {
        let msg = |io: &[IoTensor]| BindingPlan::new(io).unwrap_err().to_string();
        // A prefill-only engine (onnx-patch without --stateful).
        let plain = [
            t("input_ids", true, 8, &[-1, -1]),
            t("logits", false, 0, &[-1, -1, 96]),
        ];
        assert!(
            msg(&plain).contains("no input conv_state.0"),
            "{}",
            msg(&plain)
        );
        let io = two_layers(8);
        // A state without its output.
        let e = msg(&io
            .iter()
            .filter(|t| t.name != "ssm_state_out.1")
            .cloned()
            .collect::<Vec<_>>());
        assert!(
            e.contains("input ssm_state.1 has no output ssm_state_out.1"),
            "{e}"
        );
        // Half a layer.
        let e = msg(&io
            .iter()
            .filter(|t| t.name != "ssm_state.0")
            .cloned()
            .collect::<Vec<_>>());
        assert!(e.contains("layer 0 has only one of"), "{e}");
        // A gap in the numbering.
        let mut gap = io.clone();
        gap.push(t("conv_state.3", true, 0, &[-1, 64, 3]));
        assert!(
            msg(&gap).contains("\"conv_state.3\" belongs to no layer 0..2"),
            "{}",
            msg(&gap)
        );
        // Dtype and shape mismatches between a state and its output.
        let mut d = io.clone();
        d.iter_mut()
            .find(|t| t.name == "conv_state_out.0")
            .unwrap()
            .dtype = 1;
        assert!(
            msg(&d).contains("float32, but its output conv_state_out.0 is float16"),
            "{}",
            msg(&d)
        );
        let mut s = io.clone();
        s.iter_mut()
            .find(|t| t.name == "ssm_state_out.0")
            .unwrap()
            .shape = vec![-1, 64, 8];
        assert!(
            msg(&s).contains("but its output ssm_state_out.0 is [-1, 64, 8]"),
            "{}",
            msg(&s)
        );
        let mut dynamic = io.clone();
        dynamic[1].shape = vec![-1, -1, 3];
        assert!(msg(&dynamic).contains("axes 1 and 2 must have fixed sizes"));
        // Float ids, integer logits, a second non-state input.
        let mut f = io.clone();
        f[0].dtype = 0;
        assert!(msg(&f).contains("not int64/int32"));
        let mut l = io.clone();
        l.iter_mut().find(|t| t.name == "logits").unwrap().dtype = 3;
        assert!(msg(&l).contains("logits must be float"));
        let mut two = io;
        two.push(t("attention_mask", true, 8, &[-1, -1]));
        assert!(msg(&two).contains("one token-id input besides the states"));
    }
}
