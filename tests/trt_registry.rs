//! Real TensorRT libraries (no GPU needed) load `libs6plugin.so` every way applications do, with
//! TensorRT's own logger finder: the TensorRT 10.16 lean runtime (`S6_TRT_LEAN_LIB`) with the
//! library built for TensorRT 10, and TensorRT-RTX 1.7 (`S6_TRT_RTX_LIB_DIR`) with the one built
//! for it. `tests/cpp/host_driver.cpp` does the work; every mode and every refusal runs in a
//! process of its own, so an abort fails that case and nothing else.
//!
//! Per TensorRT: `loadLibrary` and load-time registration, TensorRT linked into the driver (as an
//! application links it) and dlopened privately (as Python's `tensorrt` module does); no TensorRT
//! at all; the V3 round trip of both ops' creators (`S6Scan`, `S6ScanHeads`: capabilities, output
//! types and shapes, fields to serialise, re-creation at runtime); each refusal; loggers that
//! cannot be called; the V2 creators and their blob refusals (10.x); and every
//! library built for another TensorRT (`scripts/build_plugin_variants.sh`), which must be refused
//! with a message naming both versions. A TensorRT or variant that is not there is a visible skip;
//! `S6_TRT_REQUIRE=1` makes it a failure (CI).
#![cfg(feature = "trt")]

mod skip;
mod trt_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trt_common::{compile, plugin_variant, skip, DriverBuild, NATIVE_TAG};

const REQUIRE: &str = "S6_TRT_REQUIRE";
const TAGS: [&str; 3] = ["trt10", "trt11", "rtx1"];
const REFUSALS: [&str; 10] = [
    "bad-value",
    "missing-field",
    "mistyped-field",
    "unknown-field",
    "null-data",
    "bad-length",
    "bad-collection",
    // S6ScanHeads' creator, with the parser's kINT32 fields.
    "heads-missing-field",
    "heads-bad-value",
    "heads-unknown-field",
];
const HOSTILE_LOGGERS: [&str; 4] = [
    "pure-logger",
    "unmapped-logger",
    "vtable-not-in-a-module",
    "pure-finder",
];

