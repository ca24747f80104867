//! The patcher on exports made with dynamic axes (`scripts/export_mamba.py`, fixtures/dynamic):
//! TorchScript `dynamic_axes` (sequence only with the exporter's own names; batch and
//! sequence at batch 1, and at batch 2 with opset 14; mamba-minimal) and dynamo
//! `dynamic_shapes` on batch; TorchScript with the batch alone dynamic. Each patched model, run by the interpreter, must equal
//! onnxruntime on the original at the export shape and PyTorch at every other batch size and
//! length the fixture holds (1e-4 of max(1, |ref|)); the dynamic axes stay dynamic.

mod common;

use s6_onnx::interp::Session;
use s6_onnx::model;
use s6_onnx::patch::{self, s6node::ScanNode};
use s6_onnx::proto::ModelProto;
use std::path::{Path, PathBuf};

/// (fixture, export length, export batch, declared input dims of the original).
const FIXTURES: [(&str, usize, usize, [&str; 2]); 6] = [
    (
        "hf_ts_dynseq_b1_L6",
        6,
        1,
        ["1", "input_ids_dynamic_axes_1"],
    ),
    ("hf_ts_dynbs_b1_L6", 6, 1, ["batch", "seq"]),
    ("hf_ts_dynb_b2_L6", 6, 2, ["batch", "6"]),
    ("hf_ts_dynbs_op14_b2_L6", 6, 2, ["batch", "seq"]),
    ("minimal_ts_dynbs_b2_L6", 6, 2, ["batch", "seq"]),
    ("hf_dynamo_dynb_b2_L6", 6, 2, ["batch", "6"]),
];

/// Runs `m` on the inputs in `inputs` and checks against `case`; returns the worst error and
/// the output shape.
fn check(m: &ModelProto, dir: &Path, inputs: &Path, case: &Path) -> (f64, Vec<usize>) {
    let s = Session::new(m, dir).unwrap();
    let outs = s.run(&common::read_npy_dir(inputs)).unwrap();
    let want = common::read_npy_dir(case);
    let (name, got) = &outs[0];
    let want = &want[name];
    assert_eq!(got.shape, want.shape, "{}: {name}", case.display());
    let mut worst = 0f64;
    for (g, w) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
        let e = (g - w).abs() / w.abs().max(1.0);
        assert!(e <= 1e-4, "{}: got {g}, want {w}", case.display());
        worst = worst.max(e);
    }
    (worst, got.shape.clone())
}

