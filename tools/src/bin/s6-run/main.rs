//! `s6-run`: runs an ONNX model on the CPU interpreter of s6-onnx (or with the wgpu GPU
//! backend), reading and writing `.npy`, and cross-checks outputs against another run's.

mod generate;
mod polygraphy;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, ValueEnum};
use s6_onnx::interp::{Dim, Session, Tensor};
use s6_onnx::npy;
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const AFTER_HELP: &str = "\
Inputs and outputs are numpy .npy files (float32/float16/float64, int64/int32/..., bool).
Each graph output is written to OUT_DIR/<output name>.npy; characters other than letters,
digits, '.', '_' and '-' become '_', so files never land outside OUT_DIR.

Examples:
  # Run a bundled export and keep its outputs
  s6-run fixtures/models/hf_ts_L12/model.onnx \\
      --input input_ids=fixtures/models/hf_ts_L12/inputs/input_ids.npy --out-dir /tmp/run1

  # Same, taking every input from a folder of <input name>.npy files
  s6-run model.onnx --inputs-dir fixtures/models/hf_ts_L12/inputs --out-dir /tmp/run1

  # Cross-check a patched model (S6Scan nodes) against the original's outputs
  s6-run patched.onnx --inputs-dir inputs/ --out-dir /tmp/run2 --compare /tmp/run1

  # Check TensorRT against the interpreter, with polygraphy's saved outputs
  polygraphy run patched.onnx --trt --plugins libs6plugin.so --load-inputs in.json \\
      --save-outputs trt.json
  s6-run patched.onnx --inputs-dir inputs/ --compare trt.json --atol 1e-3 --rtol 1e-3
  # (or a folder of <output name>.npy files dumped any other way: --compare trt_outputs/)

  # S6Scan and MatMul on the GPU (Metal on macOS, Vulkan elsewhere)
  s6-run patched.onnx --inputs-dir inputs/ --out-dir /tmp/gpu --backend gpu --compare /tmp/run1

  # What does the model want? What can the interpreter run?
  s6-run model.onnx --info
  s6-run --list-ops

  # Generate tokens (prefill once, then one step per token): see s6-run generate --help
  s6-run generate model.onnx --prompt prompt.npy --max-new-tokens 32 --out tokens.npy

--compare prints, per output, the max absolute and relative error, and exits with status 1
when any element is off by more than atol + rtol * |reference| (numpy's allclose rule), a
shape differs, or an output is missing. Progress goes to stderr on runs longer than a
second; RUST_LOG=debug shows more.";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// The CPU interpreter alone.
    Cpu,
    /// wgpu (Metal / Vulkan) for S6Scan and MatMul, the CPU for the rest.
    Gpu,
}

/// Run an ONNX model on the s6plugin interpreter and cross-check its outputs.
#[derive(Parser, Debug)]
#[command(
    name = "s6-run",
    version,
    about = "Run an ONNX model (S6Scan nodes included) on the s6plugin interpreter and cross-check its outputs",
    after_help = AFTER_HELP
)]
struct Args {
    /// The ONNX model (external data is read from its folder).
    #[arg(required_unless_present = "list_ops")]
    model: Option<PathBuf>,

    /// A graph input: NAME=FILE.npy (or just FILE.npy when the model has one input).
    /// Repeat for several inputs.
    #[arg(long = "input", short = 'i', value_name = "NAME=FILE.npy")]
    inputs: Vec<String>,

    /// A folder holding <input name>.npy for every input not given with --input.
    #[arg(long, value_name = "DIR")]
    inputs_dir: Option<PathBuf>,

    /// Folder to write <output name>.npy into (created if missing).
    #[arg(long, short = 'o', value_name = "DIR")]
    out_dir: Option<PathBuf>,

    /// Where to run S6Scan and MatMul.
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    backend: BackendKind,

    /// Compare the outputs with <output name>.npy files in DIR (another run, TensorRT, ...)
    /// or with every runner of a polygraphy `--save-outputs` JSON file.
    #[arg(long, value_name = "DIR|FILE.json")]
    compare: Option<PathBuf>,

    /// Absolute tolerance of --compare.
    #[arg(long, default_value_t = 1e-4)]
    atol: f64,

