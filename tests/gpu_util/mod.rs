//! Helpers of the GPU tests (kernels of both ops): a seeded generator, rounding to an
//! activation dtype, and device upload/download in that dtype.
#![allow(dead_code)]

use half::{bf16, f16};
use s6plugin::contract::DType;
use s6plugin::cuda::devbuf::DeviceBuffer;

/// splitmix64, so that every run and every machine sees the same inputs.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> f64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn uniform(&mut self, lo: f64, hi: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| (lo + (hi - lo) * self.next()) as f32)
            .collect()
    }
}

/// Rounding to an activation dtype: the reference's own.
pub use s6plugin::reference::round_to_dtype as round_to;

pub fn upload(dt: DType, v: &[f32]) -> DeviceBuffer {
    match dt {
        DType::F32 => DeviceBuffer::from_slice(v),
        DType::F16 => {
            DeviceBuffer::from_slice(&v.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>())
        }
        DType::BF16 => {
            DeviceBuffer::from_slice(&v.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>())
        }
    }
    .expect("upload")
}

pub fn download(dt: DType, b: &DeviceBuffer, n: usize) -> Vec<f32> {
    match dt {
        DType::F32 => b.read::<f32>(n).unwrap(),
        DType::F16 => b
            .read::<u16>(n)
            .unwrap()
            .into_iter()
            .map(|x| f16::from_bits(x).to_f32())
            .collect(),
        DType::BF16 => b
            .read::<u16>(n)
            .unwrap()
            .into_iter()
            .map(|x| bf16::from_bits(x).to_f32())
            .collect(),
    }
}

/// Device 0's context, bound to this thread, or why there is none (no driver, no usable
/// device): the caller turns that into its visible skip.
pub fn context() -> Result<std::sync::Arc<cudarc::driver::CudaContext>, String> {
    if !s6plugin::cuda::driver_present() {
        return Err("libcuda not found (no NVIDIA driver)".into());
    }
    let ctx = cudarc::driver::CudaContext::new(0)
        .map_err(|e| format!("no usable CUDA device ({e:?})"))?;
    ctx.bind_to_thread()
        .map_err(|e| format!("cannot bind the CUDA context ({e:?})"))?;
    Ok(ctx)
}
