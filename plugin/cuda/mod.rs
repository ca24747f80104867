//! CUDA side of `S6Scan`: kernel module loading (once per context) and launch on a raw stream.
//!
//! Interface used by the TensorRT plugin (`trt`):
//! - [`workspace_size`]: a pure function of attributes, dims and dtype.
//! - [`launch`]: enqueues the scan on a raw `CUstream` with raw device pointers; no allocation,
//!   no synchronisation, no host-device copy.
//! - [`prepare`]: loads the module into the current context ahead of the first launch
//!   (optional; `launch` does it on first use).
//!
//! Only cudarc's `sys` layer is used, on the caller's stream: cudarc's `CudaStream` would
//! destroy a handle it does not own.

pub mod devbuf;
pub mod heads;
pub mod module;
pub mod params;

use std::ffi::c_void;

use cudarc::driver::sys;

use crate::contract::{DType, S6Attrs, ScanDims};
pub use heads::{
    heads_workspace_size, launch_heads, launch_heads_with, HeadsKernel, HeadsLaunch, HeadsPtrs,
};
pub use params::Tune;
use params::{dtype_index, Choice};

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
    #[error("unsupported sizes: {0}")]
    Unsupported(String),
    #[error("device pointer of `{0}` is null but the attributes say it is present")]
    NullPointer(&'static str),
}

/// Bytes of scratch memory a launch with these sizes needs: the chunk summaries of the chunked
/// prefill (few channels, long L: see `kernels/s6scan.cu`), 0 when L is too short to chunk.
/// A pure function of the sizes (not of the device), monotone in each, so the size asked at a
/// profile's largest shapes also covers every smaller launch; [`launch`] with
/// `ptrs.workspace == 0` runs the one-pass prefill instead.
pub fn workspace_size(_attrs: &S6Attrs, dims: &ScanDims, _dtype: DType) -> usize {
    params::workspace_bytes(dims)
}

/// Loads the kernel module into the current context (no-op when already loaded) and returns
/// where its image came from (`"fatbin sm_80,… +PTX compute_90"` or `"nvrtc sm_XY"`).
pub fn prepare() -> Result<&'static str, CudaError> {
    Ok(module::kernels()?.origin)
}

/// Launches the empty kernel `s6_noop` on `grid` × 128 threads, with programmatic dependent
/// launch where `pdl` and the device has it: the launch floor that benchmarks set beside a
/// decode step.
///
/// # Safety
/// `stream` must be a valid stream of the current context.
pub unsafe fn launch_noop(
    grid: (u32, u32),
    stream: *mut c_void,
    pdl: bool,
) -> Result<(), CudaError> {
    let k = module::kernels()?;
    let mut kp = params::KernelParams::default();
    let mut args = [&mut kp as *mut params::KernelParams as *mut c_void];
    // SAFETY: s6_noop takes one S6Params and touches no memory; the caller gives the stream.
    unsafe {
        module::launch(
            k.noop,
            (grid.0, grid.1, 1),
            params::DECODE_BLOCK,
            stream as sys::CUstream,
            &mut args,
            pdl && k.pdl,
        )
    }
}

/// True when libcuda can be loaded in this process.
pub fn driver_present() -> bool {
    module::driver_present()
}

/// Enqueues the scan on `stream`.
///
/// # Safety
/// Every non-zero pointer in `l.ptrs` must be a device allocation of the size the contract
/// gives for `l.dims` in the current context, and `stream` a valid stream of that context.
pub unsafe fn launch(l: &ScanLaunch, stream: *mut c_void) -> Result<(), CudaError> {
    // SAFETY: forwarded; same contract.
    unsafe { launch_with(l, stream, Tune::default()) }
}

