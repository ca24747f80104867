//! The Mamba2 (SSD) exports of `scripts/export_mamba2.py` (`fixtures/mamba2/`: transformers'
//! Mamba2ForCausalLM and a hand-written minimal SSD model, dynamo, dynamic sequence axis).
//! Unpatched, the interpreter runs them and matches onnxruntime at the export length and PyTorch
//! at the other lengths (1e-4 of max(1, |ref|)). The patcher does not rewrite SSD yet: it must
//! refuse them with "not supported yet: Mamba2 …", never with a wrong graph.

use s6_onnx::interp::{Session, Tensor};
use s6_onnx::{model, npy, patch};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 2] = ["hf2_dynamo_dynseq_L12", "ssd_minimal_dynamo_dynseq_L12"];

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/mamba2")
        .join(name)
}

fn read_npy_dir(d: &Path) -> HashMap<String, Tensor> {
    let mut m = HashMap::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "npy") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            m.insert(name, npy::read(&p).unwrap());
        }
    }
    m
}

/// Largest |got − want| / max(1, max |want|).
fn rel_err(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.shape, want.shape);
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    let scale = w.iter().fold(1.0f64, |a, b| a.max(b.abs()));
    g.iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
        / scale
}

#[test]
fn interpreter_runs_the_unpatched_exports_at_every_length() {
    for name in FIXTURES {
        let d = dir(name);
        let m = model::load(&d.join("model.onnx")).unwrap();
        let s = Session::new(&m, &d).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut cases = vec![(d.join("inputs"), d.join("expected"))];
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("expected_L")
            {
                cases.push((p.join("inputs"), p.clone()));
            }
        }
        assert_eq!(cases.len(), 4, "{name}: export length and three others");
        for (inputs, expected) in cases {
            let outs = s
                .run(&read_npy_dir(&inputs))
                .unwrap_or_else(|e| panic!("{name} {}: {e}", expected.display()));
            let want = read_npy_dir(&expected);
            let got = &outs.iter().find(|(n, _)| n == "logits").unwrap().1;
            let err = rel_err(got, &want["logits"]);
            println!("{name} {}: {err:.2e}", expected.display());
            assert!(err <= 1e-4, "{name} {}: {err:.2e}", expected.display());
        }
    }
}

#[test]
fn patcher_refuses_ssd_clearly() {
    for name in FIXTURES {
        let d = dir(name);
        let mut m = model::load(&d.join("model.onnx")).unwrap();
        let before = m.graph.node.len();
        let err = patch::patch_model(&mut m, &d).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, patch::PatchError::Unsupported { .. })
                && msg.contains("not supported yet: Mamba2"),
            "{name}: {msg}"
        );
        assert_eq!(m.graph.node.len(), before, "{name}: graph changed");
    }
}
