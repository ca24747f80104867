//! `s6-run generate`: token generation over a stateful graph (prefill once, then one decode
//! step per token, states carried), on the CPU or with the wgpu backend.

use anyhow::{Context, Result};
use clap::Parser;
use s6_onnx::interp::Session;
use s6_onnx::model;
use s6_onnx::stateful::StatefulSession;
use s6_tools::generate::{generate, prepare, Prepared};
use s6_tools::generate_cli::{summary, write_outputs, GenerateArgs, Progress};
use std::path::PathBuf;
use std::time::Instant;

const AFTER_HELP: &str = "\
MODEL may be a stateful graph (onnx-patch --stateful), a patched one or a plain torch.onnx
Mamba export: the last two are made stateful in memory first.

Examples:
  # 32 greedy tokens after the ids in prompt.npy (int64, (batch, P) or (P,))
  s6-run generate model.s6.onnx --prompt prompt.npy --max-new-tokens 32 --out tokens.npy

  # Text in, text out, sampled
  s6-run generate model.s6.onnx --tokenizer tokenizer.json --text \"the cat\" \\
      --max-new-tokens 20 --temperature 0.8 --top-p 0.9 --seed 1

Prints the new ids of each row (and their text with --tokenizer) on stdout; the prefill time,
ms/token and tokens/s on stderr.";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BackendKind {
    Cpu,
    Gpu,
}

/// Generate tokens with a Mamba model: prefill once, then one step per token.
#[derive(Parser, Debug)]
#[command(name = "s6-run generate", version, after_help = AFTER_HELP)]
struct Args {
    /// The model (stateful, patched, or a plain export).
    model: PathBuf,
    #[command(flatten)]
    gen: GenerateArgs,
    /// Where to run S6Scan and MatMul.
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    backend: BackendKind,
}

/// Entry point; `argv` starts with the program name, "generate" already removed.
pub fn main(argv: Vec<std::ffi::OsString>) -> Result<()> {
    let args = Args::parse_from(argv);
    let mut front = args.gen.frontend()?;

    let load_start = Instant::now();
    let (mut m, _) = s6_onnx::stream::load(&args.model)?;
    let base = model::base_dir(&args.model);
    let how = prepare(&mut m, &base).with_context(|| format!("{}", args.model.display()))?;
    let mut session = Session::new(&m, &base)
        .with_context(|| format!("{}: cannot run this model", args.model.display()))?;
    // The session holds its own decoded copy of the weights.
    drop(m);
    if args.backend == BackendKind::Gpu {
        session = session.with_backend(super::gpu_backend()?);
    }
    let mut st = StatefulSession::new(session)?;
    let quiet = args.gen.quiet;
    if !quiet {
        let note = match how {
            Prepared::AsGiven => "",
            Prepared::MadeStateful => " (made stateful in memory; onnx-patch --stateful saves it)",
            Prepared::PatchedAndMadeStateful => {
                " (patched and made stateful in memory; onnx-patch --stateful saves it)"
            }
        };
        eprintln!(
            "s6-run: {} layers, loaded in {:.3} s{note}",
            st.layers(),
            load_start.elapsed().as_secs_f64()
        );
    }

    let progress = Progress::new("s6-run", quiet);
    let out = generate(
        &mut st,
        &front.prompt,
        args.gen.max_new_tokens,
        &mut front.sampler,
        args.gen.logits_out.is_some(),
        |s| progress.show(s),
    )?;
    progress.finish();
    if !quiet {
        let what = match args.backend {
            BackendKind::Cpu => "cpu backend",
            BackendKind::Gpu => "gpu backend",
        };
        eprintln!(
            "s6-run: {}",
            summary(&out, &front.prompt, what, front.sampler.is_greedy())
        );
    }
    write_outputs(
        &args.gen,
        &out,
        front.tokenizer.as_ref(),
        &mut std::io::stdout().lock(),
    )?;
    Ok(())
}
