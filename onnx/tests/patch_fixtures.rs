//! The patcher on the bundled exports (`scripts/export_mamba.py`): the patched graph, run by the
//! interpreter, must equal onnxruntime on the original at the export length and PyTorch at the
//! other length (fp32, 1e-4), with one S6Scan per layer and everything around it folded in.

mod common;

use s6_onnx::interp::Session;
use s6_onnx::model;
use s6_onnx::patch::{self, s6node::ScanNode};
use std::collections::HashMap;
use std::path::Path;

const FIXTURES: [(&str, usize, usize); 8] = [
    ("hf_ts_L12", 12, 7),
    ("hf_ts_L7", 7, 12),
    ("hf_dynamo_L12", 12, 7),
    ("hf_dynamo_L7", 7, 12),
    ("hf_dynamo_L1", 1, 5),
    ("minimal_ts_L12", 12, 7),
    ("minimal_ts_L7", 7, 12),
    ("minimal_dynamo_L12", 12, 7),
];

/// Runs `m` on `inputs` and checks every output against `expected` within 1e-4 (abs, scaled by
/// max(1, |expected|)). Returns the largest error.
fn check(m: &onnx_protobuf::ModelProto, dir: &Path, inputs_dir: &Path, expected_dir: &Path) -> f64 {
    check_tol(m, dir, inputs_dir, expected_dir, 1e-4)
}

/// [`check`] with tolerance `tol`.
fn check_tol(
    m: &onnx_protobuf::ModelProto,
    dir: &Path,
    inputs_dir: &Path,
    expected_dir: &Path,
    tol: f64,
) -> f64 {
    let s = Session::new(m, dir).unwrap();
    let outs = s.run(&common::read_npy_dir(inputs_dir)).unwrap();
    let expected = common::read_npy_dir(expected_dir);
    assert!(!outs.is_empty());
    let mut worst = 0f64;
    for (name, got) in outs {
        let want = &expected[&name];
        assert_eq!(got.shape, want.shape, "{name}: shape");
        for (g, w) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
            let e = (g - w).abs() / w.abs().max(1.0);
            assert!(
                e <= tol,
                "{}: {name}: got {g}, want {w}",
                expected_dir.display()
            );
            worst = worst.max(e);
        }
    }
    worst
}

#[test]
fn patched_exports_match_onnxruntime_and_pytorch_at_both_lengths() {
    for (name, len, other) in FIXTURES {
        let dir = common::fixture_dir("models", name);
        let original = model::load(&dir.join("model.onnx")).unwrap();
        let mut patched = original.clone();
        let report = patch::patch_model(&mut patched, &dir).unwrap();
        assert_eq!(report.layers_patched, 2, "{name}");
        assert_eq!(report.export_seq_len, Some(len), "{name}");
        assert!(
            report.nodes_after < report.nodes_before,
            "{name}: {report:?}"
        );
        if len > 1 {
            assert!(
                report.nodes_after * 2 < report.nodes_before,
                "{name}: {report:?}"
            );
        }

        let g = patched.graph.as_ref().unwrap();
        let scans: Vec<ScanNode> = g.node.iter().filter_map(ScanNode::from_node).collect();
        assert_eq!(scans.len(), 2, "{name}");
        for s in &scans {
            let a = s.attrs;
            assert!(
                a.delta_softplus && a.has_d && a.has_z && a.has_delta_bias,
                "{name}: not everything folded in: {a:?}"
            );
            assert!(!a.has_initial_state && !a.has_last_state);
            assert_eq!(a.channels_last, name.starts_with("minimal"), "{name}");
            assert!(a.bc_channels_last, "{name}");
        }
        // The unrolled loop is gone: no per-step Gather of the state tensors is left.
        assert!(!g.node.iter().any(|n| n.op_type == "Concat"), "{name}");
        assert!(patched
            .opset_import
            .iter()
            .any(|o| o.domain == "s6plugin" && o.version == 1));

        let e1 = check(&patched, &dir, &dir.join("inputs"), &dir.join("expected"));
        let other_dir = dir.join(format!("expected_L{other}"));
        let e2 = check(&patched, &dir, &other_dir.join("inputs"), &other_dir);
        eprintln!("{name}: max scaled error L={len}: {e1:.2e}, L={other}: {e2:.2e}");

        // Written and read back, the patched model is the same.
        let tmp =
            std::env::temp_dir().join(format!("s6patch-test-{}-{name}.onnx", std::process::id()));
        model::save_with_external_data(&patched, &tmp, &dir).unwrap();
        let back = model::load(&tmp).unwrap();
        assert_eq!(back, patched);
        std::fs::remove_file(&tmp).unwrap();
    }
}

