//! Compiles the cxx shim in `cpp_shim/` against TensorRT and CUDA headers (feature `trt`).
//!
//! TensorRT headers (the directory holding `NvInferRuntime.h`), first found wins:
//! `TENSORRT_INCLUDE_DIR`, `TENSORRT_ROOT/include`, `TRT_ROOT/include`, then the system paths
//! `/usr/include/x86_64-linux-gnu`, `/usr/include/aarch64-linux-gnu` (JetPack),
//! `/usr/local/TensorRT/include`, `/usr/include`.
//! CUDA headers (`cuda_runtime_api.h`, which TensorRT's headers include): `CUDA_INCLUDE_DIR`,
//! `CUDA_HOME/include`, `CUDA_PATH/include`, `CUDA_ROOT/include`, `/usr/local/cuda/include`,
//! `/usr/include`.
//! `NV_TENSORRT_MAJOR` from `NvInferVersion.h` is passed on as `S6_TRT_MAJOR` (the shim itself
//! adapts with `#if NV_TENSORRT_MAJOR`).

use std::path::{Path, PathBuf};

const TRT_PROBE: &str = "NvInferRuntime.h";
const CUDA_PROBE: &str = "cuda_runtime_api.h";

fn env_path(var: &str) -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed={var}");
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Candidate directories for a header, with where each came from, in search order.
fn candidates(dir_vars: &[&str], root_vars: &[&str], system: &[&str]) -> Vec<(PathBuf, String)> {
    let mut c = Vec::new();
    for v in dir_vars {
        if let Some(p) = env_path(v) {
            c.push((p, format!("${v}")));
        }
    }
    for v in root_vars {
        if let Some(p) = env_path(v) {
            c.push((p.join("include"), format!("${v}/include")));
        }
    }
    for s in system {
        c.push((PathBuf::from(s), "system path".to_string()));
    }
    c
}

fn find(what: &str, probe: &str, cands: &[(PathBuf, String)], hint: &str) -> PathBuf {
    for (dir, _) in cands {
        if dir.join(probe).is_file() {
            return dir.clone();
        }
    }
    let looked: Vec<String> = cands
        .iter()
        .map(|(d, from)| format!("  {} ({from})", d.join(probe).display()))
        .collect();
    panic!(
        "\n\nfeature `trt`: {what} headers not found: no `{probe}` in any of\n{}\n{hint}\n",
        looked.join("\n")
    );
}

/// `NV_TENSORRT_MAJOR` of the headers in `dir` (10.x defines it through TRT_MAJOR_ENTERPRISE).
fn trt_major(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("NvInferVersion.h")).ok()?;
    let value_of = |name: &str| -> Option<String> {
        text.lines().find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some("#define") && it.next() == Some(name))
                .then(|| it.next().map(str::to_string))
                .flatten()
        })
    };
    let v = value_of("NV_TENSORRT_MAJOR")?;
    v.parse()
        .ok()
        .or_else(|| value_of(&v).and_then(|x| x.parse().ok()))
}

#[cfg(feature = "trt")]
pub fn build() {
    let trt = find(
        "TensorRT",
        TRT_PROBE,
        &candidates(
            &["TENSORRT_INCLUDE_DIR"],
            &["TENSORRT_ROOT", "TRT_ROOT"],
            &[
                "/usr/include/x86_64-linux-gnu",
                "/usr/include/aarch64-linux-gnu",
                "/usr/local/TensorRT/include",
                "/usr/include",
            ],
        ),
        "Set TENSORRT_INCLUDE_DIR to the folder holding NvInferRuntime.h (for instance the \
         `include/tensorrt` folder of the `kernel-lens` wheel, or a TensorRT tarball's `include`), \
         or TENSORRT_ROOT to the folder above it; or build without `--features trt`.",
    );
    let cuda = find(
        "CUDA",
        CUDA_PROBE,
        &candidates(
            &["CUDA_INCLUDE_DIR"],
            &["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"],
            &["/usr/local/cuda/include", "/usr/include"],
        ),
        "Set CUDA_HOME (the folder holding include/cuda_runtime_api.h; the `nvidia-cuda-runtime` \
         wheel's `nvidia/cu13` works) or CUDA_INCLUDE_DIR; TensorRT's headers include it.",
    );
    let major = trt_major(&trt).unwrap_or_else(|| {
        panic!(
            "feature `trt`: cannot read NV_TENSORRT_MAJOR from {}",
            trt.join("NvInferVersion.h").display()
        )
    });
    if major < 8 {
        panic!(
            "feature `trt`: TensorRT {major} headers at {}; s6plugin needs 8.5 or newer",
            trt.display()
        );
    }
    println!("cargo:rustc-env=S6_TRT_MAJOR={major}");
    // For the tests that compile TensorRT-role C++ programs against the same headers.
    println!("cargo:rustc-env=S6_TRT_INCLUDE={}", trt.display());
    println!("cargo:rustc-env=S6_CUDA_INCLUDE={}", cuda.display());
    for f in [
        "cpp_shim/s6_shim.h",
        "cpp_shim/s6_shim.cpp",
        "plugin/trt/ffi.rs",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    cxx_build::bridge("plugin/trt/ffi.rs")
        .file("cpp_shim/s6_shim.cpp")
        // -isystem: vendor headers' own warnings are not ours.
        .flag("-isystem")
        .flag(trt.to_str().expect("TensorRT include path is not UTF-8"))
        .flag("-isystem")
        .flag(cuda.to_str().expect("CUDA include path is not UTF-8"))
        .std("c++17")
        // IPluginV2DynamicExt is deprecated in TensorRT 10 (kept through 11): we implement it
        // on purpose, for 8.x compatibility.
        .flag_if_supported("-Wno-deprecated-declarations")
        .compile("s6_shim");
    // The library stays mapped once loaded: registries may keep our creator after a dlclose.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}

#[cfg(not(feature = "trt"))]
pub fn build() {
    let _ = (find, candidates, trt_major, TRT_PROBE, CUDA_PROBE);
}
