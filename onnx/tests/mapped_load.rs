//! The runner's load path (`stream::load`: the file memory-mapped, large initializers left in
//! it and read once, straight into their typed buffers, when the session is built) against the
//! plain one (`model::load`: the whole file parsed, every `raw_data` copied): the same outputs,
//! bit for bit, on the bundled exports; damaged files and short data refused with an error.

use s6_onnx::interp::{Session, Tensor};
use s6_onnx::{model, npy, stream};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("s6-mapped-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn inputs(dir: &Path) -> HashMap<String, Tensor> {
    let mut m = HashMap::new();
    for e in std::fs::read_dir(dir.join("inputs")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        m.insert(name, npy::read(&p).unwrap());
    }
    m
}

#[test]
fn mapped_and_copied_loads_run_identically() {
    let mut mapped_tensors = 0;
    for case in [
        "models/hf_ts_L7",
        "models/hf_dynamo_L12",
        "models/minimal_ts_L7",
        "fp16/hf_ts_fp16_L6",
    ] {
        let dir = fixtures().join(case);
        let path = dir.join("model.onnx");
        let plain = model::load(&path).unwrap();
        let (mapped, _) = stream::load(&path).unwrap();
        mapped_tensors += mapped
            .graph
            .initializer
            .iter()
            .filter(|t| model::is_external(t))
            .count();
        let ins = inputs(&dir);
        let a = Session::new(&plain, &dir).unwrap().run(&ins).unwrap();
        let b = Session::new(&mapped, &dir).unwrap().run(&ins).unwrap();
        assert_eq!(a, b, "{case}");
    }
    // The fixtures' weights of ≥ 4 KiB really took the mapped path.
    assert!(mapped_tensors > 10, "{mapped_tensors}");
}

/// A model whose one weight is 4 096 floats (16 KiB: left in the file by `stream::load`).
fn one_weight_model(raw_len: usize) -> onnx_protobuf::ModelProto {
    use onnx_protobuf::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto};
    let mut w = TensorProto::new();
    w.name = "w".into();
    w.data_type = 1;
    w.dims = vec![4096];
    w.raw_data = (0..raw_len).map(|i| i as u8).collect();
    let mut n = NodeProto::new();
    n.op_type = "Identity".into();
    n.input = vec!["w".into()];
    n.output = vec!["y".into()];
    let mut y = onnx_protobuf::ValueInfoProto::new();
    y.name = "y".into();
    let mut g = GraphProto::new();
    g.name = "g".into();
    g.initializer.push(w);
    g.node.push(n);
    g.output.push(y);
    let mut m = ModelProto::new();
    m.ir_version = 8;
    let mut o = OperatorSetIdProto::new();
    o.version = 17;
    m.opset_import.push(o);
    m.graph = Some(g).into();
    m
}

#[test]
fn short_raw_data_is_refused_on_the_mapped_path() {
    let dir = tmp_dir("short");
    let path = dir.join("m.onnx");
    // 8 KiB of raw data for dims that need 16 KiB: still ≥ 4 KiB, so left in the file.
    model::save(&one_weight_model(8192), &path).unwrap();
    let (m, _) = stream::load(&path).unwrap();
    assert!(model::is_external(&m.graph.initializer[0]));
    let e = Session::new(&m, &dir).err().expect("refused").to_string();
    assert!(e.contains("'w'") && e.contains("need 16384"), "{e}");
    // The right length loads, and its values are the file's bytes.
    model::save(&one_weight_model(16384), &path).unwrap();
    let (m, _) = stream::load(&path).unwrap();
    let out = Session::new(&m, &dir)
        .unwrap()
        .run(&HashMap::new())
        .unwrap();
    // Compared as bit patterns: some of these bytes spell NaNs.
    let bytes: Vec<u8> = (0..16384).map(|i| i as u8).collect();
    let want: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let got: Vec<u32> = out[0].1.to_f32_vec().iter().map(|v| v.to_bits()).collect();
    assert_eq!(got, want);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncated_files_are_refused_with_an_error() {
    let dir = tmp_dir("trunc");
    let src = std::fs::read(fixtures().join("models/hf_ts_L7/model.onnx")).unwrap();
    let path = dir.join("model.onnx");
    let mut refused = 0;
    // Cut anywhere (inside a header, inside a weight, at the very end): loading and building
    // a session either fails with an error or, where the cut leaves a well-formed prefix,
    // succeeds; it never panics and never reads past the file.
    for k in (0..src.len())
        .step_by(src.len() / 97 + 1)
        .chain([src.len() - 1])
    {
        std::fs::write(&path, &src[..k]).unwrap();
        match stream::load(&path) {
            Err(_) => refused += 1,
            Ok((m, _)) => refused += usize::from(Session::new(&m, &dir).is_err()),
        }
    }
    assert!(refused > 90, "{refused}");
    // A file that shrank after loading: the weight read is refused, naming the tensor.
    std::fs::write(&path, &src).unwrap();
    let (m, _) = stream::load(&path).unwrap();
    std::fs::write(&path, &src[..src.len() / 2]).unwrap();
    let e = Session::new(&m, &dir).err().expect("refused").to_string();
    assert!(e.contains("exceeds") || e.contains("past the file"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
