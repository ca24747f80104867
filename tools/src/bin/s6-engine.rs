//! s6-engine: build TensorRT engines from (patched) ONNX models and run them — TensorRT is
//! loaded at run time, so one binary serves the TensorRT major it was built for (8.5 to 11) and
//! TensorRT-RTX 1.x, which builds engines on machines without a GPU.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use s6_tools::engine::build::{self, BuildOptions, PrecisionArg};
use s6_tools::engine::generate::EngineSession;
use s6_tools::engine::glue::Glue;
use s6_tools::engine::libs::BackendChoice;
use s6_tools::engine::profile::GENERATION_DEFAULT;
use s6_tools::engine::profile::{ProfileArgs, SizeSpec};
use s6_tools::engine::run::{self, EngineSource, RunOptions};
use s6_tools::engine::version::{Backend, Target};
use s6_tools::engine::{libs, plugin, EngineError, TrtVersion};
use s6_tools::generate::{generate, GenerateError};
use s6_tools::generate_cli::{summary, write_outputs, GenerateArgs, Progress};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status when TensorRT, the bridge or CUDA is missing (1 is any other failure).
const EXIT_NO_TENSORRT: u8 = 3;

const GENERATE_HELP: &str = "\
Example:
  onnx-patch mamba.onnx -o mamba.st.onnx --stateful
  s6-engine build mamba.st.onnx -o mamba.st.engine --stateful --max batch=1,sequence=1024
  s6-engine generate mamba.st.engine --prompt prompt.npy --max-new-tokens 32 --out tokens.npy
  s6-engine generate mamba.st.engine --tokenizer tokenizer.json --text \"the cat\" \\
      --max-new-tokens 20 --temperature 0.8 --top-p 0.9 --seed 1

Prints the new ids of each row (and their text with --tokenizer) on stdout; the prefill time,
ms/token and tokens/s on stderr. The same loop as s6-run generate, whose tokens it matches
within the engine's precision.";

