//! The fp16 pass on real Mamba exports: the converted model, run by the interpreter, matches
//! onnxruntime's fp32 outputs (committed fixtures) within fp16 accuracy.

use s6_onnx::interp::{DataType, Session};
use std::collections::HashMap;
use std::path::Path;

fn fixture_dir(model_dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/models")
        .join(model_dir)
}

/// Converts `model_path` to fp16, runs it on the fixture's input, compares with onnxruntime's
/// fp32 logits.
fn check(model_dir: &str, model_path: &Path) -> s6_onnx::fp16::Fp16Report {
    let dir = fixture_dir(model_dir);
    let mut model = s6_onnx::model::load(model_path).unwrap();
    let report = s6_onnx::fp16::convert(&mut model).unwrap();
    assert!(report.initializers_converted > 0);
    // Re-parse the serialized model: what s6-engine writes is what TensorRT reads.
    let bytes = s6_onnx::proto::Message::write_to_bytes(&model).unwrap();
    let model = s6_onnx::model::parse(&bytes, &dir).unwrap();
    let session = Session::new(&model, &dir).unwrap();
    let ids = s6_onnx::npy::read(&dir.join("inputs/input_ids.npy")).unwrap();
    let inputs = HashMap::from([("input_ids".to_string(), ids)]);
    let out = session.run(&inputs).unwrap();
    let (name, logits) = &out[0];
    assert_eq!(name, "logits");
    assert_eq!(logits.dtype(), DataType::F16);
    let want = s6_onnx::npy::read(&dir.join("expected/logits.npy"))
        .unwrap()
        .to_f32_vec();
    let got = logits.to_f32_vec();
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(&want)
        .fold(0f32, |m, (g, w)| m.max((g - w).abs()));
    // fp16 has an 11-bit mantissa (rel. 4.9e-4 per rounding); a 2-layer model accumulates a few.
    println!("{model_dir}: max abs err {err:.3e}, max |logit| {scale:.3}");
    assert!(
        err <= 1e-2 * scale.max(1.0),
        "{model_dir}: max abs err {err} (scale {scale})"
    );
    report
}

#[test]
fn fp16_torchscript_export_matches_onnxruntime() {
    check("hf_ts_L12", &fixture_dir("hf_ts_L12").join("model.onnx"));
}

#[test]
fn fp16_dynamo_export_matches_onnxruntime() {
    check(
        "hf_dynamo_L12",
        &fixture_dir("hf_dynamo_L12").join("model.onnx"),
    );
}

/// The patched export: S6Scan runs with fp16 activations and fp32 A, D, delta_bias (the
/// interpreter checks the contract's dtype rules on every S6Scan call).
#[test]
fn fp16_patched_export_keeps_scan_operands_fp32_and_matches_onnxruntime() {
    for name in ["hf_ts_L12", "hf_dynamo_L12"] {
        let tmp = std::env::temp_dir().join(format!("s6-fp16-{name}-{}.onnx", std::process::id()));
        let st = std::process::Command::new(env!("CARGO_BIN_EXE_onnx-patch"))
            .arg(fixture_dir(name).join("model.onnx"))
            .arg("-o")
            .arg(&tmp)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let r = check(name, &tmp);
        // Every operand the contract fixes to fp32 (A, D, delta_bias here) was kept fp32 —
        // by name, so no Cast through fp16 stands in front of it.
        let patched = s6_onnx::model::load(&tmp).unwrap();
        let mut n_fp32 = 0;
        for n in patched.graph.node.iter().filter(|n| n.op_type == "S6Scan") {
            let mut attrs = s6_contract::S6Attrs::default();
            for a in &n.attribute {
                attrs.set(&a.name, a.i).unwrap();
            }
            for (slot, role) in attrs.inputs().iter().enumerate() {
                if !role.is_activation() {
                    assert!(
                        r.kept_fp32.contains(&n.input[slot]),
                        "{} {:?}",
                        n.input[slot],
                        r.kept_fp32
                    );
                    n_fp32 += 1;
                }
            }
        }
        assert!(n_fp32 >= 6, "{n_fp32}");
        std::fs::remove_file(&tmp).unwrap();
    }
}
