//! A prefill whose B/C row offsets do not fit 32 bits: channel-first B/C of N = 256 states at
//! L = 8.42 M steps put row 255 at 255·L > 2^31 elements, where a 32-bit `n * bc_sn` wraps to a
//! negative offset. Checked on the automatic kernel choice and the one-pass lanes-share kernel.
//!
//! Only state row 255 is fed (B and C are zero elsewhere, the initial state is zero), so the
//! exact answer is a one-dimensional fp64 recurrence over that row: y_t = C_t·h_t with
//! h_t = exp(Δ_t·a)·h_{t−1} + Δ_t·B_t·u_t, and every other row of the last state stays 0. Any
//! read from a wrong row shows as error. About 9 GB of GPU memory (fp16); needs a GPU (visible
//! skip without; `S6_GPU_REQUIRE=1` fails instead).
#![cfg(feature = "cuda")]

mod error_metrics;
mod skip;

use error_metrics::errors;
use half::f16;
use s6plugin::contract::{DType, S6Attrs, ScanDims};
use s6plugin::cuda::devbuf::DeviceBuffer;
use s6plugin::cuda::{launch_with, workspace_size, ScanLaunch, ScanPtrs, Tune};

const N: usize = 256;
/// The smallest L with 255·L past i32::MAX, plus a margin.
const L: usize = 8_421_600;

fn f16_bits(v: f32) -> u16 {
    f16::from_f32(v).to_bits()
}

#[test]
fn prefill_offsets_past_32_bits() {
    if !s6plugin::cuda::driver_present() {
        return skip::skip("S6_GPU_REQUIRE", "gpu_large_offsets: libcuda not found");
    }
    let ctx = match cudarc::driver::CudaContext::new(0) {
        Ok(c) => c,
        Err(e) => {
            return skip::skip(
                "S6_GPU_REQUIRE",
                &format!("gpu_large_offsets: no usable CUDA device ({e:?})"),
            )
        }
    };
    ctx.bind_to_thread().unwrap();
    s6plugin::cuda::prepare().expect("kernel module");
    assert!((N - 1) * L > i32::MAX as usize);

    let attrs = S6Attrs {
        has_last_state: true,
        ..Default::default()
    };
    let dims = ScanDims {
        batch: 1,
        dim: 1,
        seqlen: L,
        dstate: N,
        groups: 1,
    };
    // Cheap deterministic inputs, rounded to fp16 as the GPU sees them.
    let round = |v: f32| f16::from_f32(v).to_f32();
    let u: Vec<f32> = (0..L)
        .map(|t| round(((t * 7919) % 2001) as f32 / 1000.0 - 1.0))
        .collect();
    let delta: Vec<f32> = (0..L)
        .map(|t| round(0.001 + ((t * 104_729) % 997) as f32 / 5000.0))
        .collect();
    let b_row: Vec<f32> = (0..L)
        .map(|t| round(((t * 31) % 401) as f32 / 200.0 - 1.0))
        .collect();
    let c_row: Vec<f32> = (0..L)
        .map(|t| round(((t * 17) % 301) as f32 / 150.0 - 1.0))
        .collect();
    let a: Vec<f32> = (0..N).map(|n| -0.05 * (n as f32 + 1.0)).collect();
    let a_row = a[N - 1] as f64;

    // The fp64 answer of row N-1.
    let mut h = 0f64;
    let mut want_y = Vec::with_capacity(L);
    for t in 0..L {
        let dl = delta[t] as f64;
        h = (dl * a_row).exp() * h + dl * b_row[t] as f64 * u[t] as f64;
        want_y.push(c_row[t] as f64 * h);
    }
    let mut want_state = vec![0f64; N];
    want_state[N - 1] = h;

    let to_dev = |v: &[f32]| {
        DeviceBuffer::from_slice(&v.iter().map(|&x| f16_bits(x)).collect::<Vec<u16>>()).unwrap()
    };
    // (B, N, L): zero everywhere but the last row.
    let bc = |row: &[f32]| {
        let g = DeviceBuffer::alloc(N * L * 2).unwrap();
        g.fill_bytes(0).unwrap();
        let rows =
            DeviceBuffer::from_slice(&row.iter().map(|&x| f16_bits(x)).collect::<Vec<u16>>())
                .unwrap();
        // SAFETY: both are live device allocations; the last row lies inside `g`.
        unsafe {
            cudarc::driver::sys::cuMemcpyDtoD_v2(
                g.ptr() + ((N - 1) * L * 2) as u64,
                rows.ptr(),
                L * 2,
            )
        }
        .result()
        .unwrap();
        g
    };
    let g_u = to_dev(&u);
    let g_delta = to_dev(&delta);
    let g_b = bc(&b_row);
    let g_c = bc(&c_row);
    let g_a = DeviceBuffer::from_slice(&a).unwrap();
    let g_y = DeviceBuffer::alloc(L * 2).unwrap();
    let g_h = DeviceBuffer::alloc(N * 4).unwrap();
    let ws_bytes = workspace_size(&attrs, &dims, DType::F16);
    let g_ws = DeviceBuffer::alloc(ws_bytes.max(4)).unwrap();

    let auto = Tune::default();
    let one_pass = Tune {
        npl: None,
        chunks: Some(1),
        sum_npl: None,
        chan: Some(0),
    };
    let mut failures = Vec::new();
    for (name, tune) in [("automatic", auto), ("one-pass lanes-share", one_pass)] {
        g_y.fill_bytes(0xFF).unwrap();
        g_h.fill_bytes(0xFF).unwrap();
        let l = ScanLaunch {
            attrs,
            dims,
            dtype: DType::F16,
            ptrs: ScanPtrs {
                u: g_u.ptr(),
                delta: g_delta.ptr(),
                a: g_a.ptr(),
                b: g_b.ptr(),
                c: g_c.ptr(),
                y: g_y.ptr(),
                last_state: g_h.ptr(),
                workspace: if ws_bytes > 0 { g_ws.ptr() } else { 0 },
                ..Default::default()
            },
        };
        // SAFETY: live allocations of the contract's sizes for these dims; null stream.
        let launched = unsafe { launch_with(&l, std::ptr::null_mut(), tune) };
        if let Err(e) = launched {
            failures.push(format!("{name}: launch failed: {e}"));
            continue;
        }
        let y: Vec<f32> = g_y
            .read::<u16>(L)
            .unwrap()
            .into_iter()
            .map(|x| f16::from_bits(x).to_f32())
            .collect();
        let state = g_h.read::<f32>(N).unwrap();
        let (ye, ym, ybad) = errors(&y, &want_y);
        let (se, sm, sbad) = errors(&state, &want_state);
        println!("{name}: y rel-L2 {ye:.2e} max {ym:.2e}; last_state rel-L2 {se:.2e} max {sm:.2e}");
        if ybad + sbad > 0 || ye > 1e-3 || ym > 1e-3 || se > 2e-5 || sm > 2e-5 {
            failures.push(format!(
                "{name}: y {ye:.2e}/{ym:.2e}, state {se:.2e}/{sm:.2e}, {} non-finite",
                ybad + sbad
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
