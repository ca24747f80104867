//! The `s6-run` command line: a bundled export end to end, --compare passing and failing,
//! output names that would escape the folder, and clear refusals.

use s6_onnx::interp::Tensor;
use s6_onnx::{model, npy, proto};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn s6_run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_s6-run"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("s6-run runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fresh empty folder under the target dir's temp area.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("s6-run-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn case_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models/hf_ts_L12")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn runs_bundled_export_and_matches_onnxruntime() {
    let case = case_dir();
    let out = scratch("e2e");
    let input = format!("input_ids={}", s(&case.join("inputs/input_ids.npy")));
    let o = s6_run(&[
        s(&case.join("model.onnx")),
        "--input",
        &input,
        "--out-dir",
        s(&out),
        "--compare",
        s(&case.join("expected")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("logits"), "{}", text(&o));
    // The written file holds onnxruntime's values.
    let got = npy::read(&out.join("logits.npy")).unwrap();
    let want = npy::read(&case.join("expected/logits.npy")).unwrap();
    assert_eq!(got.shape, want.shape);
    let max = got
        .to_f64_vec()
        .iter()
        .zip(want.to_f64_vec())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(max < 1e-4, "max abs error {max}");
}

#[test]
fn compare_fails_above_tolerance() {
    let case = case_dir();
    let reference = scratch("perturbed");
    let mut t = npy::read(&case.join("expected/logits.npy")).unwrap();
    let mut v = t.to_f32_vec();
    v[5] += 0.01;
    t = Tensor::from_f32(t.shape.clone(), v).unwrap();
    npy::write(&reference.join("logits.npy"), &t).unwrap();
    let (model, inputs) = (case.join("model.onnx"), case.join("inputs"));
    let args = [
        s(&model),
        "--inputs-dir",
        s(&inputs),
        "--compare",
        s(&reference),
    ];
    let o = s6_run(&args);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("FAIL"), "{}", text(&o));
    assert!(
        text(&o).contains("1.000e-2") || text(&o).contains("9.99"),
        "{}",
        text(&o)
    );
    // A tolerance above the perturbation passes.
    let mut loose = args.to_vec();
    loose.extend(["--atol", "0.02"]);
    let o = s6_run(&loose);
    assert!(o.status.success(), "{}", text(&o));
    // A reference of another shape fails too.
    npy::write(
        &reference.join("logits.npy"),
        &Tensor::from_f32(vec![2], vec![0.0, 0.0]).unwrap(),
    )
    .unwrap();
    let o = s6_run(&args);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("shape differs"), "{}", text(&o));
}

/// A model whose output name is a path: Identity(x) -> "../escape/y:0".
fn identity_model(dir: &Path, out_name: &str) -> PathBuf {
    let mut g = proto::GraphProto::new();
    let mut n = proto::NodeProto::new();
    n.op_type = "Identity".into();
    n.input.push("x".into());
    n.output.push(out_name.into());
    g.node.push(n);
    let mut vi = proto::ValueInfoProto::new();
    vi.name = "x".into();
    g.input.push(vi);
    let mut vo = proto::ValueInfoProto::new();
    vo.name = out_name.into();
    g.output.push(vo);
    let mut m = proto::ModelProto::new();
    m.ir_version = 8;
    let mut os = proto::OperatorSetIdProto::new();
    os.version = 17;
    m.opset_import.push(os);
    m.graph = Some(g).into();
    let p = dir.join("id.onnx");
    model::save(&m, &p).unwrap();
    p
}

#[test]
fn output_names_never_escape_out_dir() {
    let root = scratch("escape");
    let out = root.join("out");
    let m = identity_model(&root, "../escape/y:0");
    let x = root.join("x.npy");
    npy::write(&x, &Tensor::from_f32(vec![3], vec![1.0, 2.0, 3.0]).unwrap()).unwrap();
    let o = s6_run(&[s(&m), "-i", s(&x), "-o", s(&out)]);
    assert!(o.status.success(), "{}", text(&o));
    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec!["_._escape_y_0.npy".to_string()]);
    assert!(!root.join("escape").exists());
    let t = npy::read(&out.join(&files[0])).unwrap();
    assert_eq!(t.to_f32_vec(), vec![1.0, 2.0, 3.0]);
}