    /// Relative tolerance of --compare.
    #[arg(long, default_value_t = 1e-4)]
    rtol: f64,

    /// Print the model's inputs and outputs and exit.
    #[arg(long)]
    info: bool,

    /// Print the ops the interpreter supports and exit.
    #[arg(long)]
    list_ops: bool,

    /// No progress or summary lines on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,

    #[command(flatten)]
    limits: s6_tools::limits::Limits,
}

fn main() -> ExitCode {
    // wgpu's adapter probing warns about optional Vulkan extensions: not news.
    s6_tools::logging::init("warn,wgpu_hal=error,wgpu_core=error");
    let mut argv: Vec<_> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "generate") {
        argv.remove(1);
        return match generate::main(argv) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("s6-run generate: error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("s6-run: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn describe_dims(dims: &Option<Vec<Dim>>) -> String {
    match dims {
        None => "?".into(),
        Some(d) => {
            let parts: Vec<String> = d
                .iter()
                .map(|x| match x {
                    Dim::Fixed(n) => n.to_string(),
                    Dim::Symbolic(s) => s.clone(),
                    Dim::Unknown => "?".into(),
                })
                .collect();
            format!("[{}]", parts.join(", "))
        }
    }
}

/// Returns Ok(false) when --compare found a difference above tolerance.
fn run(args: &Args) -> Result<bool> {
    args.limits.apply();
    if args.list_ops {
        for op in s6_onnx::interp::ops::supported_ops() {
            println!("{op}");
        }
        return Ok(true);
    }
    let model_path = args.model.as_deref().context("no MODEL given")?;
    // Memory-mapped: the weights stay in the file until the session reads each one, once,
    // into its tensor (the protobuf parser never copies them).
    let (m, _) = s6_onnx::stream::load(model_path)?;
    let base = model_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut session = Session::new(&m, base)
        .with_context(|| format!("{}: cannot run this model", model_path.display()))?;

    if args.info {
        println!("{} ({} nodes)", model_path.display(), session.num_nodes());
        for i in session.inputs() {
            let dt = i.dtype.map_or("?".to_string(), |d| d.to_string());
            println!("  input  {}: {dt} {}", i.name, describe_dims(&i.dims));
        }
        for o in session.outputs() {
            let dt = o.dtype.map_or("?".to_string(), |d| d.to_string());
            println!("  output {}: {dt} {}", o.name, describe_dims(&o.dims));
        }
        return Ok(true);
    }
    if args.out_dir.is_none() && args.compare.is_none() {
        bail!("nothing to do: give --out-dir DIR to keep the outputs and/or --compare DIR (see --help)");
    }

    let inputs = gather_inputs(args, model_path, &session)?;

    if args.backend == BackendKind::Gpu {
        session = session.with_backend(gpu_backend()?);
    }
    let started = Instant::now();
    // Which backend ran which ops: (backend, op_type) → nodes.
    let placement = std::sync::Arc::new(Mutex::new(BTreeMap::<(String, String), usize>::new()));
    {
        let placement = placement.clone();
        let printer = (!args.quiet).then(progress_printer);
        session = session.with_progress(move |p| {
            if let Ok(mut m) = placement.lock() {
                *m.entry((p.backend.to_string(), p.op_type.to_string()))
                    .or_default() += 1;
            }
            if let Some(print) = &printer {
                print(p);
            }
        });
    }
    let outputs = session.run(&inputs)?;
    let elapsed = started.elapsed();
    if !args.quiet {
        if std::io::stderr().is_terminal() {
            eprint!("\r\x1b[K");
        }
        eprintln!(
            "s6-run: {} nodes in {:.3} s ({} backend)",
            session.num_nodes(),
            elapsed.as_secs_f64(),
            match args.backend {
                BackendKind::Cpu => "cpu",
                BackendKind::Gpu => "gpu",
            }
        );
        let placement = placement.lock().map(|m| m.clone()).unwrap_or_default();
        eprintln!("s6-run: {}", describe_placement(&placement));
    }

    let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
    let files = npy::file_names_for(&names);
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for ((name, t), f) in outputs.iter().zip(&files) {
            let path = dir.join(f);
            npy::write(&path, t)?;
            if !args.quiet {
                eprintln!(
                    "s6-run: wrote {} ({name}: {} {:?})",
                    path.display(),
                    t.dtype(),
                    t.shape
                );
            }
        }
    }
    match &args.compare {
        Some(dir) => compare(&outputs, &files, dir, args.atol, args.rtol),
        None => Ok(true),
    }
}

/// Reads the inputs from --input and --inputs-dir, checking names against the model.
fn gather_inputs(
    args: &Args,
    model_path: &Path,
    session: &Session,
) -> Result<HashMap<String, Tensor>> {
    let wanted: Vec<String> = session.inputs().map(|i| i.name.clone()).collect();
    let mut inputs = HashMap::new();
    for spec in &args.inputs {
        let (name, file) = match spec.split_once('=') {
            Some((n, f)) if !n.is_empty() => (n.to_string(), PathBuf::from(f)),
            _ if wanted.len() == 1 => (wanted[0].clone(), PathBuf::from(spec)),
            _ => bail!(
                "--input {spec}: write NAME=FILE.npy (the model's inputs: {})",
                wanted.join(", ")
            ),
        };
        if !wanted.contains(&name) {
            bail!(
                "--input {spec}: the model has no input '{name}' (its inputs: {})",
                wanted.join(", ")
            );
        }
        let t = npy::read(&file)?;
        if inputs.insert(name.clone(), t).is_some() {
            bail!("input '{name}' given twice");
        }
    }
    if let Some(dir) = &args.inputs_dir {
        for (name, f) in wanted.iter().zip(npy::file_names_for(&wanted)) {
            if inputs.contains_key(name) {
                continue;
            }
            let path = dir.join(&f);
            if path.exists() {
                inputs.insert(name.clone(), npy::read(&path)?);
            }
        }
    }
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|n| !inputs.contains_key(*n))
        .map(|s| s.as_str())
        .collect();
    if !missing.is_empty() {
        bail!(
            "no data for input(s) {} — give --input NAME=FILE.npy or --inputs-dir DIR (s6-run {} --info lists them)",
            missing.join(", "),
            model_path.display()
        );
    }
    Ok(inputs)
}

