//! Times S6Scan and MatMul on the default wgpu adapter, end to end per call (upload, kernel,
//! read-back: the way the interpreter backend uses them). Not a test; numbers for the notes.
//!
//! `cargo run --release -p s6-wgpu --example wgpu_bench [-- REPS]`

use s6_contract::{S6Attrs, ScanDims};
use s6_wgpu::{Act, ScanInputs, WgpuContext};
use std::time::Instant;

fn median_us(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // pipeline compile, first allocations
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[reps / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reps: usize = std::env::args().nth(1).map_or(Ok(5), |s| s.parse())?;
    let ctx = WgpuContext::new()?;
    println!(
        "adapter: {} ({}), native f16: {}",
        ctx.adapter_name(),
        ctx.backend_name(),
        ctx.native_f16()
    );
    let attrs = S6Attrs {
        delta_softplus: true,
        has_d: true,
        has_z: true,
        has_delta_bias: true,
        has_last_state: true,
        ..Default::default()
    };
    println!("S6Scan fp32, N = 16, all options but initial state:");
    for (dim, seqlen) in [(1536, 1), (1536, 128), (1536, 1024)] {
        let d = ScanDims {
            batch: 1,
            dim,
            seqlen,
            dstate: 16,
            groups: 1,
        };
        let act = vec![0.1f32; d.act_len()];
        let bc = vec![0.1f32; d.bc_len()];
        let a = vec![-1.0f32; dim * 16];
        let dv = vec![1.0f32; dim];
        let x = ScanInputs {
            u: Act::F32(&act),
            delta: Act::F32(&act),
            a: &a,
            b: Act::F32(&bc),
            c: Act::F32(&bc),
            d: Some(&dv),
            z: Some(Act::F32(&act)),
            delta_bias: Some(&dv),
            initial_state: None,
        };
        let us = median_us(reps, || {
            ctx.s6scan(&attrs, &d, &x).expect("s6scan");
        });
        println!("  B 1 D {dim} L {seqlen}: {us:.0} us");
    }
    println!("MatMul fp32 (in_proj of Mamba-130m: (L, 768) x (768, 3072)):");
    for l in [1usize, 128] {
        let a = vec![0.01f32; l * 768];
        let b = vec![0.01f32; 768 * 3072];
        let us = median_us(reps, || {
            ctx.matmul(Act::F32(&a), &[l, 768], Act::F32(&b), &[768, 3072])
                .expect("matmul");
        });
        let gflops = 2.0 * (l * 768 * 3072) as f64 / us / 1e3;
        println!("  L {l}: {us:.0} us ({gflops:.2} GFLOP/s end to end)");
    }
    Ok(())
}
