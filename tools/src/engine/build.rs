//! The engine build: ONNX → (optional fp16 conversion) → profile → TensorRT → engine file.

use super::error::EngineError;
use super::glue::{self, Glue, NetworkLayer, Observer, ProfileDims, Progress, TracingObserver};
use super::libs::{self, BackendChoice, NvInfer, Place};
use super::plugin;
use super::profile::{self, Profile, ProfileArgs};
use super::trtexec::{trtexec_command, Precision, TrtexecPlan};
use super::version::{Backend, Target, TrtVersion};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Precision as asked on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrecisionArg {
    /// TensorRT 11: strongly typed; 8.x–10.x: fp32 (or what `--to-fp16` implies).
    Auto,
    Fp32,
    Fp16,
    Bf16,
    Strong,
}

/// How the loaded version is told the precision. Pure; errors say what to do instead.
pub fn choose_precision(
    arg: PrecisionArg,
    v: Target,
    to_fp16: bool,
) -> Result<Precision, EngineError> {
    let no_flags = || {
        EngineError::Precision(format!(
            "{v} builds strongly typed networks only (no fp16/bf16 builder flags): add --to-fp16 to convert the model (an fp16 export stays fp16 as it is), and drop --precision"
        ))
    };
    Ok(match arg {
        PrecisionArg::Auto if v.strongly_typed_only() => Precision::StronglyTyped,
        // An fp16 ONNX says what it wants: strongly typed where possible, else the flag.
        PrecisionArg::Auto if to_fp16 && v.has_strongly_typed() => Precision::StronglyTyped,
        PrecisionArg::Auto if to_fp16 => Precision::Fp16,
        PrecisionArg::Auto | PrecisionArg::Fp32 if !v.strongly_typed_only() => Precision::Fp32,
        PrecisionArg::Auto | PrecisionArg::Fp32 => Precision::StronglyTyped,
        PrecisionArg::Fp16 if v.has_precision_flags() => Precision::Fp16,
        PrecisionArg::Bf16 if v.has_bf16_flag() => Precision::Bf16,
        PrecisionArg::Bf16 if v.has_precision_flags() => {
            return Err(EngineError::Precision(format!(
                "{v} has no bf16 builder flag (TensorRT 9 or newer has); use --precision fp16"
            )))
        }
        PrecisionArg::Fp16 | PrecisionArg::Bf16 => return Err(no_flags()),
        PrecisionArg::Strong if v.has_strongly_typed() => Precision::StronglyTyped,
        PrecisionArg::Strong => {
            return Err(EngineError::Precision(format!(
            "{v} has no strongly typed networks (TensorRT 10 or newer has); use --precision fp16"
        )))
        }
    })
}

/// Everything `s6-engine build` takes.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub onnx: PathBuf,
    pub engine: PathBuf,
    pub plugin: Option<PathBuf>,
    pub profile: ProfileArgs,
    /// The engine is for `s6-engine generate`: refuse a graph without states.
    pub stateful: bool,
    pub precision: PrecisionArg,
    pub to_fp16: bool,
    pub workspace_mib: Option<u64>,
    pub timing_cache: Option<PathBuf>,
    /// TensorRT-RTX: GPU architectures (SM numbers: 75, 80, 86, 89, 120, 121) to compile for;
    /// empty: TensorRT-RTX's default.
    pub compute_capabilities: Vec<i32>,
    pub trt_lib_dir: Option<PathBuf>,
    pub backend: BackendChoice,
    /// Print the trtexec line for this TensorRT version and stop (no TensorRT needed).
    pub print_only: Option<TrtVersion>,
}

/// What a finished build reports.
#[derive(Debug)]
pub struct BuildSummary {
    pub target: Target,
    pub engine_bytes: usize,
    pub seconds: f64,
    /// The equivalent trtexec line (TensorRT only; empty for TensorRT-RTX).
    pub trtexec: String,
    pub onnx_built: PathBuf,
    /// The parsed network's layers (empty with `print_only`).
    pub layers: Vec<NetworkLayer>,
    /// For a stateful graph: the batch and prompt lengths `s6-engine generate` can run.
    pub generation: Option<profile::GenerationRange>,
}

