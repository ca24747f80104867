//! Both storage variants (f32, f16) of every WGSL kernel parse and validate with naga, the
//! compiler inside wgpu. Needs no GPU: this is what covers the f16 kernels on adapters without
//! SHADER_F16 (lavapipe), where they are never compiled by the device.

use naga::valid::{Capabilities, ValidationFlags, Validator};

#[test]
fn every_kernel_validates_in_f32_and_f16() {
    for kernel in ["S6Scan", "S6ScanHeads", "MatMul", "MatMulRows"] {
        for f16 in [false, true] {
            let src = s6_wgpu::shader_source(kernel, f16).expect("known kernel");
            let module = naga::front::wgsl::parse_str(&src)
                .unwrap_or_else(|e| panic!("{kernel} f16={f16}: {}", e.emit_to_string(&src)));
            let caps = if f16 {
                Capabilities::SHADER_FLOAT16
            } else {
                Capabilities::empty()
            };
            Validator::new(ValidationFlags::all(), caps)
                .validate(&module)
                .unwrap_or_else(|e| panic!("{kernel} f16={f16}: {e:?}"));
            // The f16 variant really stores f16 (and the f32 one does not need the capability).
            assert_eq!(src.starts_with("enable f16;"), f16);
        }
    }
    assert!(s6_wgpu::shader_source("Conv", false).is_none());
}
