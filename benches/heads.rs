//! Kernel-only timing of the `S6ScanHeads` CUDA kernels by CUDA-graph replay (`--features cuda`).
//!
//! `cargo bench -p s6plugin --features cuda --bench heads -- [--quick] [--only B,H,L] [--csv FILE]
//!  [--dump DIR]`
//!
//! Method as `benches/kernels.rs`: a graph of `REPS` back-to-back launches on a fresh stream,
//! `WARMUP` replays, then the median of `TIMED` replays over `REPS`. Shapes are those of the
//! Mamba2 issue's table: headdim 64, dstate 128, one group, fp16; mamba2-130m (24 heads) and
//! mamba2-2.7b (80 heads); prefill at L = 1024 and 4096 (B = 1) and L = 1024 (B = 8) in
//! Mamba2's configuration (softplus, dt_bias, D; the z gate lives in the gated norm), and the
//! decode step (L = 1, state in and out) at B = 1 and 8. Each prefill is timed with the automatic
//! choice (the split chunked kernels, with their workspace), the fused chunked kernel, and at
//! L = 128 the recurrence. `scripts/bench_mamba2.py` measures
//! mamba_ssm's Triton kernels the same way in the same run.
//!
//! `--dump DIR` writes the inputs and our y of one shape per 16-bit dtype (130m, B 1, L 1024) as
//! .npy files, so that the script measures mamba_ssm's error and ours against one fp64
//! reference on the same inputs.

use std::io::Write;
use std::path::Path;

use s6plugin::contract::DType;
use s6plugin::contract_heads::{HeadsAttrs, HeadsDims};
use s6plugin::cuda::devbuf::DeviceBuffer;
use s6plugin::cuda::{
    heads_workspace_size, launch_heads_with, HeadsKernel, HeadsLaunch, HeadsPtrs,
};

mod common;
#[path = "../tests/gpu_util/mod.rs"]
mod gpu_util;
use common::{write_npy, Rng};
use gpu_util::{download, round_to as round, upload};