/// As [`launch`], with the kernel choice overridden (benchmarks compare kernel shapes, tests
/// cover each path).
///
/// # Safety
/// As [`launch`]; a non-zero `ptrs.workspace` must hold [`workspace_size`] bytes.
pub unsafe fn launch_with(
    l: &ScanLaunch,
    stream: *mut c_void,
    tune: Tune,
) -> Result<(), CudaError> {
    let (a, p) = (&l.attrs, &l.ptrs);
    for (ok, name) in [
        (p.u != 0, "u"),
        (p.delta != 0, "delta"),
        (p.a != 0, "A"),
        (p.b != 0, "B"),
        (p.c != 0, "C"),
        (p.y != 0, "y"),
        (!a.has_d || p.d != 0, "D"),
        (!a.has_z || p.z != 0, "z"),
        (!a.has_delta_bias || p.delta_bias != 0, "delta_bias"),
        (
            !a.has_initial_state || p.initial_state != 0,
            "initial_state",
        ),
        (!a.has_last_state || p.last_state != 0, "last_state"),
    ] {
        if !ok {
            return Err(CudaError::NullPointer(name));
        }
    }
    let d = &l.dims;
    if d.groups == 0 || d.dim % d.groups != 0 {
        return Err(CudaError::Unsupported(format!(
            "groups {} must divide D = {}",
            d.groups, d.dim
        )));
    }
    if d.batch == 0 || d.dim == 0 {
        return Ok(()); // nothing to compute, nothing to write
    }
    let k = module::kernels()?;
    let plan = params::plan(d, l.dtype, k.sm_count, p.workspace != 0, tune)?;
    let dt = dtype_index(l.dtype);
    let mut kp = params::kernel_params(a, d, p, &plan);
    let pdl = k.pdl && tune.pdl.unwrap_or(true);
    let run = |f: sys::CUfunction, grid: (u32, u32), block: u32, kp: &mut params::KernelParams| {
        let mut args = [kp as *mut params::KernelParams as *mut c_void];
        // SAFETY: f belongs to the module loaded in the current context; args holds one
        // pointer to a KernelParams that matches the kernel's by-value S6Params and lives
        // across the call (the driver copies parameters at launch); every S6Scan kernel waits
        // for the stream's previous kernel before touching memory (PDL); the caller guarantees
        // pointers, workspace and stream.
        unsafe {
            module::launch(
                f,
                (grid.0, plan.grid.1, grid.1),
                block,
                stream as sys::CUstream,
                &mut args,
                pdl,
            )
        }
    };
    match plan.choice {
        Choice::Prefill { config } => {
            if plan.chunks > 1 {
                // Pass 1: summaries of chunks 0..K-2; pass 2 (same stream, so ordered after).
                run(
                    k.chunksum[dt][plan.sum_config],
                    (plan.sum_grid_x, plan.chunks - 1),
                    plan.sum_block,
                    &mut kp,
                )?;
            }
            run(
                k.prefill[dt][config],
                (plan.grid.0, plan.grid.2),
                plan.block,
                &mut kp,
            )
        }
        Choice::Warp => {
            if plan.chunks > 1 {
                run(
                    k.warpsum[dt],
                    (plan.sum_grid_x, plan.chunks - 1),
                    plan.sum_block,
                    &mut kp,
                )?;
            }
            run(k.warp[dt], (plan.grid.0, plan.grid.2), plan.block, &mut kp)
        }
        Choice::Prefill64 { wide } => run(
            k.prefill64[dt][wide],
            (plan.grid.0, plan.grid.2),
            plan.block,
            &mut kp,
        ),
        Choice::Chan { variant } => {
            if plan.chunks > 1 {
                run(
                    k.chansum[dt][variant],
                    (plan.grid.0, plan.chunks - 1),
                    plan.block,
                    &mut kp,
                )?;
            }
            run(
                k.chan[dt][variant],
                (plan.grid.0, plan.grid.2),
                plan.block,
                &mut kp,
            )
        }
        Choice::Decode32 => run(
            k.decode32[dt],
            (plan.grid.0, plan.grid.2),
            plan.block,
            &mut kp,
        ),
        Choice::Decode { lanes } => run(
            k.decode[dt][lanes],
            (plan.grid.0, plan.grid.2),
            plan.block,
            &mut kp,
        ),
    }
}
