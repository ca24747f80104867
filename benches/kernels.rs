//! Kernel-only timing of the S6Scan CUDA kernels by CUDA-graph replay (`--features cuda`).
//!
//! `cargo bench -p s6plugin --features cuda --bench kernels -- [--quick] [--csv FILE]
//!  [--accuracy] [--dump DIR] [--accuracy-only] [--only dtype,B,D,L]
//!  [--tune npl=P,chunks=K,chan=V,pdl=0|1,warp=0|1]`
//!
//! For each shape: a graph of `REPS` back-to-back launches is captured on a fresh stream,
//! replayed `WARMUP` times, then timed `TIMED` times with events; the reported time is the
//! median replay over `REPS`. Inputs are random (never zeros); the configuration is Mamba's
//! (delta_bias + softplus, D skip, z gate; the L = 1 decode step also carries the state in and
//! out). Prefill shapes are timed with the automatic kernel choice and with each states-per-lane
//! variant. The exp limit is B·D·L·N exponentials over the SFU rate (16 per SM per clock at
//! the device's maximum clock). `scripts/bench_mamba.py` measures mamba_ssm the same way;
//! `scripts/bench_table.py` joins both CSVs into `docs/benchmarks.md`.

use std::io::Write;

use s6plugin::contract::{DType, S6Attrs, ScanDims};
use s6plugin::cuda::devbuf::DeviceBuffer;
use s6plugin::cuda::{launch_with, workspace_size, ScanLaunch, ScanPtrs, Tune};

mod common;
#[path = "../tests/gpu_util/mod.rs"]
mod gpu_util;
use common::Rng;
use cudarc::driver::sys;
use gpu_util::{download, round_to as round, upload};

struct Problem {
    launch: ScanLaunch,
    _bufs: Vec<DeviceBuffer>,
    host: Option<HostInputs>,
}

struct HostInputs {
    u: Vec<f32>,
    delta: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    d: Vec<f32>,
    z: Vec<f32>,
    bias: Vec<f32>,
    h0: Vec<f32>,
}

fn problem(dt: DType, dims: ScanDims, keep_host: bool, seed: u64) -> Problem {
    let decode = dims.seqlen == 1;
    let attrs = S6Attrs {
        delta_softplus: true,
        has_d: true,
        has_z: true,
        has_delta_bias: true,
        has_initial_state: decode,
        has_last_state: decode,
        channels_last: false,
        bc_channels_last: false,
    };
    let mut r = Rng(seed | 1);
    let (act, bc, st) = (dims.act_len(), dims.bc_len(), dims.state_len());
    let mut h = HostInputs {
        u: r.vec(-1.0, 1.0, act),
        delta: r.vec(-1.0, 1.0, act),
        a: (0..dims.dim * dims.dstate)
            .map(|i| -((i % dims.dstate) as f32 + 0.5 + r.next()))
            .collect(),
        b: r.vec(-1.0, 1.0, bc),
        c: r.vec(-1.0, 1.0, bc),
        d: r.vec(-1.0, 1.0, dims.dim),
        z: r.vec(-3.0, 3.0, act),
        bias: r.vec(-6.0, -2.0, dims.dim),
        h0: r.vec(-1.0, 1.0, st),
    };
    for v in [&mut h.u, &mut h.delta, &mut h.b, &mut h.c, &mut h.z] {
        round(dt, v);
    }
    let bufs = vec![
        upload(dt, &h.u),
        upload(dt, &h.delta),
        DeviceBuffer::from_slice(&h.a).unwrap(),
        upload(dt, &h.b),
        upload(dt, &h.c),
        DeviceBuffer::from_slice(&h.d).unwrap(),
        upload(dt, &h.z),
        DeviceBuffer::from_slice(&h.bias).unwrap(),
        DeviceBuffer::from_slice(&h.h0).unwrap(),
        DeviceBuffer::alloc(act * dt.size_bytes()).unwrap(),
        DeviceBuffer::alloc(st * 4).unwrap(),
        DeviceBuffer::alloc(workspace_size(&attrs, &dims, dt).max(4)).unwrap(),
    ];
    let p = |i: usize| bufs[i].ptr();
    let launch = ScanLaunch {
        attrs,
        dims,
        dtype: dt,
        ptrs: ScanPtrs {
            u: p(0),
            delta: p(1),
            a: p(2),
            b: p(3),
            c: p(4),
            d: p(5),
            z: p(6),
            delta_bias: p(7),
            initial_state: if decode { p(8) } else { 0 },
            y: p(9),
            last_state: if decode { p(10) } else { 0 },
            workspace: if workspace_size(&attrs, &dims, dt) > 0 {
                p(11)
            } else {
                0
            },
        },
    };
    Problem {
        launch,
        _bufs: bufs,
        host: keep_host.then_some(h),
    }
}

