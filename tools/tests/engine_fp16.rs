//! The fp16 pass on real Mamba exports: the converted model, run by the interpreter, matches
//! onnxruntime's fp32 outputs (committed fixtures) within fp16 accuracy.

use s6_onnx::interp::{DataType, Session};
use std::collections::HashMap;
use std::path::Path;

fn check(model_dir: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/models")
        .join(model_dir);
    let mut model = s6_onnx::model::load(&dir.join("model.onnx")).unwrap();
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
}

#[test]
fn fp16_torchscript_export_matches_onnxruntime() {
    check("hf_ts_L12");
}

#[test]
fn fp16_dynamo_export_matches_onnxruntime() {
    check("hf_dynamo_L12");
}
