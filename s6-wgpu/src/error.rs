//! Errors of the wgpu backend.

use s6_contract::ContractError;

#[derive(Debug, thiserror::Error)]
pub enum WgpuError {
    /// No adapter: no GPU driver, or none for the backends allowed (`WGPU_BACKEND`).
    #[error(
        "no GPU adapter found for wgpu backends {backends} ({reason}); on Linux install a Vulkan \
         driver (e.g. Mesa's lavapipe: mesa-vulkan-drivers and libvulkan1)"
    )]
    NoAdapter { backends: String, reason: String },
    #[error("GPU device request failed on adapter {adapter}: {reason}")]
    Device { adapter: String, reason: String },
    /// An input does not fit the op (wrong length, dtype, missing or surplus optional input).
    #[error("{op}: input `{input}`: {reason}")]
    Input {
        op: &'static str,
        input: &'static str,
        reason: String,
    },
    /// Valid, but beyond what this backend does (size limits, N too large, ...): run it elsewhere.
    #[error("{op}: not supported by the GPU backend: {reason}")]
    Unsupported { op: &'static str, reason: String },
    /// wgpu reported an error (validation, out of memory, lost device) while running `op`.
    #[error("{op}: GPU error: {reason}")]
    Gpu { op: &'static str, reason: String },
    #[error(transparent)]
    Contract(#[from] ContractError),
}
