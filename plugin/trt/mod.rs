//! The TensorRT plugins `S6Scan` and `S6ScanHeads` (version "1", namespace ""; IPluginV3 for
//! TensorRT >= 10 and TensorRT-RTX, IPluginV2DynamicExt for 8.5/8.6), behind the C++ shim in
//! `cpp_shim/` (feature `trt`).
//!
//! - [`core`]: every decision of the plugin (fields, shapes, formats, dtypes, workspace,
//!   enqueue), reached from C++ through the cxx bridge in `ffi`, for both ops.
//! - [`op`]: what differs between the two ops (their contracts), behind one type.
//! - [`blob`]: the serialised form (a versioned prost message).
//! - [`host`]: which TensorRT is in the process or calling, and whether its ABI is ours.
//! - [`registration`]: the C exports TensorRT looks for (`getCreators`, `getPluginCreators`,
//!   `setLoggerFinder`), `s6pluginBuildInfo`, and static registration at load time.

pub mod blob;
pub mod core;
pub mod error;
pub(crate) mod ffi;
pub mod fields;
pub mod host;
pub mod op;
pub mod registration;

pub use self::core::PluginCore;
pub use error::PluginError;
pub use fields::FieldSet;
pub use op::{Op, OpAttrs};
