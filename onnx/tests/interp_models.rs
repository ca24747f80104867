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

fn check_case(case: &str) {
    let dir = fixtures().join(case);
    let m = model::load(&dir.join("model.onnx")).unwrap();
    let session = Session::new(&m, &dir).unwrap();
    let inputs = read_dir_npy(&dir.join("inputs"));
    let expected = read_dir_npy(&dir.join("expected"));
    assert!(!expected.is_empty(), "{case}: no expected outputs");
    let outs = session.run(&inputs).unwrap();
    for (name, want) in &expected {
        let got = &outs
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{case}: no output {name}"))
            .1;
        let (max, ok) = close(got, want);
        assert!(ok, "{case}/{name}: max abs error {max:e}");
        eprintln!("{case}/{name}: max abs error {max:e}");
    }
}

macro_rules! cases {
    ($($f:ident => $dir:literal),* $(,)?) => {$(
        #[test]
        fn $f() {
            check_case($dir);
        }
    )*};
}

cases!(
    hf_ts_l12 => "hf_ts_L12",
    hf_ts_l7 => "hf_ts_L7",
    hf_dynamo_l12 => "hf_dynamo_L12",
    hf_dynamo_l7 => "hf_dynamo_L7",
    minimal_ts_l12 => "minimal_ts_L12",
    minimal_ts_l7 => "minimal_ts_L7",
    minimal_dynamo_l12 => "minimal_dynamo_L12",
);

/// Every bundled case is covered above (a new fixture folder must be added to the list).
#[test]
fn every_fixture_is_listed() {
    let mut found: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| fixtures().join(n).join("model.onnx").exists())
        .collect();
    found.sort();
    let mut listed = vec![
        "hf_dynamo_L12",
        "hf_dynamo_L7",
        "hf_ts_L12",
        "hf_ts_L7",
        "minimal_dynamo_L12",
        "minimal_ts_L12",
        "minimal_ts_L7",
    ];
    listed.sort();
    assert_eq!(found, listed);
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