#[cfg(feature = "gpu")]
fn gpu_backend() -> Result<Box<dyn s6_onnx::interp::Backend>> {
    let b = s6_wgpu::WgpuBackend::new().map_err(|e| {
        anyhow!("--backend gpu: no usable GPU adapter ({e}); on Linux install a Vulkan driver (Mesa's lavapipe works: mesa-vulkan-drivers), or use --backend cpu")
    })?;
    Ok(Box::new(b))
}

#[cfg(not(feature = "gpu"))]
fn gpu_backend() -> Result<Box<dyn s6_onnx::interp::Backend>> {
    Err(anyhow!(
        "--backend gpu: this s6-run was built without the `gpu` feature (cargo build -p s6-tools --features gpu)"
    ))
}

/// Prints "[done/total] node" to stderr at most every half second, after the first second.
/// "ran on wgpu: 4 nodes (MatMul 2, S6Scan 2); on cpu: 101 nodes (Add 11, …)", the GPU first.
fn describe_placement(p: &BTreeMap<(String, String), usize>) -> String {
    let mut backends: Vec<&str> = p.keys().map(|(b, _)| b.as_str()).collect();
    backends.dedup();
    backends.sort_by_key(|b| (*b == "cpu", *b));
    let parts: Vec<String> = backends
        .iter()
        .map(|b| {
            let ops: Vec<(&str, usize)> = p
                .iter()
                .filter(|((pb, _), _)| pb == b)
                .map(|((_, op), n)| (op.as_str(), *n))
                .collect();
            let total: usize = ops.iter().map(|(_, n)| n).sum();
            let list: Vec<String> = ops.iter().map(|(op, n)| format!("{op} {n}")).collect();
            format!("{b}: {total} nodes ({})", list.join(", "))
        })
        .collect();
    if parts.is_empty() {
        "ran no nodes".into()
    } else {
        format!("ran on {}", parts.join("; on "))
    }
}

