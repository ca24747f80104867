//! Compiles `kernels/s6scan.cu` into a fatbin with nvcc when one is found (feature `cuda`).
//!
//! nvcc is looked for in `NVCC`, then `CUDA_HOME` / `CUDA_PATH` / `CUDA_ROOT` (`bin/nvcc`), then
//! `PATH`, then `/usr/local/cuda`. The fatbin holds SASS for every architecture nvcc supports
//! among sm_72, 80, 86, 87, 89 and 90 (or those listed in `S6PLUGIN_CUDA_ARCHS`, e.g. `87,90`)
//! plus PTX for the newest, lands in `OUT_DIR/s6scan.fatbin` and is embedded by
//! `plugin/cuda/module.rs` under `cfg(s6_fatbin)`. Without nvcc the crate still builds: the
//! kernels are then compiled at first use with NVRTC (see `plugin/cuda/module.rs`).
//! `S6PLUGIN_REQUIRE_NVCC=1` turns a missing nvcc or a failed compile into a build error (CI).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiled as one module, in this order (the heads kernels use the first file's types); NVRTC
/// gets the same concatenation (plugin/cuda/module.rs).
const SOURCES: [&str; 2] = ["kernels/s6scan.cu", "kernels/s6scan_heads.cu"];
const WANTED_ARCHS: [u32; 6] = [72, 80, 86, 87, 89, 90];

pub fn build() {
    println!("cargo:rustc-check-cfg=cfg(s6_fatbin)");
    for src in SOURCES {
        println!("cargo:rerun-if-changed={src}");
    }
    for var in [
        "NVCC",
        "CUDA_HOME",
        "CUDA_PATH",
        "CUDA_ROOT",
        "PATH",
        "S6PLUGIN_CUDA_ARCHS",
        "S6PLUGIN_REQUIRE_NVCC",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let require = std::env::var("S6PLUGIN_REQUIRE_NVCC").is_ok_and(|v| v == "1");
    match compile() {
        Ok(()) => println!("cargo:rustc-cfg=s6_fatbin"),
        Err(why) if require => panic!("S6PLUGIN_REQUIRE_NVCC=1: {why}"),
        Err(why) => println!(
            "cargo:warning=s6plugin: CUDA kernels not precompiled ({why}); they will be \
             compiled with NVRTC at first use"
        ),
    }
}

fn compile() -> Result<(), String> {
    let nvcc = find_nvcc().ok_or_else(|| {
        "no nvcc found (looked at NVCC, CUDA_HOME/CUDA_PATH/CUDA_ROOT, PATH, /usr/local/cuda)"
            .to_string()
    })?;
    let supported = supported_archs(&nvcc)?;
    let archs = match std::env::var("S6PLUGIN_CUDA_ARCHS") {
        Ok(list) if !list.trim().is_empty() => {
            let asked: Vec<u32> = list
                .split([',', ' ', ';'])
                .filter(|s| !s.is_empty())
                .map(|s| s.trim_start_matches("sm_").parse::<u32>())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("S6PLUGIN_CUDA_ARCHS={list:?}: {e}"))?;
            let missing: Vec<_> = asked.iter().filter(|a| !supported.contains(a)).collect();
            if !missing.is_empty() {
                return Err(format!(
                    "S6PLUGIN_CUDA_ARCHS asks for {missing:?}, which {} does not support",
                    nvcc.display()
                ));
            }
            asked
        }
        _ => WANTED_ARCHS
            .into_iter()
            .filter(|a| supported.contains(a))
            .collect(),
    };
    let newest = *archs
        .iter()
        .max()
        .ok_or_else(|| format!("{} supports none of {WANTED_ARCHS:?}", nvcc.display()))?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let out = out_dir.join("s6scan.fatbin");
    let mut cmd = Command::new(&nvcc);
    cmd.arg("-fatbin")
        .arg("-O3")
        .arg("--threads")
        .arg("0")
        .arg("-o")
        .arg(&out);
    for a in &archs {
        let code = if *a == newest {
            format!("[sm_{a},compute_{a}]")
        } else {
            format!("sm_{a}")
        };
        cmd.arg(format!("-gencode=arch=compute_{a},code={code}"));
    }
    // A toolkit unpacked from wheels keeps its headers next to bin/, which nvcc's own profile
    // may not point at; naming them is harmless for a normal install.
    if let Some(root) = nvcc.parent().and_then(Path::parent) {
        for inc in ["include", "cccl"] {
            let dir = root.join(inc);
            if dir.is_dir() {
                cmd.arg(format!("-I{}", dir.display()));
            }
        }
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let mut text = String::new();
    for src in SOURCES {
        let path = manifest.join(src);
        // Compiler messages then name the original file and line.
        text += &format!("#line 1 \"{}\"\n", path.display());
        text += &std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        text.push('\n');
    }
    let joined = out_dir.join("s6_kernels.cu");
    std::fs::write(&joined, text).map_err(|e| format!("writing {}: {e}", joined.display()))?;
    cmd.arg(&joined);
    let output = cmd
        .output()
        .map_err(|e| format!("running {}: {e}", nvcc.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed on {SOURCES:?}:\n{}",
            nvcc.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let archs_txt: Vec<String> = archs.iter().map(|a| format!("sm_{a}")).collect();
    println!(
        "cargo:rustc-env=S6_FATBIN_ARCHS={} +PTX compute_{newest}",
        archs_txt.join(",")
    );
    Ok(())
}

fn find_nvcc() -> Option<PathBuf> {
    let exe = if cfg!(windows) { "nvcc.exe" } else { "nvcc" };
    if let Some(p) = std::env::var_os("NVCC").map(PathBuf::from) {
        if p.is_file() {
            return Some(p);
        }
    }
    for var in ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"] {
        if let Some(root) = std::env::var_os(var) {
            let p = Path::new(&root).join("bin").join(exe);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(exe);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let p = Path::new("/usr/local/cuda/bin").join(exe);
    p.is_file().then_some(p)
}

/// Real architectures nvcc can build for, from `nvcc --list-gpu-arch` (older nvcc without the
/// flag: assume sm_72..sm_90 only if it reports CUDA 11.8 or newer).
fn supported_archs(nvcc: &Path) -> Result<Vec<u32>, String> {
    let out = Command::new(nvcc)
        .arg("--list-gpu-arch")
        .output()
        .map_err(|e| format!("running {} --list-gpu-arch: {e}", nvcc.display()))?;
    if out.status.success() {
        let list: Vec<u32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|s| s.strip_prefix("compute_"))
            .filter_map(|s| s.parse().ok())
            .collect();
        if !list.is_empty() {
            return Ok(list);
        }
    }
    let ver = Command::new(nvcc)
        .arg("--version")
        .output()
        .map_err(|e| format!("running {} --version: {e}", nvcc.display()))?;
    let text = String::from_utf8_lossy(&ver.stdout);
    let release = text
        .split("release ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|r| {
            let mut it = r.trim().split('.');
            Some((
                it.next()?.parse::<u32>().ok()?,
                it.next()?.parse::<u32>().ok()?,
            ))
        })
        .ok_or_else(|| format!("cannot read the CUDA release from {}", nvcc.display()))?;
    if release >= (11, 8) {
        Ok(WANTED_ARCHS.to_vec())
    } else {
        Err(format!(
            "{} is CUDA {}.{}; sm_90 needs 11.8 or newer",
            nvcc.display(),
            release.0,
            release.1
        ))
    }
}
