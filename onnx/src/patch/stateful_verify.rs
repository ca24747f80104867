//! `--verify` of a stateful graph: a prompt in one call equals the original export's logits,
//! and equals the same prompt fed in pieces (5 + 1 + 1 + …) with the states carried.

use super::verify::{errors, make_inputs_at, OutputError, Sizes, VerifyError};
use crate::interp::{Dim, Session, Tensor};
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

/// The prompt length `--verify --stateful` uses when the export fixes none (a dynamic-length
/// Mamba2 export): long enough for 5 + 1 + … pieces and to cross a chunk of 8.
pub const DYNAMIC_SEQ_LEN: usize = 12;

/// The sizes of the pieces a prompt of `len` tokens is fed in: 5 (or fewer), then ones.
pub fn piece_lengths(len: usize) -> Vec<usize> {
    let first = len.clamp(1, 5).min(len);
    let mut v = vec![first];
    v.extend(std::iter::repeat_n(1, len - first));
    v
}

/// What [`verify_stateful`] found.
#[derive(Clone, Debug)]
pub struct StatefulVerify {
    /// One entry per check.
    pub checks: Vec<OutputError>,
    /// The batch the checks ran at: 2, or 1 where the stateful graph does not run at batch 2
    /// (an export that bakes batch 1 into its Reshapes, e.g. a dynamo export with only the
    /// sequence axis dynamic).
    pub batch: usize,
    /// Why batch 2 was not used, when it was not.
    pub batch_note: Option<String>,
}

/// Runs the three comparisons at `seq_len` with a batch of two prompts (the original, whose
/// batch is fixed by the export, runs once per prompt), or with the first prompt alone when
/// the stateful graph refuses batch 2.
pub fn verify_stateful(
    original: &ModelProto,
    original_dir: &Path,
    stateful: &ModelProto,
    stateful_dir: &Path,
    seq_len: usize,
) -> Result<StatefulVerify, VerifyError> {
    let so = Session::new(original, original_dir).map_err(interp("original"))?;
    let st =
        StatefulSession::new(Session::new(stateful, stateful_dir).map_err(interp("stateful"))?)
            .map_err(stateful_err)?;
    // The original's sequence axis: `seq_len` once patched, or the name a dynamic-length
    // export gave it (axis 1 of its token input); batch 1.
    let seq_dim = so
        .inputs()
        .find_map(|i| match i.dims.as_deref()?.get(1)? {
            Dim::Symbolic(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| super::dynamic::SEQ_DIM.to_string());
    let sizes = Sizes {
        seq_dim: &seq_dim,
        seq_len,
        batch: 1,
    };
    let rows: Vec<_> = [7u64, 8]
        .iter()
        .map(|&seed| make_inputs_at(original, &so, &sizes, seed))
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
    let mut batch_note = None;
    // A graph whose states declare a fixed batch 1 (the export baked it) runs one prompt.
    let state0 = &st.slots()[0].input;
    let declared = st.session().inputs().find(|i| &i.name == state0);
    if declared.and_then(|i| i.dims.as_ref()?.first().cloned()) == Some(Dim::Fixed(1)) {
        batch_note = Some("the stateful graph fixes batch 1 (the export baked it)".to_string());
        ids_rows.truncate(1);
        want.truncate(1);
    }
    let mut batch = ids_rows.len();
    let ids = stack_rows(&ids_rows)?;
    let (ids, want, (full, full_states)) = match st.step(&ids, &st.zero_states(batch)) {
        Ok(r) => (ids, stack_rows(&want)?, r),
        Err(e) if batch > 1 => {
            batch_note = Some(format!(
                "the stateful graph does not run at batch {batch}: {e}"
            ));
            batch = 1;
            let ids = ids_rows.swap_remove(0);
            let r = st.step(&ids, &st.zero_states(1)).map_err(stateful_err)?;
            (ids, want.swap_remove(0), r)
        }
        Err(e) => return Err(stateful_err(e)),
    };
    let zero = st.zero_states(batch);
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
    Ok(StatefulVerify {
        checks: out,
        batch,
        batch_note,
    })
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
