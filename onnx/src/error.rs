//! Errors of the ONNX layer, naming the file, node or field concerned.

use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum OnnxError {
    // ---- files ----
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an ONNX model: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("tensor '{name}': {source}")]
    Tensor {
        name: String,
        #[source]
        source: crate::data::DataError,
    },
}