#[derive(Parser)]
#[command(
    name = "s6-engine",
    version,
    about = "Build and run TensorRT engines for s6plugin models",
    long_about = "Build and run TensorRT engines for s6plugin models.\n\n\
Two backends (--backend): TensorRT (libnvinfer.so.N, libnvonnxparser.so.N: --trt-lib-dir, \
else $TENSORRT_ROOT/lib, else the system library path) and TensorRT-RTX (libtensorrt_rtx.so.1, \
libtensorrt_onnxparser_rtx.so.1: --trt-lib-dir, else $S6_TRT_RTX_LIB_DIR, \
$TENSORRT_RTX_ROOT/lib, the system library path), which builds engines without a GPU. auto \
(the default): TensorRT when found, else TensorRT-RTX. libs6plugin.so is taken from --plugin \
or from beside this executable; it must be the variant built for the backend's headers.\n\n\
Typical use (Jetson Orin Nano, TensorRT 8.6/10.x):\n  \
onnx-patch mamba.onnx -o mamba.s6.onnx\n  \
s6-engine build mamba.s6.onnx -o mamba.engine --min batch=1,sequence=1 \\\n    \
--opt batch=1,sequence=128 --max batch=1,sequence=512 --precision fp16 --workspace-mib 512\n  \
s6-engine run mamba.engine --input input_ids=ids.npy --out-dir trt_out\n  \
s6-run mamba.s6.onnx --input input_ids=ids.npy --out-dir cpu_out --compare trt_out\n\n\
Token generation (a stateful graph, states kept on the GPU):\n  \
onnx-patch mamba.onnx -o mamba.st.onnx --stateful\n  \
s6-engine build mamba.st.onnx -o mamba.st.engine --stateful --max batch=1,sequence=1024\n  \
s6-engine generate mamba.st.engine --prompt ids.npy --max-new-tokens 32 --out tokens.npy\n\n\
Exit status: 0 ok, 1 failure, 3 TensorRT / CUDA / the C++ bridge not available."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum PrecisionCli {
    /// TensorRT 11: strongly typed; 8.x–10.x: fp32 (strongly typed / fp16 with --to-fp16).
    Auto,
    Fp32,
    /// The fp16 builder flag (TensorRT 8.x–10.x).
    Fp16,
    /// The bf16 builder flag (TensorRT 9–10).
    Bf16,
    /// Strongly typed: the ONNX's types decide (TensorRT 10 on).
    Strong,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendCli {
    /// TensorRT when found, else TensorRT-RTX.
    Auto,
    /// TensorRT (libnvinfer.so.N).
    Trt,
    /// TensorRT-RTX (libtensorrt_rtx.so.1).
    Rtx,
}

impl From<BackendCli> for BackendChoice {
    fn from(b: BackendCli) -> Self {
        match b {
            BackendCli::Auto => BackendChoice::Auto,
            BackendCli::Trt => BackendChoice::Only(Backend::Trt),
            BackendCli::Rtx => BackendChoice::Only(Backend::Rtx),
        }
    }
}

#[derive(clap::Args)]
struct TrtArgs {
    /// Which TensorRT to use.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendCli,
    /// Folder holding libnvinfer.so.N and libnvonnxparser.so.N, or libtensorrt_rtx.so.1 and
    /// libtensorrt_onnxparser_rtx.so.1 (only this folder is searched).
    #[arg(long)]
    trt_lib_dir: Option<PathBuf>,
    /// libs6plugin.so to register (default: beside s6-engine).
    #[arg(long)]
    plugin: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build an engine: parse the ONNX, apply the shape profile and precision, serialize.
    Build {
        /// The (patched) ONNX model.
        model: PathBuf,
        /// Engine file to write (atomically).
        #[arg(short, long)]
        output: PathBuf,
        /// Smallest sizes: batch=N,sequence=N (or NAME=N for another dynamic dim_param).
        #[arg(long, required_unless_present = "stateful")]
        min: Option<String>,
        /// Sizes TensorRT tunes for.
        #[arg(long, required_unless_present = "stateful")]
        opt: Option<String>,
        /// Largest sizes.
        #[arg(long)]
        max: String,
        /// An engine for `s6-engine generate` from a stateful graph (onnx-patch --stateful):
        /// --min and --opt default to batch=1,sequence=1 (the decode step), --max gives the
        /// largest batch and prompt; a graph without states is refused.
        #[arg(long)]
        stateful: bool,
        #[arg(long, value_enum, default_value = "auto")]
        precision: PrecisionCli,
        /// Convert the model to fp16 first (written beside the engine as NAME.fp16.onnx); the
        /// S6Scan operands the contract fixes to fp32 stay fp32.
        #[arg(long)]
        to_fp16: bool,
        /// Builder workspace limit in MiB (TensorRT's default: the device's memory).
        #[arg(long)]
        workspace_mib: Option<u64>,
        /// Timing cache: read if present, written back after the build (TensorRT only).
        #[arg(long)]
        timing_cache: Option<PathBuf>,
        /// TensorRT-RTX: GPU architectures to compile for, as SM numbers (75, 80, 86, 89, 120,
        /// 121), comma-separated; default: TensorRT-RTX's own choice.
        #[arg(long, value_delimiter = ',')]
        compute_capability: Vec<i32>,
        /// Only print the trtexec command line for this TensorRT version (e.g. 10.3); no
        /// TensorRT needed.
        #[arg(long, value_name = "VERSION")]
        print_trtexec: Option<String>,
        #[command(flatten)]
        trt: TrtArgs,
    },
    /// Run an engine on .npy inputs; writes OUT_DIR/<output>.npy (half floats widened to fp32).
    Run {
        engine: PathBuf,
        /// NAME=FILE.npy, once per engine input.
        #[arg(long = "input", value_parser = run::parse_input)]
        inputs: Vec<(String, PathBuf)>,
        #[arg(long)]
        out_dir: PathBuf,
        /// A specific runtime library file (e.g. libnvinfer_lean.so.10).
        #[arg(long)]
        nvinfer: Option<PathBuf>,
        /// CUDA device ordinal.
        #[arg(long, default_value_t = 0)]
        device: usize,
        #[command(flatten)]
        trt: TrtArgs,
    },
    /// Generate tokens with an engine of a stateful graph (s6-engine build --stateful): prefill
    /// the prompt once, then one decode step per token, the states kept on the GPU.
    #[command(after_help = GENERATE_HELP)]
    Generate {
        /// The engine (s6-engine build --stateful of an onnx-patch --stateful graph).
        engine: PathBuf,
        #[command(flatten)]
        gen: GenerateArgs,
        /// A specific runtime library file (e.g. libnvinfer_lean.so.10).
        #[arg(long)]
        nvinfer: Option<PathBuf>,
        /// CUDA device ordinal.
        #[arg(long, default_value_t = 0)]
        device: usize,
        #[command(flatten)]
        trt: TrtArgs,
    },
    /// Show the TensorRT found, its version, what this build of s6-engine can do with it, and
    /// (with --plugin) which TensorRT the plugin library was built for.
    Info {
        /// A specific library file instead of the search (e.g. libnvinfer_lean.so.10).
        #[arg(long)]
        nvinfer: Option<PathBuf>,
        #[command(flatten)]
        trt: TrtArgs,
    },
    /// Convert an ONNX model to fp16 (keeping S6Scan's fp32 operands), without TensorRT.
    Fp16 {
        model: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn parse_version(s: &str) -> anyhow::Result<TrtVersion> {
    let mut it = s.split('.').map(|p| p.parse::<u32>());
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b)), p) => {
            Ok(TrtVersion::new(a, b, p.and_then(Result::ok).unwrap_or(0)))
        }
        _ => anyhow::bail!("--print-trtexec {s:?}: expected MAJOR.MINOR[.PATCH], e.g. 10.3"),
    }
}

