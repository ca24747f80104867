//! Errors of the TensorRT plugin, each naming the field, tensor or blob part at fault.
//!
//! The shim prefixes them with the plugin and layer name before handing them to TensorRT's logger.

use thiserror::Error;

use crate::contract::DType;
use crate::error::ContractError;

#[derive(Debug, Error)]
pub enum PluginError {
    #[error("plugin field `{name}`: {reason}")]
    Field { name: String, reason: String },
    #[error("serialised plugin blob refused: {reason}")]
    Blob { reason: String },
    #[error("{0}")]
    Contract(#[from] ContractError),
    #[error("{what}: expected {expected}, got {got}")]
    Count {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{tensor}: {reason}")]
    Tensor { tensor: String, reason: String },
    #[error(
        "unsupported TensorRT data type {code} for `{tensor}` (supported: {})",
        supported_names()
    )]
    DataType { tensor: String, code: i32 },
    #[error("output `{tensor}` must be {expected}, TensorRT chose {got}")]
    OutputType {
        tensor: &'static str,
        expected: DType,
        got: DType,
    },
    #[cfg(feature = "cuda")]
    #[error("kernel launch: {0}")]
    Cuda(#[from] crate::cuda::CudaError),
    #[error("internal error (Rust panic) in {entry}: {message}")]
    Panic {
        entry: &'static str,
        message: String,
    },
}

fn supported_names() -> &'static str {
    "kFLOAT, kHALF, kBF16"
}
