//! Visible skips, shared by every test binary that may not be able to run here.

/// A test that cannot run says so and fails instead when `require_var` is set to 1. The line is
/// written to the process's stderr directly: libtest captures `println!`/`eprintln!` of passing
/// tests, which would make a skip read as a plain "ok".
pub fn skip(require_var: &str, why: &str) {
    use std::io::Write;
    let required = std::env::var(require_var).is_ok_and(|v| v == "1");
    assert!(!required, "{require_var}=1 but this test cannot run: {why}");
    let _ = writeln!(
        std::io::stderr(),
        "SKIP: {why} (set {require_var}=1 to make this a failure)"
    );
}
