//! `s6-run generate` end to end on the bundled exports against transformers'
//! `generate(do_sample=False, use_cache=True)` (`scripts/make_generate_fixtures.py`): greedy
//! tokens equal token for token (32 new tokens, batch 2), the logits they were picked from
//! equal transformers' and a full recompute at every step, the wgpu backend agrees with the
//! CPU, and `onnx-patch --stateful --report` names the states.

#[path = "../../tests/skip/mod.rs"]
mod skip;

use s6_onnx::interp::{Session, Tensor};
use s6_onnx::{model, npy, patch};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("s6-generate-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(bin: &str, args: &[&str], xdg: &Path) -> Output {
    Command::new(bin)
        .args(args)
        .env("RUST_LOG", "error")
        .env("XDG_RUNTIME_DIR", xdg)
        .output()
        .expect("binary runs")
}

fn s6_run(args: &[&str], xdg: &Path) -> Output {
    run(env!("CARGO_BIN_EXE_s6-run"), args, xdg)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Max |a - b| / max(1, |b|).
fn scaled_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape, b.shape);
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
        .fold(0.0, f64::max)
}

/// Generates with `s6-run generate` and returns (tokens, logits, stderr+stdout).
fn generate(model: &Path, case: &str, extra: &[&str], dir: &Path) -> (Tensor, Tensor, String) {
    let (tokens, logits) = (dir.join("tokens.npy"), dir.join("logits.npy"));
    let prompt = fixtures().join("generate").join(case).join("prompt.npy");
    let mut args = vec![
        "generate",
        s(model),
        "--prompt",
        s(&prompt),
        "--max-new-tokens",
        "32",
        "--out",
        s(&tokens),
        "--logits-out",
        s(&logits),
    ];
    args.extend_from_slice(extra);
    let o = s6_run(&args, dir);
    let t = text(&o);
    assert!(o.status.success(), "{}: {t}", model.display());
    (npy::read(&tokens).unwrap(), npy::read(&logits).unwrap(), t)
}

fn reference(case: &str) -> (Tensor, Tensor) {
    let g = fixtures().join("generate").join(case);
    (
        npy::read(&g.join("tokens.npy")).unwrap(),
        npy::read(&g.join("logits.npy")).unwrap(),
    )
}

#[test]
fn greedy_tokens_equal_transformers_generate_on_every_export() {
    let dir = scratch("greedy");
    for (export, case) in [
        ("hf_ts_L12", "hf"),
        ("hf_dynamo_L7", "hf"),
        ("hf_dynamo_L1", "hf"),
        ("minimal_ts_L12", "minimal"),
        ("minimal_dynamo_L12", "minimal"),
        ("hf_ts_3l_conv3_L8", "hf3c3"),
    ] {
        let model = fixtures().join("models").join(export).join("model.onnx");
        let (tokens, logits, t) = generate(&model, case, &[], &dir);
        let (want_tokens, want_logits) = reference(case);
        assert_eq!(tokens.dtype(), s6_onnx::interp::DataType::I64);
        assert_eq!(tokens.shape, [2, 32], "{export}");
        assert_eq!(
            tokens.to_i64_vec(),
            want_tokens.to_i64_vec(),
            "{export}: {t}"
        );
        let e = scaled_err(&logits, &want_logits);
        assert!(e <= 1e-4, "{export}: logits off by {e:e}");
        for want in ["prefill", "ms/token", "tokens/s", "generating [32/32]"] {
            assert!(t.contains(want), "{export}: no '{want}' in {t}");
        }
    }
}

