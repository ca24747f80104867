//! `WgpuBackend` inside the interpreter's `Session`: a one-node S6Scan graph, and the bundled
//! Mamba exports (fixtures/models/) run with the GPU backend against the CPU. Skips (prints
//! SKIP) without a GPU adapter.

mod common;

use common::nodes::{all_on, backend, scan_node, scan_reference, scan_tensors};
use common::{assert_close, ctx, repo_root};
use s6_contract::contract::{S6Attrs, ScanDims};
use s6_onnx::interp::{Backend, ConstKey, Session, Tensor};
use s6_onnx::proto::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto, ValueInfoProto};
use s6_wgpu::{BackendStats, WgpuBackend, WgpuContext};
use std::collections::HashMap;
use std::sync::Arc;

/// A model with one S6Scan node whose inputs are graph inputs.
fn one_scan_model(attrs: &S6Attrs) -> ModelProto {
    let vi = |name: &str| ValueInfoProto {
        name: name.into(),
        ..Default::default()
    };
    let node = scan_node(attrs);
    let graph = GraphProto {
        name: "one_s6scan".into(),
        input: node.input.iter().map(|n| vi(n)).collect(),
        output: node.output.iter().map(|n| vi(n)).collect(),
        node: vec![node],
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 17,
                ..Default::default()
            },
            OperatorSetIdProto {
                domain: "s6plugin".into(),
                version: 1,
                ..Default::default()
            },
        ],
        graph: Some(graph).into(),
        ..Default::default()
    }
}

#[test]
fn one_scan_graph_gpu_equals_cpu_and_reference() {
    let Some(be) = backend("one_scan_graph_gpu_equals_cpu_and_reference") else {
        return;
    };
    let attrs = S6Attrs {
        channels_last: false,
        bc_channels_last: false,
        ..all_on()
    };
    let d = ScanDims {
        batch: 1,
        dim: 16,
        seqlen: 21,
        dstate: 16,
        groups: 1,
    };
    let tensors = scan_tensors(&attrs, &d, false, 6);
    let (_, want) = scan_reference(&attrs, &tensors);
    let feeds: HashMap<String, Tensor> = attrs
        .inputs()
        .iter()
        .zip(&tensors)
        .map(|(r, t)| (r.name().to_string(), t.clone()))
        .collect();
    let model = one_scan_model(&attrs);
    let dir = repo_root();
    let gpu = Session::new(&model, &dir)
        .expect("parse")
        .with_backend(Box::new(be));
    let got = gpu.run(&feeds).expect("gpu run");
    let cpu = Session::new(&model, &dir)
        .expect("parse")
        .run(&feeds)
        .expect("cpu run");
    for ((name, g), (_, c)) in got.iter().zip(&cpu) {
        let c64: Vec<f64> = c.data.to_f64_vec();
        assert_close(
            &format!("graph {name} vs cpu"),
            &g.data.to_f32_vec(),
            &c64,
            1e-4,
            1e-4,
        );
    }
    assert_close(
        "graph y vs fp64",
        &got[0].1.data.to_f32_vec(),
        &want.y,
        1e-4,
        1e-4,
    );
    assert_close(
        "graph last_state vs fp64",
        &got[1].1.data.to_f32_vec(),
        &want.last_state,
        1e-4,
        1e-4,
    );
}

/// Runs `model` with a fresh GPU backend; returns the outputs and what ran on the GPU.
fn run_gpu(
    model: &ModelProto,
    dir: &std::path::Path,
    feeds: &HashMap<String, Tensor>,
    what: &str,
) -> (Vec<(String, Tensor)>, BackendStats) {
    let be = Arc::new(WgpuBackend::from_context(
        WgpuContext::new().expect("adapter"),
    ));
    let out = Session::new(model, dir)
        .unwrap_or_else(|e| panic!("{what}: parse: {e}"))
        .with_backend(Box::new(Shared(be.clone())))
        .run(feeds)
        .unwrap_or_else(|e| panic!("{what}: gpu run: {e}"));
    (out, be.stats())
}

fn assert_outputs_close(what: &str, got: &[(String, Tensor)], want: &[(String, Tensor)]) {
    assert_eq!(got.len(), want.len(), "{what}: outputs");
    for ((name, g), (_, w)) in got.iter().zip(want) {
        assert_eq!(g.shape, w.shape, "{what} {name}");
        assert_close(
            &format!("{what} {name}"),
            &g.data.to_f32_vec(),
            &w.data.to_f64_vec(),
            1e-4,
            1e-4,
        );
    }
}

