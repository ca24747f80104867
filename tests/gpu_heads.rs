//! The `S6ScanHeads` CUDA kernels (chunked prefill on tensor cores and recurrence) against the
//! fp64 CPU reference (`s6plugin::reference_heads::scan_heads_f64`) at many shapes: decode
//! (L = 1 with state in and out), L = 0, L not a multiple of the 64-step chunk, long L, B > 1,
//! groups, N = 64/128 (chunked) and odd N/P (recurrence only), every optional input, fp32,
//! fp16 and bf16, each kernel (split, fused, recurrence) forced where it applies and the
//! automatic choice, with the workspace `heads_workspace_size` asks for; the split kernels'
//! chain form where B·H·P/16 ≥ 2 per SM, their parallel form below.
//!
//! Needs a GPU (feature `cuda`); without one it prints a SKIP line and passes, or fails when
//! `S6_GPU_REQUIRE=1`. `S6_GPU_TEST_QUICK=1` runs a subset (for compute-sanitizer).
//!
//! Bounds: y as in `tests/error_metrics` (the rounding of y to its dtype dominates).
//! last_state: 2e-5 from the recurrence (fp32 arithmetic); from the chunked kernel 1e-4, since
//! its chunk products run on tensor cores with 16-bit operands: the weighted inputs enter as a
//! high and a low 16-bit part (≈ 2^-16 relative for bf16), accumulated in fp32.
#![cfg(feature = "cuda")]

const REQUIRE: &str = "S6_GPU_REQUIRE";

mod error_metrics;
mod gpu_util;
mod skip;
use error_metrics::{errors, within, y_bound, STATE_BOUND};
use gpu_util::{download, round_to, upload, Rng};
use s6plugin::contract::DType;
use s6plugin::contract_heads::{HeadsAttrs, HeadsDims};
use s6plugin::cuda::devbuf::DeviceBuffer;
use s6plugin::cuda::heads::chosen_kernel;
use s6plugin::cuda::{
    heads_workspace_size, launch_heads_with, HeadsKernel, HeadsLaunch, HeadsPtrs,
};
use s6plugin::reference_heads::{scan_heads_f64, HeadsInputs};

/// last_state bound of the chunked kernel (see the module docs).
const CHUNK_STATE_BOUND: f64 = 1e-4;

struct Case {
    name: &'static str,
    attrs: HeadsAttrs,
    dims: HeadsDims,
}

fn all_on() -> HeadsAttrs {
    HeadsAttrs {
        dt_softplus: true,
        has_d: true,
        has_z: true,
        has_dt_bias: true,
        has_dt_limit: true,
        has_initial_state: true,
        has_last_state: true,
    }
}

/// Mamba2's prefill configuration: softplus, D, dt_bias, no z (the gate is in the norm).
fn mamba2() -> HeadsAttrs {
    HeadsAttrs {
        dt_softplus: true,
        has_d: true,
        has_dt_bias: true,
        has_last_state: true,
        ..Default::default()
    }
}

