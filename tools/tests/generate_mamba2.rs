//! `s6-run generate` on Mamba2 (`S6ScanHeads`) exports against transformers'
//! `Mamba2ForCausalLM.generate(do_sample=False, use_cache=True)` (`fixtures/generate/hf2`, made
//! by `scripts/make_generate_fixtures.py`): greedy tokens equal token for token (32 new tokens),
//! the logits they were picked from equal transformers', from a plain export (patched and made
//! stateful in memory) and from an `onnx-patch --stateful` file, on the CPU and on wgpu.

#[path = "../../onnx/tests/common/mod.rs"]
mod common;
#[path = "../../tests/skip/mod.rs"]
mod skip;

use s6_onnx::interp::Tensor;
use s6_onnx::npy;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(bin: &str, args: &[&str], xdg: &Path) -> Output {
    Command::new(bin)
        .args(args)
        .env("RUST_LOG", "error")
        .env("XDG_RUNTIME_DIR", xdg)
        .output()
        .expect("binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The export with a dynamic batch; the other one bakes batch 1.
fn export(name: &str) -> PathBuf {
    common::fixtures()
        .join("mamba2")
        .join(name)
        .join("model.onnx")
}

fn reference() -> (Tensor, Tensor, Tensor) {
    let g = common::fixtures().join("generate/hf2");
    let r = |f: &str| npy::read(&g.join(f)).unwrap();
    (r("prompt.npy"), r("tokens.npy"), r("logits.npy"))
}

/// Rows `lo..hi` (axis 0) of a tensor.
fn rows(t: &Tensor, lo: usize, hi: usize) -> Tensor {
    let w: usize = t.shape[1..].iter().product();
    let v = t.to_f64_vec()[lo * w..hi * w].to_vec();
    let mut shape = t.shape.clone();
    shape[0] = hi - lo;
    Tensor::new(
        shape,
        s6_onnx::interp::TensorData::from_f64_iter(t.dtype(), v.into_iter()),
    )
    .unwrap()
}

/// `s6-run generate` of 32 tokens: (tokens, logits, output text), or the failed output.
fn generate(model: &Path, prompt: &Path, extra: &[&str], dir: &Path) -> (Output, Tensor, Tensor) {
    let (tokens, logits) = (dir.join("tokens.npy"), dir.join("logits.npy"));
    let _ = std::fs::remove_file(&tokens);
    let mut args = vec![
        "generate",
        s(model),
        "--prompt",
        s(prompt),
        "--max-new-tokens",
        "32",
        "--out",
        s(&tokens),
        "--logits-out",
        s(&logits),
    ];
    args.extend_from_slice(extra);
    let o = run(env!("CARGO_BIN_EXE_s6-run"), &args, dir);
    if !o.status.success() {
        let empty = Tensor::from_i64(vec![0], vec![]).unwrap();
        return (o, empty.clone(), empty);
    }
    let (t, l) = (npy::read(&tokens).unwrap(), npy::read(&logits).unwrap());
    (o, t, l)
}

fn check(
    what: &str,
    o: &Output,
    tokens: &Tensor,
    logits: &Tensor,
    want_t: &Tensor,
    want_l: &Tensor,
) {
    let t = text(o);
    assert!(o.status.success(), "{what}: {t}");
    assert_eq!(tokens.shape, want_t.shape, "{what}");
    assert_eq!(tokens.to_i64_vec(), want_t.to_i64_vec(), "{what}: {t}");
    let e = common::scaled_err(logits, want_l);
    assert!(e <= 1e-4, "{what}: logits off by {e:e}");
}

#[test]
fn mamba2_greedy_tokens_equal_transformers_generate() {
    let dir = common::tmpdir("s6-generate2-test", "greedy");
    let (prompt, want_t, want_l) = reference();
    let prompt_file = common::fixtures().join("generate/hf2/prompt.npy");
    // Batch 2 on the dynamic-batch export, patched and made stateful in memory.
    let model = export("hf2_dynamo_dynbs_b2_L12");
    let (o, t, l) = generate(&model, &prompt_file, &[], &dir);
    check("dynbs, batch 2", &o, &t, &l, &want_t, &want_l);
    assert!(text(&o).contains("in memory"), "{}", text(&o));
    // The batch-1 export (its Reshapes bake batch 1: the stateful graph declares it), one
    // row at a time; both rows at once are refused clearly.
    let model = export("hf2_dynamo_dynseq_L12");
    let (o, ..) = generate(&model, &prompt_file, &[], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("axis 0 must be 1"), "{}", text(&o));
    for r in 0..2 {
        let p = dir.join(format!("prompt{r}.npy"));
        npy::write(&p, &rows(&prompt, r, r + 1)).unwrap();
        let (o, t, l) = generate(&model, &p, &[], &dir);
        check(
            &format!("dynseq, row {r}"),
            &o,
            &t,
            &l,
            &rows(&want_t, r, r + 1),
            &rows(&want_l, r, r + 1),
        );
    }
}

/// `onnx-patch --stateful --verify --report` on a Mamba2 export: the report names the states
/// with their shapes, the checks pass, and the file generates the same tokens as given.
#[test]
fn mamba2_stateful_file_from_onnx_patch_generates_the_same() {
    let dir = common::tmpdir("s6-generate2-test", "file");
    let out = dir.join("m2.st.onnx");
    let report = dir.join("report.json");
    let o = run(
        env!("CARGO_BIN_EXE_onnx-patch"),
        &[
            s(&export("hf2_dynamo_dynbs_b2_L12")),
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
    assert_eq!(layers.len(), 2);
    for (i, l) in layers.iter().enumerate() {
        assert_eq!(l["conv_state"], format!("conv_state.{i}"));
        assert_eq!(l["ssm_state_out"], format!("ssm_state_out.{i}"));
        assert_eq!(l["scan_op"], "S6ScanHeads");
        assert_eq!(l["conv_state_shape"], serde_json::json!(["batch", 128, 3]));
        assert_eq!(
            l["ssm_state_shape"],
            serde_json::json!(["batch", 4, 16, 16])
        );
    }
    let checks = r["verify"].as_array().unwrap();
    assert_eq!(checks.len(), 3);
    assert!(
        checks
            .iter()
            .all(|c| c["ok"] == true && c["batch"] == 2 && c["seq_len"] == 12),
        "{checks:?}"
    );
    let (_, want_t, want_l) = reference();
    let (o, t, l) = generate(
        &out,
        &common::fixtures().join("generate/hf2/prompt.npy"),
        &[],
        &dir,
    );
    check("stateful file", &o, &t, &l, &want_t, &want_l);
    assert!(!text(&o).contains("in memory"), "{}", text(&o));

    // A patched (not stateful) file is made stateful in memory.
    let patched = dir.join("m2.patched.onnx");
    let o = run(
        env!("CARGO_BIN_EXE_onnx-patch"),
        &[s(&export("hf2_dynamo_dynbs_b2_L12")), "-o", s(&patched)],
        &dir,
    );
    assert!(o.status.success(), "{}", text(&o));
    let (o, t, l) = generate(
        &patched,
        &common::fixtures().join("generate/hf2/prompt.npy"),
        &[],
        &dir,
    );
    check("patched file", &o, &t, &l, &want_t, &want_l);
    assert!(
        text(&o).contains("(made stateful in memory"),
        "{}",
        text(&o)
    );

    // The batch-1 export verifies at batch 1 and says why.
    let o = run(
        env!("CARGO_BIN_EXE_onnx-patch"),
        &[
            s(&export("hf2_dynamo_dynseq_L12")),
            "-o",
            s(&dir.join("m2b1.onnx")),
            "--stateful",
            "--verify",
        ],
        &dir,
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("at batch 1 only") && t.contains("fixes batch 1"),
        "{t}"
    );
    assert_eq!(t.matches(" ok\n").count(), 3, "{t}");
}

#[test]
fn mamba2_gpu_backend_generates_the_same_tokens_or_skips() {
    let dir = common::tmpdir("s6-generate2-test", "gpu");
    let (_, want_t, want_l) = reference();
    let prompt = common::fixtures().join("generate/hf2/prompt.npy");
    let model = export("hf2_dynamo_dynbs_b2_L12");
    let (o, t, l) = generate(&model, &prompt, &["--backend", "gpu"], &dir);
    let out = text(&o);
    if out.contains("no usable GPU adapter") || out.contains("built without the `gpu` feature") {
        return skip::skip(
            "S6_WGPU_REQUIRE",
            &format!("Mamba2 gpu generate: no GPU backend here: {out}"),
        );
    }
    assert!(out.contains("gpu backend"), "{out}");
    check("gpu", &o, &t, &l, &want_t, &want_l);
    // And the CPU run's logits, step for step.
    let (o2, t2, l2) = generate(&model, &prompt, &[], &dir);
    assert!(o2.status.success());
    assert_eq!(t.to_i64_vec(), t2.to_i64_vec());
    let e = common::scaled_err(&l, &l2);
    assert!(e <= 1e-4, "gpu vs cpu logits: {e:e}");
}
