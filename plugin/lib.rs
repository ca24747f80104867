//! s6plugin: Mamba's S6 selective scan (`S6Scan`) as a TensorRT plugin.
//!
//! Layers, from the op contract outwards:
//! - [`contract`]: the `S6Scan` op contract of `docs/s6scan.md` — attributes, input/output
//!   roles, dtypes, shape validation. Every other part (kernels, plugin, patcher, interpreters)
//!   reads it from here.
//! - [`reference`]: a CPU reference of the op (fp32 compute, fp64 for checking).
//! - [`contract_heads`], [`reference_heads`]: the same for `S6ScanHeads`, Mamba2's scan in its
//!   heads form (`docs/s6scan_heads.md`); [`reference_ssd`] evaluates it chunk-wise (SSD).
//! - `cuda` (feature `cuda`): the CUDA kernels and their launch on a raw stream.
//! - `trt` (feature `trt`): the TensorRT plugin behind the C++ shim in `cpp_shim/`.

pub mod contract;
pub mod contract_heads;
pub mod error;
pub mod reference;
pub mod reference_heads;
pub mod reference_ssd;

pub use contract::{DType, InputRole, OutputRole, S6Attrs, ScanDims};
pub use error::ContractError;

#[cfg(feature = "cuda")]
pub mod cuda;

#[cfg(feature = "trt")]
pub mod trt;
