//! The patcher on the vision-Mamba exports (`scripts/export_vision.py`): VMamba's SS2D block
//! (four directions in one scan call, B/C grouped with G = 4) becomes one grouped S6Scan node,
//! Vim's bidirectional block two nodes; the patched graphs, run by the interpreter, equal
//! onnxruntime on the originals, keep their dynamic batch and no longer depend on L.
//! MambaVision's mixer (an ungrouped, ungated scan) becomes one node.

mod common;

use s6_onnx::interp::{Dim, Session, Tensor};
use s6_onnx::model;
use s6_onnx::patch::{self, s6node::ScanNode};
use std::collections::HashMap;

/// (fixture, scans, B/C groups, fp16, channels_last); `*_dynamo_*` from the dynamo exporter,
/// `ss2d_x2` two SS2D blocks in a row. `ss2d_cl_expand` is SS2D's scan spelled
/// otherwise: channels-last, B/C (batch, L, G, N) spread by expand + reshape, other einsum
/// letters and operand orders, the readout as a summed product.
const FIXTURES: [(&str, usize, usize, bool, bool); 13] = [
    ("ss2d_x2_3x5", 2, 4, false, false),
    ("mambavision_4x6", 1, 1, false, false),
    ("ss2d_dynamo_4x4", 1, 4, false, false),
    ("vim_dynamo_8x8", 2, 1, false, true),
    ("ss2d_4x4", 1, 4, false, false),
    ("ss2d_3x5", 1, 4, false, false),
    ("ss2d_fp16_4x4", 1, 4, true, false),
    ("ss2d_fp16_3x5", 1, 4, true, false),
    ("ss2d_cl_expand_4x4", 1, 4, false, true),
    ("vim_8x8", 2, 1, false, true),
    ("vim_6x10", 2, 1, false, true),
    ("vim_fp16_8x8", 2, 1, true, true),
    ("vim_fp16_6x10", 2, 1, true, true),
];

/// Largest of |got - want| / max(1, |want|) over every output.
fn worst_error(got: &[(String, Tensor)], want: &HashMap<String, Tensor>) -> f64 {
    let mut worst = 0f64;
    for (name, g) in got {
        let w = &want[name];
        assert_eq!(g.shape, w.shape, "{name}: shape");
        for (a, b) in g.to_f64_vec().iter().zip(w.to_f64_vec()) {
            let e = (a - b).abs() / b.abs().max(1.0);
            worst = worst.max(if e.is_nan() { f64::INFINITY } else { e });
        }
    }
    worst
}

fn patched(name: &str) -> (s6_onnx::proto::ModelProto, patch::PatchReport) {
    let d = common::fixture_dir("vision", name);
    let mut m = model::load(&d.join("model.onnx")).unwrap();
    let report = patch::patch_model(&mut m, &d).unwrap_or_else(|e| panic!("{name}: {e}"));
    (m, report)
}

fn scans(m: &s6_onnx::proto::ModelProto) -> Vec<ScanNode> {
    m.graph
        .node
        .iter()
        .filter_map(ScanNode::from_node)
        .collect()
}

