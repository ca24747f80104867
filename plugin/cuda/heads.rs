//! CUDA side of `S6ScanHeads` (Mamba2's SSD, `docs/s6scan_heads.md`): workspace size and launch
//! on a raw stream, the same interface as `S6Scan`'s [`super::launch`].
//!
//! The kernels live in `kernels/s6scan_heads.cu`, in the same module as `S6Scan`'s.

use std::ffi::c_void;

use crate::contract::DType;
use crate::contract_heads::{HeadsAttrs, HeadsDims};

use super::CudaError;

/// Raw device pointers of one launch (0 for absent optional tensors), in TensorRT's order.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadsPtrs {
    pub x: u64,
    pub dt: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub d: u64,
    pub z: u64,
    pub dt_bias: u64,
    pub dt_limit: u64,
    pub initial_state: u64,
    pub y: u64,
    pub last_state: u64,
    pub workspace: u64,
}

/// Everything one launch needs.
#[derive(Clone, Copy, Debug)]
pub struct HeadsLaunch {
    pub attrs: HeadsAttrs,
    pub dims: HeadsDims,
    pub dtype: DType,
    pub ptrs: HeadsPtrs,
}

/// Bytes of scratch memory a launch with these sizes needs; a pure function of the sizes,
/// monotone in each (the size asked at a profile's largest shapes covers every smaller launch).
pub fn heads_workspace_size(_attrs: &HeadsAttrs, _dims: &HeadsDims, _dtype: DType) -> usize {
    0
}

/// Enqueues the heads scan on `stream`.
///
/// # Safety
/// Every non-zero pointer in `l.ptrs` must be a device allocation of the size the contract
/// gives for `l.dims` in the current context (`workspace`: [`heads_workspace_size`] bytes), and
/// `stream` a valid stream of that context.
pub unsafe fn launch_heads(l: &HeadsLaunch, _stream: *mut c_void) -> Result<(), CudaError> {
    let _ = l;
    Err(CudaError::Unsupported(
        "S6ScanHeads kernels are not built yet".into(),
    ))
}
