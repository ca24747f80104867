//! TensorRT-RTX's own Python bindings load `libs6plugin.so` as a Python user does — through
//! `registry.load_library` and through `ctypes.CDLL` after importing the bindings — keeping
//! TensorRT's logger finder, so that a refusal must reach TensorRT's Python logger; and a library
//! built for another TensorRT is refused without a crash (`tests/python/rtx_bindings.py`, one
//! process per mode). Needs `S6_TRT_RTX_LIB_DIR`, `S6_TRT_RTX_PYTHONPATH` (scripts/setup.sh) and
//! the `rtx1` variant; a visible skip otherwise, a failure with `S6_TRT_REQUIRE=1`.
#![cfg(feature = "trt")]

mod skip;
mod trt_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use trt_common::{plugin_variant, skip};

const REQUIRE: &str = "S6_TRT_REQUIRE";

fn run(lib_dir: &Path, pythonpath: &Path, plugin: &Path, mode: &str) -> Result<String, String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/rtx_bindings.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(lib_dir)
        .arg(plugin)
        .arg(mode)
        .env("PYTHONPATH", pythonpath)
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains(&format!("{mode}: ok")) {
        Ok(text)
    } else {
        Err(format!("mode {mode}: {}\n{text}", out.status))
    }
}

#[test]
fn tensorrt_rtx_python_bindings_load_and_refuse_cleanly() {
    let dir = |v: &str| {
        std::env::var_os(v)
            .filter(|x| !x.is_empty())
            .map(PathBuf::from)
    };
    let (Some(lib_dir), Some(pythonpath)) =
        (dir("S6_TRT_RTX_LIB_DIR"), dir("S6_TRT_RTX_PYTHONPATH"))
    else {
        return skip(
            REQUIRE,
            "S6_TRT_RTX_LIB_DIR / S6_TRT_RTX_PYTHONPATH not set (TensorRT-RTX and its Python bindings; scripts/setup.sh)",
        );
    };
    let Some(plugin) = plugin_variant("rtx1") else {
        return skip(
            REQUIRE,
            "no rtx1 library (scripts/build_plugin_variants.sh rtx1)",
        );
    };
    let mut failures = Vec::new();
    for mode in ["load-library", "ctypes"] {
        match run(&lib_dir, &pythonpath, &plugin, mode) {
            Ok(text) => {
                // The refusal went through TensorRT's own finder to the Python logger.
                let logged = text.lines().any(|l| {
                    l.contains("[TRT] [E] S6Scan plugin 'layer_missing' createPlugin")
                        && l.contains("bc_channels_last")
                });
                if !logged {
                    failures.push(format!("mode {mode}: no refusal in TensorRT's log\n{text}"));
                }
            }
            Err(e) => failures.push(e),
        }
    }
    for other in ["trt10", "trt11"] {
        match plugin_variant(other) {
            Some(p) => {
                if let Err(e) = run(&lib_dir, &pythonpath, &p, "mismatch") {
                    failures.push(format!("{other}: {e}"));
                }
            }
            None => skip(REQUIRE, &format!("no {other} library to see it refused")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
