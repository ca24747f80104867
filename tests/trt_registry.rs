//! The real TensorRT plugin registry (TensorRT's lean runtime, no GPU needed) loads
//! `libs6plugin.so`, finds `S6Scan` v1 and round-trips it; see `tests/cpp/registry_driver.cpp`.
//!
//! Needs `S6_TRT_LEAN_LIB` = path of `libnvinfer_lean.so.10` (the `tensorrt-lean-cu12-libs`
//! wheel's `tensorrt_lean_libs/` folder) and a C++ compiler (`CXX`, else `c++`). Without
//! `S6_TRT_LEAN_LIB` the test prints a skip line and passes.
#![cfg(feature = "trt")]

use std::path::{Path, PathBuf};
use std::process::Command;

/// `libs6plugin.so` of this build: cargo puts it next to the test binary's `deps/` folder.
fn plugin_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps folder");
    for cand in [deps.join("libs6plugin.so"), deps.join("../libs6plugin.so")] {
        if cand.is_file() {
            return cand.canonicalize().unwrap();
        }
    }
    panic!(
        "libs6plugin.so not found beside {} (build the cdylib: cargo build --features trt)",
        deps.display()
    );
}

fn lean_runtime() -> Option<PathBuf> {
    let v = std::env::var_os("S6_TRT_LEAN_LIB")?;
    let p = PathBuf::from(v);
    let p = if p.is_dir() {
        p.join("libnvinfer_lean.so.10")
    } else {
        p
    };
    assert!(
        p.is_file(),
        "S6_TRT_LEAN_LIB={} is not a file (expected libnvinfer_lean.so.10)",
        p.display()
    );
    Some(p)
}

/// Compiles a TensorRT-role test program against the headers the shim was built with.
pub fn compile_driver(source: &str, out_name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(out_name);
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let status = Command::new(&cxx)
        .args(["-std=c++17", "-O1", "-g", "-Wno-deprecated-declarations"])
        .arg("-isystem")
        .arg(env!("S6_TRT_INCLUDE"))
        .arg("-isystem")
        .arg(env!("S6_CUDA_INCLUDE"))
        .arg(root.join("tests/cpp").join(source))
        .arg("-o")
        .arg(&out)
        .arg("-ldl")
        .arg("-lpthread")
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C++ compiler `{cxx}`: {e}"));
    assert!(status.success(), "{cxx} failed on tests/cpp/{source}");
    out
}

fn run_mode(driver: &Path, lean: &Path, plugin: &Path, mode: &str) {
    let out = Command::new(driver)
        .arg(lean)
        .arg(plugin)
        .arg(mode)
        .output()
        .expect("run registry driver");
    let text = String::from_utf8_lossy(&out.stdout);
    println!(
        "---- mode {mode} ----\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "registry driver, mode {mode}: {:?}\n{text}",
        out.status
    );
    assert!(text.contains(&format!("{mode}: 0 failure(s)")), "{text}");
}

#[test]
fn real_tensorrt_registry_loads_and_round_trips_the_plugin() {
    let Some(lean) = lean_runtime() else {
        println!("SKIP: S6_TRT_LEAN_LIB is not set (path of TensorRT's libnvinfer_lean.so.10)");
        return;
    };
    let plugin = plugin_library();
    let driver = compile_driver("registry_driver.cpp", "registry_driver");
    for mode in ["dynamic", "loaded-by-trt", "static"] {
        run_mode(&driver, &lean, &plugin, mode);
    }
}
