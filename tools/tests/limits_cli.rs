//! `--max-tensor-bytes`: the CLIs refuse a model whose tensors exceed the cap, naming the flag,
//! and run it under the default cap.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/models")
        .join(name)
}

#[test]
fn onnx_patch_verify_and_s6_run_honour_the_cap() {
    let dir = fixture("hf_ts_L7");
    let out_dir = std::env::temp_dir().join(format!("s6-limits-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("patched.onnx");
    let patch = |cap: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_onnx-patch"));
        c.arg(dir.join("model.onnx"))
            .arg("-o")
            .arg(&out)
            .arg("--verify");
        if let Some(cap) = cap {
            c.args(["--max-tensor-bytes", cap]);
        }
        c.output().unwrap()
    };
    // The embedding (96 x 32 fp32) alone is 12 KiB.
    let o = patch(Some("4096"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--max-tensor-bytes"), "{err}");
    let o = patch(None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let run = |cap: &str| {
        Command::new(env!("CARGO_BIN_EXE_s6-run"))
            .arg(&out)
            .arg("--inputs-dir")
            .arg(dir.join("inputs"))
            .arg("--compare")
            .arg(dir.join("expected"))
            .args(["--max-tensor-bytes", cap, "-q"])
            .output()
            .unwrap()
    };
    let o = run("4096");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--max-tensor-bytes"), "{err}");
    let o = run("1000000");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_dir_all(&out_dir).unwrap();
}