#[test]
fn original_exports_do_not_run_at_the_other_length() {
    // The check above can fail: the unpatched export bakes its length.
    let dir = common::fixture_dir("models", "hf_ts_L12");
    let original = model::load(&dir.join("model.onnx")).unwrap();
    let s = Session::new(&original, &dir).unwrap();
    let inputs = common::read_npy_dir(&dir.join("expected_L7/inputs"));
    // The export declares input_ids as (1, 12): the interpreter refuses length 7 at the input,
    // naming it and the axis, before running anything.
    match s.run(&inputs) {
        Err(s6_onnx::interp::InterpError::Input { name, reason }) => {
            assert_eq!(name, "input_ids");
            assert!(reason.contains("axis 1 must be 12"), "{reason}");
        }
        other => panic!("expected the input refusal, got {other:?}"),
    }
}

#[test]
fn patch_keeps_everything_else() {
    let dir = common::fixture_dir("models", "hf_dynamo_L7");
    let original = model::load(&dir.join("model.onnx")).unwrap();
    let mut patched = original.clone();
    patch::patch_model(&mut patched, &dir).unwrap();
    assert_eq!(patched.producer_name, original.producer_name);
    assert_eq!(patched.metadata_props, original.metadata_props);
    assert_eq!(patched.ir_version, original.ir_version);
    for o in &original.opset_import {
        assert!(patched.opset_import.contains(o));
    }
    let (go, gp) = (
        original.graph.as_ref().unwrap(),
        patched.graph.as_ref().unwrap(),
    );
    // Surviving nodes are unchanged (names, attributes, doc strings) except the conv Slice's end.
    let by_name: HashMap<&str, &onnx_protobuf::NodeProto> =
        go.node.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut kept = 0;
    for n in &gp.node {
        if let Some(o) = by_name.get(n.name.as_str()) {
            kept += 1;
            if n.op_type != "Slice" {
                assert_eq!(*o, n, "node {} changed", n.name);
            }
        }
    }
    assert!(kept > 40, "only {kept} nodes kept");
    // value_info of surviving values is kept, with the length axis symbolic.
    assert!(!gp.value_info.is_empty());
    for v in &gp.value_info {
        let o = go.value_info.iter().find(|x| x.name == v.name).unwrap();
        assert_eq!(o.metadata_props, v.metadata_props);
    }
    // The graph input's sequence axis is symbolic.
    let dims = match gp.input[0].type_.value.as_ref().unwrap() {
        onnx_protobuf::type_proto::Value::TensorType(t) => t.shape.dim.clone(),
        _ => unreachable!(),
    };
    assert_eq!(
        dims[1].value,
        Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimParam("seq_len".into()))
    );
}