#[test]
fn vision_exports_patch_into_the_expected_nodes_and_match_onnxruntime() {
    for (name, n_scans, groups, fp16, channels_last) in FIXTURES {
        let d = common::fixture_dir("vision", name);
        let (m, report) = patched(name);
        let sc = scans(&m);
        assert_eq!(sc.len(), n_scans, "{name}: S6Scan nodes");
        assert_eq!(report.layers_patched, n_scans, "{name}");
        for s in &sc {
            let a = s.attrs;
            // Softplus, Δ bias and D skip are folded in every block; only Vim gates by z
            // inside the scan (SS2D normalises first).
            assert!(
                a.delta_softplus && a.has_d && a.has_delta_bias,
                "{name}: {a:?}"
            );
            assert_eq!(a.has_z, name.starts_with("vim"), "{name}: {a:?}");
            assert!(!a.has_initial_state && !a.has_last_state, "{name}: {a:?}");
            assert_eq!(a.channels_last, channels_last, "{name}: {a:?}");
            assert_eq!(a.bc_channels_last, channels_last, "{name}: {a:?}");
        }
        // The unrolled steps are gone: no Einsum readout, no Tile spreading B/C.
        let g = m.graph.as_ref().unwrap();
        for op in ["Tile", "OneHot", "ConstantOfShape"] {
            assert!(!g.node.iter().any(|n| n.op_type == op), "{name}: {op} left");
        }
        // Batch stays dynamic.
        let s = Session::new(&m, &d).unwrap();
        let x = s.inputs().next().unwrap();
        assert!(
            matches!(x.dims.as_deref(), Some([Dim::Symbolic(_), ..])),
            "{name}: input {:?}",
            x.dims
        );

        let got = s.run(&common::read_npy_dir(&d.join("inputs"))).unwrap();
        let e = worst_error(&got, &common::read_npy_dir(&d.join("expected")));
        // fp16: the op keeps the state in fp32, onnxruntime rounds every step to fp16.
        let tol = if fp16 { 1e-2 } else { 1e-4 };
        assert!(
            e <= tol,
            "{name}: patched vs onnxruntime {e:.2e} > {tol:.0e}"
        );
        eprintln!(
            "{name}: {} nodes, patched vs onnxruntime {e:.2e}",
            g.node.len()
        );

        // The grouped node takes B and C as (batch, G, N, L): expose B and run.
        let mut probe = m.clone();
        let gp = probe.graph.as_mut().unwrap();
        let mut vi = gp.output[0].clone();
        vi.name = sc[0].b.clone();
        vi.type_ = Default::default();
        gp.output.push(vi);
        let outs = Session::new(&probe, &d)
            .unwrap()
            .run(&common::read_npy_dir(&d.join("inputs")))
            .unwrap();
        let b = &outs.last().unwrap().1;
        let want_rank = if groups > 1 { 4 } else { 3 };
        assert_eq!(b.rank(), want_rank, "{name}: B {:?}", b.shape);
        if groups > 1 {
            let g_axis = if channels_last { 2 } else { 1 };
            assert_eq!(b.shape[g_axis], groups, "{name}: B {:?}", b.shape);
        }
    }
}

/// The patched graph does not grow with the image: both sizes give the same node count.
#[test]
fn patched_node_count_does_not_depend_on_the_image_size() {
    for pair in [
        ["ss2d_4x4", "ss2d_3x5"],
        ["vim_8x8", "vim_6x10"],
        ["ss2d_fp16_4x4", "ss2d_fp16_3x5"],
    ] {
        let (a, ra) = patched(pair[0]);
        let (b, rb) = patched(pair[1]);
        assert!(
            ra.nodes_before != rb.nodes_before,
            "{pair:?}: originals differ"
        );
        assert_eq!(
            a.graph.node.len(),
            b.graph.node.len(),
            "{pair:?}: patched node counts"
        );
    }
}

/// Dynamic batch: at a batch the export never saw (3), the patched graph equals the original.
#[test]
fn patched_vision_exports_run_at_another_batch() {
    for name in ["ss2d_3x5", "vim_6x10"] {
        let d = common::fixture_dir("vision", name);
        let original = model::load(&d.join("model.onnx")).unwrap();
        let (m, _) = patched(name);
        let x = &common::read_npy_dir(&d.join("inputs"))["x"];
        let mut shape = x.shape.clone();
        shape[0] = 3;
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let feeds = HashMap::from([("x".to_string(), Tensor::from_f32(shape, v).unwrap())]);
        let want: HashMap<String, Tensor> = Session::new(&original, &d)
            .unwrap()
            .run(&feeds)
            .unwrap()
            .into_iter()
            .collect();
        let got = Session::new(&m, &d).unwrap().run(&feeds).unwrap();
        assert_eq!(got[0].1.shape[0], 3, "{name}");
        let e = worst_error(&got, &want);
        assert!(e <= 1e-4, "{name}: batch 3: {e:.2e}");
    }
}

/// B/C tiled over the channels (`repeat`: channel d uses group d mod G) is not the contract's
/// grouping; the patcher must say so rather than build a wrong node.
#[test]
fn interleaved_groups_are_refused() {
    let d = common::fixture_dir("vision", "ss2d_interleaved_4x4");
    let mut m = model::load(&d.join("model.onnx")).unwrap();
    let err = patch::patch_model(&mut m, &d).unwrap_err().to_string();
    assert!(
        err.contains("not a block-wise repeat") && err.contains("d mod G"),
        "{err}"
    );
    // The original itself runs and matches onnxruntime (the refusal is not a runtime failure).
    let m = model::load(&d.join("model.onnx")).unwrap();
    let got = Session::new(&m, &d)
        .unwrap()
        .run(&common::read_npy_dir(&d.join("inputs")))
        .unwrap();
    assert!(worst_error(&got, &common::read_npy_dir(&d.join("expected"))) <= 1e-4);
}
