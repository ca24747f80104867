//! Malformed and unusual models: the patcher and the interpreter answer with an error or a
//! correct result, never a panic or a silently wrong model.

use s6_onnx::interp::{Session, Tensor};
use s6_onnx::patch::{self, s6node::ScanNode};
use s6_onnx::{model, npy};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 8] = [
    "hf_ts_L12",
    "hf_ts_L7",
    "hf_dynamo_L12",
    "hf_dynamo_L7",
    "hf_dynamo_L1",
    "minimal_ts_L12",
    "minimal_ts_L7",
    "minimal_dynamo_L12",
];

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/models")
        .join(name)
}

fn read_dir_npy(dir: &Path) -> HashMap<String, Tensor> {
    let mut out = HashMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) == Some("npy") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            out.insert(name, npy::read(&p).unwrap());
        }
    }
    out
}

fn scans(m: &onnx_protobuf::ModelProto) -> Vec<ScanNode> {
    m.graph
        .node
        .iter()
        .filter_map(ScanNode::from_node)
        .collect()
}

#[test]
fn nodes_missing_inputs_or_outputs_are_errors_not_panics() {
    // Every op the rules inspect, with its inputs (then its outputs) cut to each shorter length.
    let ops = [
        "Concat",
        "Unsqueeze",
        "Gather",
        "Squeeze",
        "MatMul",
        "Einsum",
        "Add",
        "Mul",
        "Exp",
        "Identity",
        "Cast",
        "Softplus",
        "Where",
        "Greater",
        "Sigmoid",
        "Conv",
        "Slice",
    ];
    let mut cases = 0;
    for name in FIXTURES {
        let dir = fixture_dir(name);
        let original = model::load(&dir.join("model.onnx")).unwrap();
        for op in ops {
            let max_in = original
                .graph
                .node
                .iter()
                .filter(|n| n.op_type == op)
                .map(|n| n.input.len())
                .max();
            let Some(max_in) = max_in else { continue };
            for keep in 0..max_in {
                for cut_outputs in [false, true] {
                    let mut m = original.clone();
                    for n in m.graph.as_mut().unwrap().node.iter_mut() {
                        if n.op_type == op {
                            if cut_outputs {
                                n.output.clear();
                            } else {
                                n.input.truncate(keep);
                            }
                        }
                    }
                    let r = catch_unwind(AssertUnwindSafe(|| patch::patch_model(&mut m, &dir)));
                    assert!(
                        r.is_ok(),
                        "{name}: patch panicked on {op} nodes cut to {keep} inputs (outputs cut: {cut_outputs})"
                    );
                    cases += 1;
                }
            }
        }
    }
    eprintln!("{cases} truncated-node models patched without a panic");
    assert!(cases > 100);
}

#[test]
fn a_size_one_d_or_delta_bias_is_not_folded_as_per_channel() {
    // D (1, D, 1) and the Δ bias (D, 1) replaced by single values that broadcast: a valid model,
    // but not the op's per-channel D / delta_bias, so they must stay outside the node.
    let dir = fixture_dir("hf_ts_L7");
    let mut m = model::load(&dir.join("model.onnx")).unwrap();
    let g = m.graph.as_mut().unwrap();
    let mut changed = 0;
    for t in g.initializer.iter_mut() {
        let one = if t.dims == [1, 64, 1] {
            vec![1, 1, 1]
        } else if t.dims == [64, 1] {
            vec![1, 1]
        } else {
            continue;
        };
        t.dims = one;
        t.raw_data = 0.5f32.to_le_bytes().to_vec();
        t.float_data.clear();
        changed += 1;
    }
    assert_eq!(changed, 4, "two D and two Δ bias initializers");
    let inputs = read_dir_npy(&dir.join("inputs"));
    let want = Session::new(&m, &dir).unwrap().run(&inputs).unwrap();

    let mut patched = m.clone();
    patch::patch_model(&mut patched, &dir).unwrap();
    for s in scans(&patched) {
        assert!(!s.attrs.has_d && !s.attrs.has_delta_bias, "{:?}", s.attrs);
    }
    let got = Session::new(&patched, &dir).unwrap().run(&inputs).unwrap();
    assert_eq!(got.len(), want.len());
    for ((n, g), (_, w)) in got.iter().zip(&want) {
        assert_eq!(g.shape, w.shape, "{n}");
        let (g, w) = (g.to_f64_vec(), w.to_f64_vec());
        assert_eq!(g.len(), w.len());
        for (a, b) in g.iter().zip(&w) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{n}: {a} vs {b}");
        }
    }
}

