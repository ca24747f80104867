//! Driving a stateful graph (`onnx-patch --stateful`, `patch::stateful`): its token input,
//! logits output and per-layer states found by name, zero states, and one call that takes
//! the states in and hands the new ones back.

use crate::interp::{DataType, Dim, InterpError, Session, Tensor, TensorData};
use crate::patch::stateful::{conv_state_in, conv_state_out, ssm_state_in, ssm_state_out};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum StatefulError {
    #[error("not a stateful graph: {0} (make one with onnx-patch --stateful)")]
    NotStateful(String),
    #[error("state input '{name}': {reason}")]
    State { name: String, reason: String },
    #[error("token ids: {0}")]
    Ids(String),
    #[error(transparent)]
    Interp(#[from] InterpError),
}

/// One state tensor: graph input and output names, and its shape without the batch axis.
#[derive(Clone, Debug)]
pub struct StateSlot {
    pub input: String,
    pub output: String,
    pub dims: Vec<usize>,
}

/// The states of every layer, in [`StatefulSession::slots`] order, all fp32.
#[derive(Clone, Debug)]
pub struct States(pub Vec<Tensor>);

/// A session over a stateful graph.
pub struct StatefulSession {
    session: Session,
    ids: String,
    ids_dtype: DataType,
    logits: String,
    slots: Vec<StateSlot>,
}

/// True when the session's inputs include the states of layer 0.
pub fn is_stateful(session: &Session) -> bool {
    session.inputs().any(|i| i.name == conv_state_in(0))
}

impl StatefulSession {
    pub fn new(session: Session) -> Result<StatefulSession, StatefulError> {
        let inputs: Vec<_> = session.inputs().cloned().collect();
        let find = |name: &str| inputs.iter().find(|i| i.name == name);
        let mut slots = Vec::new();
        for layer in 0.. {
            let (c, s) = (conv_state_in(layer), ssm_state_in(layer));
            let (Some(ci), Some(si)) = (find(&c), find(&s)) else {
                break;
            };
            for (info, output) in [(ci, conv_state_out(layer)), (si, ssm_state_out(layer))] {
                let err = |reason: &str| StatefulError::State {
                    name: info.name.clone(),
                    reason: reason.to_string(),
                };
                if info.dtype != Some(DataType::F32) {
                    return Err(err("not declared float32"));
                }
                let dims = info.dims.as_ref().ok_or_else(|| err("rank not declared"))?;
                // (batch, channels, steps | N), or (batch, H, P, N) for S6ScanHeads.
                if dims.len() < 3 {
                    return Err(err(
                        "not of rank ≥ 3 (batch, channels, steps or N | H, P, N)",
                    ));
                }
                let fixed: Option<Vec<usize>> = dims[1..]
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => Some(*n),
                        _ => None,
                    })
                    .collect();
                let dims =
                    fixed.ok_or_else(|| err("every axis but batch must have a fixed size"))?;
                if !session.outputs().any(|o| o.name == output) {
                    return Err(StatefulError::NotStateful(format!(
                        "input '{}' has no matching output '{output}'",
                        info.name
                    )));
                }
                slots.push(StateSlot {
                    input: info.name.clone(),
                    output,
                    dims,
                });
            }
        }
        if slots.is_empty() {
            return Err(StatefulError::NotStateful(format!(
                "no input '{}'",
                conv_state_in(0)
            )));
        }
        let state_inputs: Vec<&str> = slots.iter().map(|s| s.input.as_str()).collect();
        let rest: Vec<_> = inputs
            .iter()
            .filter(|i| !state_inputs.contains(&i.name.as_str()))
            .collect();
        let [ids] = rest.as_slice() else {
            return Err(StatefulError::NotStateful(format!(
                "expected one token-id input besides the states, found {:?}",
                rest.iter().map(|i| &i.name).collect::<Vec<_>>()
            )));
        };
        let ids_dtype = match ids.dtype {
            Some(d @ (DataType::I64 | DataType::I32)) => d,
            other => {
                return Err(StatefulError::Ids(format!(
                    "input '{}' is {other:?}, not int64/int32",
                    ids.name
                )))
            }
        };
        let state_outputs: Vec<&str> = slots.iter().map(|s| s.output.as_str()).collect();
        let logits = session
            .outputs()
            .find(|o| !state_outputs.contains(&o.name.as_str()))
            .map(|o| o.name.clone())
            .ok_or_else(|| StatefulError::NotStateful("no logits output".into()))?;
        Ok(StatefulSession {
            ids: ids.name.clone(),
            ids_dtype,
            logits,
            slots,
            session,
        })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn slots(&self) -> &[StateSlot] {
        &self.slots
    }

    /// Number of layers (two state tensors each).
    pub fn layers(&self) -> usize {
        self.slots.len() / 2
    }

    pub fn zero_states(&self, batch: usize) -> States {
        States(
            self.slots
                .iter()
                .map(|s| {
                    let mut shape = vec![batch];
                    shape.extend(&s.dims);
                    Tensor::zeros(DataType::F32, shape)
                })
                .collect(),
        )
    }

    /// Runs the graph on token ids `(batch, L)` (any integer type) from `states`; returns the
    /// logits `(batch, L, vocab)` and the states after the last of the L tokens.
    pub fn step(&self, ids: &Tensor, states: &States) -> Result<(Tensor, States), StatefulError> {
        if ids.rank() != 2 {
            return Err(StatefulError::Ids(format!(
                "shape {:?} is not (batch, L)",
                ids.shape
            )));
        }
        if states.0.len() != self.slots.len() {
            return Err(StatefulError::NotStateful(format!(
                "{} state tensors given, the graph has {}",
                states.0.len(),
                self.slots.len()
            )));
        }
        let mut inputs = HashMap::new();
        inputs.insert(self.ids.clone(), ids.cast(self.ids_dtype));
        for (slot, t) in self.slots.iter().zip(&states.0) {
            inputs.insert(slot.input.clone(), t.clone());
        }
        let mut outs: HashMap<String, Tensor> = self.session.run(&inputs)?.into_iter().collect();
        let mut take = |name: &str| {
            outs.remove(name).ok_or_else(|| {
                StatefulError::NotStateful(format!("output '{name}' was not produced"))
            })
        };
        let logits = take(&self.logits)?;
        let mut next = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            next.push(take(&slot.output)?.cast(DataType::F32));
        }
        Ok((logits, States(next)))
    }
}