fn progress_printer() -> impl Fn(&s6_onnx::interp::Progress<'_>) + Send + Sync + 'static {
    let start = Instant::now();
    let last = Mutex::new(Instant::now());
    let tty = std::io::stderr().is_terminal();
    move |p| {
        let now = Instant::now();
        if now - start < Duration::from_secs(1) {
            return;
        }
        let Ok(mut last) = last.lock() else { return };
        if now - *last < Duration::from_millis(if tty { 200 } else { 2000 }) && p.done != p.total {
            return;
        }
        *last = now;
        let pct = 100.0 * p.done as f64 / p.total.max(1) as f64;
        let line = format!(
            "s6-run: [{}/{}] {pct:5.1}% {:.1} s  {} ({})",
            p.done,
            p.total,
            (now - start).as_secs_f64(),
            p.node,
            p.op_type
        );
        if tty {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

/// Compares outputs with a reference — DIR/<file>.npy, or every runner of a polygraphy JSON
/// file — and prints a table per reference; true when all are within tolerance.
fn compare(
    outputs: &[(String, Tensor)],
    files: &[String],
    target: &Path,
    atol: f64,
    rtol: f64,
) -> Result<bool> {
    let refs: Vec<(String, HashMap<String, Tensor>)> = if target.is_dir() {
        let mut map = HashMap::new();
        for ((name, _), f) in outputs.iter().zip(files) {
            let p = target.join(f);
            if p.exists() {
                map.insert(name.clone(), npy::read(&p)?);
            }
        }
        vec![(target.display().to_string(), map)]
    } else if target.extension().is_some_and(|e| e == "json") && target.is_file() {
        polygraphy::read_run_results(target)?
    } else {
        bail!(
            "--compare {}: neither a folder of <output>.npy files nor a polygraphy --save-outputs JSON file",
            target.display()
        );
    };
    let mut all_ok = true;
    for (label, reference) in &refs {
        println!("reference: {label}");
        println!(
            "{:<32} {:>14} {:>12} {:>12} {:>10}  result (atol {atol:e}, rtol {rtol:e})",
            "output", "shape", "max abs", "max rel", "off"
        );
        for (name, got) in outputs {
            let Some(want) = reference.get(name) else {
                println!("{name:<32} {:>14} missing from the reference", "-");
                all_ok = false;
                continue;
            };
            if want.shape != got.shape {
                println!(
                    "{name:<32} {:>14} shape differs: reference {:?}",
                    format!("{:?}", got.shape),
                    want.shape
                );
                all_ok = false;
                continue;
            }
            let r = error_stats(got, want, atol, rtol);
            let ok = r.off == 0;
            all_ok &= ok;
            println!(
                "{name:<32} {:>14} {:>12.3e} {:>12.3e} {:>10}  {}",
                format!("{:?}", got.shape),
                r.max_abs,
                r.max_rel,
                r.off,
                if ok { "ok" } else { "FAIL" }
            );
        }
    }
    if !all_ok {
        eprintln!(
            "s6-run: outputs differ from {} beyond tolerance",
            target.display()
        );
    }
    Ok(all_ok)
}

struct ErrorStats {
    max_abs: f64,
    /// Max |got - ref| / |ref| over elements whose reference is non-zero.
    max_rel: f64,
    /// Elements outside atol + rtol·|ref| (NaN where the reference has none counts).
    off: usize,
}

fn error_stats(got: &Tensor, want: &Tensor, atol: f64, rtol: f64) -> ErrorStats {
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    let mut s = ErrorStats {
        max_abs: 0.0,
        max_rel: 0.0,
        off: 0,
    };
    for (a, b) in g.iter().zip(&w) {
        if a.is_nan() || b.is_nan() || a.is_infinite() || b.is_infinite() {
            if !(a.is_nan() && b.is_nan()) && a != b {
                s.off += 1;
                s.max_abs = f64::INFINITY;
            }
            continue;
        }
        let d = (a - b).abs();
        s.max_abs = s.max_abs.max(d);
        if *b != 0.0 {
            s.max_rel = s.max_rel.max(d / b.abs());
        }
        if d > atol + rtol * b.abs() {
            s.off += 1;
        }
    }
    s
}
