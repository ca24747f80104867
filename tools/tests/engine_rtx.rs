//! Real engines from the bundled exports, built by TensorRT-RTX on the CPU (its default: no GPU
//! needed), through s6-engine's RTX backend.
//!
//! - `S6_TRT_RTX_LIB_DIR`: the folder holding `libtensorrt_rtx.so.1` and
//!   `libtensorrt_onnxparser_rtx.so.1` (scripts/setup.sh installs TensorRT-RTX 1.7.1 there).
//! - `S6_PLUGIN_LIB_RTX`: libs6plugin built against the TensorRT-RTX headers
//!   (`target/plugin-variants/libs6plugin-rtx1.so`), for the patched exports.
//!
//! Without them (or without the RTX bridge) each test prints a SKIP line on stderr;
//! `S6_ENGINE_REQUIRE_TRT=1` (CI) turns a skip into a failure.
//!
//! The check that matters for the plugin: the parsed network has one `S6Scan` (Mamba) or
//! `S6ScanHeads` (Mamba2) IPluginV3 layer per such node of the model, and the serialized engine
//! carries the plugin. An engine cannot be
//! deserialized here (TensorRT-RTX needs a GPU of compute capability 7.5–8.9 or 12.x for that).

#[path = "../../tests/skip/mod.rs"]
mod skip;

use s6_onnx::proto::{tensor_shape_proto::dimension, type_proto};
use s6_tools::engine::build::{self, BuildOptions, BuildSummary, PrecisionArg};
use s6_tools::engine::glue::{Glue, LayerKind};
use s6_tools::engine::libs::{self, BackendChoice};
use s6_tools::engine::profile::{GenerationRange, ProfileArgs, SizeSpec};
use s6_tools::engine::version::{Backend, TrtVersion};
use s6_tools::engine::EngineError;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One TensorRT-RTX build at a time: the builds share one registry in this process.
static SERIAL: Mutex<()> = Mutex::new(());

