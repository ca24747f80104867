//! Errors of the engine driver, naming the library, file, input or flag concerned.

use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    // ---- finding and loading TensorRT ----
    #[error("{product} not found: looked for {names} in {places}; {hint}")]
    LibNotFound {
        product: &'static str,
        names: String,
        places: String,
        hint: &'static str,
    },
    #[error("{path}: cannot load: {reason}")]
    LibLoad { path: PathBuf, reason: String },
    #[error("{lib}: symbol {symbol} missing: {reason}")]
    Symbol {
        lib: String,
        symbol: &'static str,
        reason: String,
    },
    #[error("{lib}: getInferLibVersion() returned {value}, not a TensorRT version")]
    BadVersion { lib: String, value: i32 },
    #[error("{lib}: TensorRT {found} is too old; s6-engine needs TensorRT {min} or newer")]
    TooOld {
        lib: String,
        found: String,
        min: String,
    },
    #[error("{lib} is {product} {found}, but s6-engine was compiled against {product} {headers} headers; the C++ ABI differs between majors, so rebuild s6-engine with TENSORRT_INCLUDE_DIR (TensorRT-RTX: S6_TRT_RTX_INCLUDE_DIR) pointing at {product} {found_major}'s headers (on Jetson: JetPack's /usr/include/aarch64-linux-gnu)")]
    MajorMismatch {
        lib: String,
        product: &'static str,
        found: String,
        found_major: u32,
        headers: String,
    },
    #[error("s6-engine was built without {backend} headers, so it cannot {what}; rebuild it with {hint} and CUDA_INCLUDE_DIR=DIR (holding cuda_runtime_api.h) set, then `cargo build -p s6-tools --release`")]
    NoGlue {
        backend: &'static str,
        what: &'static str,
        hint: &'static str,
    },
    #[error("s6-engine's {backend} bridge was built against headers without NvOnnxParser.h, so it cannot build engines with {backend}; install the ONNX parser headers (libnvonnxparsers-dev / the tarball's include/) and rebuild, or build with --backend rtx (TensorRT-RTX builds engines without a GPU)")]
    NoParserHeader { backend: &'static str },
    #[error("the CUDA driver library (libcuda.so.1) is not loadable: running an engine needs an NVIDIA GPU and its driver")]
    NoCuda,
    #[error("CUDA device {device} is not usable: {reason} (running an engine needs an NVIDIA GPU; --device picks another)")]
    NoDevice { device: usize, reason: String },
    #[error("CUDA: {0}")]
    Cuda(String),

    // ---- arguments ----
    #[error("{flag} {arg:?}: {reason}")]
    ShapeSpec {
        flag: &'static str,
        arg: String,
        reason: String,
    },
    #[error("input {input:?} axis {axis}: {reason}")]
    Profile {
        input: String,
        axis: usize,
        reason: String,
    },
    #[error("{0}")]
    Precision(String),
    #[error("{path}: {reason}")]
    BadArg { path: PathBuf, reason: String },

    // ---- TensorRT work ----
    #[error("TensorRT: {0}")]
    Trt(String),
    #[error("engine I/O {tensor:?}: {reason}")]
    Tensor { tensor: String, reason: String },
    #[error("not an engine of a stateful graph: {0} (make the graph with onnx-patch --stateful, the engine with s6-engine build --stateful)")]
    NotStateful(String),

    // ---- files ----
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Onnx(#[from] s6_onnx::OnnxError),
}
