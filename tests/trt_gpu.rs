//! The plugin on a GPU, driven in TensorRT's role by `tests/cpp/gpu_harness.cpp` through both
//! plugin interfaces (IPluginV3 and IPluginV2DynamicExt: every builder- and run-time method in
//! TensorRT's order, `enqueue` on a real stream at two shapes of one dynamic profile,
//! fp32/fp16/bf16), for both ops (`S6Scan`, `S6ScanHeads`); its outputs are checked here against
//! the fp64 CPU references (`reference`, `reference_heads`) on the very inputs the GPU saw.
//! (`S6ScanHeads` passes once its kernels exist: until then its enqueue refuses, logged, and the
//! harness reports those runs as failures.)
//!
//! Without a GPU (no libcuda or no device) the harness says so and this test prints a visible
//! skip line and passes; `S6_GPU_REQUIRE=1` makes that a failure. `S6_GPU_HARNESS` = a prebuilt harness binary (the device machine has no TensorRT
//! headers); otherwise it is compiled here. `S6_GPU_OUT` = where the runs' tensors go. `scripts/plugin_gpu_harness.sh` runs it on the
//! device machine.
//!
//! Bounds (max |gpu − ref| / max |ref| and relative L2, as in tests/gpu_kernels.rs): y fp32
//! 2e-5, fp16 1e-3, bf16 8e-3 (the rounding of y to the dtype is inside them); last_state 2e-5.
#![cfg(feature = "trt")]

mod error_metrics;
mod skip;
mod trt_common;
use error_metrics::errors;

use std::path::{Path, PathBuf};
use std::process::Command;

use s6plugin::contract::{DType, S6Attrs};
use s6plugin::contract_heads::HeadsAttrs;
use s6plugin::reference::{scan_packed_f64, ScanOutputs};
use s6plugin::reference_heads::scan_heads_packed;

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The op of a run and its attributes.
enum Attrs {
    Scan(S6Attrs),
    Heads(HeadsAttrs),
}

struct Run {
    stem: PathBuf,
    attrs: Attrs,
    dtype: DType,
    inputs: Vec<Vec<i64>>,
    outputs: Vec<Vec<i64>>,
}

fn parse_run(meta: &Path) -> Run {
    let text = std::fs::read_to_string(meta).unwrap();
    let mut run = Run {
        stem: meta.with_extension(""),
        attrs: Attrs::Scan(S6Attrs::default()),
        dtype: DType::F32,
        inputs: vec![],
        outputs: vec![],
    };
    for line in text.lines() {
        let mut it = line.split_whitespace();
        match it.next() {
            Some("op") => {
                run.attrs = match it.next() {
                    Some("S6Scan") => Attrs::Scan(S6Attrs::default()),
                    Some("S6ScanHeads") => Attrs::Heads(HeadsAttrs::default()),
                    other => panic!("op {other:?}"),
                }
            }
            Some("attrs") => {
                let values: Vec<i64> = it.map(|v| v.parse().unwrap()).collect();
                match &mut run.attrs {
                    Attrs::Scan(a) => {
                        assert_eq!(values.len(), 8);
                        for (name, v) in S6Attrs::FIELD_NAMES.iter().zip(values) {
                            a.set(name, v).unwrap();
                        }
                    }
                    Attrs::Heads(a) => {
                        *a = HeadsAttrs::from_fields(
                            HeadsAttrs::FIELD_NAMES.iter().copied().zip(values),
                        )
                        .unwrap();
                    }
                }
            }
            Some("dtype") => {
                run.dtype = match it.next() {
                    Some("f32") => DType::F32,
                    Some("f16") => DType::F16,
                    Some("bf16") => DType::BF16,
                    other => panic!("dtype {other:?}"),
                }
            }
            Some("input") => {
                it.next();
                run.inputs.push(it.map(|x| x.parse().unwrap()).collect());
            }
            Some("output") => {
                it.next();
                run.outputs.push(it.map(|x| x.parse().unwrap()).collect());
            }
            _ => {}
        }
    }
    run
}

