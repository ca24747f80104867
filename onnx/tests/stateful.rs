//! `patch::stateful` on the bundled exports: the declared state interface, one call = the
//! original (onnxruntime), pieces with states carried = one call, and — teacher-forced on
//! transformers' greedy continuation (`scripts/make_generate_fixtures.py`) — the logits of
//! every decode step equal transformers' cached `generate()` logits.

mod common;

use s6_onnx::interp::{Dim, Session, Tensor};
use s6_onnx::patch::stateful::{self, BATCH_DIM};
use s6_onnx::patch::{self, stateful_verify};
use s6_onnx::stateful::{concat_steps, steps, StatefulSession};
use s6_onnx::{model, npy};
use std::path::PathBuf;

/// (export, generate fixture with the same weights, layers, d_conv)
const CASES: [(&str, &str, usize, usize); 9] = [
    ("hf_ts_L12", "hf", 2, 4),
    ("hf_ts_L7", "hf", 2, 4),
    ("hf_dynamo_L12", "hf", 2, 4),
    ("hf_dynamo_L7", "hf", 2, 4),
    ("hf_dynamo_L1", "hf", 2, 4),
    ("minimal_ts_L12", "minimal", 2, 4),
    ("minimal_ts_L7", "minimal", 2, 4),
    ("minimal_dynamo_L12", "minimal", 2, 4),
    ("hf_ts_3l_conv3_L8", "hf3c3", 3, 3),
];

fn stateful_model(export: &str) -> (onnx_protobuf::ModelProto, PathBuf, usize) {
    let dir = common::fixtures().join("models").join(export);
    let mut m = model::load(&dir.join("model.onnx")).unwrap();
    let r = patch::patch_model(&mut m, &dir).unwrap();
    let st = stateful::make_stateful(&mut m, &dir).unwrap();
    assert_eq!(st.layers.len(), r.layers_patched);
    (m, dir, r.export_seq_len.unwrap())
}

#[test]
fn declares_named_fp32_states_per_layer() {
    for (export, _, layers, d_conv) in CASES {
        let (m, _, _) = stateful_model(export);
        let g = m.graph.as_ref().unwrap();
        let names: Vec<&str> = g.input.iter().map(|i| i.name.as_str()).collect();
        let mut want = vec!["input_ids".to_string()];
        let mut want_out = vec!["logits".to_string()];
        for l in 0..layers {
            want.push(format!("conv_state.{l}"));
            want.push(format!("ssm_state.{l}"));
            want_out.push(format!("conv_state_out.{l}"));
            want_out.push(format!("ssm_state_out.{l}"));
        }
        assert_eq!(names, want, "{export}");
        let outs: Vec<&str> = g.output.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(outs, want_out, "{export}");
        assert_eq!(
            common::dims(&g.input[0]),
            [BATCH_DIM, "seq_len"],
            "{export}"
        );
        assert_eq!(
            common::dims(&g.output[0])[..2],
            [BATCH_DIM, "seq_len"],
            "{export}"
        );
        for v in g.input[1..].iter().chain(&g.output[1..]) {
            let want = if v.name.starts_with("conv") {
                vec![BATCH_DIM.to_string(), "64".into(), (d_conv - 1).to_string()]
            } else {
                vec![BATCH_DIM.to_string(), "64".into(), "16".into()]
            };
            assert_eq!(common::dims(v), want, "{export} {}", v.name);
        }
        // The session sees them the same way.
        let s = Session::new(&m, &common::fixtures().join("models").join(export)).unwrap();
        let c0 = s.inputs().find(|i| i.name == "conv_state.0").unwrap();
        assert_eq!(
            c0.dims.as_ref().unwrap()[2],
            Dim::Fixed(d_conv - 1),
            "{export}"
        );
        let st = StatefulSession::new(s).unwrap();
        assert_eq!(st.layers(), layers);
        // No conv keeps its left padding.
        for n in g.node.iter().filter(|n| n.op_type == "Conv") {
            let pads = n.attribute.iter().find(|a| a.name == "pads").unwrap();
            assert_eq!(pads.ints, [0, 0], "{export} {}", n.name);
        }
    }
}