/// A TensorRT to test against: its library, the headers of its ABI, its tag and name.
struct Host {
    name: &'static str,
    tag: &'static str,
    lib: PathBuf,
    include: PathBuf,
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Headers for `tag`: this build's own when it is that ABI, else the ones setup.sh fetched.
fn headers(tag: &str, var: &str) -> Option<PathBuf> {
    if tag == NATIVE_TAG {
        return Some(PathBuf::from(env!("S6_TRT_INCLUDE")));
    }
    env_path(var).filter(|d| d.join("NvInferRuntime.h").is_file())
}

fn lean_host() -> Result<Host, String> {
    let lib = env_path("S6_TRT_LEAN_LIB")
        .ok_or("S6_TRT_LEAN_LIB is not set (libnvinfer_lean.so.10 of tensorrt-lean-cu12-libs)")?;
    let lib = if lib.is_dir() {
        lib.join("libnvinfer_lean.so.10")
    } else {
        lib
    };
    if !lib.is_file() {
        return Err(format!("{} is not a file", lib.display()));
    }
    let include = headers("trt10", "S6_TRT10_INCLUDE_DIR")
        .ok_or("no TensorRT 10 headers (S6_TRT10_INCLUDE_DIR; scripts/setup.sh)")?;
    Ok(Host {
        name: "TensorRT 10.16 lean runtime",
        tag: "trt10",
        lib,
        include,
    })
}

fn rtx_host() -> Result<Host, String> {
    let dir = env_path("S6_TRT_RTX_LIB_DIR").ok_or(
        "S6_TRT_RTX_LIB_DIR is not set (tensorrt-rtx-cu12-libs' tensorrt_rtx_libs folder)",
    )?;
    let lib = dir.join("libtensorrt_rtx.so.1");
    if !lib.is_file() {
        return Err(format!("{} is not a file", lib.display()));
    }
    let include = headers("rtx1", "S6_TRT_RTX_INCLUDE_DIR")
        .ok_or("no TensorRT-RTX headers (S6_TRT_RTX_INCLUDE_DIR; scripts/setup.sh)")?;
    Ok(Host {
        name: "TensorRT-RTX 1.7",
        tag: "rtx1",
        lib,
        include,
    })
}

/// The two drivers for a host: TensorRT linked in, and TensorRT dlopened privately.
struct Drivers {
    linked: PathBuf,
    private: PathBuf,
}

fn drivers(h: &Host) -> Drivers {
    let linked = compile(&DriverBuild {
        source: "host_driver.cpp",
        out_name: &format!("host_driver_{}_linked", h.tag),
        include: &h.include,
        defines: &["S6_LINKED"],
        link: Some(&h.lib),
    });
    let private = compile(&DriverBuild {
        source: "host_driver.cpp",
        out_name: &format!("host_driver_{}_dlopen", h.tag),
        include: &h.include,
        defines: &[],
        link: None,
    });
    Drivers { linked, private }
}

fn run(driver: &Path, h: &Host, plugin: &Path, args: &[&str]) -> (Output, String) {
    let out = Command::new(driver)
        .arg(&h.lib)
        .arg(plugin)
        .args(args)
        .env_remove("S6PLUGIN_NO_STATIC_REGISTRATION")
        .output()
        .expect("run host driver");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// Runs one case in its own process and returns the failures it showed.
fn case(
    driver: &Path,
    h: &Host,
    plugin: &Path,
    args: &[&str],
    failures: &mut Vec<String>,
) -> String {
    let (out, text) = run(driver, h, plugin, args);
    let label = format!(
        "{} [{}] {}",
        h.name,
        driver.file_name().unwrap().to_string_lossy(),
        args.join(" ")
    );
    let mode = args[0];
    if !out.status.success() {
        use std::os::unix::process::ExitStatusExt;
        let how = match out.status.signal() {
            Some(sig) => format!("killed by signal {sig} (an abort or crash in the host)"),
            None => format!("{}", out.status),
        };
        failures.push(format!("{label}: {how}\n{text}"));
    } else if !text.contains(&format!("{mode}: 0 failure(s)")) {
        failures.push(format!("{label}: no success line\n{text}"));
    } else {
        eprintln!("ok   {label}");
    }
    text
}

/// The line (other than the driver's own `expect:` lines) that names every expected word.
fn logged(text: &str) -> bool {
    let needles: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("expect: "))
        .collect();
    !needles.is_empty()
        && text
            .lines()
            .filter(|l| !l.starts_with("expect: "))
            .any(|l| needles.iter().all(|n| l.contains(n)))
}

fn exercise(host: Result<Host, String>) {
    let h = match host {
        Ok(h) => h,
        Err(why) => return skip(REQUIRE, &why),
    };
    let Some(plugin) = plugin_variant(h.tag) else {
        return skip(
            REQUIRE,
            &format!(
                "no libs6plugin.so built for {} (scripts/build_plugin_variants.sh {})",
                h.name, h.tag
            ),
        );
    };
    let d = drivers(&h);
    let mut failures = Vec::new();
    for driver in [&d.linked, &d.private] {
        for mode in ["load-library", "static"] {
            case(driver, &h, &plugin, &[mode], &mut failures);
        }
    }
    case(&d.private, &h, &plugin, &["no-trt"], &mut failures);
    for r in REFUSALS {
        let text = case(&d.linked, &h, &plugin, &["refuse", r], &mut failures);
        if !logged(&text) {
            failures.push(format!(
                "{}: refusal {r}: no log line names what was refused\n{text}",
                h.name
            ));
        }
    }
    for kind in HOSTILE_LOGGERS {
        let text = case(
            &d.private,
            &h,
            &plugin,
            &["hostile-logger", kind],
            &mut failures,
        );
        let to_stderr = text.lines().any(|l| {
            l.starts_with("[s6plugin] ") && l.contains("layer_bad") && l.contains("has_z")
        });
        if !to_stderr {
            failures.push(format!(
                "{}: logger {kind}: the refusal did not reach stderr\n{text}",
                h.name
            ));
        }
    }
    if h.tag == "trt10" {
        for part in ["round-trip", "truncated", "bit-flips", "garbage"] {
            case(&d.linked, &h, &plugin, &["v2", part], &mut failures);
        }
    }
    for other in TAGS.iter().filter(|&&t| t != h.tag) {
        let Some(foreign) = plugin_variant(other) else {
            skip(
                REQUIRE,
                &format!("no {other} variant to check that {} refuses it", h.name),
            );
            continue;
        };
        for driver in [&d.linked, &d.private] {
            let text = case(driver, &h, &foreign, &["mismatch"], &mut failures);
            let said = text.lines().any(|l| {
                l.starts_with("s6plugin: this libs6plugin.so was built for")
                    && l.contains("nothing was registered")
                    && l.contains(&h.lib.display().to_string())
            });
            if !said {
                failures.push(format!(
                    "{}: the {other} library did not say why it refused\n{text}",
                    h.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn tensorrt_10_lean_runtime_loads_and_refuses_cleanly() {
    exercise(lean_host());
}

#[test]
fn tensorrt_rtx_1_7_loads_and_refuses_cleanly() {
    exercise(rtx_host());
}