fn cases(quick: bool) -> Vec<Case> {
    let mut v = vec![
        Case {
            name: "decode",
            attrs: all_on(),
            dims: HeadsDims::new(2, 1, 4, 64, 128, 1),
        },
        Case {
            name: "prefill all inputs",
            attrs: all_on(),
            dims: HeadsDims::new(1, 200, 4, 64, 128, 2),
        },
        Case {
            name: "mamba2 config",
            attrs: mamba2(),
            dims: HeadsDims::new(2, 130, 6, 32, 64, 3),
        },
        Case {
            name: "one chunk exactly",
            attrs: all_on(),
            dims: HeadsDims::new(1, 64, 2, 16, 128, 1),
        },
        Case {
            name: "odd P and N (recurrence)",
            attrs: all_on(),
            dims: HeadsDims::new(2, 37, 3, 24, 48, 3),
        },
        Case {
            name: "L = 0",
            attrs: all_on(),
            dims: HeadsDims::new(1, 0, 2, 16, 64, 1),
        },
    ];
    if !quick {
        v.extend([
            Case {
                name: "no optional inputs",
                attrs: HeadsAttrs {
                    has_last_state: true,
                    ..Default::default()
                },
                dims: HeadsDims::new(1, 100, 2, 64, 128, 1),
            },
            Case {
                name: "long L",
                attrs: mamba2(),
                dims: HeadsDims::new(1, 2000, 2, 64, 128, 1),
            },
            Case {
                // B·H·P/16 = 264 chains: the split kernels' chain form on up to 132 SMs.
                name: "chain form, B 2, H 33",
                attrs: all_on(),
                dims: HeadsDims::new(2, 130, 33, 64, 128, 1),
            },
            Case {
                name: "P 128, L 300, B 2",
                attrs: all_on(),
                dims: HeadsDims::new(2, 300, 3, 128, 64, 1),
            },
            Case {
                name: "L 65, groups 4",
                attrs: all_on(),
                dims: HeadsDims::new(3, 65, 8, 16, 64, 4),
            },
            Case {
                name: "N 256 (recurrence)",
                attrs: all_on(),
                dims: HeadsDims::new(1, 40, 2, 16, 256, 1),
            },
            Case {
                name: "decode N 16",
                attrs: all_on(),
                dims: HeadsDims::new(4, 1, 3, 8, 16, 1),
            },
        ]);
    }
    v
}