#[test]
fn constants_shared_through_identity_are_folded() {
    // The TorchScript exporter shares equal initializers through Identity nodes (seen for D
    // when every layer's D is the same); the D skip must still be folded.
    let dir = common::fixture_dir("models", "hf_ts_L7");
    let mut m = model::load(&dir.join("model.onnx")).unwrap();
    let g = m.graph.as_mut().unwrap();
    let d_names: Vec<String> = g
        .initializer
        .iter()
        .filter(|t| t.dims == [1, 64, 1])
        .map(|t| t.name.clone())
        .collect();
    assert_eq!(d_names.len(), 2);
    let mut ids = Vec::new();
    for (i, d) in d_names.iter().enumerate() {
        let copy = format!("d_copy_{i}");
        for n in g.node.iter_mut() {
            for x in n.input.iter_mut() {
                if x == d {
                    *x = copy.clone();
                }
            }
        }
        let mut id = onnx_protobuf::NodeProto::new();
        id.op_type = "Identity".into();
        id.name = format!("shared_{i}");
        id.input = vec![d.clone()];
        id.output = vec![copy];
        ids.push(id);
    }
    for (i, id) in ids.into_iter().enumerate() {
        g.node.insert(i, id);
    }
    let mut patched = m.clone();
    patch::patch_model(&mut patched, &dir).unwrap();
    let scans: Vec<ScanNode> = patched
        .graph
        .node
        .iter()
        .filter_map(ScanNode::from_node)
        .collect();
    assert_eq!(scans.len(), 2);
    assert!(scans.iter().all(|s| s.attrs.has_d && s.attrs.has_z));
    check(&patched, &dir, &dir.join("inputs"), &dir.join("expected"));
}

#[test]
fn fp16_exports_are_patched_and_match_to_fp16_rounding() {
    // Half-precision exports cast the fp32 state down before its readout; the op keeps the
    // state in fp32, so the patched model is at least as close to PyTorch as onnxruntime is
    // (the fixture script accepts 2e-2 between those two).
    for (name, other) in [("hf_ts_fp16_L6", 9), ("hf_dynamo_fp16_L6", 9)] {
        let dir = common::fixture_dir("fp16", name);
        let mut m = model::load(&dir.join("model.onnx")).unwrap();
        let report = patch::patch_model(&mut m, &dir).unwrap();
        assert_eq!(report.layers_patched, 2, "{name}");
        let scans: Vec<ScanNode> = m
            .graph
            .node
            .iter()
            .filter_map(ScanNode::from_node)
            .collect();
        assert_eq!(scans.len(), 2);
        for sc in &scans {
            let a = sc.attrs;
            assert!(
                a.delta_softplus && a.has_d && a.has_z && a.has_delta_bias,
                "{name}: {a:?}"
            );
        }
        let e1 = check_tol(&m, &dir, &dir.join("inputs"), &dir.join("expected"), 2e-2);
        let od = dir.join(format!("expected_L{other}"));
        let e2 = check_tol(&m, &dir, &od.join("inputs"), &od, 2e-2);
        eprintln!("{name}: max scaled error {e1:.2e}, other length {e2:.2e}");
    }
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
fn values_with_other_consumers_are_not_folded() {
    let dir = common::fixture_dir("models", "hf_ts_L7");
    let original = model::load(&dir.join("model.onnx")).unwrap();

    // Δ after softplus is also a graph output: softplus and bias stay outside the node.
    let mut m = original.clone();
    let exposed = expose_first(&mut m, "Softplus");
    patch::patch_model(&mut m, &dir).unwrap();
    let scans: Vec<ScanNode> = m
        .graph
        .node
        .iter()
        .filter_map(ScanNode::from_node)
        .collect();
    assert!(!scans[0].attrs.delta_softplus && !scans[0].attrs.has_delta_bias);
    assert_eq!(scans[0].delta, exposed);
    assert!(scans[1].attrs.delta_softplus && scans[1].attrs.has_delta_bias);
    assert!(m.graph.node.iter().any(|n| n.output[0] == exposed));

    // The scan's raw output is also a graph output: D and z stay outside.
    let mut m = original.clone();
    let exposed = expose_first(&mut m, "Concat");
    patch::patch_model(&mut m, &dir).unwrap();
    let scans: Vec<ScanNode> = m
        .graph
        .node
        .iter()
        .filter_map(ScanNode::from_node)
        .collect();
    assert_eq!(scans[0].y, exposed);
    assert!(!scans[0].attrs.has_d && !scans[0].attrs.has_z);
    assert!(scans[1].attrs.has_d && scans[1].attrs.has_z);

    // Both still compute the model: the logits match onnxruntime.
    let s = Session::new(&m, &dir).unwrap();
    let outs = s.run(&common::read_npy_dir(&dir.join("inputs"))).unwrap();
    let want = common::read_npy_dir(&dir.join("expected"));
    let (got, want) = (outs[0].1.to_f64_vec(), want["logits"].to_f64_vec());
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs().max(1.0),
            "got {g}, want {w}"
        );
    }
}