fn skip(why: &str) {
    skip::skip("S6_ENGINE_REQUIRE_TRT", why);
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The RTX library folder, when it and the RTX bridge are there.
fn rtx() -> Option<PathBuf> {
    if !Glue::compiled(Backend::Rtx) {
        skip("s6-tools was built without the TensorRT-RTX bridge (set S6_TRT_RTX_INCLUDE_DIR)");
        return None;
    }
    match env_path("S6_TRT_RTX_LIB_DIR") {
        Some(d) if d.join("libtensorrt_rtx.so.1").is_file() => Some(d),
        _ => {
            skip("S6_TRT_RTX_LIB_DIR is not set to a folder holding libtensorrt_rtx.so.1");
            None
        }
    }
}

/// libs6plugin for TensorRT-RTX, when given.
fn rtx_plugin() -> Option<PathBuf> {
    match env_path("S6_PLUGIN_LIB_RTX") {
        Some(p) if p.is_file() => Some(p),
        Some(p) => panic!("S6_PLUGIN_LIB_RTX={}: no such file", p.display()),
        None => {
            skip("S6_PLUGIN_LIB_RTX is not set (libs6plugin built for TensorRT-RTX: target/plugin-variants/libs6plugin-rtx1.so)");
            None
        }
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("s6-engine-rtx-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sizes(s: &str) -> SizeSpec {
    SizeSpec::parse("--min", s).unwrap()
}

fn options(onnx: &Path, engine: &Path, plugin: Option<&Path>, max: &str) -> BuildOptions {
    BuildOptions {
        onnx: onnx.to_path_buf(),
        engine: engine.to_path_buf(),
        plugin: plugin.map(Path::to_path_buf),
        profile: ProfileArgs {
            min: sizes("batch=1,sequence=1"),
            opt: sizes("batch=1,sequence=12"),
            max: sizes(max),
        },
        stateful: false,
        precision: PrecisionArg::Auto,
        to_fp16: false,
        workspace_mib: None,
        timing_cache: None,
        compute_capabilities: Vec::new(),
        trt_lib_dir: env_path("S6_TRT_RTX_LIB_DIR"),
        backend: BackendChoice::Only(Backend::Rtx),
        print_only: None,
    }
}

fn count_bytes(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Builds, and checks what every build must satisfy: the file is the serialized engine, by
/// TensorRT-RTX 1.x; returns the summary and the engine's bytes.
fn build_checked(opts: &BuildOptions) -> (BuildSummary, Vec<u8>) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = build::build(opts).unwrap_or_else(|e| panic!("{}: {e}", opts.onnx.display()));
    assert_eq!(s.target.backend, Backend::Rtx);
    assert_eq!(s.target.version.major, 1, "{}", s.target);
    assert!(s.target.version >= TrtVersion::new(1, 0, 0));
    let bytes = std::fs::read(&opts.engine).unwrap();
    assert_eq!(bytes.len(), s.engine_bytes);
    // A plan of a 2-layer model is hundreds of KiB (1.3–2.5 MiB seen); a few bytes are an error.
    assert!(bytes.len() > 100_000, "{} bytes", bytes.len());
    assert!(s.layers.len() > 10, "{} layers", s.layers.len());
    println!(
        "{}: {} layers, {} bytes, {:.2} s",
        opts.onnx.display(),
        s.layers.len(),
        bytes.len(),
        s.seconds
    );
    (s, bytes)
}

/// The unpatched exports need no plugin: proves the backend on one export per exporter and
/// model family (the other lengths are the same graphs), at the length each was exported with
/// (their input shapes are fixed).
#[test]
fn unpatched_exports_build_cpu_only() {
    let Some(_) = rtx() else { return };
    let dir = tmpdir("plain");
    for fixture in PATCHED.iter().chain(&["models/mamba2_ts_L8"]) {
        let onnx = fixtures().join(fixture).join("model.onnx");
        let engine = dir.join(fixture.replace('/', "_") + ".engine");
        let (s, bytes) = build_checked(&options(&onnx, &engine, None, "batch=1,sequence=12"));
        assert!(s.layers.iter().all(|l| l.kind == LayerKind::Builtin));
        assert_eq!(count_bytes(&bytes, b"S6Scan"), 0);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The exports onnx-patch turns into S6Scan models: TorchScript and dynamo, fp32 and fp16,
/// transformers' Mamba and mamba-minimal.
const PATCHED: [&str; 6] = [
    "models/hf_ts_L12",
    "models/hf_dynamo_L12",
    "models/minimal_ts_L12",
    "models/minimal_dynamo_L12",
    "fp16/hf_ts_fp16_L6",
    "fp16/hf_dynamo_fp16_L6",
];

/// Patches `fixture` into `dir` and makes the input's batch axis symbolic: the exports were
/// traced at batch 1 and keep that fixed, while onnx-patch makes the sequence dynamic.
fn patched(fixture: &str, dir: &Path) -> (PathBuf, usize) {
    let out = dir.join(fixture.replace('/', "_") + ".s6.onnx");
    let o = Command::new(env!("CARGO_BIN_EXE_onnx-patch"))
        .arg(fixtures().join(fixture).join("model.onnx"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut m = s6_onnx::model::load(&out).unwrap();
    let g = m.graph.mut_or_insert_default();
    let scans = g.node.iter().filter(|n| n.op_type == "S6Scan").count();
    assert_eq!(
        g.input.len(),
        1,
        "{fixture}: one input (input_ids) expected"
    );
    let Some(type_proto::Value::TensorType(t)) = &mut g.input[0].type_.as_mut().unwrap().value
    else {
        panic!("{fixture}: tensor input expected")
    };
    let dims = &mut t.shape.as_mut().unwrap().dim;
    assert_eq!(dims.len(), 2, "{fixture}: input_ids is [batch, sequence]");
    assert!(
        matches!(dims[1].value, Some(dimension::Value::DimParam(_))),
        "{fixture}: onnx-patch left the sequence fixed"
    );
    dims[0].value = Some(dimension::Value::DimParam("batch".into()));
    s6_onnx::model::save(&m, &out).unwrap();
    (out, scans)
}

#[test]
fn every_patched_export_builds_with_the_plugin_and_dynamic_shapes() {
    let Some(_) = rtx() else { return };
    let Some(plugin) = rtx_plugin() else { return };
    let dir = tmpdir("patched");
    for fixture in PATCHED {
        let (onnx, scans) = patched(fixture, &dir);
        assert_eq!(scans, 2, "{fixture}: two Mamba layers, two S6Scan nodes");
        let engine = onnx.with_extension("engine");
        let (s, bytes) = build_checked(&options(
            &onnx,
            &engine,
            Some(&plugin),
            "batch=4,sequence=256",
        ));
        let layers: Vec<_> = s.plugin_layers("S6Scan").collect();
        assert_eq!(layers.len(), scans, "{fixture}: {:?}", s.layers);
        // Strongly typed: an fp16 export stays fp16 (the scan's output y has u's type).
        let dtype = if fixture.starts_with("fp16/") { 1 } else { 0 };
        for l in &layers {
            assert_eq!(l.kind, LayerKind::PluginV3("S6Scan".into()), "{fixture}");
            assert_eq!(l.output_dtype, Some(dtype), "{fixture}: {}", l.name);
        }
        // No other plugin layer: everything else is TensorRT's own.
        assert_eq!(
            s.layers.iter().filter(|l| l.plugin().is_some()).count(),
            scans
        );
        // The serialized engine carries the plugin (its creator's name for deserialization).
        assert!(count_bytes(&bytes, b"S6Scan") >= scans, "{fixture}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Patches `fixture` as a user would (`extra`: more onnx-patch flags) and returns the patched
/// file and its S6Scan count; the batch stays as the export (or onnx-patch) made it.
fn patched_as_is(fixture: &str, dir: &Path, extra: &[&str]) -> (PathBuf, usize) {
    let out = dir.join(fixture.replace('/', "_") + ".s6.onnx");
    let o = Command::new(env!("CARGO_BIN_EXE_onnx-patch"))
        .arg(fixtures().join(fixture).join("model.onnx"))
        .arg("-o")
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{fixture}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let m = s6_onnx::model::load(&out).unwrap();
    let scans = m.graph.as_ref().map_or(0, |g| {
        g.node.iter().filter(|n| n.op_type == "S6Scan").count()
    });
    (out, scans)
}

/// The other exports the patcher takes — `dynamic_axes` TorchScript and dynamic-batch dynamo
/// exports, the vision blocks (SS2D's grouped scan, Vim's two scans, MambaVision; fp32 and
/// fp16; batch dynamic, L fixed by the image), and the stateful graph for generation (states as
/// inputs and outputs, the scans with initial and last state) — each become an engine whose
/// S6Scan nodes are IPluginV3 layers.
#[test]
fn dynamic_vision_and_stateful_exports_build_with_the_plugin() {
    let Some(_) = rtx() else { return };
    let Some(plugin) = rtx_plugin() else { return };
    let dir = tmpdir("more");
    let lm = "batch=4,sequence=64";
    let vision = "batch=4";
    let cases: [(&str, &[&str], &str, &str); 20] = [
        ("dynamic/hf_ts_dynbs_b1_L6", &[], "batch=1,sequence=1", lm),
        (
            "dynamic/hf_ts_dynbs_op14_b2_L6",
            &[],
            "batch=1,sequence=1",
            lm,
        ),
        ("dynamic/hf_ts_dynb_b2_L6", &[], "batch=1,sequence=1", lm),
        (
            "dynamic/hf_ts_dynseq_b1_L6",
            &[],
            "batch=1,sequence=1",
            "batch=1,sequence=64",
        ),
        (
            "dynamic/minimal_ts_dynbs_b2_L6",
            &[],
            "batch=1,sequence=1",
            lm,
        ),
        (
            "dynamic/hf_dynamo_dynb_b2_L6",
            &[],
            "batch=1,sequence=1",
            lm,
        ),
        ("vision/ss2d_4x4", &[], "batch=1", vision),
        ("vision/ss2d_3x5", &[], "batch=1", vision),
        ("vision/ss2d_cl_expand_4x4", &[], "batch=1", vision),
        ("vision/ss2d_dynamo_4x4", &[], "batch=1", vision),
        ("vision/ss2d_x2_3x5", &[], "batch=1", vision),
        ("vision/ss2d_fp16_4x4", &[], "batch=1", vision),
        ("vision/vim_8x8", &[], "batch=1", vision),
        ("vision/vim_6x10", &[], "batch=1", vision),
        ("vision/vim_dynamo_8x8", &[], "batch=1", vision),
        ("vision/vim_fp16_8x8", &[], "batch=1", vision),
        ("vision/mambavision_4x6", &[], "batch=1", vision),
        (
            "models/hf_ts_L12",
            &["--stateful"],
            "batch=1,sequence=1",
            lm,
        ),
        (
            "models/minimal_ts_L12",
            &["--stateful"],
            "batch=1,sequence=1",
            lm,
        ),
        (
            "models/hf_dynamo_L12",
            &["--stateful"],
            "batch=1,sequence=1",
            lm,
        ),
    ];
    for (fixture, extra, min, max) in cases {
        let (onnx, scans) = patched_as_is(fixture, &dir, extra);
        assert!(scans >= 1, "{fixture}: no S6Scan node");
        let engine = onnx.with_extension("engine");
        let mut opts = options(&onnx, &engine, Some(&plugin), max);
        opts.profile.min = sizes(min);
        opts.profile.opt = sizes(min);
        let stateful = extra.contains(&"--stateful");
        opts.stateful = stateful;
        let (s, bytes) = build_checked(&opts);
        // The stateful graphs' profile covers the prompt and the one-token decode step.
        let want = stateful.then(|| GenerationRange {
            ids: "input_ids".into(),
            batch: (1, 4),
            sequence: (1, 64),
        });
        assert_eq!(s.generation, want, "{fixture}");
        let layers: Vec<_> = s.plugin_layers("S6Scan").collect();
        assert_eq!(layers.len(), scans, "{fixture}: {:?}", s.layers);
        let dtype = if fixture.contains("fp16") { 1 } else { 0 };
        for l in &layers {
            assert_eq!(l.kind, LayerKind::PluginV3("S6Scan".into()), "{fixture}");
            assert_eq!(l.output_dtype, Some(dtype), "{fixture}: {}", l.name);
        }
        assert!(count_bytes(&bytes, b"S6Scan") >= scans, "{fixture}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// transformers' Mamba2 exports (dynamo, dynamic sequence; one with a dynamic batch, one fp16),
/// patched: each layer's chunked scan is one `S6ScanHeads` node, which TensorRT-RTX's ONNX parser
/// hands to the `S6ScanHeads` IPluginV3 creator (fields as kINT32), and the engine builds over a
/// profile from L = 1 to 256 (the plugin's shapes, formats and configure at both ends).
#[test]
fn patched_mamba2_exports_build_with_the_heads_plugin() {
    let Some(_) = rtx() else { return };
    let Some(plugin) = rtx_plugin() else { return };
    let dir = tmpdir("mamba2");
    // (fixture, --max, the scan's output dtype): transformers runs the scan of an fp16 model in
    // fp32 between Casts, so its S6ScanHeads node is fp32 too (docs/s6scan_heads.md).
    let cases: [(&str, &str, i32); 3] = [
        ("mamba2/hf2_dynamo_dynseq_L12", "batch=1,sequence=256", 0),
        ("mamba2/hf2_dynamo_dynbs_b2_L12", "batch=4,sequence=256", 0),
        (
            "mamba2/hf2_fp16_dynamo_dynseq_L12",
            "batch=1,sequence=256",
            0,
        ),
    ];
    for (fixture, max, dtype) in cases {
        let (onnx, scans) = patched_as_is(fixture, &dir, &[]);
        assert_eq!(scans, 0, "{fixture}: no S6Scan node in a Mamba2 model");
        let m = s6_onnx::model::load(&onnx).unwrap();
        let heads = m.graph.as_ref().map_or(0, |g| {
            g.node
                .iter()
                .filter(|n| n.op_type == "S6ScanHeads" && n.domain == "s6plugin")
                .count()
        });
        assert_eq!(
            heads, 2,
            "{fixture}: two Mamba2 layers, two S6ScanHeads nodes"
        );
        let engine = onnx.with_extension("engine");
        let mut opts = options(&onnx, &engine, Some(&plugin), max);
        opts.profile.min = sizes("batch=1,sequence=1");
        let (s, bytes) = build_checked(&opts);
        let layers: Vec<_> = s.plugin_layers("S6ScanHeads").collect();
        assert_eq!(layers.len(), heads, "{fixture}: {:?}", s.layers);
        for l in &layers {
            assert_eq!(
                l.kind,
                LayerKind::PluginV3("S6ScanHeads".into()),
                "{fixture}"
            );
            assert_eq!(l.output_dtype, Some(dtype), "{fixture}: {}", l.name);
        }
        assert_eq!(
            s.layers.iter().filter(|l| l.plugin().is_some()).count(),
            heads,
            "{fixture}: no other plugin layer"
        );
        assert!(count_bytes(&bytes, b"S6ScanHeads") >= heads, "{fixture}");
    }
    // The CLI names the op in its layer report.
    let onnx = dir.join("mamba2_hf2_dynamo_dynseq_L12.s6.onnx");
    let o = rtx_build(&onnx, &dir.join("cli.engine"), &plugin)
        .args(MIN_OPT)
        .args(["--max", "batch=1,sequence=64"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("network: 271 layers, 2 of them S6ScanHeads plugin layers\n"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn s6_engine() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_s6-engine"));
    // The binary finds TensorRT-RTX the way a user's shell would: through the variable.
    c.env_remove("TENSORRT_ROOT");
    c
}

/// `s6-engine build ONNX -o ENGINE --backend rtx --plugin PLUGIN`, for the caller's profile and
/// options.
fn rtx_build(onnx: &Path, engine: &Path, plugin: &Path) -> Command {
    let mut c = s6_engine();
    c.arg("build").arg(onnx).arg("-o").arg(engine);
    c.args(["--backend", "rtx", "--plugin"]).arg(plugin);
    c
}

/// The profile's min and opt of the CLI builds: one token to the fixture's 12.
const MIN_OPT: [&str; 4] = [
    "--min",
    "batch=1,sequence=1",
    "--opt",
    "batch=1,sequence=12",
];

#[test]
fn cli_builds_a_patched_export_and_reports_the_plugin_layers() {
    let Some(_) = rtx() else { return };
    let Some(plugin) = rtx_plugin() else { return };
    let dir = tmpdir("cli");
    let (onnx, _) = patched("models/hf_ts_L12", &dir);
    let engine = dir.join("m.engine");
    let o = rtx_build(&onnx, &engine, &plugin)
        .args(MIN_OPT)
        .args(["--max", "batch=2,sequence=64"])
        // Ampere (8.6), Ada (8.9), Blackwell (12.0): one engine for all three.
        .args(["--compute-capability", "86,89,120"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("network: 345 layers, 2 of them S6Scan plugin layers\n"),
        "{err}"
    );
    assert!(err.contains("TensorRT-RTX 1."), "{err}");
    assert!(!err.contains("trtexec"), "{err}");
    assert!(engine.is_file());

    // Hopper (9.0: H100, H200) is no TensorRT-RTX target: the builder itself refuses it.
    let o = rtx_build(&onnx, &dir.join("h.engine"), &plugin)
        .args(MIN_OPT)
        .args(["--max", "batch=1,sequence=64", "--compute-capability", "90"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("s6-engine: TensorRT: compute capability refused: IBuilderConfig::setComputeCapability: "),
        "{err}"
    );
    assert!(
        err.contains("Compute capability is invalid or not supported"),
        "{err}"
    );
    assert!(!dir.join("h.engine").exists());

    // TensorRT-RTX has no timing cache: refused before anything is built.
    let cache = dir.join("t.cache");
    let o = rtx_build(&onnx, &dir.join("n.engine"), &plugin)
        .arg("--timing-cache")
        .arg(&cache)
        .args(MIN_OPT)
        .args(["--max", "batch=1,sequence=64"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("--timing-cache: TensorRT-RTX 1."), "{err}");
    assert!(!dir.join("n.engine").exists() && !cache.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The stateful graph built for generation as a user would (`build --stateful`: the profile
/// from the decode step to `--max`), then `generate` on that engine. Where no GPU can run it
/// (no CUDA driver: this machine and CI), `generate` fails with exit status 3 and the line
/// saying why, and writes nothing; where one can, its greedy tokens are transformers'.
#[test]
fn stateful_engine_builds_for_generate_and_generate_says_why_it_cannot_run_here() {
    let Some(_) = rtx() else { return };
    let Some(plugin) = rtx_plugin() else { return };
    let dir = tmpdir("generate");
    let (onnx, scans) = patched_as_is("models/hf_ts_L12", &dir, &["--stateful"]);
    assert_eq!(scans, 2);
    let engine = dir.join("st.engine");
    let o = rtx_build(&onnx, &engine, &plugin)
        .args(["--stateful", "--max", "batch=2,sequence=64"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(" layers, 2 of them S6Scan plugin layers\n"),
        "{err}"
    );
    assert!(
        err.contains("stateful graph: s6-engine generate can run it at batch 1..2, prompts of 1..64 tokens\n"),
        "{err}"
    );
    let bytes = std::fs::read(&engine).unwrap();
    assert!(bytes.len() > 100_000, "{} bytes", bytes.len());
    assert!(count_bytes(&bytes, b"S6Scan") >= scans);
    // The state tensors are engine I/O by name (what `generate` binds).
    for name in ["conv_state.0", "ssm_state_out.1"] {
        assert!(
            count_bytes(&bytes, name.as_bytes()) >= 1,
            "{name} not in the engine"
        );
    }

    let case = fixtures().join("generate/hf");
    let tokens = dir.join("tokens.npy");
    let o = s6_engine()
        .arg("generate")
        .arg(&engine)
        .args(["--backend", "rtx", "--plugin"])
        .arg(&plugin)
        .arg("--prompt")
        .arg(case.join("prompt.npy"))
        .args(["--max-new-tokens", "32", "--out"])
        .arg(&tokens)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    // SAFETY: probing for libcuda only loads it.
    let cuda = unsafe { cudarc::driver::sys::is_culib_present() };
    if !cuda {
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert_eq!(
            err,
            "s6-engine: the CUDA driver library (libcuda.so.1) is not loadable: running an engine needs an NVIDIA GPU and its driver\n"
        );
        assert!(!tokens.exists());
    } else if o.status.success() {
        let want = s6_onnx::npy::read(&case.join("tokens.npy")).unwrap();
        let got = s6_onnx::npy::read(&tokens).unwrap();
        assert_eq!(got.to_i64_vec(), want.to_i64_vec(), "{err}");
    } else {
        // A driver without a device, or a GPU TensorRT-RTX does not target (the H200): a
        // one-line error, never a crash.
        assert!(matches!(o.status.code(), Some(1 | 3)), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!tokens.exists());
        eprintln!("note: generate did not run on this GPU (the error path was checked): {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Builds `onnx` with `plugin` in a fresh s6-engine process (a registry that has seen no other
/// plugin), expecting a refusal; returns stderr.
fn refused_build(onnx: &Path, plugin: &Path, engine: &Path) -> String {
    let o = rtx_build(onnx, engine, plugin)
        .args(MIN_OPT)
        .args(["--max", "batch=1,sequence=64"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!engine.exists());
    err
}

/// A build with `lib` as the plugin is refused by loadLibrary, with the hint to check the variant.
fn assert_library_refused(onnx: &Path, lib: &Path, engine: &Path) {
    let err = refused_build(onnx, lib, engine);
    let want = format!(
        "s6-engine: TensorRT: IPluginRegistry::loadLibrary refused {} (a libs6plugin built for another TensorRT is refused: is it the variant for TensorRT-RTX 1.",
        lib.display()
    );
    assert!(err.contains(&want), "{err}");
}

#[test]
fn a_library_without_the_creator_is_refused() {
    let Some(lib_dir) = rtx() else { return };
    let dir = tmpdir("noplugin");
    let (onnx, _) = patched("models/minimal_ts_L12", &dir);
    // A real shared library that is no plugin: TensorRT-RTX's own parser.
    let not_plugin = lib_dir.join("libtensorrt_onnxparser_rtx.so.1");
    assert_library_refused(&onnx, &not_plugin, &dir.join("m.engine"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// libs6plugin built for another TensorRT (from `scripts/build_plugin_variants.sh`, whose folder
/// `S6_PLUGIN_VARIANTS_DIR` names) is refused by TensorRT-RTX's loadLibrary without harm, and
/// the error says what to check.
#[test]
fn the_variant_of_another_tensorrt_is_refused() {
    let Some(_) = rtx() else { return };
    let Some(wrong) = env_path("S6_PLUGIN_VARIANTS_DIR")
        .map(|d| d.join("libs6plugin-trt11.so"))
        .filter(|p| p.is_file())
    else {
        skip("S6_PLUGIN_VARIANTS_DIR/libs6plugin-trt11.so missing (scripts/build_plugin_variants.sh)");
        return;
    };
    let dir = tmpdir("wrong");
    let (onnx, _) = patched("models/minimal_ts_L12", &dir);
    assert_library_refused(&onnx, &wrong, &dir.join("m.engine"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn info_names_backend_version_and_the_plugin_build() {
    let Some(lib_dir) = rtx() else { return };
    let run = |plugin: &Path| {
        let o = s6_engine()
            .args(["info", "--backend", "rtx", "--plugin"])
            .arg(plugin)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    };
    // A library without s6pluginBuildInfo.
    let other = lib_dir.join("libtensorrt_onnxparser_rtx.so.1");
    let out = run(&other);
    assert!(
        out.contains(&format!(
            "plugin: {}: no s6pluginBuildInfo() (the library predates it",
            other.display()
        )),
        "{out}"
    );
    assert!(out.contains("backend: rtx (TensorRT-RTX)\n"), "{out}");
    assert!(
        out.contains(&format!(
            "{}: TensorRT-RTX 1.",
            lib_dir.join("libtensorrt_rtx.so.1").display()
        )),
        "{out}"
    );
    assert!(out.contains("compatible with this build: yes\n"), "{out}");
    assert!(out.contains("not 9.0"), "{out}");

    // auto: TensorRT-RTX where no TensorRT is found (as on CI's machine).
    let trt_places = libs::search_places(Backend::Trt, None);
    if let Err(EngineError::LibNotFound { .. }) =
        libs::load_backend(Backend::Trt, None, &trt_places)
    {
        let o = s6_engine().arg("info").output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{out}");
        assert!(out.contains("backend: rtx (TensorRT-RTX)\n"), "{out}");
    }

    let Some(plugin) = rtx_plugin() else { return };
    let out = run(&plugin);
    let line = out
        .lines()
        .find(|l| l.starts_with("plugin: "))
        .unwrap_or_default();
    let info = line
        .strip_prefix(&format!("plugin: {}: ", plugin.display()))
        .unwrap_or_else(|| panic!("{out}"));
    // "s6plugin 0.1.0 for TensorRT-RTX 1.7.1 (IPluginV3)": the variant for this backend.
    assert!(info.starts_with("s6plugin "), "{info}");
    assert!(info.contains(" for TensorRT-RTX 1."), "{info}");
    assert!(info.contains("IPluginV3"), "{info}");
}
