//! Token generation over a stateful graph: prefill the prompt once, then one decode step
//! (L = 1) per token, carrying the conv and SSM states between calls.

use crate::sample::{SampleError, Sampler};
use s6_onnx::interp::Tensor;
use s6_onnx::proto::ModelProto;
use s6_onnx::stateful::{last_logits, StatefulError, StatefulSession};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Stateful(#[from] StatefulError),
    #[error(transparent)]
    Sample(#[from] SampleError),
    #[error("prompt: {0}")]
    Prompt(String),
    #[error(transparent)]
    Patch(#[from] s6_onnx::patch::PatchError),
}

/// What a run produced.
#[derive(Clone, Debug, Default)]
pub struct Generated {
    /// `tokens[row]`: the new token ids of each batch row.
    pub tokens: Vec<Vec<i64>>,
    /// `logits[row][step]`: the logits each new token was picked from (when kept).
    pub logits: Vec<Vec<Vec<f32>>>,
    pub prefill: Duration,
    /// Time of the decode steps (one fewer than new tokens: the first comes from the prefill).
    pub decode: Duration,
    pub decode_steps: usize,
}

/// Where a run stands, after each new token.
pub struct Step<'a> {
    pub done: usize,
    pub total: usize,
    /// The token just picked for each row.
    pub tokens: &'a [i64],
    pub elapsed: Duration,
}

/// How the model was made stateful.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prepared {
    /// It already was (`onnx-patch --stateful`).
    AsGiven,
    /// It had `S6Scan` nodes; only the stateful pass ran.
    MadeStateful,
    /// A plain export: patched and made stateful in memory.
    PatchedAndMadeStateful,
}

/// Makes `model` stateful in memory when it is not already.
pub fn prepare(model: &mut ModelProto, base_dir: &Path) -> Result<Prepared, GenerateError> {
    let g = model
        .graph
        .as_ref()
        .ok_or(s6_onnx::patch::PatchError::NoGraph)?;
    let state0 = s6_onnx::patch::stateful::conv_state_in(0);
    if g.input.iter().any(|i| i.name == state0) {
        return Ok(Prepared::AsGiven);
    }
    let has_scan = g.node.iter().any(|n| {
        [
            s6_contract::contract::OP_TYPE,
            s6_contract::contract_heads::OP_TYPE,
        ]
        .contains(&n.op_type.as_str())
    });
    let how = if has_scan {
        Prepared::MadeStateful
    } else {
        s6_onnx::patch::patch_model(model, base_dir)?;
        Prepared::PatchedAndMadeStateful
    };
    s6_onnx::patch::stateful::make_stateful(model, base_dir)?;
    Ok(how)
}

/// Generates `max_new` tokens after `prompt` (`(batch, P)` integer ids, P ≥ 1).
pub fn generate(
    model: &StatefulSession,
    prompt: &Tensor,
    max_new: usize,
    sampler: &mut Sampler,
    keep_logits: bool,
    mut on_step: impl FnMut(&Step<'_>),
) -> Result<Generated, GenerateError> {
    if prompt.rank() != 2 || prompt.shape[1] == 0 || prompt.shape[0] == 0 {
        return Err(GenerateError::Prompt(format!(
            "shape {:?}: need (batch, length) with both ≥ 1",
            prompt.shape
        )));
    }
    if prompt.dtype().is_float() {
        return Err(GenerateError::Prompt(format!(
            "token ids must be integers, got {}",
            prompt.dtype()
        )));
    }
    let batch = prompt.shape[0];
    let mut out = Generated {
        tokens: vec![Vec::with_capacity(max_new.min(4096)); batch],
        logits: vec![Vec::new(); batch],
        ..Default::default()
    };
    if max_new == 0 {
        return Ok(out);
    }
    let start = Instant::now();
    let (mut logits, mut states) = model.step(prompt, &model.zero_states(batch))?;
    out.prefill = start.elapsed();
    let decode_start = Instant::now();
    for done in 1..=max_new {
        let rows = last_logits(&logits)?;
        let mut picked = Vec::with_capacity(batch);
        for (r, row) in rows.into_iter().enumerate() {
            let t = sampler.pick(&row)? as i64;
            picked.push(t);
            out.tokens[r].push(t);
            if keep_logits {
                out.logits[r].push(row);
            }
        }
        on_step(&Step {
            done,
            total: max_new,
            tokens: &picked,
            elapsed: start.elapsed(),
        });
        if done == max_new {
            break;
        }
        let ids = Tensor::from_i64(vec![batch, 1], picked).map_err(StatefulError::from)?;
        (logits, states) = model.step(&ids, &states)?;
        out.decode_steps += 1;
    }
    out.decode = decode_start.elapsed();
    Ok(out)
}
