//! Compiles the whole C++ bridge (`tools/cpp/trt_glue.cpp`), engine-build path included, with
//! `-Werror` against every real TensorRT header set CI has: TensorRT 11.4
//! (`S6_TRT11_INCLUDE_DIR`) and TensorRT-RTX 1.7 (`S6_TRT_RTX_INCLUDE_DIR`), both with
//! `NvOnnxParser.h` (required here: `S6_GLUE_REQUIRE_PARSER`), and the headers the build itself
//! uses (`TENSORRT_INCLUDE_DIR`, 10.14 in CI, which lacks the parser header). The build compiles
//! one of these per backend; this test covers the majors the build does not.
//!
//! A missing header set or compiler is a skip printed on stderr; `S6_ENGINE_REQUIRE_TRT=1` turns
//! skips into failures.

#[path = "../../tests/skip/mod.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::Command;

fn skip(why: &str) {
    skip::skip("S6_ENGINE_REQUIRE_TRT", why);
}

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn cuda_include() -> Option<PathBuf> {
    env_dir("CUDA_INCLUDE_DIR")
        .into_iter()
        .chain(
            ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"]
                .iter()
                .filter_map(|v| env_dir(v).map(|r| r.join("include"))),
        )
        .find(|d| d.join("cuda_runtime_api.h").is_file())
}

/// Compiles the bridge against the headers in `$var` (`-fsyntax-only`, all warnings errors).
fn compile(var: &str, rtx: bool, require_parser: bool) {
    let Some(trt) = env_dir(var).filter(|d| d.join("NvInfer.h").is_file()) else {
        skip(&format!("{var} is not set to a folder holding NvInfer.h"));
        return;
    };
    let Some(cuda) = cuda_include() else {
        skip("no CUDA headers (CUDA_INCLUDE_DIR / CUDA_HOME)");
        return;
    };
    if require_parser {
        assert!(
            trt.join("NvOnnxParser.h").is_file(),
            "{var}={}: no NvOnnxParser.h",
            trt.display()
        );
    }
    let cpp = Path::new(env!("CARGO_MANIFEST_DIR")).join("cpp");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let mut cmd = Command::new(&cxx);
    cmd.args(["-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(&cpp)
        .arg("-isystem")
        .arg(&trt)
        .arg("-isystem")
        .arg(&cuda);
    if rtx {
        cmd.arg("-DS6_GLUE_BACKEND_RTX");
    }
    if require_parser {
        cmd.arg("-DS6_GLUE_REQUIRE_PARSER");
    }
    let out = match cmd.arg(cpp.join("trt_glue.cpp")).output() {
        Ok(o) => o,
        Err(e) => {
            skip(&format!("no C++ compiler ({cxx}: {e})"));
            return;
        }
    };
    assert!(
        out.status.success(),
        "trt_glue.cpp against {var}={}:\n{}",
        trt.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bridge_compiles_against_tensorrt_11_4() {
    compile("S6_TRT11_INCLUDE_DIR", false, true);
}

#[test]
fn bridge_compiles_against_tensorrt_rtx_1_7() {
    compile("S6_TRT_RTX_INCLUDE_DIR", true, true);
}

#[test]
fn bridge_compiles_against_the_build_headers() {
    // Whatever TENSORRT_INCLUDE_DIR holds (10.14 without NvOnnxParser.h in CI): the build path is
    // compiled where the parser header is there.
    compile("TENSORRT_INCLUDE_DIR", false, false);
}

#[test]
fn the_rtx_switch_must_match_the_headers() {
    // RTX headers without S6_GLUE_BACKEND_RTX would export TensorRT's names for an RTX bridge.
    let (Some(trt), Some(cuda)) = (env_dir("S6_TRT_RTX_INCLUDE_DIR"), cuda_include()) else {
        skip("S6_TRT_RTX_INCLUDE_DIR or CUDA headers not set");
        return;
    };
    let cpp = Path::new(env!("CARGO_MANIFEST_DIR")).join("cpp");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let Ok(out) = Command::new(&cxx)
        .args(["-std=c++17", "-fsyntax-only", "-I"])
        .arg(&cpp)
        .arg("-isystem")
        .arg(&trt)
        .arg("-isystem")
        .arg(&cuda)
        .arg(cpp.join("trt_glue.cpp"))
        .output()
    else {
        skip(&format!("no C++ compiler ({cxx})"));
        return;
    };
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("S6_GLUE_BACKEND_RTX must be defined exactly when"),
        "{err}"
    );
}
