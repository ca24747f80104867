//! The Mamba2 (SSD) exports of `scripts/export_mamba2.py` (`fixtures/mamba2/`: transformers'
//! Mamba2ForCausalLM in fp32 and fp16 and a hand-written minimal SSD model, dynamo, dynamic
//! sequence axis).
//! Unpatched, the interpreter runs them and matches onnxruntime at the export length and PyTorch
//! at the other lengths (1e-4 of max(1, |ref|); fp16 1e-2). The patcher turns transformers' SSD into one
//! `S6ScanHeads` node per layer (then equal to the same references), and so does the
//! minimal model's own formulation; a formulation it cannot prove (the TorchScript export, any
//! altered detail) is refused with "not supported yet: Mamba2 …", the graph unchanged.

mod common;

use s6_onnx::interp::{Session, Tensor};
use s6_onnx::{model, patch};
use std::path::{Path, PathBuf};

/// (fixture, tolerance relative to max(1, |ref|)): fp16 logits agree to fp16 rounding only.
const FIXTURES: [(&str, f64); 4] = [
    ("hf2_dynamo_dynseq_L12", 1e-4),
    ("hf2_dynamo_dynbs_b2_L12", 1e-4),
    ("hf2_fp16_dynamo_dynseq_L12", 1e-2),
    ("ssd_minimal_dynamo_dynseq_L12", 1e-4),
];

fn dir(name: &str) -> PathBuf {
    common::fixture_dir("mamba2", name)
}

/// (inputs, expected outputs) folders: the export shape (`inputs/`, `expected/`) and every
/// `expected_*/` (other lengths and batch sizes).
fn cases(d: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut cases = vec![(d.join("inputs"), d.join("expected"))];
    let mut others: Vec<PathBuf> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("expected_")
        })
        .collect();
    others.sort();
    cases.extend(others.into_iter().map(|p| (p.join("inputs"), p)));
    cases
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
    for (name, tol) in FIXTURES {
        let d = dir(name);
        let m = model::load(&d.join("model.onnx")).unwrap();
        let s = Session::new(&m, &d).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cases = cases(&d);
        assert_eq!(cases.len(), 4, "{name}: the export shape and three others");
        for (inputs, expected) in cases {
            let outs = s
                .run(&common::read_npy_dir(&inputs))
                .unwrap_or_else(|e| panic!("{name} {}: {e}", expected.display()));
            let want = common::read_npy_dir(&expected);
            let got = &outs.iter().find(|(n, _)| n == "logits").unwrap().1;
            let err = rel_err(got, &want["logits"]);
            println!("{name} {}: {err:.2e}", expected.display());
            assert!(err <= tol, "{name} {}: {err:.2e}", expected.display());
        }
    }
}

#[test]
fn patcher_rewrites_transformers_ssd_into_one_node_per_layer() {
    for (name, tol) in &FIXTURES[..3] {
        patched_matches(name, *tol);
    }
}

fn patched_matches(name: &str, tol: f64) {
    let d = dir(name);
    let mut m = model::load(&d.join("model.onnx")).unwrap();
    let report = patch::patch_model(&mut m, &d).unwrap_or_else(|e| panic!("{name}: {e}"));
    let g = m.graph.as_ref().unwrap();
    let heads: Vec<_> = g
        .node
        .iter()
        .filter(|n| n.op_type == "S6ScanHeads" && n.domain == "s6plugin")
        .collect();
    assert_eq!(heads.len(), 2, "{name}: one node per layer");
    assert_eq!(report.layers_patched, 2);
    for op in ["CumSum", "Einsum", "Pad", "Trilu"] {
        assert!(!g.node.iter().any(|n| n.op_type == op), "{op} left");
    }
    println!(
        "{name}: {} → {} nodes; {:?}",
        report.nodes_before, report.nodes_after, report.rules
    );
    let s = Session::new(&m, &d).unwrap();
    for (inputs, expected) in cases(&d) {
        let outs = s.run(&common::read_npy_dir(&inputs)).unwrap();
        let want = common::read_npy_dir(&expected);
        let got = &outs.iter().find(|(n, _)| n == "logits").unwrap().1;
        let err = rel_err(got, &want["logits"]);
        println!("patched {name} {}: {err:.2e}", expected.display());
        assert!(
            err <= tol,
            "patched {name} {}: {err:.2e}",
            expected.display()
        );
    }
}

