//! Shared by the TensorRT-role tests: where `libs6plugin.so` is, compiling the C++ drivers.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `libs6plugin.so`: `S6_PLUGIN_LIB` if set, else this build's (cargo puts it beside the test
/// binary's `deps/` folder, or in it).
pub fn plugin_library() -> PathBuf {
    if let Some(p) = std::env::var_os("S6_PLUGIN_LIB") {
        return PathBuf::from(p);
    }
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

/// Compiles `tests/cpp/<source>` against the TensorRT and CUDA headers the shim was built with.
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
