//! `S6ScanHeads` in the interpreter: each `fixtures/ssd/` case (PyTorch float64, made by
//! `scripts/make_ssd_fixtures.py`) as a one-node graph, and the node's refusals.

use s6_onnx::interp::{DataType, Session, Tensor};
use s6_onnx::npy;
use s6_onnx::proto::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ssd")
}

fn elem_type(dt: DataType) -> i32 {
    match dt {
        DataType::F16 => 10,
        DataType::BF16 => 16,
        _ => 1,
    }
}

/// A model of one `S6ScanHeads` node over `inputs` (name, tensor) with INT attributes `attrs`.
fn one_node(inputs: &[(String, &Tensor)], attrs: &[(&str, i64)], outputs: &[&str]) -> ModelProto {
    let mut g = GraphProto::new();
    let mut n = NodeProto::new();
    n.name = "ssd_0".into();
    n.op_type = "S6ScanHeads".into();
    n.domain = "s6plugin".into();
    for (name, t) in inputs {
        n.input.push(name.clone());
        let mut vi = ValueInfoProto::new();
        vi.name = name.clone();
        let mut tt = type_proto::Tensor::new();
        tt.elem_type = elem_type(t.dtype());
        let mut sh = TensorShapeProto::new();
        for &d in &t.shape {
            let mut dim = tensor_shape_proto::Dimension::new();
            dim.value = Some(tensor_shape_proto::dimension::Value::DimValue(d as i64));
            sh.dim.push(dim);
        }
        tt.shape = protobuf::MessageField::some(sh);
        let mut tp = TypeProto::new();
        tp.value = Some(type_proto::Value::TensorType(tt));
        vi.type_ = protobuf::MessageField::some(tp);
        g.input.push(vi);
    }
    for (k, v) in attrs {
        let mut a = AttributeProto::new();
        a.name = k.to_string();
        a.i = *v;
        a.type_ = protobuf::EnumOrUnknown::new(attribute_proto::AttributeType::INT);
        n.attribute.push(a);
    }
    for o in outputs {
        n.output.push(o.to_string());
        let mut vi = ValueInfoProto::new();
        vi.name = o.to_string();
        g.output.push(vi);
    }
    g.node.push(n);
    let mut m = ModelProto::new();
    m.ir_version = 8;
    for (domain, version) in [("", 17), ("s6plugin", 1)] {
        let mut os = OperatorSetIdProto::new();
        os.domain = domain.into();
        os.version = version;
        m.opset_import.push(os);
    }
    m.graph = protobuf::MessageField::some(g);
    m
}

struct Case {
    inputs: Vec<(String, Tensor)>,
    attrs: Vec<(String, i64)>,
    outputs: Vec<(String, Tensor)>,
}

fn read_case(dir: &Path) -> Case {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
    let names = |k: &str| -> Vec<String> {
        meta[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let load = |n: String| {
        let t = npy::read(&dir.join(format!("{n}.npy"))).unwrap();
        (n, t)
    };
    Case {
        inputs: names("inputs").into_iter().map(load).collect(),
        attrs: meta["attrs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
            .collect(),
        outputs: names("outputs").into_iter().map(load).collect(),
    }
}

fn run(case: &Case, attrs: &[(&str, i64)]) -> Result<Vec<(String, Tensor)>, String> {
    let ins: Vec<(String, &Tensor)> = case.inputs.iter().map(|(n, t)| (n.clone(), t)).collect();
    let outs: Vec<&str> = case.outputs.iter().map(|(n, _)| n.as_str()).collect();
    let m = one_node(&ins, attrs, &outs);
    let s = Session::new(&m, Path::new(".")).map_err(|e| e.to_string())?;
    let feed: HashMap<String, Tensor> = case.inputs.iter().cloned().collect();
    s.run(&feed).map_err(|e| e.to_string())
}

fn attr_refs(case: &Case) -> Vec<(&str, i64)> {
    case.attrs.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

#[test]
fn every_ssd_fixture_runs_as_a_node() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures/ssd missing: run scripts/make_ssd_fixtures.py")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 12, "found {} cases", dirs.len());
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let case = read_case(&dir);
        let got = run(&case, &attr_refs(&case)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let act = case.inputs[0].1.dtype();
        for ((gname, g), (wname, w)) in got.iter().zip(&case.outputs) {
            assert_eq!(gname, wname, "{name}");
            assert_eq!(g.shape, w.shape, "{name}/{gname}");
            // y comes back in the activation dtype, last_state in fp32; the expected values
            // are fp32 (not rounded): fp32 within the reference's bound, fp16 within its
            // rounding (2⁻¹¹ relative) plus fp32 compute.
            let want_dt = if gname == "y" { act } else { DataType::F32 };
            assert_eq!(g.dtype(), want_dt, "{name}/{gname} dtype");
            let (rel, abs) = match g.dtype() {
                DataType::F32 => (1e-5, 1e-6),
                _ => (5e-4 + 1e-5, 1e-6),
            };
            for (i, (a, b)) in g.to_f64_vec().iter().zip(w.to_f64_vec()).enumerate() {
                assert!(
                    (a - b).abs() <= rel * b.abs() + abs,
                    "{name}/{gname}[{i}]: got {a}, want {b}"
                );
            }
        }
    }
}

#[test]
fn node_errors_name_the_node_and_the_field() {
    let case = read_case(&fixtures().join("groups"));
    let all = attr_refs(&case);
    // A missing flag (no defaults).
    let without: Vec<(&str, i64)> = all
        .iter()
        .copied()
        .filter(|(k, _)| *k != "has_dt_limit")
        .collect();
    let msg = run(&case, &without).unwrap_err();
    assert!(
        msg.contains("ssd_0") && msg.contains("has_dt_limit"),
        "{msg}"
    );
    // An S6Scan flag on this op.
    let mut extra = all.clone();
    extra.push(("channels_last", 0));
    let msg = run(&case, &extra).unwrap_err();
    assert!(msg.contains("channels_last"), "{msg}");
    // A in the Mamba1 form (H·P, N): refused, not broadcast.
    let mut bad = read_case(&fixtures().join("groups"));
    let (h, n) = (4, 3);
    bad.inputs[2].1 = Tensor::from_f32(vec![h * 2, n], vec![-1.0; h * 2 * n]).unwrap();
    let msg = run(&bad, &all).unwrap_err();
    assert!(msg.contains("ssd_0") && msg.contains("`A`"), "{msg}");
    // fp16 A is refused (A is always fp32).
    let mut bad = read_case(&fixtures().join("groups"));
    let a = bad.inputs[2].1.to_f32_vec();
    bad.inputs[2].1 = Tensor::from_f32(vec![a.len()], a)
        .unwrap()
        .cast(DataType::F16);
    let msg = run(&bad, &all).unwrap_err();
    assert!(msg.contains("`A`") && msg.contains("float16"), "{msg}");
}

#[test]
fn listed_among_the_supported_ops() {
    let ops = s6_onnx::interp::ops::supported_ops();
    assert!(ops.iter().any(|o| o == "s6plugin::S6ScanHeads"), "{ops:?}");
    assert!(ops.iter().any(|o| o == "s6plugin::S6Scan"), "{ops:?}");
}
