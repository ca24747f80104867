//! `--verify` of a stateful graph: a prompt in one call equals the original export's logits,
//! and equals the same prompt fed in pieces (5 + 1 + 1 + …) with the states carried.

use super::verify::{errors, make_inputs, OutputError, VerifyError};
use crate::interp::{Session, Tensor};
use crate::stateful::{concat_steps, steps, StatefulSession, States};
use onnx_protobuf::ModelProto;
use std::path::Path;

fn interp(which: &'static str) -> impl Fn(crate::interp::InterpError) -> VerifyError {
    move |source| VerifyError::Interp { which, source }
}

fn stateful_err(e: crate::stateful::StatefulError) -> VerifyError {
    match e {
        crate::stateful::StatefulError::Interp(source) => VerifyError::Interp {
            which: "stateful",
            source,
        },
        other => VerifyError::Input {
            name: "stateful graph".into(),
            reason: other.to_string(),
        },
    }
}

/// The sizes of the pieces a prompt of `len` tokens is fed in: 5 (or fewer), then ones.
pub fn piece_lengths(len: usize) -> Vec<usize> {
    let first = len.clamp(1, 5).min(len);
    let mut v = vec![first];
    v.extend(std::iter::repeat_n(1, len - first));
    v
}

/// Runs the three comparisons at `seq_len` with a batch of two prompts (the original, whose
/// batch is fixed by the export, runs once per prompt). Returns one error entry per check.
pub fn verify_stateful(
    original: &ModelProto,
    original_dir: &Path,
    stateful: &ModelProto,
    stateful_dir: &Path,
    seq_len: usize,
) -> Result<Vec<OutputError>, VerifyError> {
    let so = Session::new(original, original_dir).map_err(interp("original"))?;
    let st =
        StatefulSession::new(Session::new(stateful, stateful_dir).map_err(interp("stateful"))?)
            .map_err(stateful_err)?;
    let rows: Vec<_> = [7u64, 8]
        .iter()
        .map(|&seed| make_inputs(original, &so, seq_len, seed))
        .collect::<Result<_, _>>()?;
    let mut want = Vec::new();
    let mut ids_rows = Vec::new();
    for inputs in &rows {
        let [(_, ids)] = inputs.iter().collect::<Vec<_>>()[..] else {
            return Err(VerifyError::Input {
                name: "original".into(),
                reason: "a stateful graph is made from a model with one (token id) input".into(),
            });
        };
        ids_rows.push(ids.clone());
        let out = super::verify::run(&so, inputs, "original")?;
        want.push(out[0].1.clone());
    }
    let ids = stack_rows(&ids_rows)?;
    let want = stack_rows(&want)?;

    let zero = st.zero_states(ids.shape[0]);
    let (full, full_states) = st.step(&ids, &zero).map_err(stateful_err)?;
    let mut out = vec![errors(
        "logits: one call vs original",
        &full.to_f64_vec(),
        &want.to_f64_vec(),
    )];

    let mut states = zero;
    let mut parts = Vec::new();
    let mut at = 0;
    for n in piece_lengths(seq_len) {
        let (logits, next) = st
            .step(&steps(&ids, at, at + n), &states)
            .map_err(stateful_err)?;
        parts.push(logits);
        states = next;
        at += n;
    }
    let pieces = concat_steps(&parts).map_err(stateful_err)?;
    out.push(errors(
        "logits: pieces vs one call",
        &pieces.to_f64_vec(),
        &full.to_f64_vec(),
    ));
    out.push(states_error(&states, &full_states));
    Ok(out)
}

/// The worst state error (relative to each state's own scale).
fn states_error(got: &States, want: &States) -> OutputError {
    let mut worst = errors("states: pieces vs one call", &[], &[]);
    for (g, w) in got.0.iter().zip(&want.0) {
        let e = errors(&worst.name, &g.to_f64_vec(), &w.to_f64_vec());
        if e.rel_to_scale > worst.rel_to_scale {
            worst = e;
        }
    }
    worst
}

/// Stacks batch-1 tensors along axis 0.
fn stack_rows(rows: &[Tensor]) -> Result<Tensor, VerifyError> {
    let mut shape = rows[0].shape.clone();
    shape[0] = rows.iter().map(|r| r.shape[0]).sum();
    let vals: Vec<f64> = rows.iter().flat_map(|r| r.to_f64_vec()).collect();
    Tensor::new(
        shape,
        crate::interp::TensorData::from_f64_iter(rows[0].dtype(), vals.into_iter()),
    )
    .map_err(interp("stateful"))
}