/// (y rel L2, y max, state rel L2, state max, non-finite)
fn run_case(c: &Case, dt: DType, kernel: HeadsKernel, seed: u64) -> (f64, f64, f64, f64, usize) {
    let (a, dm) = (&c.attrs, &c.dims);
    let mut rng = Rng(seed);
    let (xn, dtn, bcn, hn) = (dm.x_len(), dm.dt_len(), dm.bc_len(), dm.state_len());
    let mut x = rng.uniform(-1.0, 1.0, xn);
    // Raw dt as Mamba2 sees it: softplus(dt + dt_bias) with dt_bias = softplus⁻¹(0.001..0.1).
    let mut dtv = if a.dt_softplus {
        rng.uniform(-1.0, 1.0, dtn)
    } else {
        rng.uniform(0.001, 0.2, dtn)
    };
    let amat: Vec<f32> = rng
        .uniform(0.0, 1.0, dm.heads)
        .iter()
        .map(|r| -(1.0 + 15.0 * r))
        .collect();
    let mut bm = rng.uniform(-1.0, 1.0, bcn);
    let mut cm = rng.uniform(-1.0, 1.0, bcn);
    let dv = rng.uniform(-1.0, 1.0, dm.heads);
    let mut z = rng.uniform(-3.0, 3.0, xn);
    let bias: Vec<f32> = rng
        .uniform(0.001, 0.1, dm.heads)
        .iter()
        .map(|v| v.exp_m1().ln())
        .collect();
    let limit = [0.004f32, 0.08];
    let h0 = rng.uniform(-1.0, 1.0, hn);
    for t in [&mut x, &mut dtv, &mut bm, &mut cm, &mut z] {
        round_to(dt, t);
    }
    let inputs = HeadsInputs {
        x: &x,
        dt: &dtv,
        a: &amat,
        b: &bm,
        c: &cm,
        d: a.has_d.then_some(&dv[..]),
        z: a.has_z.then_some(&z[..]),
        dt_bias: a.has_dt_bias.then_some(&bias[..]),
        dt_limit: a.has_dt_limit.then_some(&limit[..]),
        initial_state: a.has_initial_state.then_some(&h0[..]),
    };
    let want = scan_heads_f64(a, dm, &inputs).expect("reference");

    let g_x = upload(dt, &x);
    let g_dt = upload(dt, &dtv);
    let g_a = DeviceBuffer::from_slice(&amat).unwrap();
    let g_b = upload(dt, &bm);
    let g_c = upload(dt, &cm);
    let g_d = DeviceBuffer::from_slice(&dv).unwrap();
    let g_z = upload(dt, &z);
    let g_bias = DeviceBuffer::from_slice(&bias).unwrap();
    let g_lim = DeviceBuffer::from_slice(&limit).unwrap();
    let g_h0 = DeviceBuffer::from_slice(&h0).unwrap();
    let g_y = DeviceBuffer::alloc((xn * dt.size_bytes()).max(4)).unwrap();
    let g_h1 = DeviceBuffer::alloc(hn * 4).unwrap();
    // Poison outputs (NaN in every dtype) so an unwritten element fails.
    g_y.fill_bytes(0xFF).unwrap();
    g_h1.fill_bytes(0xFF).unwrap();
    let ws_bytes = heads_workspace_size(a, dm, dt);
    let g_ws = DeviceBuffer::alloc(ws_bytes.max(4)).unwrap();
    g_ws.fill_bytes(0xFF).unwrap();
    let on = |f: bool, b: &DeviceBuffer| if f { b.ptr() } else { 0 };
    let l = HeadsLaunch {
        attrs: *a,
        dims: *dm,
        dtype: dt,
        ptrs: HeadsPtrs {
            x: g_x.ptr(),
            dt: g_dt.ptr(),
            a: g_a.ptr(),
            b: g_b.ptr(),
            c: g_c.ptr(),
            d: on(a.has_d, &g_d),
            z: on(a.has_z, &g_z),
            dt_bias: on(a.has_dt_bias, &g_bias),
            dt_limit: on(a.has_dt_limit, &g_lim),
            initial_state: on(a.has_initial_state, &g_h0),
            y: g_y.ptr(),
            last_state: on(a.has_last_state, &g_h1),
            workspace: if ws_bytes > 0 { g_ws.ptr() } else { 0 },
        },
    };
    // SAFETY: every pointer is a live allocation of the contract's size for these dims in the
    // current context; the null stream is valid.
    unsafe { launch_heads_with(&l, std::ptr::null_mut(), kernel) }.expect("launch");
    let y = download(dt, &g_y, xn);
    let (ye, ym, ybad) = if xn > 0 {
        errors(&y, &want.y)
    } else {
        (0.0, 0.0, 0)
    };
    let (se, sm, sbad) = if a.has_last_state {
        errors(&g_h1.read::<f32>(hn).unwrap(), &want.last_state)
    } else {
        (0.0, 0.0, 0)
    };
    (ye, ym, se, sm, ybad + sbad)
}

