//! Build script of s6-tools: compiles `cpp/trt_glue.cpp` (s6-engine's bridge to TensorRT's C++
//! API) once per backend whose headers are found, and sets a cfg per backend:
//!
//! - `s6_glue_trt`: TensorRT (libnvinfer.so.N), headers from `find_tensorrt()`;
//! - `s6_glue_rtx`: TensorRT-RTX (libtensorrt_rtx.so.1), headers from `$S6_TRT_RTX_INCLUDE_DIR`
//!   (or the TensorRT search itself, when it found RTX headers).
//!
//! The header search is the repo's one (`build/trt_headers.rs`). Without any headers the crate
//! still builds; s6-engine then says at run time how to get engine support.
//! `S6_ENGINE_REQUIRE_TRT=1` turns "no TensorRT headers" into a build error (for CI);
//! `S6_ENGINE_NO_TRT=1` skips both bridges.

#[path = "../build/trt_headers.rs"]
mod trt_headers;

use std::env;
use std::path::{Path, PathBuf};
use trt_headers::{Abi, Flavour};

/// Compiles the bridge for one backend into `lib<name>.a`.
fn compile(abi: Abi, trt: &Path, cuda: &Path) {
    let rtx = abi.flavour == Flavour::Rtx;
    let tag = if rtx { "rtx" } else { "trt" };
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file("cpp/trt_glue.cpp")
        .include("cpp")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        // Both bridges are linked into one binary: distinct namespaces keep the headers' inline
        // functions (whose vtables differ between backends) from being merged by the linker.
        .define("nvinfer1", format!("s6glue_{tag}_nvinfer1").as_str())
        .define(
            "nvonnxparser",
            format!("s6glue_{tag}_nvonnxparser").as_str(),
        );
    if rtx {
        build.define("S6_GLUE_BACKEND_RTX", None);
    }
    if abi.flavour == Flavour::Enterprise && abi.major < 10 {
        // JetPack's 8.x headers deprecate calls that 8.x still needs.
        build.flag_if_supported("-Wno-deprecated-declarations");
    }
    // -isystem: the vendor headers' own warnings are not ours to fix.
    let mut sys = vec![trt.to_path_buf(), cuda.to_path_buf()];
    sys.dedup();
    for d in &sys {
        build.flag("-isystem").flag(d.to_string_lossy().as_ref());
    }
    if !trt.join(trt_headers::PARSER_PROBE).is_file() {
        println!(
            "cargo:warning=s6-engine: {abi} headers at {} lack NvOnnxParser.h; `s6-engine build --backend {tag}` will be unavailable (running engines works)",
            trt.display()
        );
    }
    build.compile(&format!("s6_trt_glue_{tag}"));
    println!("cargo:rustc-cfg=s6_glue_{tag}");
    println!(
        "cargo:rustc-env=S6_GLUE_{}_INCLUDE_DIR={}",
        tag.to_uppercase(),
        trt.display()
    );
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cpp");
    println!("cargo:rerun-if-changed=../build/trt_headers.rs");
    for v in ["S6_ENGINE_REQUIRE_TRT", "S6_ENGINE_NO_TRT"] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    println!("cargo::rustc-check-cfg=cfg(s6_glue_trt, s6_glue_rtx)");

    if env::var_os("S6_ENGINE_NO_TRT").is_some() {
        return;
    }
    let require = env::var_os("S6_ENGINE_REQUIRE_TRT").is_some();
    let fail = |msg: String| {
        if require {
            panic!("{msg} (S6_ENGINE_REQUIRE_TRT is set)");
        }
        println!("cargo:warning={msg}");
    };
    let cuda = match trt_headers::find_cuda() {
        Ok(c) => c,
        Err(e) => {
            fail(format!(
                "s6-engine: no CUDA headers ({e}; set CUDA_INCLUDE_DIR); building without TensorRT engine support"
            ));
            return;
        }
    };
    let with_abi = |dir: PathBuf| -> Option<(Abi, PathBuf)> {
        match trt_headers::read_abi(&dir) {
            Ok(abi) => Some((abi, dir)),
            Err(e) => {
                println!("cargo:warning=s6-engine: {e}; skipping the headers there");
                None
            }
        }
    };
    let mut enterprise = None;
    let mut rtx = trt_headers::find_tensorrt_rtx().and_then(with_abi);
    match trt_headers::find_tensorrt() {
        Ok(dir) => match with_abi(dir) {
            Some((abi, dir)) if abi.flavour == Flavour::Rtx => {
                if rtx.is_none() {
                    rtx = Some((abi, dir));
                }
            }
            found => enterprise = found,
        },
        Err(e) => fail(format!(
            "s6-engine: no TensorRT headers ({e}; set TENSORRT_INCLUDE_DIR); building without the TensorRT backend"
        )),
    }
    for (abi, dir) in enterprise.iter().chain(rtx.iter()) {
        compile(*abi, dir, &cuda);
    }
}
