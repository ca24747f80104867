//! Loading and saving ONNX models. rust-protobuf keeps unknown fields, so a load/save round
//! trip loses nothing.

use crate::error::OnnxError;
use onnx_protobuf::ModelProto;
use protobuf::Message;
use std::path::Path;

/// Reads an ONNX model from `path` (external data stays where it is; see the tensor loaders).
pub fn load(path: &Path) -> Result<ModelProto, OnnxError> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    ModelProto::parse_from_bytes(&bytes).map_err(|e| OnnxError::Parse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Parses an ONNX model from memory; `origin` names it in errors.
pub fn parse(bytes: &[u8], origin: &Path) -> Result<ModelProto, OnnxError> {
    ModelProto::parse_from_bytes(bytes).map_err(|e| OnnxError::Parse {
        path: origin.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes `model` to `path` atomically (temporary file in the same folder, then rename).
pub fn save(model: &ModelProto, path: &Path) -> Result<(), OnnxError> {
    let bytes = model.write_to_bytes().map_err(|e| OnnxError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary sibling file and a rename, so that a reader never
/// sees a half-written file and a failure leaves any previous file intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OnnxError> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let io = |source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
