//! Streaming a single-file model through the patcher (`s6_onnx::stream`): loading leaves the
//! weights in the file, saving copies them back; the result must be exactly what the in-memory
//! path writes.

use s6_onnx::{model, patch, stream};
use std::path::Path;

#[test]
fn streamed_patch_writes_the_same_model_as_the_in_memory_path() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let tmp = std::env::temp_dir().join(format!("s6-stream-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut streamed_tensors = 0;
    for name in [
        "models/hf_ts_L7",
        "models/hf_dynamo_L12",
        "models/minimal_ts_L7",
        "fp16/hf_ts_fp16_L6",
    ] {
        let dir = root.join(name);
        let path = dir.join("model.onnx");
        let mut plain = model::load(&path).unwrap();
        let (mut lazy, src) = stream::load(&path).unwrap();
        streamed_tensors += lazy
            .graph
            .initializer
            .iter()
            .filter(|t| model::is_external(t))
            .count();
        // Loaded lazily, the weights read back (external data into the model file) equal.
        let mut inlined = lazy.clone();
        model::inline_external_data(&mut inlined, &dir).unwrap();
        for (a, b) in inlined
            .graph
            .initializer
            .iter()
            .zip(&plain.graph.initializer)
        {
            assert_eq!(a.raw_data, b.raw_data, "{name}: {}", a.name);
        }
        patch::patch_model(&mut plain, &dir).unwrap();
        patch::patch_model(&mut lazy, &dir).unwrap();
        let (a, b) = (tmp.join("plain.onnx"), tmp.join("streamed.onnx"));
        model::save(&plain, &a).unwrap();
        assert_eq!(stream::save(&lazy, &b, &dir, &src).unwrap(), None);
        let (ma, mb) = (model::load(&a).unwrap(), model::load(&b).unwrap());
        assert_eq!(ma, mb, "{name}");
        assert!(
            !mb.graph.initializer.iter().any(model::is_external),
            "{name}"
        );
    }
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(streamed_tensors > 10, "{streamed_tensors}");
}