/// The minimal model's own formulation (Trilu masks, multi-operand Einsums, the carry from a
/// CumSum of chunk totals): one node per layer, equal to the same references.
#[test]
fn patcher_rewrites_the_minimal_ssd_into_one_node_per_layer() {
    let (name, tol) = FIXTURES[3];
    patched_matches(name, tol);
}

#[test]
fn patcher_refuses_ssd_it_cannot_prove() {
    // The (invalid) TorchScript export.
    let d = common::fixture_dir("models", "mamba2_ts_L8");
    let mut m = model::load(&d.join("model.onnx")).unwrap();
    let before = m.clone();
    let err = patch::patch_model(&mut m, &d).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, patch::PatchError::Unsupported { .. })
            && msg.contains("not supported yet: Mamba2"),
        "{msg}"
    );
    assert!(m == before, "graph changed");
}

/// Changing any proven detail of transformers' SSD region leaves it unpatched (and refused):
/// a mask, an Einsum equation, the segment-sum axis, the final Slice's start, D's shape.
#[test]
fn patcher_leaves_altered_ssd_alone() {
    use s6_onnx::proto::ModelProto;
    let d = dir("hf2_dynamo_dynseq_L12");
    let base = model::load(&d.join("model.onnx")).unwrap();
    type Mutation = fn(&mut ModelProto);
    let mutations: [(&str, Mutation); 5] = [
        ("mask element", |m| {
            let g = m.graph.as_mut().unwrap();
            let t = g
                .initializer
                .iter_mut()
                .find(|t| t.data_type == 9 && t.dims == [8, 8])
                .unwrap();
            t.raw_data[8] ^= 1; // (1, 0)
        }),
        ("einsum letters", |m| {
            let g = m.graph.as_mut().unwrap();
            for n in g.node.iter_mut().filter(|n| n.op_type == "Einsum") {
                for a in n.attribute.iter_mut().filter(|a| a.name == "equation") {
                    if a.s == b"bclsh,bcshp->bclhp" {
                        a.s = b"bcslh,bcshp->bclhp".to_vec();
                    }
                }
            }
        }),
        ("segsum axis", |m| {
            let g = m.graph.as_mut().unwrap();
            // The CumSums over axis −2 (segment sums) sum over the other axis instead.
            let axes: Vec<String> = g
                .node
                .iter()
                .filter(|n| n.op_type == "CumSum")
                .map(|n| n.input[1].clone())
                .collect();
            let minus2 = axes
                .iter()
                .find(|a| {
                    g.initializer
                        .iter()
                        .any(|t| &t.name == *a && t.raw_data == (-2i64).to_le_bytes())
                })
                .unwrap()
                .clone();
            let t = g.initializer.iter_mut().find(|t| t.name == minus2).unwrap();
            t.raw_data = (-1i64).to_le_bytes().to_vec();
        }),
        ("slice start", |m| {
            let g = m.graph.as_mut().unwrap();
            let mut one = g
                .initializer
                .iter()
                .find(|t| t.dims == [1] && t.raw_data == 1i64.to_le_bytes())
                .unwrap()
                .clone();
            one.name = "test_one".into();
            g.initializer.push(one);
            let adds: Vec<String> = g
                .node
                .iter()
                .filter(|n| n.op_type == "Add")
                .map(|n| n.output[0].clone())
                .collect();
            for n in g.node.iter_mut().filter(|n| n.op_type == "Slice") {
                if adds.contains(&n.input[0]) {
                    n.input[1] = "test_one".into();
                }
            }
        }),
        ("D shape", |m| {
            let g = m.graph.as_mut().unwrap();
            for t in g.initializer.iter_mut().filter(|t| t.dims == [4, 1]) {
                t.dims = vec![1, 4];
            }
        }),
    ];
    for (what, mutate) in mutations {
        let mut m = base.clone();
        mutate(&mut m);
        assert_ne!(m, base, "{what}: the mutation changed nothing");
        let err = patch::patch_model(&mut m, &d).unwrap_err().to_string();
        assert!(err.contains("not supported yet: Mamba2"), "{what}: {err}");
    }
}