#[test]
fn dynamic_axes_exports_patch_and_match_at_other_batches_and_lengths() {
    for (name, len, batch, declared) in FIXTURES {
        let dir = common::fixture_dir("dynamic", name);
        let original = model::load(&dir.join("model.onnx")).unwrap();
        assert_eq!(
            common::dims(&original.graph.input[0]),
            declared,
            "{name}: fixture changed"
        );
        let mut patched = original.clone();
        let report = patch::patch_model(&mut patched, &dir).unwrap();
        assert_eq!(report.layers_patched, 2, "{name}");
        assert_eq!(report.export_seq_len, Some(len), "{name}");
        assert!(
            report.nodes_after * 2 < report.nodes_before,
            "{name}: {report:?}"
        );

        let g = patched.graph.as_ref().unwrap();
        let scans: Vec<ScanNode> = g.node.iter().filter_map(ScanNode::from_node).collect();
        assert_eq!(scans.len(), 2, "{name}");
        for s in &scans {
            let a = s.attrs;
            assert!(
                a.delta_softplus && a.has_d && a.has_z && a.has_delta_bias,
                "{name}: not everything folded in: {a:?}"
            );
            // The zero state built by ConstantOfShape / Expand over the dynamic batch is the
            // op's default, not an input.
            assert!(!a.has_initial_state && !a.has_last_state, "{name}: {a:?}");
            assert_eq!(a.channels_last, name.starts_with("minimal"), "{name}");
        }
        assert!(!g.node.iter().any(|n| n.op_type == "Concat"
            && n.input.len() == len
            && n.output[0].contains("mixer")));

        // Batch stays as it was (dynamic under its name, or 1); the sequence axis is dynamic
        // under the export's own name where it had one.
        let seq = if declared[1].parse::<usize>().is_ok() {
            "seq_len"
        } else {
            declared[1]
        };
        assert_eq!(report.seq_dim.as_deref(), Some(seq), "{name}");
        assert_eq!(
            common::dims(&g.input[0]),
            [declared[0], seq],
            "{name}: input dims"
        );
        assert_eq!(
            common::dims(&g.output[0])[0],
            common::dims(&original.graph.output[0])[0],
            "{name}: output batch"
        );
        assert!(
            common::dims(&g.output[0])[1].parse::<usize>().is_err(),
            "{name}"
        );

        let (e, shape) = check(&patched, &dir, &dir.join("inputs"), &dir.join("expected"));
        assert_eq!(shape[..2], [batch, len]);
        let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("expected_b")
            })
            .collect();
        cases.sort();
        let dynamic_batch = declared[0].parse::<usize>().is_err();
        // Two other lengths at the export batch; two lengths at each other batch (1, 3).
        let other_batches = if dynamic_batch {
            [1, 3].iter().filter(|&&b| b != batch).count()
        } else {
            0
        };
        assert_eq!(cases.len(), 2 + 2 * other_batches, "{name}");
        // The check can fail: the original, whose loop is unrolled, does not compute the other
        // lengths (it errors, or gives another shape).
        let other = cases
            .iter()
            .find(|c| !c.to_string_lossy().ends_with(&format!("_L{len}")))
            .unwrap();
        let so = Session::new(&original, &dir).unwrap();
        if let Ok(outs) = so.run(&common::read_npy_dir(&other.join("inputs"))) {
            let want = common::read_npy_dir(other);
            assert_ne!(outs[0].1.shape, want[&outs[0].0].shape, "{name}");
        }
        let mut seen = Vec::new();
        for c in &cases {
            let (ec, shape) = check(&patched, &dir, &c.join("inputs"), c);
            eprintln!(
                "{name}: {}: {shape:?} max scaled error {ec:.2e}",
                c.display()
            );
            seen.push((shape[0], shape[1]));
        }
        eprintln!("{name}: export shape max scaled error {e:.2e}");
        assert!(
            seen.iter().any(|&(_, l)| l != len),
            "{name}: no other length"
        );
        if dynamic_batch {
            assert!(
                seen.iter().any(|&(b, _)| b != batch),
                "{name}: no other batch"
            );
        }

        let tmp = std::env::temp_dir().join(format!(
            "s6patch-dyn-test-{}-{name}.onnx",
            std::process::id()
        ));
        model::save_with_external_data(&patched, &tmp, &dir).unwrap();
        assert_eq!(model::load(&tmp).unwrap(), patched);
        std::fs::remove_file(&tmp).unwrap();
    }
}

/// The first ConstantOfShape (layer 0's zero state) of a TorchScript dynamic export.
fn zero_state_node(m: &mut ModelProto) -> &mut s6_onnx::proto::NodeProto {
    m.graph
        .as_mut()
        .unwrap()
        .node
        .iter_mut()
        .find(|n| n.op_type == "ConstantOfShape")
        .unwrap()
}

/// Sets ConstantOfShape's fill to one element of `data_type` with the bytes `raw`.
fn set_fill(m: &mut ModelProto, data_type: i32, raw: Vec<u8>) {
    let n = zero_state_node(m);
    let a = n.attribute.iter_mut().find(|a| a.name == "value").unwrap();
    let t = a.t.as_mut().unwrap();
    t.data_type = data_type;
    t.raw_data = raw;
}

#[test]
fn a_nonzero_dynamic_state_becomes_initial_state_and_still_matches() {
    // h_{-1} = ConstantOfShape([batch, D, N], 0.5): not the op's default, so it is passed as
    // initial_state (fp32, worked out from the fill value's type). The interpreter on the
    // edited original is the reference, at batch 2 and the export length.
    let dir = common::fixture_dir("dynamic", "hf_ts_dynbs_b1_L6");
    let mut m = model::load(&dir.join("model.onnx")).unwrap();
    set_fill(&mut m, 1, 0.5f32.to_le_bytes().to_vec());
    let inputs = common::read_npy_dir(&dir.join("expected_b3_L6/inputs"));
    let want = Session::new(&m, &dir).unwrap().run(&inputs).unwrap();
    let mut patched = m.clone();
    patch::patch_model(&mut patched, &dir).unwrap();
    let scans: Vec<ScanNode> = patched
        .graph
        .node
        .iter()
        .filter_map(ScanNode::from_node)
        .collect();
    assert!(scans[0].attrs.has_initial_state);
    assert!(!scans[1].attrs.has_initial_state);
    let got = Session::new(&patched, &dir).unwrap().run(&inputs).unwrap();
    let (g, w) = (got[0].1.to_f64_vec(), want[0].1.to_f64_vec());
    assert_eq!(got[0].1.shape, want[0].1.shape);
    let worst = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0f64, f64::max);
    assert!(worst <= 1e-4, "{worst}");
    // And the edit matters: the unedited model differs.
    let plain = model::load(&dir.join("model.onnx")).unwrap();
    let base = Session::new(&plain, &dir).unwrap().run(&inputs).unwrap();
    assert!(base[0].1.to_f64_vec() != w);
}

