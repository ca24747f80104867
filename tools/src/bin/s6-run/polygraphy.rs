//! Reference outputs from a polygraphy `--save-outputs` JSON file (`RunResults`): per runner,
//! the first iteration's outputs. Arrays travel as base64 of `.npy` bytes, either directly
//! (`{"array": ...}`, older polygraphy) or inside a `LazyArray` (`{"values": {"array": ...}}`).

use anyhow::{bail, Context, Result};
use s6_onnx::interp::Tensor;
use s6_onnx::npy;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// (runner name, output name → tensor) for every runner in the file.
pub fn read_run_results(path: &Path) -> Result<Vec<(String, HashMap<String, Tensor>)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let root: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let lst = root.get("lst").and_then(Value::as_array).with_context(|| {
        format!(
            "{}: no polygraphy RunResults (missing \"lst\")",
            path.display()
        )
    })?;
    let mut runs = Vec::new();
    for entry in lst {
        let (Some(name), Some(iters)) = (
            entry.get(0).and_then(Value::as_str),
            entry.get(1).and_then(Value::as_array),
        ) else {
            bail!(
                "{}: a RunResults entry is not [runner, [iterations]]",
                path.display()
            );
        };
        let Some(first) = iters.first() else {
            continue;
        };
        let outputs = first
            .get("outputs")
            .and_then(Value::as_object)
            .with_context(|| format!("{}: runner {name} has no outputs", path.display()))?;
        let mut map = HashMap::new();
        for (out, v) in outputs {
            let b64 = v
                .get("array")
                .or_else(|| v.get("values").and_then(|x| x.get("array")))
                .and_then(Value::as_str)
                .with_context(|| {
                    format!(
                        "{}: runner {name}, output {out}: no inline array (saved outside the JSON?)",
                        path.display()
                    )
                })?;
            let bytes = base64_decode(b64).with_context(|| {
                format!(
                    "{}: runner {name}, output {out}: bad base64",
                    path.display()
                )
            })?;
            let origin = path.join(out);
            map.insert(out.clone(), npy::from_bytes(&bytes, &origin)?);
        }
        runs.push((name.to_string(), map));
    }
    if runs.is_empty() {
        bail!("{}: no runner results", path.display());
    }
    Ok(runs)
}

/// Standard base64 (RFC 4648 alphabet, `=` padding; line breaks, which some writers add, are
/// ignored).
fn base64_decode(s: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(clean)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_known_values() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("Zg==").unwrap(), b"f");
        assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
        assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode("Zm9vYmFy\n").unwrap(), b"foobar");
        assert_eq!(base64_decode("k05VTVBZ").unwrap(), b"\x93NUMPY");
        assert!(base64_decode("Zm9v!").is_err());
    }
}
