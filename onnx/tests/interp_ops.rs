//! Op-level tests: every case under `fixtures/ops/` (one-node graphs with edge cases, made by
//! `scripts/make_op_fixtures.py` and run by onnxruntime) must match onnxruntime; plus errors
//! that must name the op and node.

use s6_onnx::interp::{DataType, InterpError, Session, Tensor};
use s6_onnx::{model, npy};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ops")
}

fn read_dir_npy(dir: &Path) -> HashMap<String, Tensor> {
    let mut m = HashMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return m;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "npy") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            m.insert(name, npy::read(&p).unwrap());
        }
    }
    m
}

/// Tolerance by dtype: fp32 1e-5 abs + 1e-5 rel (one-op graphs), fp16 one ulp or so.
fn tol(dt: DataType) -> (f64, f64) {
    match dt {
        DataType::F16 | DataType::BF16 => (1e-3, 2e-3),
        DataType::F32 => (1e-5, 1e-5),
        _ => (0.0, 0.0),
    }
}

fn check(case: &Path) -> Result<(), String> {
    let name = case.file_name().unwrap().to_string_lossy();
    let m = model::load(&case.join("model.onnx")).map_err(|e| e.to_string())?;
    let s = Session::new(&m, case).map_err(|e| format!("{name}: {e}"))?;
    let inputs = read_dir_npy(&case.join("inputs"));
    let expected = read_dir_npy(&case.join("expected"));
    let outs = s.run(&inputs).map_err(|e| format!("{name}: {e}"))?;
    if outs.len() != expected.len() {
        return Err(format!(
            "{name}: {} outputs, expected {}",
            outs.len(),
            expected.len()
        ));
    }
    for (o, got) in outs {
        let want = &expected[&o];
        if got.shape != want.shape || got.dtype() != want.dtype() {
            return Err(format!(
                "{name}/{o}: got {:?} {}, want {:?} {}",
                got.shape,
                got.dtype(),
                want.shape,
                want.dtype()
            ));
        }
        let (atol, rtol) = tol(want.dtype());
        if got.len() != want.len() {
            return Err(format!(
                "{name}/{o}: {} elements, want {}",
                got.len(),
                want.len()
            ));
        }
        for (i, (a, b)) in got.to_f64_vec().iter().zip(want.to_f64_vec()).enumerate() {
            let same_nan = a.is_nan() && b.is_nan();
            let same_inf = a.is_infinite() && a == &b;
            if !(same_nan || same_inf || (a - b).abs() <= atol + rtol * b.abs()) {
                return Err(format!("{name}/{o}[{i}]: got {a}, want {b}"));
            }
        }
    }
    Ok(())
}