fn info(nvinfer: Option<PathBuf>, trt: TrtArgs) -> anyhow::Result<()> {
    // A closed stdout (`s6-engine info | head -1`) ends the output, not the process.
    let mut stdout = std::io::stdout().lock();
    macro_rules! out {
        ($($t:tt)*) => {{
            let _ = writeln!(stdout, $($t)*);
        }};
    }
    // The plugin first, before any TensorRT is in the process.
    if let Some(p) = &trt.plugin {
        match plugin::build_info(p)? {
            Some(s) => out!("plugin: {}: {s}", p.display()),
            None => out!(
                "plugin: {}: no s6pluginBuildInfo() (the library predates it: rebuild it to see which TensorRT it is for)",
                p.display()
            ),
        }
    }
    for b in [Backend::Trt, Backend::Rtx] {
        match Glue::get(b, "") {
            Ok(g) => out!(
                "bridge {}: built against {b} {} headers{}",
                b.tag(),
                g.header_version(),
                if g.has_onnx_parser() {
                    ""
                } else {
                    " (no NvOnnxParser.h: cannot build engines)"
                }
            ),
            Err(_) => out!(
                "bridge {}: not built (no {b} headers at build time)",
                b.tag()
            ),
        }
    }
    let (lib, _) = libs::open(
        trt.backend.into(),
        nvinfer.as_deref(),
        trt.trt_lib_dir.as_deref(),
    )?;
    let t: Target = lib.target();
    out!("backend: {} ({})", t.backend.tag(), t.backend);
    out!("{}: {t}", lib.loaded.path);
    out!(
        "precision: {}",
        if t.strongly_typed_only() {
            "strongly typed only (fp16 exports stay fp16; --to-fp16 converts an fp32 model)"
        } else if t.has_bf16_flag() {
            "fp16/bf16 builder flags, or strongly typed"
        } else {
            "fp16 builder flag"
        }
    );
    out!(
        "plugin loading: {}",
        if t.has_load_library() {
            "IPluginRegistry::loadLibrary"
        } else {
            "static registration (dlopen)"
        }
    );
    if t.backend == Backend::Rtx {
        out!("engines run on: compute capability 7.5, 8.0, 8.6, 8.9, 12.x (not 9.0: no H100/H200)");
    }
    match Glue::get(t.backend, "") {
        Ok(g) if g.header_version().major != t.version.major => out!(
            "compatible with this build: no (headers are {} {})",
            t.backend,
            g.header_version()
        ),
        Ok(_) => out!("compatible with this build: yes"),
        Err(_) => out!(
            "compatible with this build: no ({} bridge not built)",
            t.backend
        ),
    }
    Ok(())
}

/// `s6-engine generate`: the arguments first, then TensorRT, then the GPU.
fn generate_cmd(source: EngineSource, gen: &GenerateArgs) -> anyhow::Result<()> {
    let mut front = gen.frontend()?;
    let start = std::time::Instant::now();
    let opened = source.open()?;
    let target = opened.target;
    let mut model =
        EngineSession::new(opened).with_context(|| format!("{}", source.engine.display()))?;
    if !gen.quiet {
        eprintln!(
            "s6-engine: {} layers, {target}, engine loaded in {:.3} s",
            model.plan().layers(),
            start.elapsed().as_secs_f64()
        );
    }
    let progress = Progress::new("s6-engine", gen.quiet);
    let out = generate(
        &mut model,
        &front.prompt,
        gen.max_new_tokens,
        &mut front.sampler,
        gen.logits_out.is_some(),
        |s| progress.show(s),
    )
    .map_err(engine_error)?;
    progress.finish();
    if !gen.quiet {
        let what = format!("{target} engine");
        eprintln!(
            "s6-engine: {}",
            summary(&out, &front.prompt, &what, front.sampler.is_greedy())
        );
    }
    write_outputs(
        gen,
        &out,
        front.tokenizer.as_ref(),
        &mut std::io::stdout().lock(),
    )?;
    Ok(())
}

