//! onnx-patch: turns a Mamba ONNX export into a graph with one `S6Scan` node per layer.

use anyhow::{bail, Context, Result};
use clap::Parser;
use s6_onnx::{model, patch};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Replace every selective scan of a Mamba ONNX export with one S6Scan node (domain s6plugin).
///
/// Recognises the unrolled scan of transformers' MambaForCausalLM (TorchScript and dynamo
/// exporters) and of mamba-minimal-style models, folds Δ bias + softplus, the D skip and the z
/// gate into the node, prunes what is left dead and makes the sequence length dynamic.
/// transformers' Mamba2ForCausalLM (dynamo exporter) becomes one S6ScanHeads node per layer.
/// Everything else in the model is kept as it was. External data is read and written
/// (`OUTPUT.data` next to OUTPUT).
///
/// Example:
///   onnx-patch mamba.onnx -o mamba.s6.onnx --verify --report patch.json
#[derive(Parser, Debug)]
#[command(name = "onnx-patch", version)]
struct Args {
    /// The exported model.
    input: PathBuf,
    /// Where to write the patched model (never the input itself).
    #[arg(short, long)]
    output: PathBuf,
    /// Run original and patched through the CPU interpreter on generated inputs and compare;
    /// exits non-zero above --tolerance (a dynamic batch is compared at batch 1 and 2). Also
    /// runs the patched model at a second length.
    #[arg(long)]
    verify: bool,
    /// Largest accepted error relative to the output's scale (max|Δ| / max|original|).
    #[arg(long, default_value_t = 1e-4)]
    tolerance: f64,
    /// Write a JSON report (layers patched, nodes before/after, time, verification).
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    #[command(flatten)]
    limits: s6_tools::limits::Limits,
    /// Also make the graph stateful for token-by-token generation: per layer, inputs
    /// conv_state.I / ssm_state.I and outputs conv_state_out.I / ssm_state_out.I (fp32). With
    /// --verify: one call = the original, and = the prompt fed in pieces with states carried.
    #[arg(long)]
    stateful: bool,
}