#[test]
fn one_call_equals_original_and_pieces_equal_one_call() {
    for (export, ..) in CASES {
        let (m, dir, l) = stateful_model(export);
        let original = model::load(&dir.join("model.onnx")).unwrap();
        let v = stateful_verify::verify_stateful(&original, &dir, &m, &dir, l).unwrap();
        assert_eq!(v.batch, 2, "{export}: {:?}", v.batch_note);
        let errs = v.checks;
        assert_eq!(errs.len(), 3);
        for e in &errs {
            assert!(e.rel_to_scale <= 1e-5, "{export}: {e:?}");
        }
    }
}

#[test]
fn piece_lengths_cover_the_prompt() {
    assert_eq!(stateful_verify::piece_lengths(12), [5, 1, 1, 1, 1, 1, 1, 1]);
    assert_eq!(stateful_verify::piece_lengths(3), [3]);
    assert_eq!(stateful_verify::piece_lengths(1), [1]);
}

/// The logits of every decode step, teacher-forced on transformers' greedy tokens, equal the
/// logits transformers' cached generate() picked them from (batch 2).
#[test]
fn decode_steps_match_transformers_cached_generate() {
    for (export, case, ..) in CASES {
        let (m, dir, _) = stateful_model(export);
        let st = StatefulSession::new(Session::new(&m, &dir).unwrap()).unwrap();
        let g = common::fixtures().join("generate").join(case);
        let prompt = npy::read(&g.join("prompt.npy")).unwrap();
        let tokens = npy::read(&g.join("tokens.npy")).unwrap();
        let want = npy::read(&g.join("logits.npy")).unwrap();
        let (b, n) = (tokens.shape[0], tokens.shape[1]);
        let (logits, mut states) = st.step(&prompt, &st.zero_states(b)).unwrap();
        let mut got = vec![steps(&logits, logits.shape[1] - 1, logits.shape[1])];
        for i in 0..n - 1 {
            let (l, s) = st.step(&steps(&tokens, i, i + 1), &states).unwrap();
            got.push(l);
            states = s;
        }
        let got = concat_steps(&got).unwrap();
        assert_eq!(got.shape, want.shape, "{export}");
        let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
        let worst = g
            .iter()
            .zip(&w)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0f64, f64::max);
        assert!(worst <= 1e-4, "{export}: {worst:e}");
    }
}

#[test]
fn fp16_exports_become_stateful_too() {
    for export in ["hf_ts_fp16_L6", "hf_dynamo_fp16_L6"] {
        let dir = common::fixtures().join("fp16").join(export);
        let original = model::load(&dir.join("model.onnx")).unwrap();
        let mut m = original.clone();
        patch::patch_model(&mut m, &dir).unwrap();
        stateful::make_stateful(&mut m, &dir).unwrap();
        let errs = stateful_verify::verify_stateful(&original, &dir, &m, &dir, 6)
            .unwrap()
            .checks;
        // One call vs the original: fp16 rounding (the references differ by 2.5e-3 too);
        // pieces vs one call: the same ops, products of other row counts may sum in another
        // order and round an fp16 value the other way.
        assert!(errs[0].rel_to_scale <= 2e-2, "{export}: {:?}", errs[0]);
        assert!(errs[1].rel_to_scale <= 5e-3, "{export}: {:?}", errs[1]);
        assert!(errs[2].rel_to_scale <= 5e-3, "{export}: {:?}", errs[2]);
    }
}

