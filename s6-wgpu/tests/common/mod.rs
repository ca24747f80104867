//! Shared by the GPU tests: one device per test binary (or a printed skip), seeded data,
//! the committed `.npy` fixtures (through s6_onnx::npy), and closeness checks.
#![allow(dead_code)]

pub mod nodes;

use half::f16;
use s6_wgpu::WgpuContext;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The device, or `None` (with one printed skip line per test) when the machine has no
/// adapter. `S6_WGPU_REQUIRE=1` turns the skip into a failure, for CI that installs lavapipe.
pub fn ctx(test: &str) -> Option<&'static WgpuContext> {
    static CTX: OnceLock<Result<WgpuContext, String>> = OnceLock::new();
    let c = CTX.get_or_init(|| WgpuContext::new().map_err(|e| e.to_string()));
    match c {
        Ok(c) => {
            eprintln!(
                "{test}: running on {} ({})",
                c.adapter_name(),
                c.backend_name()
            );
            Some(c)
        }
        Err(e) => {
            if std::env::var("S6_WGPU_REQUIRE").is_ok_and(|v| v == "1") {
                panic!("{test}: S6_WGPU_REQUIRE=1 but no GPU adapter: {e}");
            }
            // Straight to stderr: libtest would swallow print!/eprint! of a passing test.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIP {test}: no GPU adapter: {e}");
            None
        }
    }
}

/// xorshift64*: reproducible data without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        lo + (hi - lo) * (x as f32 / (1u64 << 24) as f32)
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// Asserts |got - want| <= atol + rtol |want| elementwise; reports the worst element.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0usize, 0.0f64);
    let mut worst_rel = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        worst_rel = worst_rel.max(err / w.abs().max(1.0));
        assert!(
            err <= atol + rtol * w.abs(),
            "{what}[{i}]: got {g}, want {w} (|err| {err:.3e} > {atol:.0e} + {rtol:.0e}|want|)"
        );
        if err > worst.1 {
            worst = (i, err);
        }
    }
    eprintln!(
        "{what}: max |err| {:.3e} at {}, max |err|/max(1,|want|) {worst_rel:.3e}",
        worst.1, worst.0
    );
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate inside the repo")
        .to_path_buf()
}

/// A `.npy` array (C order, little endian): f32, f16 or i64 data widened to f64.
pub struct Npy {
    pub shape: Vec<usize>,
    /// numpy-style dtype name (`float32`, ...).
    pub descr: String,
    pub data: Vec<f64>,
    /// The raw f16 values when the file is float16.
    pub f16: Option<Vec<f16>>,
}

pub fn read_npy(path: &Path) -> Npy {
    // The one .npy reader (s6_onnx::npy, on npyz).
    let t = s6_onnx::npy::read(path).unwrap_or_else(|e| panic!("{e}"));
    let f16 = match &t.data {
        s6_onnx::interp::TensorData::F16(v) => Some(v.clone()),
        _ => None,
    };
    Npy {
        shape: t.shape.clone(),
        descr: t.dtype().name().to_string(),
        data: t.to_f64_vec(),
        f16,
    }
}
