//! `s6-run generate`: token generation over a stateful graph (prefill once, then one decode
//! step per token, states carried), on the CPU or with the wgpu backend.

use anyhow::{bail, Context, Result};
use clap::Parser;
use s6_onnx::interp::{Session, Tensor};
use s6_onnx::stateful::StatefulSession;
use s6_onnx::{model, npy};
use s6_tools::generate::{generate, prepare, Prepared, Step};
use s6_tools::sample::{Sampler, Sampling};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    /// Prompt token ids: .npy of integers, (batch, P) or (P,).
    #[arg(long, value_name = "IDS.npy", conflicts_with = "text")]
    prompt: Option<PathBuf>,
    /// Prompt text (needs --tokenizer).
    #[arg(long, requires = "tokenizer")]
    text: Option<String>,
    /// A Hugging Face tokenizer.json: tokenizes --text and decodes the output.
    #[arg(long, value_name = "tokenizer.json")]
    tokenizer: Option<PathBuf>,
    /// Number of tokens to generate per row.
    #[arg(long, default_value_t = 32)]
    max_new_tokens: usize,
    /// Write the new ids, int64 (batch, N).
    #[arg(long, value_name = "TOKENS.npy")]
    out: Option<PathBuf>,
    /// Write the logits each token was picked from, float32 (batch, N, vocab).
    #[arg(long, value_name = "LOGITS.npy")]
    logits_out: Option<PathBuf>,
    /// 0 = greedy (the default); otherwise sample from softmax(logits / T).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Sample among the K most likely tokens only (0 = all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Sample among the most likely tokens whose probabilities sum to P (1 = all).
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to run S6Scan and MatMul.
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    backend: BackendKind,
    /// No progress or timing lines on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Entry point; `argv` starts with the program name, "generate" already removed.
pub fn main(argv: Vec<std::ffi::OsString>) -> Result<()> {
    let args = Args::parse_from(argv);
    let tokenizer = match &args.tokenizer {
        Some(p) => Some(
            tokenizers::Tokenizer::from_file(p)
                .map_err(|e| anyhow::anyhow!("--tokenizer {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let prompt = match (&args.prompt, &args.text, &tokenizer) {
        (Some(p), _, _) => {
            let t = npy::read(p)?;
            match t.rank() {
                1 => t.clone().reshaped(vec![1, t.shape[0]])?,
                2 => t,
                _ => bail!(
                    "--prompt {}: shape {:?}, need (batch, P) or (P,)",
                    p.display(),
                    t.shape
                ),
            }
        }
        (None, Some(text), Some(tok)) => {
            let enc = tok
                .encode(text.as_str(), false)
                .map_err(|e| anyhow::anyhow!("--text: {e}"))?;
            let ids: Vec<i64> = enc.get_ids().iter().map(|&i| i as i64).collect();
            if ids.is_empty() {
                bail!("--text {text:?} gives no tokens");
            }
            Tensor::from_i64(vec![1, ids.len()], ids)?
        }
        _ => bail!("give the prompt: --prompt IDS.npy, or --tokenizer FILE --text \"...\""),
    };

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
    let st = StatefulSession::new(session)?;
    if !args.quiet {
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

    let mut sampler = Sampler::new(Sampling {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
    })?;
    let progress = Progress::new(args.quiet);
    let out = generate(
        &st,
        &prompt,
        args.max_new_tokens,
        &mut sampler,
        args.logits_out.is_some(),
        |s| progress.show(s),
    )?;
    progress.finish();

    let batch = prompt.shape[0];
    let n = args.max_new_tokens;
    if !args.quiet {
        let ms = out.decode.as_secs_f64() * 1e3 / out.decode_steps.max(1) as f64;
        let tps = (batch * out.decode_steps) as f64 / out.decode.as_secs_f64().max(1e-12);
        eprintln!(
            "s6-run: prompt {batch}×{} tokens, prefill {:.1} ms; {} decode steps: {ms:.2} ms/token, {tps:.1} tokens/s (batch {batch}, {} backend, {})",
            prompt.shape[1],
            out.prefill.as_secs_f64() * 1e3,
            out.decode_steps,
            match args.backend {
                BackendKind::Cpu => "cpu",
                BackendKind::Gpu => "gpu",
            },
            if sampler.is_greedy() { "greedy" } else { "sampled" }
        );
    }
    let flat: Vec<i64> = out.tokens.iter().flatten().copied().collect();
    let tokens = Tensor::from_i64(vec![batch, n], flat)?;
    if let Some(p) = &args.out {
        npy::write(p, &tokens)?;
    }
    if let Some(p) = &args.logits_out {
        let vocab = out
            .logits
            .first()
            .and_then(|r| r.first())
            .map_or(0, Vec::len);
        let flat: Vec<f32> = out.logits.iter().flatten().flatten().copied().collect();
        npy::write(p, &Tensor::from_f32(vec![batch, n, vocab], flat)?)?;
    }
    let mut stdout = std::io::stdout().lock();
    for (r, row) in out.tokens.iter().enumerate() {
        let ids: Vec<String> = row.iter().map(|t| t.to_string()).collect();
        writeln!(stdout, "row {r}: {}", ids.join(" "))?;
        if let Some(tok) = &tokenizer {
            let ids: Vec<u32> = row.iter().map(|&t| t as u32).collect();
            let text = tok
                .decode(&ids, true)
                .map_err(|e| anyhow::anyhow!("decoding: {e}"))?;
            writeln!(stdout, "text {r}: {text}")?;
        }
    }
    Ok(())
}

/// "[k/N] x tokens/s" on stderr: in place on a terminal, every 2 s otherwise.
struct Progress {
    quiet: bool,
    tty: bool,
    last: std::cell::Cell<Option<Instant>>,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            tty: std::io::stderr().is_terminal(),
            last: std::cell::Cell::new(None),
        }
    }

    fn show(&self, s: &Step<'_>) {
        if self.quiet {
            return;
        }
        let now = Instant::now();
        let every = Duration::from_millis(if self.tty { 100 } else { 2000 });
        if self.last.get().is_some_and(|t| now - t < every) && s.done != s.total {
            return;
        }
        self.last.set(Some(now));
        let rate = (s.done * s.tokens.len()) as f64 / s.elapsed.as_secs_f64().max(1e-12);
        let line = format!(
            "s6-run: generating [{}/{}] {rate:.1} tokens/s",
            s.done, s.total
        );
        if self.tty {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        if !self.quiet && self.tty {
            eprint!("\r\x1b[K");
        }
    }
}
