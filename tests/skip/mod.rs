//! Visible skips, shared by every test binary that may not be able to run here (the tools'
//! tests include this file too).

/// A test that cannot run says so, or fails instead when `require_var` is set (to anything but
/// an empty string or 0). Written to stderr directly: libtest captures `println!`/`eprintln!` of
/// passing tests, which would make a skip read as a plain "ok".
pub fn skip(require_var: &str, why: &str) {
    use std::io::Write;
    let required = std::env::var_os(require_var).is_some_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "{require_var} is set, but this test cannot run: {why}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIP: {why} (set {require_var}=1 to make this a failure)"
    );
}
