//! Token generation over a stateful graph: prefill the prompt once, then one decode step
//! (L = 1) per token, carrying the conv and SSM states between calls.
//!
//! The loop is written once over [`StepModel`], one call of the graph; the interpreter
//! ([`StatefulSession`], `s6-run generate`) and a TensorRT engine
//! (`engine::generate::EngineSession`, `s6-engine generate`) implement it.

use crate::sample::{SampleError, Sampler};
use s6_onnx::interp::Tensor;
use s6_onnx::proto::ModelProto;
use s6_onnx::stateful::{last_logits, StatefulError, StatefulSession, States};
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
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// A bad flag or file of the command line (`generate_cli`).
    #[error("{0}")]
    Args(String),
    #[error(transparent)]
    Npy(#[from] s6_onnx::npy::NpyError),
    #[error(transparent)]
    Interp(#[from] s6_onnx::interp::InterpError),
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

/// One call of a stateful model: token ids `(batch, L)` and the states before them in; the
/// fp32 logits of each row's last position and the states after the L tokens out.
pub trait StepModel {
    /// Every layer's states; the loop only hands them from one call to the next (host
    /// tensors for the interpreter, device buffers for an engine).
    type States;
    /// The states before the first token (zeros).
    fn zero_states(&mut self, batch: usize) -> Result<Self::States, GenerateError>;
    /// Runs `ids` from `states`; returns `rows[b]`, the logits of row b's last position.
    fn forward(
        &mut self,
        ids: &Tensor,
        states: Self::States,
    ) -> Result<(Vec<Vec<f32>>, Self::States), GenerateError>;
}

impl StepModel for StatefulSession {
    type States = States;

    fn zero_states(&mut self, batch: usize) -> Result<States, GenerateError> {
        Ok(StatefulSession::zero_states(self, batch))
    }

    fn forward(
        &mut self,
        ids: &Tensor,
        states: States,
    ) -> Result<(Vec<Vec<f32>>, States), GenerateError> {
        let (logits, next) = self.step(ids, &states)?;
        Ok((last_logits(&logits)?, next))
    }
}

/// A prompt is `(batch, P)` integer ids with batch, P ≥ 1.
pub fn check_prompt(prompt: &Tensor) -> Result<(), GenerateError> {
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
    Ok(())
}

/// Generates `max_new` tokens after `prompt` (`(batch, P)` integer ids, P ≥ 1).
pub fn generate<M: StepModel>(
    model: &mut M,
    prompt: &Tensor,
    max_new: usize,
    sampler: &mut Sampler,
    keep_logits: bool,
    mut on_step: impl FnMut(&Step<'_>),
) -> Result<Generated, GenerateError> {
    check_prompt(prompt)?;
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
    let zero = model.zero_states(batch)?;
    let (mut rows, mut states) = model.forward(prompt, zero)?;
    out.prefill = start.elapsed();
    let decode_start = Instant::now();
    for done in 1..=max_new {
        if rows.len() != batch {
            return Err(GenerateError::Prompt(format!(
                "the model returned logits for {} rows, the prompt has {batch}",
                rows.len()
            )));
        }
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
        (rows, states) = model.forward(&ids, states)?;
        out.decode_steps += 1;
    }
    out.decode = decode_start.elapsed();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Sampling;

    /// A model whose state is each row's sum of all ids seen and whose logits are one-hot at
    /// that sum mod 5: greedy decoding then follows t₁ = S mod 5, tₖ₊₁ = (S + t₁ + … + tₖ) mod
    /// 5, which only holds if the loop carries the states and feeds each token back.
    struct SumModel {
        calls: Vec<[usize; 2]>,
    }

    impl StepModel for SumModel {
        type States = Vec<i64>;
        fn zero_states(&mut self, batch: usize) -> Result<Vec<i64>, GenerateError> {
            Ok(vec![0; batch])
        }
        fn forward(
            &mut self,
            ids: &Tensor,
            mut states: Vec<i64>,
        ) -> Result<(Vec<Vec<f32>>, Vec<i64>), GenerateError> {
            let (b, l) = (ids.shape[0], ids.shape[1]);
            self.calls.push([b, l]);
            let v = ids.to_i64_vec();
            let rows = (0..b)
                .map(|r| {
                    states[r] += v[r * l..(r + 1) * l].iter().sum::<i64>();
                    let mut row = vec![0.0; 5];
                    row[states[r].rem_euclid(5) as usize] = 1.0;
                    row
                })
                .collect();
            Ok((rows, states))
        }
    }

    #[test]
    fn the_loop_prefills_once_then_steps_one_token_carrying_the_states() {
        let prompt = Tensor::from_i64(vec![2, 3], vec![1, 2, 4, 3, 3, 3]).unwrap();
        let mut m = SumModel { calls: Vec::new() };
        let mut sampler = Sampler::new(Sampling::default()).unwrap();
        let mut seen = Vec::new();
        let out = generate(&mut m, &prompt, 6, &mut sampler, true, |s| {
            seen.push((s.done, s.total, s.tokens.to_vec()))
        })
        .unwrap();
        let expect = |mut sum: i64| {
            (0..6)
                .map(|_| {
                    let t = sum.rem_euclid(5);
                    sum += t;
                    t
                })
                .collect::<Vec<i64>>()
        };
        assert_eq!(out.tokens, vec![expect(7), expect(9)]);
        assert_eq!(m.calls, [[2, 3], [2, 1], [2, 1], [2, 1], [2, 1], [2, 1]]);
        assert_eq!(out.decode_steps, 5);
        assert_eq!(out.logits[1].len(), 6);
        assert_eq!(out.logits[1][0], [0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(seen.len(), 6);
        assert_eq!(seen[5], (6, 6, vec![out.tokens[0][5], out.tokens[1][5]]));

        // Nothing to generate: no call at all.
        let mut m = SumModel { calls: Vec::new() };
        let out = generate(&mut m, &prompt, 0, &mut sampler, false, |_| {}).unwrap();
        assert!(m.calls.is_empty() && out.tokens.iter().all(Vec::is_empty));
        // Bad prompts are refused before any call.
        let floats = Tensor::from_f32(vec![1, 2], vec![1.0, 2.0]).unwrap();
        let e = generate(&mut m, &floats, 3, &mut sampler, false, |_| {}).unwrap_err();
        assert!(e.to_string().contains("must be integers"), "{e}");
        let empty = Tensor::from_i64(vec![1, 0], vec![]).unwrap();
        assert!(generate(&mut m, &empty, 3, &mut sampler, false, |_| {}).is_err());
        assert!(m.calls.is_empty());
    }
}