/// An engine error inside the loop stays an `EngineError`, so the exit status says "no CUDA".
fn engine_error(e: GenerateError) -> anyhow::Error {
    match e {
        GenerateError::Engine(e) => e.into(),
        other => other.into(),
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Build {
            model,
            output,
            min,
            opt,
            max,
            stateful,
            precision,
            to_fp16,
            workspace_mib,
            timing_cache,
            compute_capability,
            print_trtexec,
            trt,
        } => {
            let opts = BuildOptions {
                onnx: model,
                engine: output,
                plugin: trt.plugin,
                profile: ProfileArgs {
                    min: SizeSpec::parse("--min", min.as_deref().unwrap_or(GENERATION_DEFAULT))?,
                    opt: SizeSpec::parse("--opt", opt.as_deref().unwrap_or(GENERATION_DEFAULT))?,
                    max: SizeSpec::parse("--max", &max)?,
                },
                stateful,
                precision: match precision {
                    PrecisionCli::Auto => PrecisionArg::Auto,
                    PrecisionCli::Fp32 => PrecisionArg::Fp32,
                    PrecisionCli::Fp16 => PrecisionArg::Fp16,
                    PrecisionCli::Bf16 => PrecisionArg::Bf16,
                    PrecisionCli::Strong => PrecisionArg::Strong,
                },
                to_fp16,
                workspace_mib,
                timing_cache,
                compute_capabilities: compute_capability,
                trt_lib_dir: trt.trt_lib_dir,
                backend: trt.backend.into(),
                print_only: print_trtexec.as_deref().map(parse_version).transpose()?,
            };
            let s = build::build(&opts)?;
            if opts.print_only.is_none() {
                // Per op of libs6plugin present (S6Scan when none is).
                let mut ours: Vec<String> = build::PLUGIN_OPS
                    .iter()
                    .map(|op| (op, s.plugin_layers(op).count()))
                    .filter(|&(_, n)| n > 0)
                    .map(|(op, n)| format!("{n} of them {op} plugin layers"))
                    .collect();
                if ours.is_empty() {
                    ours.push(format!("0 of them {} plugin layers", build::PLUGIN_OPS[0]));
                }
                eprintln!("network: {} layers, {}", s.layers.len(), ours.join(", "));
                if let Some(g) = &s.generation {
                    eprintln!(
                        "stateful graph: s6-engine generate can run it at batch {}..{}, prompts of {}..{} tokens",
                        g.batch.0, g.batch.1, g.sequence.0, g.sequence.1
                    );
                }
                eprintln!(
                    "wrote {} ({:.1} MiB, {}, {:.1} s)",
                    opts.engine.display(),
                    s.engine_bytes as f64 / (1024.0 * 1024.0),
                    s.target,
                    s.seconds
                );
            }
        }
        Cmd::Run {
            engine,
            inputs,
            out_dir,
            nvinfer,
            device,
            trt,
        } => {
            let written = run::run(&RunOptions {
                source: EngineSource {
                    engine,
                    plugin: trt.plugin,
                    trt_lib_dir: trt.trt_lib_dir,
                    nvinfer,
                    backend: trt.backend.into(),
                    device,
                },
                inputs,
                out_dir,
            })?;
            for p in written {
                eprintln!("wrote {}", p.display());
            }
        }
        Cmd::Generate {
            engine,
            gen,
            nvinfer,
            device,
            trt,
        } => generate_cmd(
            EngineSource {
                engine,
                plugin: trt.plugin,
                trt_lib_dir: trt.trt_lib_dir,
                nvinfer,
                backend: trt.backend.into(),
                device,
            },
            &gen,
        )?,
        Cmd::Info { nvinfer, trt } => info(nvinfer, trt)?,
        Cmd::Fp16 { model, output } => {
            anyhow::ensure!(
                model != output,
                "{}: refusing to overwrite the input",
                output.display()
            );
            let mut m = s6_onnx::model::load(&model)?;
            let r =
                s6_onnx::fp16::convert(&mut m).with_context(|| format!("{}", model.display()))?;
            s6_onnx::model::save(&m, &output)?;
            eprintln!(
                "wrote {} ({} initializers converted; kept fp32: {}; {} casts)",
                output.display(),
                r.initializers_converted,
                r.kept_fp32.join(", "),
                r.casts_inserted
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    s6_tools::logging::init("warn");
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s6-engine: {e:#}");
            let missing = matches!(
                e.downcast_ref::<EngineError>(),
                Some(
                    EngineError::LibNotFound { .. }
                        | EngineError::NoGlue { .. }
                        | EngineError::NoParserHeader { .. }
                        | EngineError::NoCuda
                        | EngineError::NoDevice { .. }
                        | EngineError::MajorMismatch { .. }
                )
            );
            ExitCode::from(if missing { EXIT_NO_TENSORRT } else { 1 })
        }
    }
}
