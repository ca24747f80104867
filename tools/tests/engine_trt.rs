//! s6-engine against the real TensorRT lean runtime (`libnvinfer_lean.so.10`, from the
//! `tensorrt-lean-cu12-libs` wheel): version detection and the C++ bridge's runtime calls. Both
//! skip with a printed line when `S6_TRT_LEAN_LIB` is unset; CI sets it.

#[path = "../../tests/skip/mod.rs"]
mod skip;

use s6_tools::engine::glue::{Glue, Runner};
use s6_tools::engine::libs::{self, Loaded};
use s6_tools::engine::version::Backend;
use s6_tools::engine::{EngineError, TrtVersion};
use std::path::PathBuf;

fn skip(why: &str) {
    skip::skip("S6_ENGINE_REQUIRE_TRT", why);
}

fn lean_lib() -> Option<PathBuf> {
    match std::env::var_os("S6_TRT_LEAN_LIB") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            skip("S6_TRT_LEAN_LIB is not set (path to libnvinfer_lean.so.10)");
            None
        }
    }
}

/// The TensorRT bridge, or a skip.
fn trt_glue() -> Option<Glue> {
    match Glue::get(Backend::Trt, "run engines") {
        Ok(g) => Some(g),
        Err(e) => {
            skip(&format!("{e}"));
            None
        }
    }
}

/// The version from TensorRT 10's separate getters, an independent reading of the same library.
fn split_getters(l: &Loaded) -> TrtVersion {
    let get = |name: &'static str| {
        let f = libs::symbol(l, name).unwrap();
        // SAFETY: `int32_t getInferLibXxxVersion() noexcept` (TensorRT 10 on).
        unsafe { std::mem::transmute::<*mut std::ffi::c_void, extern "C" fn() -> i32>(f)() as u32 }
    };
    TrtVersion::new(
        get("getInferLibMajorVersion"),
        get("getInferLibMinorVersion"),
        get("getInferLibPatchVersion"),
    )
}

#[test]
fn detects_the_lean_runtime_version() {
    let Some(path) = lean_lib() else { return };
    let nv = libs::load_nvinfer(Some(&path), &[]).unwrap();
    assert_eq!(nv.version, split_getters(&nv.loaded));
    // The soname's number is the major.
    let soname_major: u32 = path
        .to_string_lossy()
        .rsplit('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(nv.version.major, soname_major);
    assert!(nv.version >= TrtVersion::new(10, 0, 0));
}

#[test]
fn info_prints_the_version() {
    let Some(path) = lean_lib() else { return };
    let nv = libs::load_nvinfer(Some(&path), &[]).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_s6-engine"))
        .args(["info", "--nvinfer"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "{}: TensorRT {}",
            path.display(),
            split_getters(&nv.loaded)
        )),
        "{stdout}"
    );
}

#[test]
fn bridge_creates_a_runtime_and_refuses_a_bad_engine() {
    let Some(path) = lean_lib() else { return };
    let Some(glue) = trt_glue() else { return };
    let headers = glue.header_version();
    let nv = libs::load_nvinfer(Some(&path), &[]).unwrap();
    if headers.major != nv.version.major {
        let e = glue.check_abi(&nv.loaded.path, nv.version).unwrap_err();
        assert!(matches!(e, EngineError::MajorMismatch { .. }), "{e}");
        skip(&format!(
            "headers are TensorRT {headers}, the lean runtime {}",
            nv.version
        ));
        return;
    }
    glue.check_abi(&nv.loaded.path, nv.version).unwrap();
    let create = libs::symbol(&nv.loaded, "createInferRuntime_INTERNAL").unwrap();
    // SAFETY: createInferRuntime_INTERNAL of a loaded library of the headers' major.
    let err = match unsafe { Runner::new(glue, create, b"definitely not a TensorRT engine") } {
        Ok(_) => panic!("a garbage engine was accepted"),
        Err(e) => e.to_string(),
    };
    // SAFETY: probing for libcuda only loads it.
    let gpu = unsafe { cudarc::driver::sys::is_culib_present() }
        && cudarc::driver::CudaContext::device_count().is_ok_and(|n| n > 0);
    if gpu {
        // The runtime was created, and deserialization refused the bytes.
        assert!(
            err.starts_with("TensorRT: deserializeCudaEngine failed"),
            "{err}"
        );
    } else {
        // No CUDA: TensorRT refuses to create the runtime and says why through our ILogger,
        // whose message the error carries (the logger's vtable works across the bridge).
        assert!(
            err.starts_with("TensorRT: createInferRuntime failed: "),
            "{err}"
        );
        assert!(err.contains("CUDA"), "{err}");
    }
}

#[test]
fn without_the_bridge_running_says_how_to_fix_it() {
    let Some(path) = lean_lib() else { return };
    if Glue::compiled(Backend::Trt) {
        // Not a skip to report: this build is the one CI wants.
        eprintln!("not applicable: this build has the TensorRT bridge (headers were found)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("s6-engine-nobridge-{}", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_s6-engine"))
        .args(["run", "missing.engine", "--out-dir"])
        .arg(&dir)
        .arg("--nvinfer")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.starts_with("s6-engine: s6-engine was built without TensorRT headers, so it cannot run engines; rebuild it with TENSORRT_INCLUDE_DIR="),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!dir.exists());
}

#[test]
fn registers_libs6plugin_in_the_lean_registry() {
    let Some(path) = lean_lib() else { return };
    let Some(glue) = trt_glue() else { return };
    // libs6plugin.so beside the test's s6-engine, as s6-engine itself looks for it; a fresh
    // `cargo test` leaves the cdylib in deps/ only (`cargo build` copies it up).
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_s6-engine"));
    let beside = exe.with_file_name("libs6plugin.so");
    let in_deps = exe.with_file_name("deps").join("libs6plugin.so");
    let plugin = if beside.is_file() { beside } else { in_deps };
    let exports_creators = plugin.is_file()
        && libs::load_file(&plugin).is_ok_and(|l| libs::symbol(&l, "getCreators").is_ok());
    if !exports_creators {
        skip(&format!(
            "{} missing or built without --features trt",
            plugin.display()
        ));
        return;
    }
    let nv = libs::load_nvinfer(Some(&path), &[]).unwrap();
    glue.check_abi(&nv.loaded.path, nv.version).unwrap();
    let reg = libs::symbol(&nv.loaded, "getPluginRegistry").unwrap();
    // SAFETY: getPluginRegistry of a library of the headers' major.
    let has = || unsafe { glue.has_creator(reg, "S6Scan", "1", "") }.unwrap();
    let absent = unsafe { glue.has_creator(reg, "NoSuchPlugin", "1", "") }.unwrap();
    assert!(!absent);
    let _lib = s6_tools::engine::plugin::register(glue, &nv, &plugin).unwrap();
    assert!(has(), "S6Scan v1 not in the registry after register()");
    // A second registration finds it already there and loads nothing.
    assert!(s6_tools::engine::plugin::register(glue, &nv, &plugin)
        .unwrap()
        .is_none());
}