#[test]
fn refuses_bad_invocations_clearly() {
    let case = case_dir();
    let model = case.join("model.onnx");
    // Unknown input name: lists the real ones.
    let o = s6_run(&[s(&model), "-i", "nope=x.npy", "-o", "/tmp"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no input 'nope'") && text(&o).contains("input_ids"));
    // Missing input data.
    let o = s6_run(&[s(&model), "-o", "/tmp"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("no data for input(s) input_ids"),
        "{}",
        text(&o)
    );
    // Nothing to do.
    let o = s6_run(&[s(&model), "--inputs-dir", s(&case.join("inputs"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("nothing to do"), "{}", text(&o));
    // Not an ONNX file.
    let o = s6_run(&[s(&case.join("inputs/input_ids.npy")), "--info"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("not an ONNX model"), "{}", text(&o));
    // Wrong dtype for the input.
    let root = scratch("dtype");
    let f = root.join("ids.npy");
    npy::write(&f, &Tensor::from_f32(vec![1, 12], vec![0.0; 12]).unwrap()).unwrap();
    let o = s6_run(&[s(&model), "-i", s(&f), "-o", s(&root)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("model wants int64, got float32"),
        "{}",
        text(&o)
    );
}

#[test]
fn help_teaches_with_examples() {
    let o = s6_run(&["--help"]);
    assert!(o.status.success());
    let t = text(&o);
    for needle in [
        "Examples:",
        "--compare",
        "--backend",
        "NAME=FILE.npy",
        "allclose",
    ] {
        assert!(t.contains(needle), "--help lacks {needle}");
    }
    let o = s6_run(&["--list-ops"]);
    assert!(o.status.success());
    for op in [
        "Einsum",
        "Conv",
        "MatMul",
        "s6plugin::S6Scan",
        "s6plugin::S6ScanHeads",
        "Softplus",
        "Slice",
        "LayerNormalization",
        "GroupNormalization",
        "RMSNormalization",
        "Gelu",
        "HardSwish",
        "Resize",
        "Trilu",
        "CumSum",
        "Erf",
    ] {
        assert!(text(&o).lines().any(|l| l == op), "--list-ops lacks {op}");
    }
    let o = s6_run(&[s(&case_dir().join("model.onnx")), "--info"]);
    assert!(o.status.success());
    assert!(
        text(&o).contains("input  input_ids: int64 [1, 12]"),
        "{}",
        text(&o)
    );
}

/// --backend gpu agrees with the CPU; skipped where no GPU adapter (nor lavapipe) exists.
#[test]
fn gpu_backend_matches_cpu_or_skips() {
    let case = case_dir();
    let out = scratch("gpu");
    let o = s6_run(&[
        s(&case.join("model.onnx")),
        "--inputs-dir",
        s(&case.join("inputs")),
        "--backend",
        "gpu",
        "-o",
        s(&out),
        "--compare",
        s(&case.join("expected")),
    ]);
    let t = text(&o);
    if gpu_skipped("gpu_backend_matches_cpu_or_skips", &t) {
        return;
    }
    assert!(o.status.success(), "{t}");
    assert!(t.contains("gpu backend"), "{t}");
    // The unpatched export's MatMuls ran on the GPU, everything else on the CPU.
    let on_gpu = placement(&t, "wgpu").unwrap_or_else(|| panic!("no wgpu placement: {t}"));
    assert!(on_gpu.contains("MatMul"), "{t}");
    assert!(
        placement(&t, "cpu").is_some_and(|c| !c.contains("MatMul")),
        "{t}"
    );
}

/// True (after saying so on stderr) when s6-run found no GPU backend; with `S6_WGPU_REQUIRE=1`
/// (CI, which installs lavapipe) that is a failure instead.
fn gpu_skipped(test: &str, t: &str) -> bool {
    if !(t.contains("no usable GPU adapter") || t.contains("built without the `gpu` feature")) {
        return false;
    }
    if std::env::var("S6_WGPU_REQUIRE").is_ok_and(|v| v == "1") {
        panic!("{test}: S6_WGPU_REQUIRE=1 but s6-run has no GPU backend: {t}");
    }
    // Straight to stderr: libtest swallows eprintln! of a passing test.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP {test} (gpu part): {}", t.trim());
    true
}

/// The "ops (counts)" part of s6-run's placement line for `backend`.
fn placement(t: &str, backend: &str) -> Option<String> {
    let line = t.lines().find(|l| l.starts_with("s6-run: ran on "))?;
    let part = line
        .trim_start_matches("s6-run: ran on ")
        .split("; on ")
        .find(|p| p.starts_with(&format!("{backend}: ")))?;
    Some(part.to_string())
}

/// The node count of the "s6-run: N nodes in …" line.
fn node_count(t: &str) -> usize {
    let line = t.lines().find(|l| l.contains(" nodes in ")).unwrap();
    line.trim_start_matches("s6-run: ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The patched export (S6Scan nodes, symbolic length) run by s6-run at the export's length
/// and at another one equals onnxruntime on the original, on the CPU and — where a GPU
/// adapter exists — with the wgpu backend.
#[test]
fn patched_export_matches_original_on_cpu_and_gpu() {
    let case = case_dir();
    let root = scratch("patched");
    let mut m = model::load(&case.join("model.onnx")).unwrap();
    let report = s6_onnx::patch::patch_model(&mut m, &case).unwrap();
    assert_eq!(report.layers_patched, 2);
    let patched = root.join("patched.onnx");
    model::save(&m, &patched).unwrap();
    for (inputs, expected) in [
        (case.join("inputs"), case.join("expected")),
        (case.join("expected_L7/inputs"), case.join("expected_L7")),
    ] {
        for backend in ["cpu", "gpu"] {
            let o = s6_run(&[
                s(&patched),
                "--inputs-dir",
                s(&inputs),
                "--backend",
                backend,
                "--compare",
                s(&expected),
            ]);
            let t = text(&o);
            if backend == "gpu" && gpu_skipped("patched_export_matches_original_on_cpu_and_gpu", &t)
            {
                continue;
            }
            assert!(o.status.success(), "{backend} {}: {t}", expected.display());
            // Where each node ran: both S6Scan nodes on the GPU when asked, all on the CPU else.
            if backend == "gpu" {
                let g = placement(&t, "wgpu").unwrap_or_else(|| panic!("{t}"));
                assert!(g.contains("S6Scan 2"), "{t}");
                assert!(!placement(&t, "cpu").unwrap().contains("S6Scan"), "{t}");
            } else {
                let c = placement(&t, "cpu").unwrap_or_else(|| panic!("{t}"));
                assert!(
                    c.starts_with(&format!("cpu: {} nodes", node_count(&t))),
                    "{t}"
                );
                assert!(c.contains("S6Scan 2"), "{t}");
            }
        }
    }
}

/// Standard base64 with padding (for writing polygraphy-style JSON in tests).
fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn compare_reads_polygraphy_run_results() {
    let case = case_dir();
    let (model, inputs) = (case.join("model.onnx"), case.join("inputs"));
    // polygraphy 0.53's own file (LazyArray-wrapped), from scripts/make_polygraphy_fixture.sh.
    let saved =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/polygraphy/hf_ts_L12_onnxrt.json");
    let o = s6_run(&[
        s(&model),
        "--inputs-dir",
        s(&inputs),
        "--compare",
        s(&saved),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("reference: onnxrt-runner"),
        "{}",
        text(&o)
    );
    // Older layout ({"array": ...} directly), two runners, the second one off by 0.01.
    let want = npy::read(&case.join("expected/logits.npy")).unwrap();
    let mut v = want.to_f32_vec();
    v[3] -= 0.01;
    let bad = Tensor::from_f32(want.shape.clone(), v).unwrap();
    let entry = |runner: &str, t: &Tensor| {
        format!(
            r#"["{runner}", [{{"outputs": {{"logits": {{"array": "{}", "polygraphy_class": "ndarray"}}}}, "runner_name": "{runner}", "polygraphy_class": "IterationResult"}}]]"#,
            base64(&npy::to_bytes(t))
        )
    };
    let json = format!(
        r#"{{"lst": [{}, {}], "polygraphy_class": "RunResults"}}"#,
        entry("trt-good", &want),
        entry("trt-bad", &bad)
    );
    let root = scratch("polygraphy");
    let f = root.join("trt.json");
    std::fs::write(&f, json).unwrap();
    let o = s6_run(&[s(&model), "--inputs-dir", s(&inputs), "--compare", s(&f)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    let good = t.find("reference: trt-good").expect("first runner listed");
    let bad_at = t.find("reference: trt-bad").expect("second runner listed");
    assert!(
        !t[good..bad_at].contains("FAIL") && t[bad_at..].contains("FAIL"),
        "{t}"
    );
    // Not RunResults: a clear refusal.
    std::fs::write(&f, "{\"x\": 1}").unwrap();
    let o = s6_run(&[s(&model), "--inputs-dir", s(&inputs), "--compare", s(&f)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("no polygraphy RunResults"),
        "{}",
        text(&o)
    );
}
