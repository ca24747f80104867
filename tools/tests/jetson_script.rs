//! `tools/jetson/build_engine.sh --dry-run`: runs on any machine, prints the plan in order and
//! touches nothing; and the script is shellcheck-clean where shellcheck is installed.

use std::path::Path;
use std::process::Command;

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("jetson/build_engine.sh")
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let out = std::env::temp_dir().join(format!("s6-jetson-dry-{}", std::process::id()));
    let o = Command::new("bash")
        .arg(script())
        .args(["--dry-run", "--max-seq", "2048", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let steps = [
        "+ env S6PLUGIN_CUDA_ARCHS=87 ",
        "cargo build --release --jobs 4 --features trt",
        "/onnx-patch ",
        "/s6-engine build ",
        "--backend trt ",
        "--max batch=1,sequence=2048 --precision fp16 --workspace-mib 512",
        "/s6-engine run ",
        "--backend trt ",
        "/s6-run ",
        "--compare ",
        "/onnx-patch ",
        " --stateful --verify",
        "/s6-engine build ",
        "--stateful --max batch=2,sequence=2048 --precision fp16",
        "/s6-engine generate ",
        "--backend trt ",
        "--prompt ",
        "fixtures/generate/hf/prompt.npy --max-new-tokens 32 --out ",
        "/s6-run generate ",
        "+ cmp ",
        "== dry run done",
    ];
    let mut at = 0;
    for s in steps {
        let pos = stdout[at..]
            .find(s)
            .unwrap_or_else(|| panic!("{s:?} missing after byte {at}:\n{stdout}"));
        at += pos + s.len();
    }
    assert!(!out.exists(), "a dry run must not create {}", out.display());
}

#[test]
fn bad_arguments_are_refused() {
    let o = Command::new("bash")
        .arg(script())
        .arg("--precision")
        .arg("int8")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--precision must be fp16 or fp32"));
    let o = Command::new("bash")
        .arg(script())
        .args(["--dry-run", "--new-tokens", "0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("positive integers, got '0'"));
}

#[test]
fn skip_generate_leaves_out_the_generation_stage() {
    let o = Command::new("bash")
        .arg(script())
        .args(["--dry-run", "--skip-generate"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}");
    assert!(stdout.contains("/s6-engine run "), "{stdout}");
    assert!(!stdout.contains("--stateful"), "{stdout}");
    assert!(!stdout.contains(" generate "), "{stdout}");
}

#[test]
fn shellcheck_clean() {
    match Command::new("shellcheck").arg(script()).output() {
        Err(_) => println!("skipped: shellcheck not installed (apt install shellcheck)"),
        Ok(o) => assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout)),
    }
}
