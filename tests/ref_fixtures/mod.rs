//! What the reference tests of both ops share: their bounds, the .npy reader of their PyTorch
//! fixtures, the case folders and the worst-error ratio.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// fp32 result vs fp64 PyTorch: |got − want| ≤ F32_REL·|want| + F32_ABS. The absolute floor
/// covers outputs that are small because of cancellation in Σₙ h·C (fp32 rounding of the terms,
/// not of the sum, sets the error there).
pub const F32_REL: f64 = 1e-5;
pub const F32_ABS: f64 = 1e-6;
/// fp64 result vs the expected values stored as f32: the f32 rounding (2⁻²⁴ relative) dominates.
pub const F64_REL: f64 = 1.2e-7;
pub const F64_ABS: f64 = 1e-12;

pub struct Array {
    pub shape: Vec<i64>,
    pub data: Vec<f32>,
    pub was_f16: bool,
}

pub fn load(path: &Path) -> Array {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let shape = npy.shape().iter().map(|&x| x as i64).collect();
    let width = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.num_bytes(),
        _ => None,
    };
    let (data, was_f16) = match width {
        Some(2) => (
            npy.into_vec::<half::f16>()
                .unwrap()
                .into_iter()
                .map(f32::from)
                .collect(),
            true,
        ),
        _ => (npy.into_vec::<f32>().unwrap(), false),
    };
    Array {
        shape,
        data,
        was_f16,
    }
}

/// The case folders (those with a `case.json`) under `fixtures/<family>`, sorted.
pub fn case_dirs(family: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(family);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Largest ratio err / (rel·|want| + abs) over the tensor; ≤ 1 passes.
pub fn worst(got: impl Iterator<Item = f64>, want: &[f32], rel: f64, abs: f64) -> f64 {
    got.zip(want)
        .map(|(g, &w)| (g - w as f64).abs() / (rel * (w as f64).abs() + abs))
        .fold(0.0, f64::max)
}