/// Steps `lo..hi` of axis 1 of a tensor of rank ≥ 2.
pub fn steps(t: &Tensor, lo: usize, hi: usize) -> Tensor {
    let (outer, len) = (t.shape[0], t.shape[1]);
    let inner: usize = t.shape[2..].iter().product();
    let hi = hi.min(len);
    let lo = lo.min(hi);
    let data = crate::map_data!(&t.data, v => {
        let mut o = Vec::with_capacity(outer * (hi - lo) * inner);
        for b in 0..outer {
            o.extend_from_slice(&v[(b * len + lo) * inner..(b * len + hi) * inner]);
        }
        o
    });
    let mut shape = t.shape.clone();
    shape[1] = hi - lo;
    Tensor { shape, data }
}

/// Concatenates tensors of one type along axis 1.
pub fn concat_steps(parts: &[Tensor]) -> Result<Tensor, StatefulError> {
    let first = parts
        .first()
        .ok_or_else(|| StatefulError::Ids("nothing to concatenate".into()))?;
    let outer = first.shape[0];
    let inner: usize = first.shape[2..].iter().product();
    let total: usize = parts.iter().map(|p| p.shape[1]).sum();
    let mut out: Vec<f64> = Vec::with_capacity(outer * total * inner);
    let vals: Vec<Vec<f64>> = parts.iter().map(|p| p.to_f64_vec()).collect();
    for b in 0..outer {
        for (p, v) in parts.iter().zip(&vals) {
            let l = p.shape[1];
            out.extend_from_slice(&v[b * l * inner..(b + 1) * l * inner]);
        }
    }
    let mut shape = first.shape.clone();
    shape[1] = total;
    Ok(Tensor::new(
        shape,
        TensorData::from_f64_iter(first.dtype(), out.into_iter()),
    )?)
}

/// The logits of the last position of each batch row, as fp32 rows.
pub fn last_logits(logits: &Tensor) -> Result<Vec<Vec<f32>>, StatefulError> {
    let [b, l, v] = logits.shape[..] else {
        return Err(StatefulError::NotStateful(format!(
            "logits of shape {:?}, not (batch, L, vocab)",
            logits.shape
        )));
    };
    if l == 0 {
        return Err(StatefulError::Ids("no tokens in this call".into()));
    }
    let all = logits.to_f32_vec();
    Ok((0..b)
        .map(|r| all[(r * l + l - 1) * v..(r * l + l) * v].to_vec())
        .collect())
}