#[test]
fn refuses_unpatched_and_already_stateful_models_and_changes_nothing() {
    let dir = common::fixtures().join("models/hf_ts_L12");
    let original = model::load(&dir.join("model.onnx")).unwrap();
    let mut m = original.clone();
    let e = stateful::make_stateful(&mut m, &dir)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no S6Scan"), "{e}");
    assert_eq!(m, original);
    let (mut st, dir, _) = stateful_model("hf_ts_L12");
    let before = st.clone();
    let e = stateful::make_stateful(&mut st, &dir)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already"), "{e}");
    assert_eq!(st, before);
}

#[test]
fn the_state_runner_refuses_a_plain_graph() {
    let dir = common::fixtures().join("models/hf_ts_L12");
    let m = model::load(&dir.join("model.onnx")).unwrap();
    let s = Session::new(&m, &dir).unwrap();
    let e = StatefulSession::new(s).err().unwrap().to_string();
    assert!(e.contains("conv_state.0"), "{e}");
    // A wrong number of states is an error, not a panic.
    let (m, dir, _) = stateful_model("hf_ts_L12");
    let st = StatefulSession::new(Session::new(&m, &dir).unwrap()).unwrap();
    let ids = Tensor::from_i64(vec![1, 2], vec![1, 2]).unwrap();
    let mut states = st.zero_states(1);
    states.0.pop();
    assert!(st.step(&ids, &states).is_err());
}

// ---------------------------------------------------------------- Mamba2 (S6ScanHeads)

/// (Mamba2 export under fixtures/mamba2, whether its batch is dynamic). Same weights as the
/// `hf2` generate fixture; 2 layers, d_inner 64, 4 heads of 16, 2 groups, d_state 16, d_conv 4.
const MAMBA2: [(&str, bool); 2] = [
    ("hf2_dynamo_dynseq_L12", false),
    ("hf2_dynamo_dynbs_b2_L12", true),
];

fn mamba2_stateful(export: &str) -> (onnx_protobuf::ModelProto, PathBuf, stateful::StatefulReport) {
    let dir = common::fixtures().join("mamba2").join(export);
    let mut m = model::load(&dir.join("model.onnx")).unwrap();
    patch::patch_model(&mut m, &dir).unwrap();
    let st = stateful::make_stateful(&mut m, &dir).unwrap();
    (m, dir, st)
}

fn attr(n: &onnx_protobuf::NodeProto, name: &str) -> i64 {
    n.attribute.iter().find(|a| a.name == name).unwrap().i
}

/// Conv state over the x‖B‖C channels (64 + 2·2·16 = 128, d_conv − 1 = 3 steps), SSM state
/// (batch, H, P, N) = (batch, 4, 16, 16); the S6ScanHeads nodes take and give them. The
/// export whose Reshapes bake batch 1 keeps axis 0 fixed at 1.
#[test]
fn mamba2_declares_conv_and_heads_states() {
    for (export, dynamic_batch) in MAMBA2 {
        let (m, dir, rep) = mamba2_stateful(export);
        let batch = if dynamic_batch { BATCH_DIM } else { "1" };
        assert_eq!(rep.fixed_batch, (!dynamic_batch).then_some(1), "{export}");
        let g = m.graph.as_ref().unwrap();
        let names: Vec<&str> = g.input.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "input_ids",
                "conv_state.0",
                "ssm_state.0",
                "conv_state.1",
                "ssm_state.1"
            ],
            "{export}"
        );
        let outs: Vec<&str> = g.output.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            outs,
            [
                "logits",
                "conv_state_out.0",
                "ssm_state_out.0",
                "conv_state_out.1",
                "ssm_state_out.1"
            ],
            "{export}"
        );
        for v in g.input[1..].iter().chain(&g.output[1..]) {
            let want: &[&str] = if v.name.starts_with("conv") {
                &[batch, "128", "3"]
            } else {
                &[batch, "4", "16", "16"]
            };
            assert_eq!(common::dims(v), want, "{export} {}", v.name);
        }
        assert_eq!(common::dims(&g.input[0])[0], batch, "{export}");
        assert_eq!(rep.layers.len(), 2);
        for l in &rep.layers {
            assert_eq!(l.scan_op, "S6ScanHeads");
            assert_eq!((l.d_inner, l.d_conv), (128, 4));
            assert_eq!(l.ssm_dims, [Some(4), Some(16), Some(16)]);
        }
        let heads: Vec<_> = g
            .node
            .iter()
            .filter(|n| n.op_type == "S6ScanHeads")
            .collect();
        assert_eq!(heads.len(), 2);
        for (i, n) in heads.iter().enumerate() {
            assert_eq!(attr(n, "has_initial_state"), 1);
            assert_eq!(attr(n, "has_last_state"), 1);
            assert_eq!(n.input.last().unwrap(), &format!("ssm_state.{i}"));
            assert_eq!(n.output[1], format!("ssm_state_out.{i}"));
        }
        for n in g.node.iter().filter(|n| n.op_type == "Conv") {
            let pads = n.attribute.iter().find(|a| a.name == "pads").unwrap();
            assert_eq!(pads.ints, [0, 0], "{export} {}", n.name);
        }
        let st = StatefulSession::new(Session::new(&m, &dir).unwrap()).unwrap();
        assert_eq!(st.layers(), 2);
        assert_eq!(st.slots()[1].dims, [4, 16, 16]);
    }
}

