//! The README's commands on every platform it names: the scripts must run under macOS's
//! bash 3.2, where `"${a[@]}"` of an empty array is an "unbound variable" under `set -u`.

use std::path::Path;

#[test]
fn scripts_expand_arrays_the_bash_3_2_way() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let mut checked = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "sh") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        // Arrays that can stay empty: declared `a=()` and only ever reassigned, never grown with
        // `a+=(…)` over a glob (which, without nullglob, always adds at least the pattern).
        let may_be_empty = |name: &str| {
            text.contains(&format!("{name}=()")) && !text.contains(&format!("{name}+=("))
        };
        for (i, line) in text.lines().enumerate() {
            // Every "${name[@]}" must sit inside its guard ${name[@]+"${name[@]}"}.
            let mut rest = line;
            while let Some(at) = rest.find("\"${") {
                let tail = &rest[at + 3..];
                let Some(end) = tail.find("[@]}\"") else {
                    break;
                };
                let name = &tail[..end];
                if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && may_be_empty(name)
                {
                    let guard = format!("${{{name}[@]+\"${{{name}[@]}}\"}}");
                    assert!(
                        line.contains(&guard),
                        "{}:{}: \"${{{name}[@]}}\" without the bash 3.2 guard {guard}",
                        p.display(),
                        i + 1
                    );
                }
                rest = &tail[end..];
            }
        }
        checked += 1;
    }
    assert!(checked >= 3);
}

#[test]
fn test_script_gives_wgpu_a_runtime_folder() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test.sh"))
            .unwrap();
    assert!(text.contains("export XDG_RUNTIME_DIR"), "scripts/test.sh");
}