/// Every bundled export with inputs: with the GPU backend (MatMul on the device) the outputs
/// equal the CPU's within 1e-4; and patched by onnx-patch (one S6Scan per layer, on the
/// device) they still equal the CPU run of the original.
#[test]
fn bundled_exports_gpu_equals_cpu() {
    let Some(_) = ctx("bundled_exports_gpu_equals_cpu") else {
        return;
    };
    let root = repo_root().join("fixtures/models");
    let mut models: Vec<_> = std::fs::read_dir(&root)
        .expect("fixtures/models")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model.onnx").exists() && p.join("inputs").is_dir())
        .collect();
    models.sort();
    assert!(models.len() >= 2, "no exports under {}", root.display());
    for dir in &models {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let model = s6_onnx::model::load(&dir.join("model.onnx")).expect("load");
        let mut feeds = HashMap::new();
        for e in std::fs::read_dir(dir.join("inputs")).expect("inputs/") {
            let p = e.unwrap().path();
            let input = p.file_stem().unwrap().to_string_lossy().into_owned();
            feeds.insert(input, s6_onnx::npy::read(&p).expect("npy"));
        }
        let cpu = Session::new(&model, dir)
            .expect("parse")
            .run(&feeds)
            .unwrap_or_else(|e| panic!("{name}: cpu run: {e}"));

        let (gpu, stats) = run_gpu(&model, dir, &feeds, &name);
        assert_outputs_close(&name, &gpu, &cpu);
        eprintln!("{name}: GPU ran {stats:?}");
        assert!(stats.matmul > 0, "{name}: no MatMul ran on the GPU");

        let mut patched = model.clone();
        let report = s6_onnx::patch::patch_model(&mut patched, dir)
            .unwrap_or_else(|e| panic!("{name}: onnx-patch: {e}"));
        let what = format!("{name} patched");
        let (gpu, stats) = run_gpu(&patched, dir, &feeds, &what);
        assert_outputs_close(&what, &gpu, &cpu);
        eprintln!("{what}: GPU ran {stats:?}");
        assert!(report.layers_patched > 0, "{what}: nothing patched");
        assert_eq!(
            stats.s6scan, report.layers_patched,
            "{what}: every S6Scan on the GPU"
        );

        // The patched graph at the export's other sequence length, against onnxruntime's
        // outputs for the original there.
        let other = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.is_dir()
                    && p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("expected_L")
            });
        if let Some(other) = other {
            let mut feeds = HashMap::new();
            for e in std::fs::read_dir(other.join("inputs")).expect("expected_L*/inputs") {
                let p = e.unwrap().path();
                let input = p.file_stem().unwrap().to_string_lossy().into_owned();
                feeds.insert(input, s6_onnx::npy::read(&p).expect("npy"));
            }
            let what = format!("{what} at {}", other.file_name().unwrap().to_string_lossy());
            let (gpu, _) = run_gpu(&patched, dir, &feeds, &what);
            let ort: Vec<(String, Tensor)> = gpu
                .iter()
                .map(|(n, _)| {
                    let t = s6_onnx::npy::read(&other.join(format!("{n}.npy"))).expect("expected");
                    (n.clone(), t)
                })
                .collect();
            assert_outputs_close(&what, &gpu, &ort);
        }
    }
}

/// transformers' Mamba2 (fixtures/mamba2, dynamic length) patched into S6ScanHeads nodes: both
/// run on the GPU, and the logits equal onnxruntime's at the export length and PyTorch's at
/// L = 1, 5, 19.
#[test]
fn patched_mamba2_on_the_gpu() {
    let Some(_) = ctx("patched_mamba2_on_the_gpu") else {
        return;
    };
    let dir = repo_root().join("fixtures/mamba2/hf2_dynamo_dynseq_L12");
    let mut model = s6_onnx::model::load(&dir.join("model.onnx")).expect("load");
    let report = s6_onnx::patch::patch_model(&mut model, &dir).expect("onnx-patch");
    assert_eq!(report.layers_patched, 2);
    let mut cases = vec![(dir.join("inputs"), dir.join("expected"))];
    for k in [1, 5, 19] {
        let d = dir.join(format!("expected_L{k}"));
        cases.push((d.join("inputs"), d));
    }
    for (inputs, expected) in cases {
        let mut feeds = HashMap::new();
        for e in std::fs::read_dir(&inputs).expect("inputs/") {
            let p = e.unwrap().path();
            let input = p.file_stem().unwrap().to_string_lossy().into_owned();
            feeds.insert(input, s6_onnx::npy::read(&p).expect("npy"));
        }
        let what = format!("patched mamba2 {}", expected.display());
        let (gpu, stats) = run_gpu(&model, &dir, &feeds, &what);
        assert_eq!(stats.s6scan, 2, "{what}: both S6ScanHeads on the GPU");
        let want: Vec<(String, Tensor)> = gpu
            .iter()
            .map(|(n, _)| {
                let t = s6_onnx::npy::read(&expected.join(format!("{n}.npy"))).expect("expected");
                (n.clone(), t)
            })
            .collect();
        assert_outputs_close(&what, &gpu, &want);
    }
}