/// One call from zero states equals the original (interpreter) and pieces 5 + 1 + … equal
/// one call; at batch 2 where the export's batch is dynamic, else at batch 1 (the export
/// bakes batch 1 into its Reshapes).
#[test]
fn mamba2_one_call_equals_original_and_pieces_equal_one_call() {
    for (export, dynamic_batch) in MAMBA2 {
        let (m, dir, _) = mamba2_stateful(export);
        let original = model::load(&dir.join("model.onnx")).unwrap();
        let l = stateful_verify::DYNAMIC_SEQ_LEN;
        let v = stateful_verify::verify_stateful(&original, &dir, &m, &dir, l).unwrap();
        assert_eq!(v.batch, if dynamic_batch { 2 } else { 1 }, "{export}");
        assert_eq!(v.batch_note.is_some(), !dynamic_batch, "{export}");
        assert_eq!(v.checks.len(), 3);
        for e in &v.checks {
            assert!(e.rel_to_scale <= 1e-5, "{export}: {e:?}");
        }
    }
}

/// From zero states, the stateful graph gives PyTorch's (and onnxruntime's) logits of the
/// fixtures at every bundled length (1, 5, 12, 19; batch 1 to 3).
#[test]
fn mamba2_zero_state_call_equals_the_fixture_logits_at_every_length() {
    for (export, _) in MAMBA2 {
        let (m, dir, _) = mamba2_stateful(export);
        let st = StatefulSession::new(Session::new(&m, &dir).unwrap()).unwrap();
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let case = e.unwrap().path();
            let ids = case.join("inputs/input_ids.npy");
            let ids = if case.ends_with("expected") {
                dir.join("inputs/input_ids.npy")
            } else if ids.exists() {
                ids
            } else {
                continue;
            };
            let ids = npy::read(&ids).unwrap();
            let want = npy::read(&case.join("logits.npy")).unwrap();
            let (got, _) = st.step(&ids, &st.zero_states(ids.shape[0])).unwrap();
            let err = common::scaled_err(&got, &want);
            assert!(err <= 1e-5, "{export} {}: {err:e}", case.display());
            n += 1;
        }
        assert_eq!(n, 4, "{export}");
    }
}

