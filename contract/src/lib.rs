//! The op contract every part of s6plugin reads, and its executable form.
//!
//! - [`contract`]: the `S6Scan` op contract of `docs/s6scan.md` — attributes, input/output
//!   roles, dtypes, shape validation.
//! - [`reference`]: a CPU reference of the op (fp32 compute, fp64 for checking).
//! - [`contract_heads`], [`reference_heads`]: the same for `S6ScanHeads`, Mamba2's scan in its
//!   heads form (`docs/s6scan_heads.md`); [`reference_ssd`] evaluates it chunk-wise (SSD).
//!
//! A crate of its own, without CUDA or TensorRT, so that the plugin (`s6plugin`), the ONNX
//! patcher and interpreter (`s6-onnx`), the wgpu backend and the tools share one definition
//! without depending on the plugin library.

mod checks;
pub mod contract;
pub mod contract_heads;
pub mod error;
pub mod reference;
pub mod reference_heads;
pub mod reference_ssd;

pub use contract::{DType, InputRole, OutputRole, S6Attrs, ScanDims};
pub use error::ContractError;
