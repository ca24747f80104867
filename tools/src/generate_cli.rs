//! The command-line side of token generation, shared by `s6-run generate` and `s6-engine
//! generate`: the flags, the prompt (ids or text), the sampler, the progress line, the timing
//! line and the outputs.

use crate::generate::{check_prompt, GenerateError, Generated, Step};
use crate::sample::{Sampler, Sampling};
use s6_onnx::interp::Tensor;
use s6_onnx::npy;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The generation flags both runners take.
#[derive(clap::Args, Debug, Clone)]
pub struct GenerateArgs {
    /// Prompt token ids: .npy of integers, (batch, P) or (P,).
    #[arg(long, value_name = "IDS.npy", conflicts_with = "text")]
    pub prompt: Option<PathBuf>,
    /// Prompt text (needs --tokenizer).
    #[arg(long, requires = "tokenizer")]
    pub text: Option<String>,
    /// A Hugging Face tokenizer.json: tokenizes --text and decodes the output.
    #[arg(long, value_name = "tokenizer.json")]
    pub tokenizer: Option<PathBuf>,
    /// Number of tokens to generate per row.
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: usize,
    /// Write the new ids, int64 (batch, N).
    #[arg(long, value_name = "TOKENS.npy")]
    pub out: Option<PathBuf>,
    /// Write the logits each token was picked from, float32 (batch, N, vocab).
    #[arg(long, value_name = "LOGITS.npy")]
    pub logits_out: Option<PathBuf>,
    /// 0 = greedy (the default); otherwise sample from softmax(logits / T).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sample among the K most likely tokens only (0 = all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Sample among the most likely tokens whose probabilities sum to P (1 = all).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// No progress or timing lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// What the flags give before any model is loaded.
pub struct Frontend {
    pub tokenizer: Option<tokenizers::Tokenizer>,
    /// `(batch, P)` ids.
    pub prompt: Tensor,
    pub sampler: Sampler,
}

fn bad(what: String) -> GenerateError {
    GenerateError::Args(what)
}

impl GenerateArgs {
    /// Reads the tokenizer and the prompt and checks the sampling flags, so that a bad
    /// argument fails before a model or engine is loaded.
    pub fn frontend(&self) -> Result<Frontend, GenerateError> {
        let sampler = Sampler::new(Sampling {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            seed: self.seed,
        })?;
        let tokenizer = match &self.tokenizer {
            Some(p) => Some(
                tokenizers::Tokenizer::from_file(p)
                    .map_err(|e| bad(format!("--tokenizer {}: {e}", p.display())))?,
            ),
            None => None,
        };
        let prompt = match (&self.prompt, &self.text, &tokenizer) {
            (Some(p), _, _) => {
                let t = npy::read(p)?;
                match t.rank() {
                    1 => {
                        let n = t.shape[0];
                        t.reshaped(vec![1, n])?
                    }
                    2 => t,
                    _ => {
                        return Err(bad(format!(
                            "--prompt {}: shape {:?}, need (batch, P) or (P,)",
                            p.display(),
                            t.shape
                        )))
                    }
                }
            }
            (None, Some(text), Some(tok)) => {
                let enc = tok
                    .encode(text.as_str(), false)
                    .map_err(|e| bad(format!("--text: {e}")))?;
                let ids: Vec<i64> = enc.get_ids().iter().map(|&i| i as i64).collect();
                if ids.is_empty() {
                    return Err(bad(format!("--text {text:?} gives no tokens")));
                }
                Tensor::from_i64(vec![1, ids.len()], ids)?
            }
            _ => {
                return Err(bad(
                    "give the prompt: --prompt IDS.npy, or --tokenizer FILE --text \"...\"".into(),
                ))
            }
        };
        check_prompt(&prompt)?;
        Ok(Frontend {
            tokenizer,
            prompt,
            sampler,
        })
    }
}

/// "prompt 2×7 tokens, prefill 3.1 ms; 31 decode steps: 1.20 ms/token, 1666.7 tokens/s
/// (batch 2, WHAT, greedy)": the timing line.
pub fn summary(out: &Generated, prompt: &Tensor, what: &str, greedy: bool) -> String {
    let batch = prompt.shape[0];
    let ms = out.decode.as_secs_f64() * 1e3 / out.decode_steps.max(1) as f64;
    let tps = (batch * out.decode_steps) as f64 / out.decode.as_secs_f64().max(1e-12);
    format!(
        "prompt {batch}×{} tokens, prefill {:.1} ms; {} decode steps: {ms:.2} ms/token, {tps:.1} tokens/s (batch {batch}, {what}, {})",
        prompt.shape[1],
        out.prefill.as_secs_f64() * 1e3,
        out.decode_steps,
        if greedy { "greedy" } else { "sampled" }
    )
}

/// Writes `--out` and `--logits-out` (atomically), then each row's ids (and, with a tokenizer,
/// its text) on `stdout`.
pub fn write_outputs(
    args: &GenerateArgs,
    out: &Generated,
    tokenizer: Option<&tokenizers::Tokenizer>,
    stdout: &mut dyn Write,
) -> Result<(), GenerateError> {
    let batch = out.tokens.len();
    let n = out.tokens.first().map_or(0, Vec::len);
    if let Some(p) = &args.out {
        let flat: Vec<i64> = out.tokens.iter().flatten().copied().collect();
        let tokens = Tensor::from_i64(vec![batch, n], flat)?;
        npy::write(p, &tokens)?;
    }
    if let Some(p) = &args.logits_out {
        let vocab = out
            .logits
            .first()
            .and_then(|r| r.first())
            .map_or(0, Vec::len);
        let flat: Vec<f32> = out.logits.iter().flatten().flatten().copied().collect();
        let t = Tensor::from_f32(vec![batch, n, vocab], flat)?;
        npy::write(p, &t)?;
    }
    let io = |e: std::io::Error| bad(format!("stdout: {e}"));
    for (r, row) in out.tokens.iter().enumerate() {
        let ids: Vec<String> = row.iter().map(|t| t.to_string()).collect();
        writeln!(stdout, "row {r}: {}", ids.join(" ")).map_err(io)?;
        if let Some(tok) = tokenizer {
            let ids: Vec<u32> = row.iter().map(|&t| t as u32).collect();
            let text = tok
                .decode(&ids, true)
                .map_err(|e| bad(format!("decoding: {e}")))?;
            writeln!(stdout, "text {r}: {text}").map_err(io)?;
        }
    }
    Ok(())
}

/// "PROG: generating [k/N] x tokens/s" on stderr: in place on a terminal, every 2 s otherwise.
pub struct Progress {
    prog: &'static str,
    quiet: bool,
    tty: bool,
    last: std::cell::Cell<Option<Instant>>,
}

impl Progress {
    pub fn new(prog: &'static str, quiet: bool) -> Progress {
        Progress {
            prog,
            quiet,
            tty: std::io::stderr().is_terminal(),
            last: std::cell::Cell::new(None),
        }
    }

    pub fn show(&self, s: &Step<'_>) {
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
            "{}: generating [{}/{}] {rate:.1} tokens/s",
            self.prog, s.done, s.total
        );
        if self.tty {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
    }

    pub fn finish(&self) {
        if !self.quiet && self.tty {
            eprint!("\r\x1b[K");
        }
    }
}
