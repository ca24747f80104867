//! The real TensorRT plugin registry (TensorRT's lean runtime, no GPU needed) loads
//! `libs6plugin.so`, finds `S6Scan` v1 and round-trips it; see `tests/cpp/registry_driver.cpp`.
//!
//! Needs `S6_TRT_LEAN_LIB` = path of `libnvinfer_lean.so.10` (the `tensorrt-lean-cu12-libs`
//! wheel's `tensorrt_lean_libs/` folder) and a C++ compiler (`CXX`, else `c++`). Without
//! `S6_TRT_LEAN_LIB` the test prints a skip line and passes.
#![cfg(feature = "trt")]

mod trt_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use trt_common::{compile_driver, plugin_library};

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
    for mode in [
        "dynamic",
        "loaded-by-trt",
        "static",
        "static-private",
        "no-trt",
    ] {
        run_mode(&driver, &lean, &plugin, mode);
    }
}
