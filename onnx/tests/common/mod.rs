//! Fixture helpers shared by the patcher's test binaries (`onnx/tests/patch_*.rs`,
//! `mamba2_exports.rs`, `stateful.rs`) and the CLI tests of `tools/tests/` (included there by
//! `#[path]`): where the committed fixtures are, their `.npy` folders, declared dims, the
//! scaled error every comparison uses, scratch folders.
#![allow(dead_code)]

use s6_onnx::interp::Tensor;
use s6_onnx::npy;
use s6_onnx::proto::tensor_shape_proto::dimension::Value as DimValue;
use s6_onnx::proto::{type_proto, ValueInfoProto};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The repository's `fixtures/` (both crates sit one level below the root).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// `fixtures/<kind>/<name>` (kind: `models`, `dynamic`, `vision`, `mamba2`, …).
pub fn fixture_dir(kind: &str, name: &str) -> PathBuf {
    fixtures().join(kind).join(name)
}

/// Every `<name>.npy` of a folder, by name.
pub fn read_npy_dir(dir: &Path) -> HashMap<String, Tensor> {
    let mut out = HashMap::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for e in entries {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "npy") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            out.insert(name, npy::read(&p).unwrap());
        }
    }
    out
}

/// Declared dims of a graph input/output, as strings (a number or the dim_param).
pub fn dims(v: &ValueInfoProto) -> Vec<String> {
    match v.type_.value.as_ref() {
        Some(type_proto::Value::TensorType(t)) => t
            .shape
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(DimValue::DimValue(n)) => n.to_string(),
                Some(DimValue::DimParam(p)) => p.clone(),
                _ => "?".into(),
            })
            .collect(),
        _ => panic!("{}: not a tensor", v.name),
    }
}

/// Largest |got − want| / max(1, |want|), NaN counted as infinite; the shapes must agree.
pub fn scaled_err(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.shape, want.shape, "shape");
    got.to_f64_vec()
        .iter()
        .zip(want.to_f64_vec())
        .map(|(a, b)| {
            let e = (a - b).abs() / b.abs().max(1.0);
            if e.is_nan() {
                f64::INFINITY
            } else {
                e
            }
        })
        .fold(0.0, f64::max)
}

/// A fresh, empty scratch folder `<tmp>/<prefix>-<pid>-<tag>`.
pub fn tmpdir(prefix: &str, tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("{prefix}-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
