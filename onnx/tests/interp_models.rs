//! The interpreter against onnxruntime on the bundled Mamba exports: every
//! `fixtures/models/<case>/` holds `model.onnx`, `inputs/*.npy` and onnxruntime's
//! `expected/*.npy` (made by the foundation's export script).

use s6_onnx::interp::{Session, Tensor};
use s6_onnx::{model, npy};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models")
}

fn read_dir_npy(dir: &Path) -> HashMap<String, Tensor> {
    let mut m = HashMap::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "npy") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            m.insert(name, npy::read(&p).unwrap());
        }
    }
    m
}

/// Max |got - want| and whether every element is within atol + rtol·|want|.
fn close(got: &Tensor, want: &Tensor) -> (f64, bool) {
    assert_eq!(got.shape, want.shape);
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    let mut max = 0.0f64;
    let mut ok = true;
    for (a, b) in g.iter().zip(&w) {
        let d = (a - b).abs();
        max = max.max(d);
        ok &= d <= ATOL + RTOL * b.abs();
    }
    (max, ok)
}

/// Runs one case; `Err` describes what differed.
fn check_case(dir: &Path) -> Result<f64, String> {
    let case = dir.file_name().unwrap().to_string_lossy().into_owned();
    let m = model::load(&dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let session = Session::new(&m, dir).map_err(|e| format!("{case}: {e}"))?;
    let inputs = read_dir_npy(&dir.join("inputs"));
    let expected = read_dir_npy(&dir.join("expected"));
    let outs = session.run(&inputs).map_err(|e| format!("{case}: {e}"))?;
    let mut worst = 0.0f64;
    for (name, want) in &expected {
        let got = &outs
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("{case}: no output {name}"))?
            .1;
        if got.shape != want.shape {
            return Err(format!(
                "{case}/{name}: shape {:?} vs {:?}",
                got.shape, want.shape
            ));
        }
        let (max, ok) = close(got, want);
        if !ok {
            return Err(format!("{case}/{name}: max abs error {max:e}"));
        }
        worst = worst.max(max);
    }
    Ok(worst)
}

/// Every bundled export with onnxruntime outputs (both exporters, several lengths, the
/// mamba-minimal model) matches at 1e-4.
#[test]
fn every_bundled_export_matches_onnxruntime() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model.onnx").exists() && p.join("expected").is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 7, "only {} bundled exports", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        match check_case(c) {
            Ok(max) => eprintln!("{}: max abs error {max:e}", c.display()),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same exports converted to fp16 (`s6_onnx::fp16`) run end to end in fp16 and stay
/// near onnxruntime's fp32 logits (fp16 rounding through every layer: 2e-2 abs + 2e-2 rel).
#[test]
fn fp16_conversions_run_close_to_fp32() {
    for case in ["hf_ts_L12", "hf_dynamo_L12", "minimal_ts_L12"] {
        let dir = fixtures().join(case);
        let mut m = model::load(&dir.join("model.onnx")).unwrap();
        s6_onnx::fp16::convert(&mut m).unwrap();
        let session = Session::new(&m, &dir).unwrap();
        let inputs = read_dir_npy(&dir.join("inputs"));
        let outs = session.run(&inputs).unwrap();
        let want = &read_dir_npy(&dir.join("expected"))["logits"];
        let got = &outs[0].1;
        assert_eq!(got.dtype(), s6_onnx::interp::DataType::F16, "{case}");
        let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
        let mut max = 0.0f64;
        for (a, b) in g.iter().zip(&w) {
            let d = (a - b).abs();
            max = max.max(d);
            assert!(d <= 2e-2 + 2e-2 * b.abs(), "{case}: {a} vs {b}");
        }
        eprintln!("{case} fp16: max abs error {max:e}");
    }
}
