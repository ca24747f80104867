//! Build script of s6-tools: compiles `cpp/trt_glue.cpp` (s6-engine's bridge to TensorRT's C++
//! API) when TensorRT and CUDA headers are found, and sets `cfg(s6_trt_glue)`. Without headers
//! the crate still builds; s6-engine then says at run time how to get engine support.
//!
//! Headers are looked up like the plugin's: `TENSORRT_INCLUDE_DIR`, `TENSORRT_ROOT/include`, then
//! the distribution paths (Debian/Ubuntu and JetPack put them in /usr/include/<triplet>).
//! `S6_ENGINE_REQUIRE_TRT=1` turns "not found" into a build error (for CI).

use std::env;
use std::path::{Path, PathBuf};

const ENV_VARS: [&str; 8] = [
    "TENSORRT_INCLUDE_DIR",
    "TENSORRT_ROOT",
    "CUDA_INCLUDE_DIR",
    "CUDA_HOME",
    "CUDA_PATH",
    "CUDA_ROOT",
    "S6_ENGINE_REQUIRE_TRT",
    "S6_ENGINE_NO_TRT",
];

fn candidates(dir_var: &str, root_vars: &[&str], system: &[&str]) -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(d) = env::var_os(dir_var) {
        c.push(PathBuf::from(d));
    }
    for v in root_vars {
        if let Some(r) = env::var_os(v) {
            c.push(Path::new(&r).join("include"));
        }
    }
    c.extend(system.iter().map(PathBuf::from));
    c
}

fn find(cands: &[PathBuf], file: &str) -> Option<PathBuf> {
    cands.iter().find(|d| d.join(file).is_file()).cloned()
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cpp");
    for v in ENV_VARS {
        println!("cargo:rerun-if-env-changed={v}");
    }
    println!("cargo::rustc-check-cfg=cfg(s6_trt_glue)");

    if env::var_os("S6_ENGINE_NO_TRT").is_some() {
        return;
    }
    let trt_dirs = candidates(
        "TENSORRT_INCLUDE_DIR",
        &["TENSORRT_ROOT"],
        &[
            "/usr/include/x86_64-linux-gnu",
            "/usr/include/aarch64-linux-gnu",
            "/usr/include",
            "/usr/local/TensorRT/include",
            "/usr/local/tensorrt/include",
            "/opt/tensorrt/include",
        ],
    );
    let cuda_dirs = candidates(
        "CUDA_INCLUDE_DIR",
        &["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"],
        &["/usr/local/cuda/include", "/usr/include"],
    );
    let trt = find(&trt_dirs, "NvInfer.h");
    let cuda = find(&cuda_dirs, "cuda_runtime_api.h");
    let (trt, cuda) = match (trt, cuda) {
        (Some(t), Some(c)) => (t, c),
        (t, c) => {
            let mut missing = Vec::new();
            if t.is_none() {
                missing.push("TensorRT headers (NvInfer.h; set TENSORRT_INCLUDE_DIR)");
            }
            if c.is_none() {
                missing.push("CUDA headers (cuda_runtime_api.h; set CUDA_INCLUDE_DIR)");
            }
            let msg = format!(
                "s6-engine: no {} found; building without TensorRT engine support",
                missing.join(" and no ")
            );
            if env::var_os("S6_ENGINE_REQUIRE_TRT").is_some() {
                panic!("{msg} (S6_ENGINE_REQUIRE_TRT is set)");
            }
            println!("cargo:warning={msg}");
            return;
        }
    };
    let parser = find(&trt_dirs, "NvOnnxParser.h");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file("cpp/trt_glue.cpp")
        .include("cpp")
        // The glue calls APIs that later majors deprecate but the user's major still needs.
        .flag_if_supported("-Wno-deprecated-declarations")
        .warnings(true);
    // -isystem: the vendor headers' own warnings are not ours to fix.
    let mut sys = vec![trt.clone(), cuda];
    if let Some(p) = &parser {
        sys.push(p.clone());
    }
    sys.dedup();
    for d in &sys {
        build.flag("-isystem").flag(d.to_string_lossy().as_ref());
    }
    if parser.is_none() {
        println!(
            "cargo:warning=s6-engine: TensorRT headers at {} lack NvOnnxParser.h; `s6-engine build` will be unavailable (running engines works)",
            trt.display()
        );
    }
    build.compile("s6_trt_glue");
    println!("cargo:rustc-cfg=s6_trt_glue");
    println!("cargo:rustc-env=S6_TRT_INCLUDE_DIR={}", trt.display());
}
