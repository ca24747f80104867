//! Compiles the cxx shim in `cpp_shim/` against TensorRT headers (owned by the plugin work).
pub fn build() {}
