//! s6plugin: Mamba's S6 selective scan (`S6Scan`) as a TensorRT plugin.
//!
//! Layers, from the op contract outwards:
//! - the op contract and its CPU references live in the crate `s6-contract` (re-exported here
//!   as [`contract`], [`reference`], [`contract_heads`], [`reference_heads`], [`reference_ssd`],
//!   [`error`]); every other part (kernels, plugin, patcher, interpreters) reads them there.
//! - `cuda` (feature `cuda`): the CUDA kernels and their launch on a raw stream.
//! - `trt` (feature `trt`): the TensorRT plugin behind the C++ shim in `cpp_shim/`.

pub use s6_contract::{contract, contract_heads, error, reference, reference_heads, reference_ssd};
pub use s6_contract::{ContractError, DType, InputRole, OutputRole, S6Attrs, ScanDims};

#[cfg(feature = "cuda")]
pub mod cuda;

#[cfg(feature = "trt")]
pub mod trt;