#[test]
fn refusals_name_the_value_and_its_type() {
    let dir = common::fixture_dir("dynamic", "hf_ts_dynbs_b1_L6");
    let state = {
        let mut m = model::load(&dir.join("model.onnx")).unwrap();
        zero_state_node(&mut m).output[0].clone()
    };

    // An int64 initial state (fill 1): refused, naming it and its type — and not the
    // activations, which are all float32.
    let mut m = model::load(&dir.join("model.onnx")).unwrap();
    set_fill(&mut m, 7, 1i64.to_le_bytes().to_vec());
    let e = patch::patch_model(&mut m, &dir).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(
        e.contains(&format!("initial_state '{state}' int64 is not float32")),
        "{e}"
    );
    assert!(!e.contains("differ"), "{e}");

    // A state from an op of another domain: its type cannot be worked out, and the message
    // says which value and why.
    let mut m = model::load(&dir.join("model.onnx")).unwrap();
    set_fill(&mut m, 1, 1f32.to_le_bytes().to_vec());
    let n = zero_state_node(&mut m);
    n.domain = "com.example".into();
    let node_name = n.name.clone();
    let e = patch::patch_model(&mut m, &dir).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(
        e.contains(&format!(
            "initial_state '{state}' has an element type that cannot be worked out"
        )),
        "{e}"
    );
    assert!(e.contains(&node_name) && e.contains("com.example"), "{e}");
}

#[test]
fn inferred_shapes_agree_with_onnx_shape_inference() {
    // onnx's shape inference with data propagation (onnx_shapes.tsv, written by the fixture
    // script on the export without its value_info) is the reference: element types are equal,
    // every dim it gives as a size or an input's dim name is inferred here too, equal, and
    // ranks agree.
    use s6_onnx::patch::infer::{Infer, SymDim};
    use s6_onnx::patch::GraphIndex;
    for (name, ..) in FIXTURES {
        let dir = common::fixture_dir("dynamic", name);
        let mut m = model::load(&dir.join("model.onnx")).unwrap();
        m.graph.as_mut().unwrap().value_info.clear();
        let g = m.graph.as_ref().unwrap();
        let gi = GraphIndex::new(g, &dir);
        let inf = Infer::new(&gi);
        let tsv = std::fs::read_to_string(dir.join("onnx_shapes.tsv")).unwrap();
        let (mut agreed, mut missed, mut values) = (0, Vec::new(), 0);
        for line in tsv.lines().filter(|l| !l.is_empty()) {
            let mut cols = line.split('\t');
            let (value, elem, dims) = (
                cols.next().unwrap(),
                cols.next().unwrap(),
                cols.next().unwrap_or(""),
            );
            assert_eq!(
                inf.elem_type(value),
                Ok(elem.parse::<i32>().unwrap()),
                "{name}: element type of '{value}'"
            );
            let want: Vec<Option<SymDim>> = dims
                .split(' ')
                .filter(|d| !d.is_empty())
                .map(|d| match d {
                    "?" => None,
                    d => Some(
                        d.parse::<i64>()
                            .map(SymDim::Known)
                            .unwrap_or_else(|_| SymDim::Param(d.to_string())),
                    ),
                })
                .collect();
            values += 1;
            let Some(got) = inf.dims(value) else {
                missed.push(format!("'{value}': no dims, onnx {want:?}"));
                continue;
            };
            assert_eq!(
                got.len(),
                want.len(),
                "{name}: rank of '{value}': {got:?} vs {want:?}"
            );
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let Some(w) = w else { continue };
                if let SymDim::Of(..) = g {
                    missed.push(format!("'{value}' dim {i}: onnx {w:?}"));
                } else {
                    assert_eq!(g, w, "{name}: dim {i} of '{value}': {got:?} vs {want:?}");
                    agreed += 1;
                }
            }
        }
        eprintln!("{name}: {values} values, {agreed} dims equal to onnx's");
        assert!(agreed > 300, "{name}: {agreed}");
        assert!(
            missed.is_empty(),
            "{name}: {:?}",
            &missed[..missed.len().min(10)]
        );
    }
}