/// Median µs per launch (`common::time_graph`) with this kernel choice.
fn time_graph(l: &ScanLaunch, tune: Tune) -> f64 {
    common::time_graph(&|s| {
        // SAFETY: the launch's pointers are live allocations of the contract's sizes (Problem
        // keeps them); s is the timing stream.
        unsafe { launch_with(l, s, tune) }.expect("launch")
    })
}

fn bytes_moved(l: &ScanLaunch) -> f64 {
    let d = &l.dims;
    let es = l.dtype.size_bytes() as f64;
    let act = d.act_len() as f64;
    let mut b = act * es * 4.0 + d.bc_len() as f64 * es * 2.0 + (d.dim * d.dstate * 4) as f64;
    if l.attrs.has_initial_state {
        b += d.state_len() as f64 * 4.0;
    }
    if l.attrs.has_last_state {
        b += d.state_len() as f64 * 4.0;
    }
    b
}

/// y relative L2 error against the fp64 reference at B1 D`dim` L1024 (D 1536: the chunked
/// path; D 5120: the warp-local one); with `dump`, the inputs (already rounded to `dt`) and our y
/// go to `dump/<dtype>_d<D>/` as fp32 .npy for `scripts/bench_mamba.py --dump`, which measures
/// mamba_ssm on the very same inputs.
fn accuracy(dt: DType, dim: usize, dump: Option<&std::path::Path>) {
    use s6plugin::reference::{scan_f64, ScanInputs};
    let dims = ScanDims {
        batch: 1,
        dim,
        seqlen: 1024,
        dstate: 16,
        groups: 1,
    };
    let pr = problem(dt, dims, true, 77);
    let h = pr.host.as_ref().unwrap();
    // SAFETY: pointers from `problem`, null stream.
    unsafe { launch_with(&pr.launch, std::ptr::null_mut(), Tune::default()) }.expect("launch");
    let y = download(dt, &pr._bufs[9], dims.act_len());
    let x = ScanInputs {
        u: &h.u,
        delta: &h.delta,
        a: &h.a,
        b: &h.b,
        c: &h.c,
        d: Some(&h.d),
        z: Some(&h.z),
        delta_bias: Some(&h.bias),
        initial_state: None,
    };
    let want = scan_f64(&pr.launch.attrs, &dims, &x).unwrap();
    let (mut num, mut den) = (0.0, 0.0);
    for (&g, &w) in y.iter().zip(&want.y) {
        num += (g as f64 - w) * (g as f64 - w);
        den += w * w;
    }
    println!(
        "accuracy {dt} B1 D{dim} L1024 N16 (mamba config): y rel L2 vs fp64 = {:.3e}",
        (num / den).sqrt()
    );
    if let Some(dir) = dump {
        let tag = s6plugin::cuda::params::dtype_tag(dt);
        let sub = dir.join(format!("{tag}_d{dim}"));
        std::fs::create_dir_all(&sub).expect("dump dir");
        let (d, l, n) = (dim as u64, 1024u64, 16u64);
        for (name, v, shape) in [
            ("u", &h.u, vec![1, d, l]),
            ("delta", &h.delta, vec![1, d, l]),
            ("A", &h.a, vec![d, n]),
            ("B", &h.b, vec![1, n, l]),
            ("C", &h.c, vec![1, n, l]),
            ("D", &h.d, vec![d]),
            ("z", &h.z, vec![1, d, l]),
            ("delta_bias", &h.bias, vec![d]),
            ("y_ours", &y, vec![1, d, l]),
        ] {
            common::write_npy(&sub.join(format!("{name}.npy")), &shape, v);
        }
        println!("dumped {tag} D{dim} inputs and y to {}", sub.display());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let csv = args
        .iter()
        .position(|a| a == "--csv")
        .and_then(|i| args.get(i + 1).cloned());
    if !s6plugin::cuda::driver_present() {
        println!("SKIP kernels bench: libcuda not found");
        return;
    }
    let ctx = match cudarc::driver::CudaContext::new(0) {
        Ok(c) => c,
        Err(e) => {
            println!("SKIP kernels bench: no CUDA device ({e:?})");
            return;
        }
    };
    ctx.bind_to_thread().unwrap();
    let origin = s6plugin::cuda::prepare().expect("module");
    let k = s6plugin::cuda::module::kernels().unwrap();
    let clock_khz = ctx
        .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_CLOCK_RATE)
        .unwrap() as f64;
    let name = ctx.name().unwrap_or_default();
    println!(
        "device: {name}, {} SMs, {:.0} MHz max; module: {origin}",
        k.sm_count,
        clock_khz / 1000.0
    );
    let dump = args
        .iter()
        .position(|a| a == "--dump")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);
    if args.iter().any(|a| a == "--accuracy") || dump.is_some() {
        for dim in [1536, 5120] {
            for dt in [DType::F16, DType::F32, DType::BF16] {
                accuracy(dt, dim, dump.as_deref());
            }
        }
    }
    if args.iter().any(|a| a == "--accuracy-only") {
        return;
    }
    let exp_rate = k.sm_count as f64 * 16.0 * clock_khz * 1000.0; // exps per second

    let mut out = String::from("impl,dtype,B,D,L,N,variant,us,gbps,exp_limit_us\n");
    println!(
        "{:>5} {:>2} {:>5} {:>5}  {:>9} {:>9} {:>7} {:>9}  variants (npl<p>: one pass, k<K>: K chunks; us)",
        "dtype", "B", "D", "L", "us(auto)", "us(best)", "GB/s", "exp-lim"
    );
    // `--only dtype,B,D,L` times one shape (for profilers).
    let only: Option<(String, usize, usize, usize)> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            let f: Vec<&str> = v.split(',').collect();
            assert_eq!(f.len(), 4, "--only dtype,B,D,L");
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        });
    // `--tune npl=2,chunks=1,chan=5,pdl=0` pins the kernel choice of every timed shape (with
    // `--only`: the kernel a profiler sees).
    let pinned = args
        .iter()
        .position(|a| a == "--tune")
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            let mut t = Tune::default();
            for kv in v.split(',') {
                let (k, x) = kv.split_once('=').expect("--tune key=value,...");
                let x: u32 = x.parse().expect("--tune values are numbers");
                match k {
                    "npl" => t.npl = Some(x),
                    "chunks" => t.chunks = Some(x),
                    "sum_npl" => t.sum_npl = Some(x),
                    "chan" => t.chan = Some(x),
                    "pdl" => t.pdl = Some(x != 0),
                    "warp" => t.warp = Some(x != 0),
                    _ => panic!("--tune: unknown key {k}"),
                }
            }
            t
        })
        .unwrap_or_default();
    let dtypes = [DType::F16, DType::F32];
    let bs: &[usize] = if quick { &[1] } else { &[1, 8] };
    let ds: &[usize] = if quick {
        &[1536, 5120]
    } else {
        &[1536, 4096, 5120]
    };
    let ls: &[usize] = if quick {
        &[1, 1024]
    } else {
        &[1, 128, 1024, 4096]
    };
    let mut seed = 1;
    // dtype innermost: both dtypes of a shape run back to back, under the same clocks.
    for &b in bs {
        for &d in ds {
            for &l in ls {
                for dt in dtypes {
                    seed += 1;
                    if let Some((odt, ob, od, ol)) = &only {
                        let tag = s6plugin::cuda::params::dtype_tag(dt);
                        if (tag, b, d, l) != (odt.as_str(), *ob, *od, *ol) {
                            continue;
                        }
                    }
                    let dims = ScanDims {
                        batch: b,
                        dim: d,
                        seqlen: l,
                        dstate: 16,
                        groups: 1,
                    };
                    let pr = problem(dt, dims, false, seed);
                    let auto = time_graph(&pr.launch, pinned);
                    // Variants: one pass with 1, 2, 4 states per lane; where the sizes may be
                    // chunked, K chunks with the automatic and with 4 states per lane.
                    let mut variants = Vec::new();
                    if l == 1 && only.is_none() {
                        // Decode with 64-bit offsets (npl4), 8 and 16 states per lane (2 and 1 lanes per channel).
                        for npl in [4, 8, 16] {
                            let t = Tune {
                                npl: Some(npl),
                                ..Default::default()
                            };
                            variants.push((format!("npl{npl}"), time_graph(&pr.launch, t)));
                        }
                        // Without programmatic dependent launch, and the launch floor (an empty
                        // kernel on the decode grid) with and without it.
                        let t = Tune {
                            pdl: Some(false),
                            ..Default::default()
                        };
                        variants.push(("nopdl".into(), time_graph(&pr.launch, t)));
                        let grid = ((d * 4).div_ceil(128) as u32, b as u32);
                        for (name, pdl) in [("floor", true), ("floornopdl", false)] {
                            let f = common::time_graph(&|s| {
                                // SAFETY: s is the timing stream of the current context.
                                unsafe { s6plugin::cuda::launch_noop(grid, s, pdl) }.expect("noop")
                            });
                            variants.push((name.into(), f));
                        }
                    }
                    if l > 1 && only.is_none() {
                        // One pass: block-staged with 1, 2, 4 states per lane, warp-local.
                        for npl in [1, 2, 4] {
                            let t = Tune {
                                npl: Some(npl),
                                chunks: Some(1),
                                chan: Some(0),
                                warp: Some(false),
                                ..Default::default()
                            };
                            variants.push((format!("npl{npl}"), time_graph(&pr.launch, t)));
                        }
                        let t = Tune {
                            chunks: Some(1),
                            chan: Some(0),
                            warp: Some(true),
                            ..Default::default()
                        };
                        variants.push(("warp".into(), time_graph(&pr.launch, t)));
                        // Channel per lane (chan, chanr: 1, 2), automatic chunks and forced.
                        let mut chans = vec![(1, Some(1)), (2, Some(1)), (3, Some(1))];
                        if pr.launch.ptrs.workspace != 0 {
                            chans.extend([(1, Some(8)), (3, Some(4)), (3, Some(8)), (3, Some(16))]);
                        }
                        for (v, k) in chans {
                            let t = Tune {
                                chunks: k,
                                chan: Some(v),
                                ..Default::default()
                            };
                            let tag = s6plugin::cuda::params::CHAN_VARIANTS[v as usize - 1].0;
                            let name = match k {
                                Some(k) => format!("{tag}k{k}"),
                                None => tag.to_string(),
                            };
                            variants.push((name, time_graph(&pr.launch, t)));
                        }
                        if pr.launch.ptrs.workspace != 0 {
                            // (states per lane: both passes, summary pass; chunks); the automatic
                            // shape of a chunked launch has the most states per lane; `warpk8`
                            // both passes warp-local.
                            for (npl, sum_npl, k, warp) in [
                                (None, None, 4, false),
                                (None, None, 8, false),
                                (None, None, 16, false),
                                (Some(1), None, 8, false),
                                (Some(2), None, 8, false),
                                (Some(4), None, 8, false),
                                (None, None, 8, true),
                            ] {
                                let t = Tune {
                                    npl,
                                    chunks: Some(k),
                                    sum_npl,
                                    chan: Some(0),
                                    warp: Some(warp),
                                    ..Default::default()
                                };
                                let name = match (npl, sum_npl, warp) {
                                    (_, _, true) => format!("warpk{k}"),
                                    (Some(p), _, _) => format!("npl{p}k{k}"),
                                    (None, Some(p), _) => format!("k{k}s{p}"),
                                    (None, None, _) => format!("k{k}"),
                                };
                                variants.push((name, time_graph(&pr.launch, t)));
                            }
                        }
                    }
                    let best = variants.iter().map(|v| v.1).fold(auto, f64::min);
                    let gbps = bytes_moved(&pr.launch) / (auto * 1e-6) / 1e9;
                    let exp_lim = (b * d * l * 16) as f64 / exp_rate * 1e6;
                    let vtxt: Vec<String> = variants
                        .iter()
                        .map(|(p, t)| format!("{p}:{t:.1}"))
                        .collect();
                    println!(
                        "{:>5} {:>2} {:>5} {:>5}  {:>9.2} {:>9.2} {:>7.0} {:>9.2}  {}",
                        s6plugin::cuda::params::dtype_tag(dt),
                        b,
                        d,
                        l,
                        auto,
                        best,
                        gbps,
                        exp_lim,
                        vtxt.join(" ")
                    );
                    let tag = s6plugin::cuda::params::dtype_tag(dt);
                    out += &format!(
                        "s6plugin,{tag},{b},{d},{l},16,auto,{auto:.3},{gbps:.1},{exp_lim:.3}\n"
                    );
                    for (p, t) in &variants {
                        out += &format!("s6plugin,{tag},{b},{d},{l},16,{p},{t:.3},,{exp_lim:.3}\n");
                    }
                }
            }
        }
    }
    if let Some(path) = csv {
        let mut f = std::fs::File::create(&path).expect("csv");
        f.write_all(out.as_bytes()).unwrap();
        println!("wrote {path}");
    }
}