#[test]
fn heads_kernels_match_fp64_reference() {
    let ctx = match gpu_util::context() {
        Ok(c) => c,
        Err(why) => {
            skip::skip(
                REQUIRE,
                &format!("heads_kernels_match_fp64_reference: {why}"),
            );
            return;
        }
    };
    let origin = s6plugin::cuda::prepare().expect("kernel module");
    let kernels = s6plugin::cuda::module::kernels().unwrap();
    let (cc, sms) = (kernels.cc, kernels.sm_count);
    println!(
        "device: {} (sm_{cc}), module: {origin}",
        ctx.name().unwrap_or_default()
    );
    let quick = std::env::var("S6_GPU_TEST_QUICK").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    let mut chunked_runs = 0;
    println!(
        "{:<26} {:>4} {:>10}  {:>9} {:>9} {:>9} {:>9}",
        "case", "dt", "kernel", "y relL2", "y max", "st relL2", "st max"
    );
    for (ci, c) in cases(quick).iter().enumerate() {
        for dt in [DType::F32, DType::F16, DType::BF16] {
            for kernel in [
                HeadsKernel::Auto,
                HeadsKernel::Split,
                HeadsKernel::Fused,
                HeadsKernel::Recurrence,
            ] {
                let ws = heads_workspace_size(&c.attrs, &c.dims, dt);
                let probe = HeadsLaunch {
                    attrs: c.attrs,
                    dims: c.dims,
                    dtype: dt,
                    ptrs: HeadsPtrs {
                        x: 256,
                        b: 256,
                        c: 256,
                        y: 256,
                        workspace: if ws > 0 { 256 } else { 0 },
                        ..Default::default()
                    },
                };
                let auto = chosen_kernel(&probe, cc, sms).expect("a kernel for every case");
                let ran = if kernel == HeadsKernel::Auto {
                    auto
                } else {
                    kernel
                };
                let applies = match kernel {
                    HeadsKernel::Fused => s6plugin::cuda::heads::chunk_applies(&probe, cc).is_ok(),
                    HeadsKernel::Split => s6plugin::cuda::heads::split_applies(&probe, cc).is_ok(),
                    _ => true,
                };
                if !applies {
                    continue;
                }
                if ran != HeadsKernel::Recurrence {
                    chunked_runs += 1;
                }
                let (ye, ym, se, sm, bad) = run_case(c, dt, kernel, 1000 + ci as u64);
                let sb = if ran == HeadsKernel::Recurrence {
                    STATE_BOUND
                } else {
                    CHUNK_STATE_BOUND
                };
                let ok = within((ye, ym, bad), y_bound(dt)) && within((se, sm, 0), sb);
                println!(
                    "{:<26} {:>4} {:>10}  {ye:>9.2e} {ym:>9.2e} {se:>9.2e} {sm:>9.2e}{}",
                    c.name,
                    s6plugin::cuda::params::dtype_tag(dt),
                    format!("{kernel:?}"),
                    if ok { "" } else { "  FAIL" }
                );
                if !ok {
                    failures.push(format!("{} {dt:?} {kernel:?}", c.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "outside the bounds: {failures:?}");
    if cc >= 80 {
        assert!(chunked_runs > 0, "the chunked kernel never ran");
    }
}

#[test]
fn heads_launch_refuses_null_pointers_and_bad_groups() {
    // Kept alive for the test: the launches below run in its context.
    let _ctx = match gpu_util::context() {
        Ok(c) => c,
        Err(why) => {
            skip::skip(
                REQUIRE,
                &format!("heads_launch_refuses_null_pointers_and_bad_groups: {why}"),
            );
            return;
        }
    };
    let buf = DeviceBuffer::alloc(1 << 20).unwrap();
    let p = buf.ptr();
    let full = HeadsPtrs {
        x: p,
        dt: p,
        a: p,
        b: p,
        c: p,
        d: p,
        z: p,
        dt_bias: p,
        dt_limit: p,
        initial_state: p,
        y: p,
        last_state: p,
        workspace: 0,
    };
    let mk = |ptrs, dims| HeadsLaunch {
        attrs: all_on(),
        dims,
        dtype: DType::F16,
        ptrs,
    };
    for (field, ptrs) in [
        (
            "dt_limit",
            HeadsPtrs {
                dt_limit: 0,
                ..full
            },
        ),
        (
            "initial_state",
            HeadsPtrs {
                initial_state: 0,
                ..full
            },
        ),
        ("x", HeadsPtrs { x: 0, ..full }),
    ] {
        // SAFETY: the launch is refused before anything is enqueued.
        let r = unsafe {
            launch_heads_with(
                &mk(ptrs, HeadsDims::new(1, 4, 2, 16, 64, 1)),
                std::ptr::null_mut(),
                HeadsKernel::Auto,
            )
        };
        let msg = format!("{:?}", r.expect_err("a null pointer must be refused"));
        assert!(msg.contains(field), "{msg}");
    }
    // SAFETY: refused before anything is enqueued.
    let r = unsafe {
        launch_heads_with(
            &mk(full, HeadsDims::new(1, 4, 3, 16, 64, 2)),
            std::ptr::null_mut(),
            HeadsKernel::Auto,
        )
    };
    assert!(format!("{:?}", r.unwrap_err()).contains("groups"));
}