#[test]
fn final_state_used_elsewhere_becomes_last_state() {
    // Expose layer 0's final state h_{L-1} (TorchScript: Concat ← Unsqueeze ← Gather ← MatMul ←
    // Cast ← h) as a graph output, as a cache output would.
    let dir = common::fixture_dir("models", "hf_ts_L7");
    let mut m = model::load(&dir.join("model.onnx")).unwrap();
    let h_last = {
        let g = m.graph.as_ref().unwrap();
        let prod = |v: &str| {
            g.node
                .iter()
                .find(|n| n.output.iter().any(|o| o == v))
                .unwrap()
        };
        let concat = g.node.iter().find(|n| n.op_type == "Concat").unwrap();
        let mut v = concat.input.last().unwrap().clone();
        for op in ["Unsqueeze", "Gather", "MatMul", "Cast"] {
            let n = prod(&v);
            assert_eq!(n.op_type, op);
            v = n.input[0].clone();
        }
        assert_eq!(prod(&v).op_type, "Add");
        v
    };
    {
        let g = m.graph.as_mut().unwrap();
        let mut vi = g.output[0].clone();
        vi.name = h_last.clone();
        vi.type_ = Default::default();
        g.output.push(vi);
    }
    let inputs = common::read_npy_dir(&dir.join("inputs"));
    let want = Session::new(&m, &dir).unwrap().run(&inputs).unwrap();

    let mut patched = m.clone();
    let report = patch::patch_model(&mut patched, &dir).unwrap();
    let scans: Vec<ScanNode> = patched
        .graph
        .node
        .iter()
        .filter_map(ScanNode::from_node)
        .collect();
    assert_eq!(report.layers_patched, 2);
    assert_eq!(scans[0].last_state.as_deref(), Some(h_last.as_str()));
    assert!(scans[0].attrs.has_d && scans[0].attrs.has_z);
    assert!(scans[1].last_state.is_none());
    // The unrolled chain is gone: no Gather of a state remains in layer 0.
    assert!(report.nodes_after * 2 < report.nodes_before, "{report:?}");

    let got = Session::new(&patched, &dir).unwrap().run(&inputs).unwrap();
    assert_eq!(got.len(), 2);
    for ((name, g), (_, w)) in got.iter().zip(&want) {
        assert_eq!(g.shape, w.shape, "{name}");
        for (a, b) in g.to_f64_vec().iter().zip(w.to_f64_vec()) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{name}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn unknown_fields_survive_patch_and_round_trip() {
    use protobuf::Message;
    // Fields this ONNX version does not know (a newer exporter's) on the model, the graph and a
    // node that survives the patch.
    let dir = common::fixture_dir("models", "minimal_ts_L7");
    let mut m = model::load(&dir.join("model.onnx")).unwrap();
    m.special_fields.mut_unknown_fields().add_varint(9001, 7);
    let g = m.graph.as_mut().unwrap();
    g.special_fields.mut_unknown_fields().add_varint(9002, 8);
    let keep = g.node[0].name.clone();
    g.node[0]
        .special_fields
        .mut_unknown_fields()
        .add_length_delimited(9003, b"kept".to_vec());
    let bytes = m.write_to_bytes().unwrap();
    let mut m = model::parse(&bytes, Path::new("mem")).unwrap();
    patch::patch_model(&mut m, &dir).unwrap();
    let back = model::parse(&m.write_to_bytes().unwrap(), Path::new("mem")).unwrap();
    assert!(back.special_fields.unknown_fields().get(9001).is_some());
    let g = back.graph.as_ref().unwrap();
    assert!(g.special_fields.unknown_fields().get(9002).is_some());
    let n = g.node.iter().find(|n| n.name == keep).unwrap();
    assert!(n.special_fields.unknown_fields().get(9003).is_some());
}