impl BuildSummary {
    /// Layers that are an instance of `plugin` (e.g. "S6Scan").
    pub fn plugin_layers<'a>(&'a self, plugin: &'a str) -> impl Iterator<Item = &'a NetworkLayer> {
        self.layers
            .iter()
            .filter(move |l| l.plugin() == Some(plugin))
    }
}

/// Prints builder phases on stderr with the elapsed time (TensorRT 10 on reports them).
struct ConsoleObserver {
    start: Instant,
}

impl Observer for ConsoleObserver {
    fn log(&mut self, severity: i32, msg: &str) {
        TracingObserver.log(severity, msg);
    }
    fn progress(&mut self, p: Progress<'_>) {
        let t = self.start.elapsed().as_secs_f64();
        match p {
            Progress::Start {
                phase,
                parent: None,
                steps,
            } => eprintln!("[{t:7.1}s] {phase} ({steps} steps)"),
            Progress::Step { phase, step } => {
                tracing::debug!("[{t:7.1}s] {phase}: step {step}")
            }
            Progress::Finish { phase } => tracing::debug!("[{t:7.1}s] {phase} done"),
            Progress::Start { phase, .. } => tracing::debug!("[{t:7.1}s] {phase}"),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `model.onnx` → `<engine dir>/<engine stem>.fp16.onnx`: beside the output, never over an input.
pub fn fp16_path(engine: &Path) -> PathBuf {
    let stem = engine
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    engine.with_file_name(format!("{stem}.fp16.onnx"))
}

/// The ops libs6plugin serves (`S6Scan`, Mamba; `S6ScanHeads`, Mamba2): a model with any of them
/// needs the plugin, and each of its nodes must become a plugin layer of that op.
pub const PLUGIN_OPS: [&str; 2] = [
    s6_contract::contract::OP_TYPE,
    s6_contract::contract_heads::OP_TYPE,
];

/// How many nodes of each of [`PLUGIN_OPS`] the model's graph has.
fn count_plugin_nodes(model: &s6_onnx::proto::ModelProto) -> [usize; 2] {
    PLUGIN_OPS.map(|op| model.graph.node.iter().filter(|n| n.op_type == op).count())
}

/// Runs the whole build; returns its summary.
pub fn build(opts: &BuildOptions) -> Result<BuildSummary, EngineError> {
    let start = Instant::now();
    if opts.engine == opts.onnx {
        return Err(EngineError::BadArg {
            path: opts.engine.clone(),
            reason: "the engine would overwrite the input model".into(),
        });
    }
    // The model first: argument errors show before any library is loaded.
    let mut model = s6_onnx::model::load(&opts.onnx)?;
    let decls = profile::input_decls(&model);
    let prof: Profile = profile::resolve(&decls, &opts.profile)?;
    let generation = profile::generation_range(&decls, &prof)?;
    if opts.stateful && generation.is_none() {
        return Err(EngineError::BadArg {
            path: opts.onnx.clone(),
            reason: format!(
                "--stateful: not a stateful graph (no input {}); make one with onnx-patch --stateful",
                s6_onnx::patch::stateful::conv_state_in(0)
            ),
        });
    }
    for k in &prof.unused {
        tracing::warn!(
            "size {k:?} given but no input of {} uses it",
            opts.onnx.display()
        );
    }
    let n_nodes = count_plugin_nodes(&model);
    let needs_plugin = n_nodes.iter().any(|&n| n > 0);
    let plugin_path = opts.plugin.clone().or_else(plugin::default_plugin_path);
    if needs_plugin && plugin_path.is_none() {
        return Err(EngineError::BadArg {
            path: opts.onnx.clone(),
            reason:
                "has S6Scan or S6ScanHeads nodes; pass --plugin PATH/libs6plugin.so (none next \
                     to s6-engine)"
                    .into(),
        });
    }
    let plugin_path = plugin_path.filter(|_| needs_plugin);

    let loaded: Option<(NvInfer, Vec<Place>)> = match opts.print_only {
        Some(_) => None,
        None => Some(libs::open(opts.backend, None, opts.trt_lib_dir.as_deref())?),
    };
    let target = match (&loaded, opts.print_only) {
        (Some((n, _)), _) => n.target(),
        (None, Some(v)) => Target::trt(v),
        (None, None) => unreachable!("either printed or loaded"),
    };
    let precision = choose_precision(opts.precision, target, opts.to_fp16)?;
    if opts.timing_cache.is_some() && !target.has_timing_cache() {
        return Err(EngineError::BadArg {
            path: opts.timing_cache.clone().unwrap_or_default(),
            reason: format!("--timing-cache: {target} has no timing cache"),
        });
    }
    if !opts.compute_capabilities.is_empty() && target.backend != Backend::Rtx {
        return Err(EngineError::Precision(format!(
            "--compute-capability is a TensorRT-RTX setting; {target} builds for the GPU it runs on"
        )));
    }

    let onnx_built = if opts.to_fp16 {
        let out = fp16_path(&opts.engine);
        if out == opts.onnx {
            return Err(EngineError::BadArg {
                path: out,
                reason: "the fp16 model would overwrite the input model".into(),
            });
        }
        if opts.print_only.is_none() {
            let r = s6_onnx::fp16::convert(&mut model)
                .map_err(|e| EngineError::Precision(format!("--to-fp16: {e}")))?;
            s6_onnx::model::save(&model, &out)?;
            eprintln!(
                "fp16 model: {} ({} initializers converted, {} kept fp32, {} casts)",
                out.display(),
                r.initializers_converted,
                r.kept_fp32.len(),
                r.casts_inserted
            );
        }
        out
    } else {
        opts.onnx.clone()
    };

    let trtexec = match target.backend {
        Backend::Trt => trtexec_command(&TrtexecPlan {
            version: target.version,
            onnx: &onnx_built,
            engine: &opts.engine,
            plugin: plugin_path.as_deref(),
            profile: &prof.inputs,
            precision,
            workspace_mib: opts.workspace_mib,
            timing_cache: opts.timing_cache.as_deref(),
        }),
        Backend::Rtx => String::new(),
    };
    if !trtexec.is_empty() {
        eprintln!("equivalent trtexec ({target}):\n  {trtexec}");
    }
    let Some((nvinfer, places)) = loaded else {
        return Ok(BuildSummary {
            target,
            engine_bytes: 0,
            seconds: start.elapsed().as_secs_f64(),
            trtexec,
            onnx_built,
            layers: Vec::new(),
            generation,
        });
    };

    let glue = Glue::get(target.backend, "build engines")?;
    glue.check_abi(&nvinfer.loaded.path, target.version)?;
    if !glue.has_onnx_parser() {
        return Err(EngineError::NoParserHeader {
            backend: target.backend.product(),
        });
    }
    let parser = libs::load_parser(&nvinfer, &places)?;
    let _plugin_lib = match &plugin_path {
        Some(p) => plugin::register(glue, &nvinfer, p)?,
        None => None,
    };
    let cache_in = match &opts.timing_cache {
        Some(c) if c.is_file() => Some(std::fs::read(c).map_err(io(c))?),
        _ => None,
    };
    // Static inputs need no profile entry (and an all-static network no profile at all).
    let dims: Vec<ProfileDims> = prof
        .inputs
        .iter()
        .filter(|p| !p.is_static())
        .map(|p| ProfileDims {
            name: &p.name,
            min: &p.min,
            opt: &p.opt,
            max: &p.max,
        })
        .collect();
    let call = glue::BuildCall {
        create_builder: libs::symbol(&nvinfer.loaded, "createInferBuilder_INTERNAL")?,
        create_parser: libs::symbol(&parser, "createNvOnnxParser_INTERNAL")?,
        onnx_path: &onnx_built,
        inputs: &dims,
        precision: match precision {
            Precision::Fp32 => 0,
            Precision::Fp16 => 1,
            Precision::Bf16 => 2,
            Precision::StronglyTyped => 3,
        },
        workspace_bytes: opts.workspace_mib.unwrap_or(0) * 1024 * 1024,
        timing_cache: cache_in.as_deref(),
        compute_capabilities: &opts.compute_capabilities,
    };
    if target.backend == Backend::Trt && target.version.major < 10 {
        eprintln!("building ({target} reports no progress; this takes minutes on a Jetson)...");
    }
    let mut obs = ConsoleObserver { start };
    // SAFETY: the pointers are the named entry points of libraries of the glue's backend whose
    // major matches the headers (check_abi above); `nvinfer` and `parser` stay loaded through
    // the call.
    let built = unsafe { glue.build(&call, &mut obs) }?;
    for (op, n) in PLUGIN_OPS.iter().zip(n_nodes) {
        let plugins = built
            .layers
            .iter()
            .filter(|l| l.plugin() == Some(op))
            .count();
        if plugins != n {
            // The parser turned a node of ours into something else: the engine would not be ours.
            return Err(EngineError::Trt(format!(
                "{}: {n} {op} nodes, but the parsed network has {plugins} {op} plugin layers",
                onnx_built.display()
            )));
        }
    }
    s6_onnx::model::write_atomic(&opts.engine, built.engine.bytes())?;
    if let (Some(path), Some(c)) = (&opts.timing_cache, &built.timing_cache) {
        s6_onnx::model::write_atomic(path, c.bytes())?;
    }
    Ok(BuildSummary {
        target,
        engine_bytes: built.engine.bytes().len(),
        seconds: start.elapsed().as_secs_f64(),
        trtexec,
        onnx_built,
        layers: built.layers,
        generation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_per_version() {
        let v8 = Target::trt(TrtVersion::new(8, 5, 2));
        let v10 = Target::trt(TrtVersion::new(10, 3, 0));
        let v11 = Target::trt(TrtVersion::new(11, 0, 0));
        let rtx = Target::rtx(TrtVersion::new(1, 7, 1));
        use PrecisionArg as A;
        let c = |a, v, f| choose_precision(a, v, f);
        assert_eq!(c(A::Auto, v8, false).unwrap(), Precision::Fp32);
        assert_eq!(c(A::Auto, v8, true).unwrap(), Precision::Fp16);
        assert_eq!(c(A::Auto, v10, true).unwrap(), Precision::StronglyTyped);
        assert_eq!(c(A::Auto, v11, false).unwrap(), Precision::StronglyTyped);
        assert_eq!(c(A::Fp16, v8, false).unwrap(), Precision::Fp16);
        assert_eq!(c(A::Bf16, v10, false).unwrap(), Precision::Bf16);
        assert_eq!(c(A::Fp32, v11, false).unwrap(), Precision::StronglyTyped);
        let e = c(A::Fp16, v11, false).unwrap_err().to_string();
        assert!(e.contains("--to-fp16"), "{e}");
        assert!(c(A::Bf16, v8, false)
            .unwrap_err()
            .to_string()
            .contains("TensorRT 9"));
        assert!(c(A::Strong, v8, false)
            .unwrap_err()
            .to_string()
            .contains("TensorRT 10"));
        // TensorRT-RTX: strongly typed whatever is asked, no builder flags.
        for a in [A::Auto, A::Fp32, A::Strong] {
            for f in [false, true] {
                assert_eq!(c(a, rtx, f).unwrap(), Precision::StronglyTyped);
            }
        }
        let e = c(A::Fp16, rtx, false).unwrap_err().to_string();
        assert!(
            e.starts_with("TensorRT-RTX 1.7.1 builds strongly typed"),
            "{e}"
        );
        assert!(c(A::Bf16, rtx, false).is_err());
    }

    #[test]
    fn fp16_model_goes_beside_the_engine() {
        assert_eq!(
            fp16_path(Path::new("out/m.engine")),
            PathBuf::from("out/m.fp16.onnx")
        );
        assert_eq!(fp16_path(Path::new("m.plan")), PathBuf::from("m.fp16.onnx"));
    }
}
