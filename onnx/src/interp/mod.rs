//! A CPU interpreter of ONNX graphs: enough of the standard op set for the Mamba exports,
//! plus `S6Scan` and `S6ScanHeads` (domain `s6plugin`) through `s6_contract::reference` and
//! `s6_contract::reference_heads`.
//!
//! Parsing ([`graph`]: slots, decoded initializers and attributes, dependency order) is kept
//! apart from execution ([`session`]). Ops live in [`ops`], one file per family, found through
//! a registry keyed by (domain, op_type). A [`Backend`] may take over nodes (the wgpu crate
//! runs S6Scan and MatMul on a GPU).

pub mod attrs;
pub mod backend;
pub mod error;
pub mod graph;
pub mod ops;
pub mod session;
pub mod tensor;

pub use backend::{Backend, ConstKey};
pub use error::InterpError;
pub use graph::{Dim, IoInfo};
pub use session::{Progress, Session};
pub use tensor::{DataType, Elem, Tensor, TensorData};
