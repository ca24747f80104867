//! Visible skips for the tools' test binaries (the root crate's `tests/skip` twin).

/// A test that cannot run says so, or fails instead when `require_var` is set (CI). Written to
/// stderr directly: libtest captures `eprintln!` of passing tests, which would hide the skip.
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