/// Host inputs (already rounded to the dtype) and their device copies.
struct Problem {
    launch: HeadsLaunch,
    host: Vec<(&'static str, Vec<f32>)>,
    _bufs: Vec<DeviceBuffer>,
    y: DeviceBuffer,
}

fn problem(dt: DType, dims: HeadsDims, decode: bool, seed: u64) -> Problem {
    let mut rng = Rng(seed | 1);
    let attrs = HeadsAttrs {
        dt_softplus: true,
        has_d: true,
        has_dt_bias: true,
        has_initial_state: decode,
        has_last_state: decode,
        ..Default::default()
    };
    let mut x = rng.vec(-1.0, 1.0, dims.x_len());
    let mut dtv = rng.vec(-1.0, 1.0, dims.dt_len());
    let a: Vec<f32> = rng.vec(1.0, 16.0, dims.heads).iter().map(|v| -v).collect();
    let mut b = rng.vec(-1.0, 1.0, dims.bc_len());
    let mut c = rng.vec(-1.0, 1.0, dims.bc_len());
    let d = rng.vec(-1.0, 1.0, dims.heads);
    let bias: Vec<f32> = rng
        .vec(0.001, 0.1, dims.heads)
        .iter()
        .map(|v| v.exp_m1().ln())
        .collect();
    let h0 = rng.vec(-1.0, 1.0, dims.state_len());
    for v in [&mut x, &mut dtv, &mut b, &mut c] {
        round(dt, v);
    }
    let g = |v: &[f32]| upload(dt, v);
    let f = |v: &[f32]| DeviceBuffer::from_slice(v).expect("upload");
    let bufs = vec![g(&x), g(&dtv), f(&a), g(&b), g(&c), f(&d), f(&bias), f(&h0)];
    let y = DeviceBuffer::alloc(dims.x_len() * dt.size_bytes()).expect("alloc");
    let h1 = DeviceBuffer::alloc(dims.state_len() * 4).expect("alloc");
    let ws_bytes = heads_workspace_size(&attrs, &dims, dt);
    let ws = DeviceBuffer::alloc(ws_bytes.max(4)).expect("alloc");
    let ptrs = HeadsPtrs {
        x: bufs[0].ptr(),
        dt: bufs[1].ptr(),
        a: bufs[2].ptr(),
        b: bufs[3].ptr(),
        c: bufs[4].ptr(),
        d: bufs[5].ptr(),
        dt_bias: bufs[6].ptr(),
        initial_state: if decode { bufs[7].ptr() } else { 0 },
        y: y.ptr(),
        last_state: if decode { h1.ptr() } else { 0 },
        workspace: if ws_bytes > 0 { ws.ptr() } else { 0 },
        ..Default::default()
    };
    let mut all = bufs;
    all.push(h1);
    all.push(ws);
    Problem {
        launch: HeadsLaunch {
            attrs,
            dims,
            dtype: dt,
            ptrs,
        },
        host: vec![
            ("x", x),
            ("dt", dtv),
            ("A", a),
            ("B", b),
            ("C", c),
            ("D", d),
            ("dt_bias", bias),
        ],
        _bufs: all,
        y,
    }
}

/// Median µs per launch (`common::time_graph`) with this kernel forced.
fn time_graph(l: &HeadsLaunch, kernel: HeadsKernel) -> f64 {
    common::time_graph(&|s| {
        // SAFETY: the launch's pointers are live allocations of the contract's sizes (Problem
        // keeps them); s is the timing stream.
        unsafe { launch_heads_with(l, s, kernel) }.expect("launch")
    })
}

/// Inputs and our y of the accuracy shape, for the mamba_ssm script.
fn dump(dir: &Path, dt: DType) {
    let dims = HeadsDims {
        batch: 1,
        seqlen: 1024,
        heads: 24,
        headdim: 64,
        dstate: 128,
        groups: 1,
    };
    let pr = problem(dt, dims, false, 77);
    // SAFETY: the problem's buffers are live and sized for its dims; null stream.
    unsafe { launch_heads_with(&pr.launch, std::ptr::null_mut(), HeadsKernel::Auto) }
        .expect("launch");
    let n = dims.x_len();
    let y = download(dt, &pr.y, n);
    let tag = s6plugin::cuda::params::dtype_tag(dt);
    let sub = dir.join(tag);
    std::fs::create_dir_all(&sub).expect("dump dir");
    let (b, l, h, p, nn, g) = (1u64, 1024u64, 24u64, 64u64, 128u64, 1u64);
    for (name, v) in &pr.host {
        let shape: Vec<u64> = match *name {
            "x" => vec![b, l, h, p],
            "dt" => vec![b, l, h],
            "B" | "C" => vec![b, l, g, nn],
            _ => vec![h],
        };
        write_npy(&sub.join(format!("{name}.npy")), &shape, v);
    }
    write_npy(&sub.join("y_ours.npy"), &[b, l, h, p], &y);
    println!("dumped {tag} inputs and y to {}", sub.display());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if !s6plugin::cuda::driver_present() {
        println!("SKIP: no CUDA driver");
        return;
    }
    let ctx = match cudarc::driver::CudaContext::new(0) {
        Ok(c) => c,
        Err(e) => {
            println!("SKIP: no usable CUDA device ({e:?})");
            return;
        }
    };
    ctx.bind_to_thread().unwrap();
    let origin = s6plugin::cuda::prepare().expect("module");
    println!(
        "device: {}, module: {origin}",
        ctx.name().unwrap_or_default()
    );
    if let Some(dir) = opt("--dump") {
        for dt in [DType::F16, DType::BF16] {
            dump(Path::new(&dir), dt);
        }
    }
    let mut rows = vec!["impl,dtype,B,H,L,variant,us".to_string()];
    println!(
        "{:>5} {:>2} {:>3} {:>5}  {:>10} {:>10} {:>10}",
        "dtype", "B", "H", "L", "auto us", "fused us", "rec us"
    );
    let only = opt("--only").map(|v| {
        let n: Vec<usize> = v
            .split(',')
            .map(|x| x.parse().expect("--only B,H,L"))
            .collect();
        assert_eq!(n.len(), 3, "--only B,H,L");
        (n[0], n[1], n[2])
    });
    let shapes: Vec<(usize, usize, usize)> = if let Some(one) = only {
        vec![one]
    } else if quick {
        vec![(1, 24, 1024), (1, 24, 1)]
    } else {
        let mut v = Vec::new();
        for h in [24, 80] {
            v.extend([
                (1, h, 1024),
                (1, h, 4096),
                (8, h, 1024),
                (1, h, 128),
                (1, h, 1),
                (8, h, 1),
            ]);
        }
        v
    };
    for dt in [DType::F16, DType::BF16] {
        for &(b, h, l) in &shapes {
            let dims = HeadsDims {
                batch: b,
                seqlen: l,
                heads: h,
                headdim: 64,
                dstate: 128,
                groups: 1,
            };
            let pr = problem(dt, dims, l == 1, 5);
            let auto = time_graph(&pr.launch, HeadsKernel::Auto);
            let fused = if l > 1 {
                time_graph(&pr.launch, HeadsKernel::Fused)
            } else {
                f64::NAN
            };
            let rec = if l <= 128 {
                time_graph(&pr.launch, HeadsKernel::Recurrence)
            } else {
                f64::NAN
            };
            let tag = s6plugin::cuda::params::dtype_tag(dt);
            println!("{tag:>5} {b:>2} {h:>3} {l:>5}  {auto:>10.2} {fused:>10.2} {rec:>10.2}");
            rows.push(format!("ours,{tag},{b},{h},{l},auto,{auto:.3}"));
            rows.push(format!("ours,{tag},{b},{h},{l},fused,{fused:.3}"));
            rows.push(format!("ours,{tag},{b},{h},{l},recurrence,{rec:.3}"));
        }
    }
    if let Some(path) = opt("--csv") {
        let mut f = std::fs::File::create(&path).expect("csv");
        writeln!(f, "{}", rows.join("\n")).expect("csv write");
    }
}
