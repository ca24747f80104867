//! The TensorRT plugin (`IPluginV2DynamicExt` `S6Scan`, version "1", namespace ""), behind the
//! C++ shim in `cpp_shim/` (feature `trt`).
//!
//! - [`core`]: every decision of the plugin (fields, shapes, formats, dtypes, workspace,
//!   enqueue), reached from C++ through the cxx bridge in `ffi`.
//! - [`blob`]: the serialised form (a versioned prost message).
//! - [`registration`]: the C exports TensorRT looks for (`getCreators`, `getPluginCreators`,
//!   `setLoggerFinder`) and static registration at load time.

pub mod blob;
pub mod core;
pub mod error;
pub(crate) mod ffi;
pub mod fields;
pub mod registration;

pub use self::core::PluginCore;
pub use error::PluginError;
pub use fields::FieldSet;