#[test]
fn an_l1_export_keeps_its_size_one_axes() {
    use onnx_protobuf::tensor_shape_proto::dimension::Value as DV;
    use onnx_protobuf::type_proto::Value as TV;
    let dir = fixture_dir("hf_dynamo_L1");
    let mut m = model::load(&dir.join("model.onnx")).unwrap();
    patch::patch_model(&mut m, &dir).unwrap();
    let g = m.graph.as_ref().unwrap();
    let dims = |v: &onnx_protobuf::ValueInfoProto| -> Vec<Option<DV>> {
        match v.type_.value.as_ref() {
            Some(TV::TensorType(t)) => t.shape.dim.iter().map(|d| d.value.clone()).collect(),
            _ => vec![],
        }
    };
    let seq = Some(DV::DimParam("seq_len".into()));
    // input_ids (1, L) and logits (1, L, V): only axis 1 is the sequence, the batch stays 1.
    for v in g.input.iter().chain(&g.output) {
        let d = dims(v);
        assert_eq!(d[0], Some(DV::DimValue(1)), "{}: {d:?}", v.name);
        assert_eq!(d[1], seq, "{}: {d:?}", v.name);
    }
    // No value_info axis is renamed: with L = 1 a size-1 axis cannot be told from L.
    for v in &g.value_info {
        assert!(!dims(v).contains(&seq), "{}: {:?}", v.name, dims(v));
    }
}

/// A one-node model of `op` with constant inputs `consts` (name, int64 values) and int
/// attributes.
fn one_node(
    op: &str,
    consts: &[(&str, Vec<i64>)],
    attr_tensor: Option<Tensor>,
) -> onnx_protobuf::ModelProto {
    use onnx_protobuf::*;
    let mut g = GraphProto::new();
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = format!("the_{op}");
    for (name, v) in consts {
        let t = Tensor::from_i64(
            if v.len() == 1 && name.starts_with('s') {
                vec![]
            } else {
                vec![v.len()]
            },
            v.clone(),
        )
        .unwrap();
        g.initializer.push(t.to_proto(name));
        n.input.push(name.to_string());
    }
    if let Some(t) = attr_tensor {
        let mut a = AttributeProto::new();
        a.name = "value".into();
        a.type_ = attribute_proto::AttributeType::TENSOR.into();
        a.t = protobuf::MessageField::some(t.to_proto("value"));
        n.attribute.push(a);
    }
    n.output.push("y".into());
    g.node.push(n);
    let mut o = ValueInfoProto::new();
    o.name = "y".into();
    g.output.push(o);
    let mut m = ModelProto::new();
    m.ir_version = 8;
    let mut op = OperatorSetIdProto::new();
    op.version = 18;
    m.opset_import.push(op);
    m.graph = protobuf::MessageField::some(g);
    m
}

fn run_err(m: &onnx_protobuf::ModelProto) -> String {
    let r = catch_unwind(AssertUnwindSafe(|| {
        Session::new(m, Path::new(".")).and_then(|s| s.run(&HashMap::new()))
    }))
    .expect("the interpreter panicked");
    match r {
        Ok(outs) => panic!(
            "ran: {:?}",
            outs.iter().map(|(n, t)| (n, &t.shape)).collect::<Vec<_>>()
        ),
        Err(e) => e.to_string(),
    }
}

