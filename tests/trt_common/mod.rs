//! Shared by the TensorRT-role tests: where `libs6plugin.so` (and its other-ABI variants) is,
//! compiling the C++ drivers, and visible skips.

#![allow(dead_code)] // each test binary uses its own part

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

/// The ABI tag of this build (`trt10`, `trt11`, `rtx1`; build/trt_headers.rs).
pub const NATIVE_TAG: &str = env!("S6_TRT_TAG");

/// The library built for ABI `tag`: this build's when it is that ABI, else the variant
/// `scripts/build_plugin_variants.sh` left in `$S6_PLUGIN_VARIANTS_DIR` (default
/// `target/plugin-variants`).
pub fn plugin_variant(tag: &str) -> Option<PathBuf> {
    if tag == NATIVE_TAG {
        return Some(plugin_library());
    }
    let dir = std::env::var_os("S6_PLUGIN_VARIANTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/plugin-variants"));
    let p = dir.join(format!("libs6plugin-{tag}.so"));
    p.is_file().then_some(p)
}

pub use crate::skip::skip;

/// How a driver is compiled: against which headers, and linked how.
pub struct DriverBuild<'a> {
    pub source: &'a str,
    pub out_name: &'a str,
    pub include: &'a Path,
    pub defines: &'a [&'a str],
    /// Link against this TensorRT library (`-l:<file>` with an rpath), as applications do.
    pub link: Option<&'a Path>,
}

/// Compiles `tests/cpp/<source>` (with `-Werror`).
pub fn compile(b: &DriverBuild<'_>) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(b.out_name);
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let mut cmd = Command::new(&cxx);
    cmd.args([
        "-std=c++17",
        "-O1",
        "-g",
        "-Wall",
        "-Werror",
        "-Wno-deprecated-declarations",
    ])
    .arg("-isystem")
    .arg(b.include)
    .arg("-isystem")
    .arg(env!("S6_CUDA_INCLUDE"));
    for d in b.defines {
        cmd.arg(format!("-D{d}"));
    }
    cmd.arg(root.join("tests/cpp").join(b.source))
        .arg("-o")
        .arg(&out)
        .arg("-ldl")
        .arg("-lpthread");
    if let Some(lib) = b.link {
        let dir = lib.parent().expect("library folder");
        let file = lib.file_name().expect("library file").to_string_lossy();
        cmd.arg(format!("-L{}", dir.display()))
            .arg(format!("-l:{file}"))
            .arg(format!("-Wl,-rpath,{}", dir.display()));
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C++ compiler `{cxx}`: {e}"));
    assert!(status.success(), "{cxx} failed on tests/cpp/{}", b.source);
    out
}

/// Compiles `tests/cpp/<source>` against the TensorRT and CUDA headers the shim was built with.
pub fn compile_driver(source: &str, out_name: &str) -> PathBuf {
    compile(&DriverBuild {
        source,
        out_name,
        include: Path::new(env!("S6_TRT_INCLUDE")),
        defines: &[],
        link: None,
    })
}
