//! Finding TensorRT and CUDA headers and reading which TensorRT ABI they describe. Shared by the
//! plugin's build script (`build/shim.rs`) and s6-tools' (`tools/build.rs`), so that both look in
//! the same places in the same order and agree on the ABI.
//!
//! TensorRT headers (the folder holding `NvInferRuntime.h`), first found wins:
//! `TENSORRT_INCLUDE_DIR`, `TENSORRT_ROOT/include`, `TRT_ROOT/include`, then the system paths
//! `/usr/include/x86_64-linux-gnu`, `/usr/include/aarch64-linux-gnu` (JetPack),
//! `/usr/local/TensorRT/include`, `/usr/local/tensorrt/include`, `/opt/tensorrt/include`,
//! `/usr/include`. TensorRT-RTX headers for s6-engine's RTX backend: `S6_TRT_RTX_INCLUDE_DIR`.
//! CUDA headers (`cuda_runtime_api.h`, which TensorRT's headers include): `CUDA_INCLUDE_DIR`,
//! `CUDA_HOME/include`, `CUDA_PATH/include`, `CUDA_ROOT/include`, `/usr/local/cuda/include`,
//! `/usr/include`.

#![allow(dead_code)] // each build script uses its own part

use std::fmt;
use std::path::{Path, PathBuf};

pub const TRT_PROBE: &str = "NvInferRuntime.h";
pub const CUDA_PROBE: &str = "cuda_runtime_api.h";
pub const PARSER_PROBE: &str = "NvOnnxParser.h";

const TRT_SYSTEM: [&str; 6] = [
    "/usr/include/x86_64-linux-gnu",
    "/usr/include/aarch64-linux-gnu",
    "/usr/local/TensorRT/include",
    "/usr/local/tensorrt/include",
    "/opt/tensorrt/include",
    "/usr/include",
];
const CUDA_SYSTEM: [&str; 2] = ["/usr/local/cuda/include", "/usr/include"];

/// Which TensorRT product the headers belong to: their vtables differ, so a library built
/// against one is only safe inside the same product and major version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// TensorRT (8.x, 10.x, 11.x).
    Enterprise,
    /// TensorRT-RTX (1.x).
    Rtx,
}

/// The TensorRT version the headers declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abi {
    pub flavour: Flavour,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Abi {
    /// Short tag used in file names and cfgs: `trt10`, `trt11`, `rtx1`.
    pub fn tag(&self) -> String {
        match self.flavour {
            Flavour::Enterprise => format!("trt{}", self.major),
            Flavour::Rtx => format!("rtx{}", self.major),
        }
    }
}

impl fmt::Display for Abi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.flavour {
            Flavour::Enterprise => "TensorRT",
            Flavour::Rtx => "TensorRT-RTX",
        };
        write!(f, "{name} {}.{}.{}", self.major, self.minor, self.patch)
    }
}

fn env_path(var: &str) -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed={var}");
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Candidate folders with where each came from, in search order.
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

/// The first candidate holding `probe`, or a message naming every place looked at.
fn first_with(cands: &[(PathBuf, String)], probe: &str) -> Result<PathBuf, String> {
    if let Some((dir, _)) = cands.iter().find(|(d, _)| d.join(probe).is_file()) {
        return Ok(dir.clone());
    }
    let looked: Vec<String> = cands
        .iter()
        .map(|(d, from)| format!("  {} ({from})", d.join(probe).display()))
        .collect();
    Err(format!("no `{probe}` in any of\n{}", looked.join("\n")))
}

/// The TensorRT headers of the product the user builds for.
pub fn find_tensorrt() -> Result<PathBuf, String> {
    first_with(
        &candidates(
            &["TENSORRT_INCLUDE_DIR"],
            &["TENSORRT_ROOT", "TRT_ROOT"],
            &TRT_SYSTEM,
        ),
        TRT_PROBE,
    )
}

/// TensorRT-RTX headers for a second (RTX) engine backend, only where named explicitly.
pub fn find_tensorrt_rtx() -> Option<PathBuf> {
    env_path("S6_TRT_RTX_INCLUDE_DIR").filter(|d| d.join(TRT_PROBE).is_file())
}

pub fn find_cuda() -> Result<PathBuf, String> {
    first_with(
        &candidates(
            &["CUDA_INCLUDE_DIR"],
            &["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"],
            &CUDA_SYSTEM,
        ),
        CUDA_PROBE,
    )
}

/// The ABI the headers in `dir` declare (`NvInferVersion.h`). 10.x and later spell the
/// numbers through `TRT_*_ENTERPRISE` / `TRT_*_RTX` macros; 8.x defines them directly.
pub fn read_abi(dir: &Path) -> Result<Abi, String> {
    let file = dir.join("NvInferVersion.h");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let define = |name: &str| -> Option<String> {
        text.lines().find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some("#define") && it.next() == Some(name))
                .then(|| it.next().map(str::to_string))
                .flatten()
        })
    };
    let number = |name: &str| -> Option<u32> {
        let v = define(name)?;
        v.parse().ok().or_else(|| define(&v)?.parse().ok())
    };
    let flavour = if define("TRT_MAJOR_RTX").is_some() {
        Flavour::Rtx
    } else {
        Flavour::Enterprise
    };
    let get = |part: &str| {
        number(&format!("NV_TENSORRT_{part}"))
            .ok_or_else(|| format!("no NV_TENSORRT_{part} in {}", file.display()))
    };
    Ok(Abi {
        flavour,
        major: get("MAJOR")?,
        minor: get("MINOR")?,
        patch: get("PATCH")?,
    })
}