/// Teacher-forced on transformers' greedy tokens (Mamba2ForCausalLM.generate, use_cache),
/// the logits of every decode step equal those transformers picked them from.
#[test]
fn mamba2_decode_steps_match_transformers_cached_generate() {
    let g = common::fixtures().join("generate/hf2");
    let prompt = npy::read(&g.join("prompt.npy")).unwrap();
    let tokens = npy::read(&g.join("tokens.npy")).unwrap();
    let want = npy::read(&g.join("logits.npy")).unwrap();
    for (export, dynamic_batch) in MAMBA2 {
        let (m, dir, _) = mamba2_stateful(export);
        let st = StatefulSession::new(Session::new(&m, &dir).unwrap()).unwrap();
        // A batch-1 export runs the rows one by one.
        let rows: Vec<(usize, usize)> = if dynamic_batch {
            vec![(0, 2)]
        } else {
            vec![(0, 1), (1, 2)]
        };
        for (lo, hi) in rows {
            let rows_of = |t: &Tensor| {
                let w = t.shape[1..].iter().product::<usize>();
                let v = t.to_f64_vec()[lo * w..hi * w].to_vec();
                let mut shape = t.shape.clone();
                shape[0] = hi - lo;
                Tensor::new(
                    shape,
                    s6_onnx::interp::TensorData::from_f64_iter(t.dtype(), v.into_iter()),
                )
                .unwrap()
            };
            let (p, t, w) = (rows_of(&prompt), rows_of(&tokens), rows_of(&want));
            let (logits, mut states) = st.step(&p, &st.zero_states(hi - lo)).unwrap();
            let mut got = vec![steps(&logits, logits.shape[1] - 1, logits.shape[1])];
            for i in 0..t.shape[1] - 1 {
                let (l, s) = st.step(&steps(&t, i, i + 1), &states).unwrap();
                got.push(l);
                states = s;
            }
            let got = concat_steps(&got).unwrap();
            let err = common::scaled_err(&got, &w);
            assert!(err <= 1e-4, "{export} rows {lo}..{hi}: {err:e}");
        }
    }
}

#[test]
fn mamba2_fp16_export_becomes_stateful_too() {
    let dir = common::fixtures().join("mamba2/hf2_fp16_dynamo_dynseq_L12");
    let original = model::load(&dir.join("model.onnx")).unwrap();
    let mut m = original.clone();
    patch::patch_model(&mut m, &dir).unwrap();
    stateful::make_stateful(&mut m, &dir).unwrap();
    let v = stateful_verify::verify_stateful(&original, &dir, &m, &dir, 12).unwrap();
    for e in &v.checks {
        assert!(e.rel_to_scale <= 5e-3, "{e:?}");
    }
    // The states stay fp32 although the activations are fp16.
    let st = StatefulSession::new(Session::new(&m, &dir).unwrap()).unwrap();
    assert_eq!(st.layers(), 2);
}

/// A conv Slice whose end is not provably the input's length (here a constant 5) is not a
/// causal conv the state can replace: refused naming the scan node, the model unchanged.
#[test]
fn mamba2_conv_slice_of_another_length_is_refused() {
    let dir = common::fixtures().join("mamba2/hf2_dynamo_dynseq_L12");
    let mut m = model::load(&dir.join("model.onnx")).unwrap();
    patch::patch_model(&mut m, &dir).unwrap();
    let g = m.graph.as_mut().unwrap();
    let mut five = onnx_protobuf::TensorProto::new();
    five.name = "five".into();
    five.data_type = 7;
    five.dims = vec![1];
    five.int64_data = vec![5];
    g.initializer.push(five);
    let convs: Vec<String> = g
        .node
        .iter()
        .filter(|n| n.op_type == "Conv")
        .map(|n| n.output[0].clone())
        .collect();
    for n in g.node.iter_mut() {
        if n.op_type == "Slice" && n.input[0] == convs[0] {
            n.input[2] = "five".into();
        }
    }
    let before = m.clone();
    let e = stateful::make_stateful(&mut m, &dir)
        .unwrap_err()
        .to_string();
    assert!(e.contains("S6ScanHeads") && e.contains("causal"), "{e}");
    assert_eq!(m, before);
}