#[test]
fn ops_refuse_outputs_past_the_allocation_cap() {
    // Sizes a model asks for, far past the default cap of 4 GiB on one tensor.
    let huge = 1i64 << 40;
    let f32_one = Tensor::from_f32(vec![1], vec![1.0]).unwrap();
    let cases = [
        one_node(
            "ConstantOfShape",
            &[("shape", vec![huge])],
            Some(f32_one.clone()),
        ),
        one_node(
            "ConstantOfShape",
            &[("shape", vec![1 << 20, 1 << 20, 1 << 20, 1 << 20])],
            None,
        ),
        one_node(
            "Range",
            &[("s0", vec![0]), ("s1", vec![huge]), ("s2", vec![1])],
            None,
        ),
        // limit − start overflows int64.
        one_node(
            "Range",
            &[
                ("s0", vec![i64::MIN]),
                ("s1", vec![i64::MAX]),
                ("s2", vec![1]),
            ],
            None,
        ),
        one_node(
            "Expand",
            &[("x", vec![1]), ("shape", vec![huge, huge])],
            None,
        ),
        one_node("Tile", &[("x", vec![1]), ("reps", vec![huge])], None),
        // Zero elements, but (0, 2^40): every later loop over its outer axes would run 2^40
        // times (the fuzz loop found a Concat spinning on one).
        one_node("Reshape", &[("x", vec![]), ("shape", vec![0, huge])], None),
    ];
    for m in &cases {
        let e = run_err(m);
        assert!(
            e.contains("--max-tensor-bytes") || e.contains("more elements than fit"),
            "{e}"
        );
    }
}

#[test]
fn tensors_with_overflowing_dims_are_refused() {
    let mut t = Tensor::from_f32(vec![1], vec![1.0]).unwrap().to_proto("w");
    t.dims = vec![i64::MAX, 4];
    let e = Tensor::from_proto(&t, Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'w'") && e.contains("more elements than fit"),
        "{e}"
    );
    t.dims = vec![1 << 31, 1 << 31];
    let e = Tensor::from_proto(&t, Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(e.contains("'w'") && e.contains("--max-tensor-bytes"), "{e}");
}

#[test]
fn verify_fails_when_the_patched_model_lost_or_renamed_an_output() {
    let dir = fixture_dir("hf_ts_L7");
    let mut original = model::load(&dir.join("model.onnx")).unwrap();
    // A second output, so that one can be lost and the other still compared.
    let extra = expose_first(&mut original, "Softplus");
    let mut patched = original.clone();
    patch::patch_model(&mut patched, &dir).unwrap();
    let ok = patch::verify::verify(&original, &dir, &patched, &dir, 7).unwrap();
    assert_eq!(ok.len(), 2);

    let mut lost = patched.clone();
    lost.graph
        .as_mut()
        .unwrap()
        .output
        .retain(|o| o.name != extra);
    let e = patch::verify::verify(&original, &dir, &lost, &dir, 7).unwrap_err();
    assert!(e.to_string().contains("outputs differ"), "{e}");

    let mut renamed = patched.clone();
    let g = renamed.graph.as_mut().unwrap();
    let logits = g.output[0].name.clone();
    for n in g.node.iter_mut() {
        for o in n.output.iter_mut().filter(|o| **o == logits) {
            *o = "renamed".into();
        }
    }
    g.output[0].name = "renamed".into();
    let e = patch::verify::verify(&original, &dir, &renamed, &dir, 7).unwrap_err();
    assert!(e.to_string().contains("outputs differ"), "{e}");
}

/// Adds the value produced by the first node of `op_type` as an extra graph output.
fn expose_first(m: &mut onnx_protobuf::ModelProto, op_type: &str) -> String {
    let g = m.graph.as_mut().unwrap();
    let name = g.node.iter().find(|n| n.op_type == op_type).unwrap().output[0].clone();
    let mut vi = g.output[0].clone();
    vi.name = name.clone();
    vi.type_ = Default::default();
    g.output.push(vi);
    name
}

#[test]
fn cyclic_graphs_are_refused_before_the_rules_walk_them() {
    let dir = fixture_dir("hf_ts_L7");
    let original = model::load(&dir.join("model.onnx")).unwrap();
    // A Mul reading its own output, and two Muls reading each other's.
    let muls: Vec<usize> = original
        .graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type == "Mul")
        .map(|(i, _)| i)
        .collect();
    let mut self_loop = original.clone();
    let g = self_loop.graph.as_mut().unwrap();
    g.node[muls[0]].input[0] = g.node[muls[0]].output[0].clone();
    let mut two = original.clone();
    let g = two.graph.as_mut().unwrap();
    let (a, b) = (muls[0], muls[1]);
    g.node[a].input[0] = g.node[b].output[0].clone();
    g.node[b].input[0] = g.node[a].output[0].clone();
    for mut m in [self_loop, two] {
        let e = patch::patch_model(&mut m, &dir).unwrap_err();
        assert!(matches!(e, patch::PatchError::Cycle { .. }), "{e}");
    }
}
