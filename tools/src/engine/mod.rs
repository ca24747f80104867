//! s6-engine: builds TensorRT engines from patched ONNX models and runs them, driving
//! libnvinfer through `libloading` (no TensorRT at build or link time) and a small C++ bridge
//! (`tools/cpp/trt_glue.cpp`) for TensorRT's virtual C++ API.
//!
//! - [`libs`]: finding libnvinfer / libnvonnxparser, reading their version.
//! - [`version`]: what each TensorRT major wants (precision, plugin loading, trtexec flags).
//! - [`profile`]: `--min/--opt/--max` → optimisation profile (pure).
//! - [`trtexec`]: the equivalent trtexec command line (pure).
//! - [`glue`]: the C++ bridge (off when built without TensorRT headers).
//! - [`plugin`]: registering libs6plugin's creators in the loaded TensorRT.
//! - [`build`]: the engine build; [`run`]: running an engine on `.npy` inputs.
//! - [`binding`]: which engine tensor is which in a stateful graph (pure);
//!   [`generate`]: one engine call as the shared generation loop drives it.

pub mod binding;
pub mod build;
pub mod error;
pub mod generate;
pub mod glue;
pub mod libs;
pub mod plugin;
pub mod profile;
pub mod run;
pub mod trtexec;
pub mod version;

pub use error::EngineError;
pub use version::TrtVersion;