#[test]
fn every_op_fixture_matches_onnxruntime() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures/ops missing: run scripts/make_op_fixtures.py")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model.onnx").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 70, "only {} op fixtures", cases.len());
    let failures: Vec<String> = cases.iter().filter_map(|c| check(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The op list (`s6-run --list-ops`) names every op a fixture exercises, and the ops the
/// vision-Mamba exports and common Mamba LMs need are among them.
#[test]
fn supported_ops_cover_the_fixtures_and_vision_ops() {
    let listed = s6_onnx::interp::ops::supported_ops();
    let mut missing = Vec::new();
    for e in std::fs::read_dir(fixtures()).unwrap() {
        let p = e.unwrap().path().join("model.onnx");
        let Ok(m) = model::load(&p) else { continue };
        for n in &m.graph.as_ref().unwrap().node {
            if !listed.contains(&n.op_type) {
                missing.push(n.op_type.clone());
            }
        }
    }
    for op in [
        "LayerNormalization",
        "GroupNormalization",
        "RMSNormalization",
        "InstanceNormalization",
        "Conv",
        "Gelu",
        "Erf",
        "HardSwish",
        "HardSigmoid",
        "Resize",
        "Einsum",
        "Trilu",
        "CumSum",
    ] {
        if !listed.iter().any(|o| o == op) {
            missing.push(op.to_string());
        }
    }
    assert!(missing.is_empty(), "not in supported_ops(): {missing:?}");
}

/// A one-node model built in Rust.
fn one_node(
    op: &str,
    domain: &str,
    inputs: &[(&str, &[i64])],
    outputs: &[&str],
) -> s6_onnx::proto::ModelProto {
    use s6_onnx::proto::*;
    let mut g = GraphProto::new();
    let mut n = NodeProto::new();
    n.name = "the_node".into();
    n.op_type = op.into();
    n.domain = domain.into();
    for (name, shape) in inputs {
        n.input.push(name.to_string());
        let mut vi = ValueInfoProto::new();
        vi.name = name.to_string();
        let mut tt = type_proto::Tensor::new();
        tt.elem_type = 1;
        let mut sh = TensorShapeProto::new();
        for &d in *shape {
            let mut dim = tensor_shape_proto::Dimension::new();
            dim.value = Some(tensor_shape_proto::dimension::Value::DimValue(d));
            sh.dim.push(dim);
        }
        tt.shape = protobuf::MessageField::some(sh);
        let mut tp = TypeProto::new();
        tp.value = Some(type_proto::Value::TensorType(tt));
        vi.type_ = protobuf::MessageField::some(tp);
        g.input.push(vi);
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
    let mut os = OperatorSetIdProto::new();
    os.version = 17;
    m.opset_import.push(os);
    m.graph = protobuf::MessageField::some(g);
    m
}

#[test]
fn unsupported_op_names_op_and_node() {
    let m = one_node("FancyOp", "", &[("x", &[2])], &["y"]);
    let Err(e) = Session::new(&m, Path::new(".")) else {
        panic!("FancyOp accepted")
    };
    assert!(matches!(e, InterpError::UnsupportedOp { .. }));
    let msg = e.to_string();
    assert!(msg.contains("FancyOp") && msg.contains("the_node"), "{msg}");
}

#[test]
fn runtime_errors_name_the_node() {
    // Gather index out of range.
    let mut m = one_node("Gather", "", &[("x", &[3]), ("i", &[1])], &["y"]);
    m.graph.as_mut().unwrap().input[1]
        .type_
        .as_mut()
        .unwrap()
        .value = {
        let mut tt = s6_onnx::proto::type_proto::Tensor::new();
        tt.elem_type = 7;
        Some(s6_onnx::proto::type_proto::Value::TensorType(tt))
    };
    let s = Session::new(&m, Path::new(".")).unwrap();
    let mut inputs = HashMap::new();
    inputs.insert(
        "x".to_string(),
        Tensor::from_f32(vec![3], vec![1.0, 2.0, 3.0]).unwrap(),
    );
    inputs.insert(
        "i".to_string(),
        Tensor::from_i64(vec![1], vec![-4]).unwrap(),
    );
    let msg = s.run(&inputs).unwrap_err().to_string();
    assert!(
        msg.contains("the_node") && msg.contains("Gather") && msg.contains("-4"),
        "{msg}"
    );
    // And a wrong input shape is refused before anything runs.
    inputs.insert(
        "x".to_string(),
        Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap(),
    );
    let msg = s.run(&inputs).unwrap_err().to_string();
    assert!(
        msg.contains("input 'x'") && msg.contains("axis 0 must be 3"),
        "{msg}"
    );
    // A missing input is named.
    inputs.remove("x");
    let msg = s.run(&inputs).unwrap_err().to_string();
    assert!(
        msg.contains("input 'x'") && msg.contains("not supplied"),
        "{msg}"
    );
}

#[test]
fn s6scan_node_runs_the_reference() {
    // u, delta (1, 2, 3); A (2, 1); B, C (1, 1, 3): hand-computed recurrence.
    let mut m = one_node(
        "S6Scan",
        "s6plugin",
        &[
            ("u", &[1, 2, 3]),
            ("delta", &[1, 2, 3]),
            ("A", &[2, 1]),
            ("B", &[1, 1, 3]),
            ("C", &[1, 1, 3]),
        ],
        &["y"],
    );
    // The contract requires all eight flags, zeros included.
    for name in s6_contract::contract::S6Attrs::FIELD_NAMES {
        let mut a = s6_onnx::proto::AttributeProto::new();
        a.name = name.into();
        a.type_ = s6_onnx::proto::attribute_proto::AttributeType::INT.into();
        m.graph.as_mut().unwrap().node[0].attribute.push(a);
    }
    let mut os = s6_onnx::proto::OperatorSetIdProto::new();
    os.domain = "s6plugin".into();
    os.version = 1;
    m.opset_import.push(os);
    let s = Session::new(&m, Path::new(".")).unwrap();
    let u = vec![1.0f32, 2.0, 3.0, -1.0, 0.5, 0.0];
    let dt = vec![0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6];
    let a = vec![-1.0f32, -2.0];
    let b = vec![1.0f32, 0.5, 2.0];
    let c = vec![0.5f32, 1.0, -1.0];
    let mut inputs = HashMap::new();
    inputs.insert(
        "u".into(),
        Tensor::from_f32(vec![1, 2, 3], u.clone()).unwrap(),
    );
    inputs.insert(
        "delta".into(),
        Tensor::from_f32(vec![1, 2, 3], dt.clone()).unwrap(),
    );
    inputs.insert("A".into(), Tensor::from_f32(vec![2, 1], a.clone()).unwrap());
    inputs.insert(
        "B".into(),
        Tensor::from_f32(vec![1, 1, 3], b.clone()).unwrap(),
    );
    inputs.insert(
        "C".into(),
        Tensor::from_f32(vec![1, 1, 3], c.clone()).unwrap(),
    );
    let y = s.run(&inputs).unwrap().remove(0).1;
    // h_t = exp(dt·A) h_{t-1} + dt·B_t·u_t ; y_t = C_t h_t (N = 1).
    let mut want = vec![0.0f64; 6];
    for (d, &ad) in a.iter().enumerate() {
        let mut h = 0.0f64;
        for t in 0..3 {
            let i = d * 3 + t;
            h = (dt[i] as f64 * ad as f64).exp() * h + dt[i] as f64 * b[t] as f64 * u[i] as f64;
            want[i] = c[t] as f64 * h;
        }
    }
    assert_eq!(y.shape, [1, 2, 3]);
    assert_eq!(y.len(), want.len());
    for (g, w) in y.to_f64_vec().iter().zip(&want) {
        assert!((g - w).abs() < 1e-6, "{g} vs {w}");
    }
}

/// Outputs large enough for the parallel elementwise path (≥ 65536 elements) equal a plain
/// loop: same-shape, scalar and general broadcasting, and a unary op.
#[test]
fn large_elementwise_ops_match_plain_loops() {
    let (r, c) = (300usize, 1000usize);
    let a: Vec<f32> = (0..r * c)
        .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0)
        .collect();
    let row: Vec<f32> = (0..c).map(|j| (j as f32).sin()).collect();
    let col: Vec<f32> = (0..r).map(|i| (i as f32) * 0.01).collect();
    let run = |op: &str, shapes: &[(&str, &[i64])], feeds: Vec<(&str, Tensor)>| -> Vec<f32> {
        let m = one_node(op, "", shapes, &["y"]);
        let s = Session::new(&m, Path::new(".")).unwrap();
        let inputs: HashMap<String, Tensor> =
            feeds.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let v = s.run(&inputs).unwrap().remove(0).1.to_f32_vec();
        // `.all()` below is only a check when every element is there.
        assert_eq!(v.len(), r * c, "{op}: output length");
        v
    };
    let t = |shape: Vec<usize>, v: &Vec<f32>| Tensor::from_f32(shape, v.clone()).unwrap();
    let (ri, ci) = (r as i64, c as i64);
    // (r, c) * (c): row broadcast.
    let got = run(
        "Mul",
        &[("a", &[ri, ci]), ("b", &[ci])],
        vec![("a", t(vec![r, c], &a)), ("b", t(vec![c], &row))],
    );
    assert!(got.iter().enumerate().all(|(k, &g)| g == a[k] * row[k % c]));
    // (r, c) - (r, 1): column broadcast.
    let got = run(
        "Sub",
        &[("a", &[ri, ci]), ("b", &[ri, 1])],
        vec![("a", t(vec![r, c], &a)), ("b", t(vec![r, 1], &col))],
    );
    assert!(got.iter().enumerate().all(|(k, &g)| g == a[k] - col[k / c]));
    // Same shape, and a scalar.
    let got = run(
        "Add",
        &[("a", &[ri, ci]), ("b", &[ri, ci])],
        vec![("a", t(vec![r, c], &a)), ("b", t(vec![r, c], &a))],
    );
    assert!(got.iter().enumerate().all(|(k, &g)| g == a[k] + a[k]));
    let got = run(
        "Div",
        &[("a", &[ri, ci]), ("b", &[])],
        vec![("a", t(vec![r, c], &a)), ("b", t(vec![], &vec![4.0]))],
    );
    assert!(got.iter().enumerate().all(|(k, &g)| g == a[k] / 4.0));
    let got = run("Exp", &[("a", &[ri, ci])], vec![("a", t(vec![r, c], &a))]);
    assert!(got.iter().enumerate().all(|(k, &g)| g == a[k].exp()));
}

/// Bad inputs to the normalisation, activation, Resize and OneHot ops are errors naming the
/// node, never panics or huge allocations.
#[test]
fn vision_ops_refuse_bad_inputs() {
    use s6_onnx::proto::attribute_proto::AttributeType;
    use s6_onnx::proto::AttributeProto;
    let attr = |name: &str, t: AttributeType, i: i64, s: &str| {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.type_ = t.into();
        a.i = i;
        a.s = s.as_bytes().to_vec();
        a
    };
    let f = |shape: Vec<usize>| {
        let n = shape.iter().product();
        Tensor::from_f32(shape, (0..n).map(|i| i as f32 * 0.25).collect()).unwrap()
    };
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, Vec<usize>)>,
        Vec<AttributeProto>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "LayerNormalization",
            vec![("x", vec![2, 3]), ("s", vec![4])],
            vec![],
            "does not broadcast",
        ),
        (
            "GroupNormalization",
            vec![("x", vec![1, 4, 2]), ("s", vec![4]), ("b", vec![4])],
            vec![],
            "num_groups",
        ),
        (
            "GroupNormalization",
            vec![("x", vec![1, 4, 2]), ("s", vec![4]), ("b", vec![4])],
            vec![attr("num_groups", AttributeType::INT, 3, "")],
            "does not divide",
        ),
        (
            "Gelu",
            vec![("x", vec![3])],
            vec![attr("approximate", AttributeType::STRING, 0, "erf")],
            "approximate",
        ),
        (
            "Resize",
            vec![("x", vec![1, 1, 2, 2]), ("roi", vec![0]), ("sc", vec![4])],
            vec![attr("mode", AttributeType::STRING, 0, "cubic")],
            "cubic",
        ),
        (
            "Resize",
            vec![("x", vec![1, 1, 2, 2]), ("roi", vec![0])],
            vec![],
            "neither scales nor sizes",
        ),
    ];
    for (op, ins, attrs, want) in cases {
        let shapes: Vec<(&str, Vec<i64>)> = ins
            .iter()
            .map(|(n, s)| (*n, s.iter().map(|&d| d as i64).collect()))
            .collect();
        let refs: Vec<(&str, &[i64])> = shapes.iter().map(|(n, s)| (*n, s.as_slice())).collect();
        let mut m = one_node(op, "", &refs, &["y"]);
        m.graph.as_mut().unwrap().node[0].attribute = attrs;
        m.opset_import[0].version = 21;
        let s = Session::new(&m, Path::new(".")).unwrap();
        let mut feeds: HashMap<String, Tensor> = ins
            .iter()
            .map(|(n, sh)| (n.to_string(), f(sh.clone())))
            .collect();
        if let Some(sc) = feeds.get_mut("sc") {
            *sc = Tensor::from_f32(vec![4], vec![1.0; 4]).unwrap();
        }
        let msg = s.run(&feeds).unwrap_err().to_string();
        assert!(
            msg.contains("the_node") && msg.contains(want),
            "{op}: {msg}"
        );
    }
    // A corrupt Resize scale: refused before allocating the output.
    let mut m = one_node(
        "Resize",
        "",
        &[("x", &[1, 1, 2, 2]), ("roi", &[0]), ("sc", &[4])],
        &["y"],
    );
    m.opset_import[0].version = 19;
    let s = Session::new(&m, Path::new(".")).unwrap();
    let feeds = HashMap::from([
        ("x".to_string(), f(vec![1, 1, 2, 2])),
        ("roi".to_string(), f(vec![0])),
        (
            "sc".to_string(),
            Tensor::from_f32(vec![4], vec![1.0, 1.0, 1e6, 1e6]).unwrap(),
        ),
    ]);
    let msg = s.run(&feeds).unwrap_err().to_string();
    assert!(msg.contains("too large"), "{msg}");
}
