//! Build script. Each part lives in `build/`:
//! - `build/kernels.rs`: CUDA kernels → fatbin embedded in the library (feature `cuda`).
//! - `build/shim.rs`: the cxx C++ shim against TensorRT headers (feature `trt`), found by
//!   `build/trt_headers.rs`.

#[path = "build/kernels.rs"]
mod kernels;
#[path = "build/shim.rs"]
mod shim;
#[cfg(feature = "trt")]
#[path = "build/trt_headers.rs"]
mod trt_headers;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        kernels::build();
    }
    if std::env::var_os("CARGO_FEATURE_TRT").is_some() {
        shim::build();
    }
}