fn file(stem: &Path, suffix: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[test]
fn plugin_in_tensorrt_role_matches_the_reference_on_the_gpu() {
    let harness = match std::env::var_os("S6_GPU_HARNESS") {
        Some(p) => PathBuf::from(p),
        None => trt_common::compile_driver("gpu_harness.cpp", "gpu_harness"),
    };
    let plugin = trt_common::plugin_library();
    let out_dir = std::env::var_os("S6_GPU_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("gpu_harness_out"));
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = Command::new(&harness)
        .arg(&plugin)
        .arg(&out_dir)
        .output()
        .expect("run gpu_harness");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    if out.status.code() == Some(77) {
        trt_common::skip(
            "S6_GPU_REQUIRE",
            &format!("no GPU (gpu_harness: {})", text.trim()),
        );
        return;
    }
    // Every run the harness wrote is compared even when one of its checks failed, so that the
    // report shows all the numbers; its failure fails the test at the end.
    let harness_failed = (!out.status.success()).then(|| {
        format!(
            "gpu_harness failed ({:?}): see its FAIL lines above",
            out.status
        )
    });

    let mut metas: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    metas.sort();
    // 12 S6Scan and 6 S6ScanHeads runs per interface; the V2 ones exist where the build has V2
    // (8.x and 10.x headers).
    let per = |prefix: &str| {
        metas
            .iter()
            .filter(|m| m.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .count()
    };
    assert!(
        per("v3_") >= 12,
        "expected 12 IPluginV3 runs, got {}",
        per("v3_")
    );
    assert!(
        per("v3_heads_") >= 6,
        "expected 6 IPluginV3 S6ScanHeads runs, got {}",
        per("v3_heads_")
    );
    if s6plugin::trt::registration::interfaces() & 1 != 0 {
        assert!(
            per("v2_") >= 12,
            "expected 12 IPluginV2DynamicExt runs, got {}",
            per("v2_")
        );
    }
    let mut failures: Vec<String> = harness_failed.into_iter().collect();
    for meta in &metas {
        let run = parse_run(meta);
        let data: Vec<Vec<f32>> = (0..run.inputs.len())
            .map(|i| read_f32(&file(&run.stem, &format!(".in{i}.f32"))))
            .collect();
        let packed: Vec<&[f32]> = data.iter().map(|v| v.as_slice()).collect();
        let shapes: Vec<&[i64]> = run.inputs.iter().map(|v| v.as_slice()).collect();
        // The problem sizes for the report line, and the fp64 reference.
        let (sizes, has_last_state, want): (String, bool, ScanOutputs<f64>) = match &run.attrs {
            Attrs::Scan(a) => {
                let (d, want) = scan_packed_f64(a, &packed, &shapes).unwrap();
                let sizes = format!(
                    "B={} D={} L={} N={} G={}",
                    d.batch, d.dim, d.seqlen, d.dstate, d.groups
                );
                (sizes, a.has_last_state, want)
            }
            Attrs::Heads(a) => {
                let (d, want) = scan_heads_packed::<f64>(a, &packed, &shapes).unwrap();
                let sizes = format!(
                    "heads B={} L={} H={} P={} N={} G={}",
                    d.batch, d.seqlen, d.heads, d.headdim, d.dstate, d.groups
                );
                (sizes, a.has_last_state, want)
            }
        };
        let y = read_f32(&file(&run.stem, ".out0.f32"));
        let y_bound = match run.dtype {
            DType::F32 => 2e-5,
            DType::F16 => 1e-3,
            DType::BF16 => 8e-3,
        };
        let mut checks = vec![("y", errors(&y, &want.y), y_bound)];
        if has_last_state {
            let s = read_f32(&file(&run.stem, ".out1.f32"));
            checks.push(("last_state", errors(&s, &want.last_state), 2e-5));
        }
        for (name, (l2, maxrel, bad), bound) in checks {
            let line = format!(
                "{} {} {sizes}: {name} rel-L2 {l2:.2e} max-abs/max-ref {maxrel:.2e} (bound {bound:.0e}){}",
                meta.file_stem().unwrap().to_string_lossy(),
                run.dtype,
                if bad > 0 { format!(", {bad} non-finite") } else { String::new() }
            );
            println!("{line}");
            if bad > 0 || l2 > bound || maxrel > bound {
                failures.push(line);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "outside the bounds:\n{}",
        failures.join("\n")
    );
}