/// Lets a test keep a handle on the backend it gives away.
struct Shared(Arc<WgpuBackend>);

impl Backend for Shared {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn try_run(
        &self,
        node: &NodeProto,
        inputs: &[Option<&Tensor>],
    ) -> Result<Option<Vec<Tensor>>, s6_onnx::interp::InterpError> {
        self.0.try_run(node, inputs)
    }
    fn try_run_consts(
        &self,
        node: &NodeProto,
        inputs: &[Option<&Tensor>],
        consts: &[Option<ConstKey<'_>>],
    ) -> Result<Option<Vec<Tensor>>, s6_onnx::interp::InterpError> {
        self.0.try_run_consts(node, inputs, consts)
    }
    fn end_session(&self, session: u64) {
        self.0.end_session(session)
    }
}

/// An export patched and converted to fp16 (S6Scan's A, D, delta_bias and states stay fp32 by
/// the contract): f16 MatMul and S6Scan nodes on the GPU against the CPU's fp16 run. Both compute
/// in f32 and round each node's result to f16, so they differ by f16 roundings only.
#[test]
fn fp16_patched_export_gpu_equals_cpu() {
    let Some(_) = ctx("fp16_patched_export_gpu_equals_cpu") else {
        return;
    };
    let dir = repo_root().join("fixtures/models/hf_ts_L7");
    let mut model = s6_onnx::model::load(&dir.join("model.onnx")).expect("load");
    s6_onnx::patch::patch_model(&mut model, &dir).expect("patch");
    s6_onnx::fp16::convert(&mut model).expect("fp16");
    let feeds: HashMap<String, Tensor> = [(
        "input_ids".to_string(),
        s6_onnx::npy::read(&dir.join("inputs/input_ids.npy")).expect("npy"),
    )]
    .into();
    let cpu = Session::new(&model, &dir)
        .expect("parse")
        .run(&feeds)
        .expect("cpu run");
    let (gpu, stats) = run_gpu(&model, &dir, &feeds, "hf_ts_L7 fp16");
    eprintln!("hf_ts_L7 fp16: GPU ran {stats:?}");
    assert_eq!(stats.s6scan, 2);
    assert!(stats.matmul > 0);
    // Both also stay near onnxruntime's fp32 outputs of the original export.
    let ort = s6_onnx::npy::read(&dir.join("expected/logits.npy")).expect("expected");
    assert_close(
        "fp16 gpu logits vs fp32 onnxruntime",
        &gpu[0].1.data.to_f32_vec(),
        &ort.data.to_f64_vec(),
        2e-2,
        2e-2,
    );
    for ((name, g), (_, c)) in gpu.iter().zip(&cpu) {
        assert_eq!(g.data.dtype(), s6_onnx::interp::DataType::F16, "{name}");
        assert_close(
            &format!("fp16 {name}"),
            &g.data.to_f32_vec(),
            &c.data.to_f64_vec(),
            1e-2,
            1e-2,
        );
    }
}

/// Y = (X @ W) @ V with W and V initializers of `scale`-dependent values.
fn matmul_chain_model(scale: f32) -> ModelProto {
    let vi = |name: &str| ValueInfoProto {
        name: name.into(),
        ..Default::default()
    };
    let mm = |a: &str, b: &str, y: &str| NodeProto {
        name: format!("mm_{y}"),
        op_type: "MatMul".into(),
        input: vec![a.into(), b.into()],
        output: vec![y.into()],
        ..Default::default()
    };
    let init = |name: &str, shape: Vec<usize>, seed: f32| {
        let n: usize = shape.iter().product();
        let v = (0..n).map(|i| scale * (seed + i as f32).sin()).collect();
        Tensor::from_f32(shape, v).expect("tensor").to_proto(name)
    };
    let graph = GraphProto {
        name: "matmul_chain".into(),
        input: vec![vi("X")],
        output: vec![vi("Y")],
        initializer: vec![init("W", vec![24, 20], 0.5), init("V", vec![20, 3], 1.5)],
        node: vec![mm("X", "W", "H"), mm("H", "V", "Y")],
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
            ..Default::default()
        }],
        graph: Some(graph).into(),
        ..Default::default()
    }
}

/// Hands the backend no constant keys: every call uploads everything, as before the cache.
struct Uncached(Arc<WgpuBackend>);

impl Backend for Uncached {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn try_run(
        &self,
        node: &NodeProto,
        inputs: &[Option<&Tensor>],
    ) -> Result<Option<Vec<Tensor>>, s6_onnx::interp::InterpError> {
        self.0.try_run(node, inputs)
    }
}

