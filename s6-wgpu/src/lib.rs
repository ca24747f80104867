//! wgpu backend for the s6plugin ONNX interpreter: `S6Scan`, `S6ScanHeads` and MatMul as WGSL compute
//! shaders, on Metal (macOS), Vulkan (Linux, Windows; Mesa's lavapipe on machines without a GPU).
//!
//! - [`WgpuContext`]: the device and the kernels, usable without the interpreter
//!   ([`WgpuContext::s6scan`], [`WgpuContext::matmul`]).
//! - [`WgpuBackend`]: the interpreter's `Backend`, running those two ops and leaving the rest
//!   to the CPU.
//!
//! f16: kept as f16 on the GPU where the adapter has `SHADER_F16`; otherwise f16 (and bf16)
//! activations are widened to f32 on upload and results rounded back. Arithmetic is f32.

pub mod act;
pub mod backend;
pub mod context;
pub mod error;
pub mod matmul;
pub mod scan;
pub mod scan_heads;
mod scan_host;

pub use act::{Act, ActVec};
pub use backend::{BackendStats, WgpuBackend};
pub use context::{shader_source, ConstStats, ContextOptions, WgpuContext};
pub use error::WgpuError;
pub use matmul::MatMulOutput;
pub use scan::{ScanInputs, ScanOutputs, MAX_DSTATE};
pub use scan_heads::{HeadsScanInputs, HeadsScanOutputs};
