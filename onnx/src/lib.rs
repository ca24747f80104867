//! ONNX side of s6plugin: the graph model (load/save, external data), the Mamba scan patcher
//! and a CPU interpreter.

pub mod data;
pub mod error;
pub mod fp16;
pub mod interp;
pub mod model;
pub mod npy;
pub mod patch;
pub mod stateful;
pub mod stream;

pub use error::OnnxError;
pub use onnx_protobuf as proto;