/// Changing any proven detail of the minimal SSD region leaves the model refused and unchanged:
/// either mask's diagonal or triangle, the axis of the CumSum over Δ·A, an Einsum's indices,
/// the chunk totals' index, and an intermediate value used outside the region.
#[test]
fn patcher_leaves_altered_minimal_ssd_alone() {
    use s6_onnx::proto::{GraphProto, ModelProto, TensorProto, ValueInfoProto};
    let d = dir("ssd_minimal_dynamo_dynseq_L12");
    let base = model::load(&d.join("model.onnx")).unwrap();
    fn int(g: &mut GraphProto, name: &str, v: i64) -> String {
        let mut t = TensorProto::new();
        t.name = name.into();
        t.data_type = 7;
        t.raw_data = v.to_le_bytes().to_vec();
        g.initializer.push(t);
        name.into()
    }
    fn scalar_of(g: &GraphProto, v: &str) -> Option<i64> {
        let t = g.initializer.iter().find(|t| t.name == v)?;
        Some(i64::from_le_bytes(t.raw_data.get(..8)?.try_into().ok()?))
    }
    /// Points input `k` of every `op` node whose input `k` is the scalar `from` at a new `to`.
    fn retarget(m: &mut ModelProto, op: &str, k: usize, from: i64, to: i64) {
        let g = m.graph.as_mut().unwrap();
        let new = int(g, "test_int", to);
        let hits: Vec<usize> = (0..g.node.len())
            .filter(|&i| {
                let n = &g.node[i];
                n.op_type == op && n.input.get(k).and_then(|v| scalar_of(g, v)) == Some(from)
            })
            .collect();
        for i in hits {
            g.node[i].input[k] = new.clone();
        }
    }
    type Mutation = fn(&mut ModelProto);
    let mutations: [(&str, Mutation); 7] = [
        ("segment-sum mask diagonal", |m| {
            retarget(m, "Trilu", 1, 0, 1)
        }),
        ("carry mask diagonal", |m| retarget(m, "Trilu", 1, -1, 0)),
        ("upper triangle", |m| {
            let g = m.graph.as_mut().unwrap();
            for n in g.node.iter_mut().filter(|n| n.op_type == "Trilu") {
                for a in n.attribute.iter_mut().filter(|a| a.name == "upper") {
                    a.i = 1;
                }
            }
        }),
        // The CumSum of Δ·A (b, c, T, H) over the heads instead of the chunk's time axis.
        ("cumsum axis", |m| retarget(m, "CumSum", 1, 2, 3)),
        ("einsum indices", |m| {
            let g = m.graph.as_mut().unwrap();
            for n in g.node.iter_mut().filter(|n| n.op_type == "Einsum") {
                for a in n.attribute.iter_mut().filter(|a| a.name == "equation") {
                    if a.s == b"bcin,bcjn,bchij,bcjhp->bcihp" {
                        a.s = b"bcin,bcjn,bchji,bcjhp->bcihp".to_vec();
                    }
                }
            }
        }),
        ("chunk total index", |m| retarget(m, "Gather", 1, -1, 0)),
        ("escaping value", |m| {
            let g = m.graph.as_mut().unwrap();
            let cum = g
                .node
                .iter()
                .find(|n| n.op_type == "CumSum")
                .unwrap()
                .output[0]
                .clone();
            let mut o = ValueInfoProto::new();
            o.name = cum;
            g.output.push(o);
        }),
    ];
    for (what, mutate) in mutations {
        let mut m = base.clone();
        mutate(&mut m);
        assert!(m != base, "{what}: the mutation changed nothing");
        let before = m.clone();
        let err = patch::patch_model(&mut m, &d).unwrap_err().to_string();
        assert!(err.contains("not supported yet: Mamba2"), "{what}: {err}");
        assert!(m == before, "{what}: graph changed");
    }
}