fn main() -> ExitCode {
    s6_tools::logging::init("warn");
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("onnx-patch: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<ExitCode> {
    let start = Instant::now();
    args.limits.apply();
    if model::same_file(&args.input, &args.output) {
        bail!(
            "refusing to write over the input: -o {} is {}",
            args.output.display(),
            args.input.display()
        );
    }
    let in_dir = model::base_dir(&args.input);
    // Large initializers stay in the input file (memory-mapped) and are copied file to file on
    // saving: a single-file export is never held in memory.
    let (original, source) = s6_onnx::stream::load(&args.input)?;
    let data_files = model::check_external_data(&original, &in_dir)
        .with_context(|| format!("{}: external data", args.input.display()))?;
    let out_data = model::base_dir(&args.output).join(format!(
        "{}.data",
        args.output
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
    ));
    for f in &data_files {
        if model::same_file(f, &args.output) || model::same_file(f, &out_data) {
            bail!(
                "refusing to write over the input's external data {}",
                f.display()
            );
        }
    }
    if model::same_file(&args.input, &out_data) {
        bail!(
            "refusing to write over the input: {} is the input",
            out_data.display()
        );
    }
    // Only --verify reads the original afterwards: without it, one copy of the model in memory.
    let (original, mut patched) = if args.verify {
        (original.clone(), original)
    } else {
        (Default::default(), original)
    };
    let mut report = patch::patch_model(&mut patched, &in_dir)
        .with_context(|| format!("{}", args.input.display()))?;

    let stateful = if args.stateful {
        Some(
            patch::stateful::make_stateful(&mut patched, &in_dir)
                .with_context(|| format!("{}: --stateful", args.input.display()))?,
        )
    } else {
        None
    };
    if let (Some(_), Some(g)) = (&stateful, patched.graph.as_ref()) {
        report.nodes_after = g.node.len();
        report.initializers_after = g.initializer.len();
    }

    let mut verify_json = serde_json::Value::Null;
    let mut failed = false;
    if args.verify && stateful.is_some() {
        let l = report
            .export_seq_len
            .unwrap_or(patch::stateful_verify::DYNAMIC_SEQ_LEN);
        let (j, f) = verify_stateful(&original, &patched, &in_dir, l, args.tolerance)?;
        verify_json = j;
        failed = f;
    } else if args.verify {
        let l = report.export_seq_len.unwrap_or(1);
        let seq_dim = report
            .seq_dim
            .clone()
            .unwrap_or_else(|| patch::dynamic::SEQ_DIM.to_string());
        let sp = s6_onnx::interp::Session::new(&patched, &in_dir).context("patched model")?;
        // A dynamic batch is verified at batch 2 too, where the original runs there.
        let dynamic_batch = patch::verify::has_dynamic_batch(&sp, &seq_dim);
        let batches: &[usize] = if dynamic_batch { &[1, 2] } else { &[1] };
        let mut parts = Vec::new();
        for &batch in batches {
            let sizes = patch::verify::Sizes {
                seq_dim: &seq_dim,
                seq_len: l,
                batch,
            };
            let errs = match patch::verify::verify_at(&original, &in_dir, &patched, &in_dir, &sizes)
            {
                Ok(e) => e,
                Err(
                    e @ patch::verify::VerifyError::Interp {
                        which: "original", ..
                    },
                ) if batch > 1 => {
                    eprintln!(
                        "verify L={l} batch {batch}: skipped, the original does not run there ({e})"
                    );
                    continue;
                }
                Err(e) => return Err(e).context("--verify"),
            };
            // Batch 1 keeps the plain "L=…" label.
            let at = if batch == 1 {
                format!("L={l}")
            } else {
                format!("L={l} batch {batch}")
            };
            for e in &errs {
                let ok = e.rel_to_scale <= args.tolerance;
                failed |= !ok;
                eprintln!(
                    "verify {at}: {}: max abs {:.3e}, max rel {:.3e}, rel to scale {:.3e} {}",
                    e.name,
                    e.max_abs,
                    e.max_rel,
                    e.rel_to_scale,
                    if ok { "ok" } else { "ABOVE TOLERANCE" }
                );
                parts.push(serde_json::json!({
                    "output": e.name,
                    "seq_len": l,
                    "batch": batch,
                    "max_abs": e.max_abs,
                    "max_rel": e.max_rel,
                    "rel_to_scale": e.rel_to_scale,
                    "ok": ok,
                }));
            }
        }
        // Each scan on its own: its outputs against the values the original computes there.
        let scan_sizes = patch::verify::Sizes {
            seq_dim: &seq_dim,
            seq_len: l,
            batch: 1,
        };
        let per_scan =
            patch::verify::verify_scans(&original, &in_dir, &patched, &in_dir, &scan_sizes)
                .context("--verify (per scan)")?;
        for (node, e) in &per_scan {
            let ok = e.rel_to_scale <= args.tolerance;
            failed |= !ok;
            eprintln!(
                "verify scan '{node}': {}: max abs {:.3e}, rel to scale {:.3e} {}",
                e.name,
                e.max_abs,
                e.rel_to_scale,
                if ok { "ok" } else { "ABOVE TOLERANCE" }
            );
            parts.push(serde_json::json!({
                "scan": node,
                "output": e.name,
                "seq_len": l,
                "max_abs": e.max_abs,
                "max_rel": e.max_rel,
                "rel_to_scale": e.rel_to_scale,
                "ok": ok,
            }));
        }
        // The patched model must also run at another length (and batch, where it is dynamic),
        // where the length is an input axis (vision exports fix L by the image size).
        let has_seq = sp.inputs().any(|i| {
            i.dims
                .iter()
                .flatten()
                .any(|d| matches!(d, s6_onnx::interp::Dim::Symbolic(s) if *s == seq_dim))
        });
        if has_seq {
            let other = if l > 2 { l - 2 } else { l + 3 };
            let sizes = patch::verify::Sizes {
                seq_dim: &seq_dim,
                seq_len: other,
                batch: if dynamic_batch { 3 } else { 1 },
            };
            let inputs = patch::verify::make_inputs_at(&patched, &sp, &sizes, 11)?;
            let outs = patch::verify::run(&sp, &inputs, "patched")?;
            eprintln!(
                "verify L={other} batch {}: patched model runs, output shapes {:?}",
                sizes.batch,
                outs.iter()
                    .map(|(_, t)| t.shape.clone())
                    .collect::<Vec<_>>()
            );
        } else {
            eprintln!("verify: no input has a sequence axis (L is fixed by the input's shape)");
        }
        verify_json = serde_json::Value::Array(parts);
    }

    // A model that failed verification is not written.
    let data = if failed {
        None
    } else {
        s6_onnx::stream::save(&patched, &args.output, &in_dir, &source)
            .with_context(|| format!("writing {}", args.output.display()))?
    };
    report.seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "onnx-patch: {} layer(s) patched, nodes {} -> {}, initializers {} -> {}, export length {}, {:.3} s -> {}{}",
        report.layers_patched,
        report.nodes_before,
        report.nodes_after,
        report.initializers_before,
        report.initializers_after,
        report.export_seq_len.map(|l| l.to_string()).unwrap_or("?".into()),
        report.seconds,
        if failed { "(not written)".to_string() } else { args.output.display().to_string() },
        data.map(|d| format!(" (+ {})", d.display())).unwrap_or_default()
    );
    for w in &report.warnings {
        eprintln!("onnx-patch: warning: {w}");
    }
    if let Some(path) = &args.report {
        let mut json = report.to_json_value();
        json["verify"] = verify_json;
        if let Some(st) = &stateful {
            json["stateful"] = st.to_json_value();
        }
        let mut text = serde_json::to_string_pretty(&json)?;
        text.push('\n');
        model::write_atomic(path, text.as_bytes())?;
    }
    if failed {
        eprintln!(
            "onnx-patch: verification failed (tolerance {:e})",
            args.tolerance
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--verify --stateful`: returns the JSON list and whether a check is above tolerance.
fn verify_stateful(
    original: &s6_onnx::proto::ModelProto,
    stateful: &s6_onnx::proto::ModelProto,
    dir: &std::path::Path,
    l: usize,
    tolerance: f64,
) -> Result<(serde_json::Value, bool)> {
    let v = patch::stateful_verify::verify_stateful(original, dir, stateful, dir, l)
        .context("--verify")?;
    if let Some(note) = &v.batch_note {
        eprintln!("verify stateful: at batch 1 only: {note}");
    }
    let errs = v.checks;
    let mut failed = false;
    let mut parts = Vec::new();
    for e in &errs {
        let ok = e.rel_to_scale <= tolerance;
        failed |= !ok;
        eprintln!(
            "verify stateful L={l} (pieces {:?}): {}: max abs {:.3e}, rel to scale {:.3e} {}",
            patch::stateful_verify::piece_lengths(l),
            e.name,
            e.max_abs,
            e.rel_to_scale,
            if ok { "ok" } else { "ABOVE TOLERANCE" }
        );
        parts.push(serde_json::json!({
            "check": e.name,
            "seq_len": l,
            "batch": v.batch,
            "max_abs": e.max_abs,
            "max_rel": e.max_rel,
            "rel_to_scale": e.rel_to_scale,
            "ok": ok,
        }));
    }
    Ok((serde_json::Value::Array(parts), failed))
}
