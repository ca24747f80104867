//! Compiles the cxx shim in `cpp_shim/` against TensorRT and CUDA headers (feature `trt`).
//!
//! The headers are found by `build/trt_headers.rs` (shared with s6-tools). The library is built for
//! the one TensorRT ABI those headers describe, which is recorded for the Rust side
//! (`S6_TRT_FLAVOUR`, `S6_TRT_MAJOR`, `S6_TRT_MINOR`, `S6_TRT_PATCH`): at run time it refuses a
//! TensorRT of another product or major version before calling into it
//! (plugin/trt/registration.rs). The shim itself adapts with `#if NV_TENSORRT_MAJOR`/`TRT_MAJOR_RTX`.

#[cfg(feature = "trt")]
use crate::trt_headers::{self, Flavour};

#[cfg(feature = "trt")]
const SOURCES: [&str; 4] = [
    "cpp_shim/s6_common.cpp",
    "cpp_shim/s6_plugin_v2.cpp",
    "cpp_shim/s6_plugin_v3.cpp",
    "cpp_shim/s6_exports.cpp",
];

#[cfg(feature = "trt")]
pub fn build() {
    let trt = trt_headers::find_tensorrt().unwrap_or_else(|why| {
        panic!(
            "\n\nfeature `trt`: TensorRT headers not found: {why}\nSet TENSORRT_INCLUDE_DIR to the \
             folder holding NvInferRuntime.h (for instance `.deps/py/kernel_lens/include/tensorrt` \
             after scripts/setup.sh, or a TensorRT tarball's `include`), or TENSORRT_ROOT to the \
             folder above it; or build without `--features trt`.\n"
        )
    });
    let cuda = trt_headers::find_cuda().unwrap_or_else(|why| {
        panic!(
            "\n\nfeature `trt`: CUDA headers not found: {why}\nSet CUDA_HOME (the folder holding \
             include/cuda_runtime_api.h; the `nvidia-cuda-runtime` wheel's `nvidia/cu13` works) or \
             CUDA_INCLUDE_DIR; TensorRT's headers include it.\n"
        )
    });
    let abi = trt_headers::read_abi(&trt).unwrap_or_else(|why| panic!("feature `trt`: {why}"));
    if abi.flavour == Flavour::Enterprise && (abi.major < 8 || (abi.major == 8 && abi.minor < 5)) {
        panic!(
            "feature `trt`: {abi} headers at {}; s6plugin needs TensorRT 8.5 or newer (or TensorRT-RTX)",
            trt.display()
        );
    }
    let flavour = match abi.flavour {
        Flavour::Enterprise => "enterprise",
        Flavour::Rtx => "rtx",
    };
    println!("cargo:rustc-env=S6_TRT_FLAVOUR={flavour}");
    println!("cargo:rustc-env=S6_TRT_MAJOR={}", abi.major);
    println!("cargo:rustc-env=S6_TRT_MINOR={}", abi.minor);
    println!("cargo:rustc-env=S6_TRT_PATCH={}", abi.patch);
    println!("cargo:rustc-env=S6_TRT_TAG={}", abi.tag());
    // Mirrors S6_HAS_V2 / S6_HAS_V3 in cpp_shim/s6_common.h.
    let interfaces = match (abi.flavour, abi.major) {
        (Flavour::Rtx, _) => "IPluginV3",
        (Flavour::Enterprise, 10) => {
            "IPluginV3 via getCreators, IPluginV2DynamicExt via getPluginCreators"
        }
        (Flavour::Enterprise, m) if m > 10 => "IPluginV3",
        _ => "IPluginV2DynamicExt",
    };
    println!(
        "cargo:rustc-env=S6_TRT_BUILD_INFO=s6plugin {} for {abi} ({interfaces}; tag {})",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default(),
        abi.tag()
    );
    // For the tests that compile TensorRT-role C++ programs against the same headers.
    println!("cargo:rustc-env=S6_TRT_INCLUDE={}", trt.display());
    println!("cargo:rustc-env=S6_CUDA_INCLUDE={}", cuda.display());
    println!("cargo:rerun-if-changed=cpp_shim");
    println!("cargo:rerun-if-changed=plugin/trt/ffi.rs");
    let mut b = cxx_build::bridge("plugin/trt/ffi.rs");
    b.files(SOURCES)
        // -isystem: vendor headers' own warnings are not ours.
        .flag("-isystem")
        .flag(trt.to_str().expect("TensorRT include path is not UTF-8"))
        .flag("-isystem")
        .flag(cuda.to_str().expect("CUDA include path is not UTF-8"))
        .std("c++17")
        .flag("-Wall")
        .flag("-Wextra")
        .flag("-Werror")
        // IPluginV2DynamicExt is deprecated from TensorRT 10: the 8.x/10.x builds implement it on
        // purpose (JetPack 5 has nothing else).
        .flag("-Wno-deprecated-declarations");
    b.compile("s6_shim");
    // The library stays mapped once loaded: registries may keep our creator after a dlclose.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}

#[cfg(not(feature = "trt"))]
pub fn build() {}
