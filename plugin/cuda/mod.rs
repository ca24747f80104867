//! CUDA side of `S6Scan`: kernel module loading (once per context) and launch on a raw stream.
//!
//! Interface used by the TensorRT plugin (`trt`):
//! - [`workspace_size`]: a pure function of attributes, dims and dtype.
//! - [`launch`]: enqueues the scan on a raw `CUstream` with raw device pointers; no allocation,
//!   no synchronisation, no host-device copy.

use crate::contract::{DType, S6Attrs, ScanDims};

/// Raw device pointers of one launch (0 for absent optional tensors), exactly as TensorRT's
/// `enqueue` hands them over.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanPtrs {
    pub u: u64,
    pub delta: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub d: u64,
    pub z: u64,
    pub delta_bias: u64,
    pub initial_state: u64,
    pub y: u64,
    pub last_state: u64,
    pub workspace: u64,
}

/// Everything one launch needs.
#[derive(Clone, Copy, Debug)]
pub struct ScanLaunch {
    pub attrs: S6Attrs,
    pub dims: ScanDims,
    pub dtype: DType,
    pub ptrs: ScanPtrs,
}

/// Errors of the CUDA side.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("CUDA driver: {0}")]
    Driver(String),
    #[error("no CUDA context is current on this thread")]
    NoContext,
    #[error("kernel module: {0}")]
    Module(String),
}

/// Bytes of scratch memory a launch with these sizes needs.
pub fn workspace_size(_attrs: &S6Attrs, _dims: &ScanDims, _dtype: DType) -> usize {
    0
}

/// Enqueues the scan on `stream`.
///
/// # Safety
/// Every non-zero pointer in `l.ptrs` must be a device allocation of the size the contract
/// gives for `l.dims` in the current context, and `stream` a valid stream of that context.
pub unsafe fn launch(_l: &ScanLaunch, _stream: *mut std::ffi::c_void) -> Result<(), CudaError> {
    Err(CudaError::Module("kernels not built yet".into()))
}