/// Initializers stay on the device across the calls of a session: uploaded once, results
/// bit-identical to uploading every call and close to the CPU; a second session sharing the
/// backend with the same initializer names but other values is not served the first's copies.
#[test]
fn constants_upload_once_per_session_and_never_stale() {
    let Some(_) = ctx("constants_upload_once_per_session_and_never_stale") else {
        return;
    };
    let dir = std::env::temp_dir();
    let be = Arc::new(WgpuBackend::from_context(
        WgpuContext::new().expect("adapter"),
    ));
    let plain = Arc::new(WgpuBackend::from_context(
        WgpuContext::new().expect("adapter"),
    ));
    let feeds = |step: usize| -> HashMap<String, Tensor> {
        let v = (0..2 * 24).map(|i| ((i + 7 * step) as f32).cos()).collect();
        [("X".to_string(), Tensor::from_f32(vec![2, 24], v).unwrap())].into()
    };
    let open = |scale: f32, b: Box<dyn Backend>| {
        Session::new(&matmul_chain_model(scale), &dir)
            .expect("parse")
            .with_backend(b)
    };
    let first = open(1.0, Box::new(Shared(be.clone())));
    let uncached = open(1.0, Box::new(Uncached(plain.clone())));
    let cpu = Session::new(&matmul_chain_model(1.0), &dir).expect("parse");
    let weight_bytes = (24 * 20 + 20 * 3) * 4;
    for step in 0..3 {
        let got = first.run(&feeds(step)).expect("cached run");
        let want = uncached.run(&feeds(step)).expect("uncached run");
        assert_eq!(
            got[0].1.data.to_f32_vec(),
            want[0].1.data.to_f32_vec(),
            "step {step}: cached vs uncached"
        );
        let c = cpu.run(&feeds(step)).expect("cpu run");
        assert_close(
            &format!("step {step}: gpu vs cpu"),
            &got[0].1.data.to_f32_vec(),
            &c[0].1.data.to_f64_vec(),
            1e-5,
            1e-5,
        );
    }
    let s = be.context().const_stats();
    assert_eq!((s.uploads, s.hits), (2, 4), "W and V uploaded once: {s:?}");
    assert_eq!(s.kept_bytes, weight_bytes);
    assert_eq!(be.stats().matmul, 6);
    assert_eq!(plain.context().const_stats().uploads, 0);

    // Same names, other values, same backend.
    let second = open(-2.0, Box::new(Shared(be.clone())));
    let cpu2 = Session::new(&matmul_chain_model(-2.0), &dir).expect("parse");
    let got = second.run(&feeds(0)).expect("second session");
    let c = cpu2.run(&feeds(0)).expect("cpu run");
    assert_close(
        "second session vs its cpu",
        &got[0].1.data.to_f32_vec(),
        &c[0].1.data.to_f64_vec(),
        1e-5,
        1e-5,
    );
    assert_eq!(be.context().const_stats().uploads, 4);
    drop(first);
    assert_eq!(be.context().const_stats().kept_bytes, weight_bytes);
    drop(second);
    assert_eq!(be.context().const_stats().kept_bytes, 0);
}

/// A key whose tensor changed shape is uploaded afresh, not served the old copy.
#[test]
fn constant_of_another_shape_under_one_key_is_reuploaded() {
    let Some(_) = ctx("constant_of_another_shape_under_one_key_is_reuploaded") else {
        return;
    };
    let be = WgpuBackend::from_context(WgpuContext::new().expect("adapter"));
    let node = NodeProto {
        name: "mm".into(),
        op_type: "MatMul".into(),
        input: vec!["X".into(), "W".into()],
        output: vec!["Y".into()],
        ..Default::default()
    };
    let key = ConstKey {
        session: u64::MAX,
        name: "W",
    };
    let x = Tensor::from_f32(vec![1, 2], vec![1.0, 2.0]).unwrap();
    let w1 = Tensor::from_f32(vec![2, 1], vec![3.0, 4.0]).unwrap();
    let w2 = Tensor::from_f32(vec![2, 2], vec![1.0, 0.0, 0.0, -1.0]).unwrap();
    let run = |w: &Tensor| {
        be.try_run_consts(&node, &[Some(&x), Some(w)], &[None, Some(key)])
            .expect("run")
            .expect("on the gpu")[0]
            .data
            .to_f32_vec()
    };
    assert_eq!(run(&w1), vec![11.0]);
    assert_eq!(run(&w2), vec![1.0, -2.0]);
    assert_eq!(run(&w2), vec![1.0, -2.0]);
    let s = be.context().const_stats();
    assert_eq!((s.uploads, s.hits), (2, 1), "{s:?}");
    assert_eq!(s.kept_bytes, 16);
}