/// A model saved by `onnx-patch --stateful` runs as given, and its report names the states.
#[test]
fn stateful_file_from_onnx_patch_generates_the_same() {
    let dir = scratch("stateful-file");
    let export = fixtures().join("models/hf_ts_3l_conv3_L8/model.onnx");
    let out = dir.join("model.st.onnx");
    let report = dir.join("report.json");
    let o = run(
        env!("CARGO_BIN_EXE_onnx-patch"),
        &[
            s(&export),
            "-o",
            s(&out),
            "--stateful",
            "--verify",
            "--report",
            s(&report),
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let layers = r["stateful"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    assert_eq!(layers[2]["conv_state"], "conv_state.2");
    assert_eq!(layers[2]["ssm_state_out"], "ssm_state_out.2");
    assert_eq!(
        layers[0]["conv_state_shape"],
        serde_json::json!(["batch", 64, 2])
    );
    assert_eq!(
        layers[0]["ssm_state_shape"],
        serde_json::json!(["batch", 64, 16])
    );
    let checks = r["verify"].as_array().unwrap();
    assert_eq!(checks.len(), 3);
    assert!(checks.iter().all(|c| c["ok"] == true), "{checks:?}");

    let (tokens, _, t) = generate(&out, "hf3c3", &[], &dir);
    assert!(!t.contains("in memory"), "{t}");
    assert_eq!(tokens.to_i64_vec(), reference("hf3c3").0.to_i64_vec());
}

/// The state-carrying logits equal recomputing the whole sequence from scratch (the patched
/// prefill graph, no state) at every step.
#[test]
fn state_carrying_logits_equal_full_recompute_at_every_step() {
    let dir = scratch("recompute");
    let mdir = fixtures().join("models/hf_ts_3l_conv3_L8");
    let (tokens, logits, _) = generate(&mdir.join("model.onnx"), "hf3c3", &[], &dir);
    let mut m = model::load(&mdir.join("model.onnx")).unwrap();
    patch::patch_model(&mut m, &mdir).unwrap();
    let full = Session::new(&m, &mdir).unwrap();
    let prompt = npy::read(&fixtures().join("generate/hf3c3/prompt.npy")).unwrap();
    let (b, p, n) = (2, prompt.shape[1], 32);
    let (pv, tv, lv) = (
        prompt.to_i64_vec(),
        tokens.to_i64_vec(),
        logits.to_f32_vec(),
    );
    let vocab = logits.shape[2];
    let mut worst = 0f64;
    for step in 0..n {
        let len = p + step;
        let mut ids = Vec::new();
        for r in 0..b {
            ids.extend_from_slice(&pv[r * p..(r + 1) * p]);
            ids.extend_from_slice(&tv[r * n..r * n + step]);
        }
        // The export's batch is 1: one row at a time.
        for r in 0..b {
            let row = Tensor::from_i64(vec![1, len], ids[r * len..(r + 1) * len].to_vec()).unwrap();
            let inputs = [("input_ids".to_string(), row)].into_iter().collect();
            let out = full.run(&inputs).unwrap();
            let all = out[0].1.to_f32_vec();
            let last = &all[(len - 1) * vocab..len * vocab];
            let got = &lv[(r * n + step) * vocab..(r * n + step + 1) * vocab];
            for (a, w) in got.iter().zip(last) {
                worst = worst.max(((a - w).abs() / w.abs().max(1.0)) as f64);
            }
        }
    }
    assert!(worst <= 1e-5, "{worst:e}");
}

#[test]
fn gpu_backend_generates_the_same_tokens_or_skips() {
    let dir = scratch("gpu");
    let model = fixtures().join("models/hf_ts_3l_conv3_L8/model.onnx");
    let prompt = fixtures().join("generate/hf3c3/prompt.npy");
    let (tokens, logits) = (dir.join("t.npy"), dir.join("l.npy"));
    let o = s6_run(
        &[
            "generate",
            s(&model),
            "--prompt",
            s(&prompt),
            "--max-new-tokens",
            "32",
            "--out",
            s(&tokens),
            "--logits-out",
            s(&logits),
            "--backend",
            "gpu",
        ],
        &dir,
    );
    let t = text(&o);
    if t.contains("no usable GPU adapter") || t.contains("built without the `gpu` feature") {
        return skip::skip(
            "S6_WGPU_REQUIRE",
            &format!("gpu generate: no GPU backend here: {t}"),
        );
    }
    assert!(o.status.success(), "{t}");
    assert!(t.contains("gpu backend"), "{t}");
    let (want_tokens, want_logits) = reference("hf3c3");
    assert_eq!(
        npy::read(&tokens).unwrap().to_i64_vec(),
        want_tokens.to_i64_vec()
    );
    let e = scaled_err(&npy::read(&logits).unwrap(), &want_logits);
    assert!(e <= 1e-4, "gpu logits off by {e:e}");
}

#[test]
fn tokenizer_text_in_text_out() {
    let dir = scratch("text");
    let case: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("generate/text_case.json")).unwrap(),
    )
    .unwrap();
    let model = fixtures().join("models/hf_ts_L12/model.onnx");
    let tok = fixtures().join("generate/tokenizer.json");
    let tokens = dir.join("t.npy");
    let o = s6_run(
        &[
            "generate",
            s(&model),
            "--tokenizer",
            s(&tok),
            "--text",
            case["text"].as_str().unwrap(),
            "--max-new-tokens",
            "32",
            "--out",
            s(&tokens),
        ],
        &dir,
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let want: Vec<i64> = case["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(npy::read(&tokens).unwrap().to_i64_vec(), want);
    let decoded = case["decoded"].as_str().unwrap();
    assert!(t.contains(&format!("text 0: {decoded}\n")), "{t}");
    assert!(t.contains("prompt 1×7 tokens"), "{t}");
}

#[test]
fn sampling_is_seeded_and_top_k_one_is_greedy() {
    let dir = scratch("sample");
    let model = fixtures().join("models/hf_ts_3l_conv3_L8/model.onnx");
    let sampled = |seed: &str, extra: &[&str]| {
        let mut args = vec!["--temperature", "1.5", "--seed", seed];
        args.extend_from_slice(extra);
        generate(&model, "hf3c3", &args, &dir).0.to_i64_vec()
    };
    let a = sampled("1", &[]);
    assert_eq!(a, sampled("1", &[]));
    assert_ne!(a, sampled("2", &[]));
    // Temperature 1.5 over 96 near-uniform logits: nothing like the greedy run.
    let greedy = reference("hf3c3").0.to_i64_vec();
    assert_ne!(a, greedy);
    assert_eq!(sampled("1", &["--top-k", "1"]), greedy);
}

#[test]
fn clear_errors() {
    let dir = scratch("errors");
    let model = fixtures().join("models/hf_ts_L12/model.onnx");
    let o = s6_run(&["generate", s(&model), "--text", "the cat"], &dir);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--tokenizer"), "{}", text(&o));
    let floats = dir.join("f.npy");
    npy::write(
        &floats,
        &Tensor::from_f32(vec![1, 2], vec![1.0, 2.0]).unwrap(),
    )
    .unwrap();
    let o = s6_run(&["generate", s(&model), "--prompt", s(&floats)], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("must be integers"), "{}", text(&o));
    let o = s6_run(&["generate", s(&model)], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("give the prompt"), "{}", text(&o));
    let mamba2 = fixtures().join("models/mamba2_ts_L8/model.onnx");
    let ids = dir.join("ids.npy");
    npy::write(&ids, &Tensor::from_i64(vec![1, 2], vec![1, 2]).unwrap()).unwrap();
    let o = s6_run(&["generate", s(&mamba2), "--prompt", s(&ids)], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("not supported"), "{}", text(&o));
    let o = s6_run(
        &["generate", s(&model), "--prompt", s(&ids), "--top-p", "0"],
        &dir,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--top-p"), "{}", text(&o));
}
