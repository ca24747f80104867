//! onnx-patch end to end: verification and report on a bundled export, external data, Mamba2
//! (patched and verified, or refused), and the refusals (not ONNX, not Mamba, unprovable region,
//! writing over the input, escaping external-data locations).

#[path = "../../onnx/tests/common/mod.rs"]
mod common;

use s6_onnx::model;
use s6_onnx::proto::{ModelProto, NodeProto};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `fixtures/models/<name>/model.onnx`.
fn fixture(name: &str) -> PathBuf {
    common::fixture_dir("models", name).join("model.onnx")
}

fn patch(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onnx-patch"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn verifies_and_reports() {
    let d = common::tmpdir("onnx-patch-test", "verify");
    let out = d.join("patched.onnx");
    let report = d.join("report.json");
    let o = patch(&[
        fixture("hf_ts_L12").as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--verify".as_ref(),
        "--report".as_ref(),
        report.as_os_str(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("2 layer(s) patched, nodes 469 -> "), "{err}");
    assert!(err.contains("verify L=12: logits"), "{err}");
    let json = std::fs::read_to_string(&report).unwrap();
    assert!(json.contains("\"layers_patched\": 2"), "{json}");
    assert!(json.contains("\"nodes_before\": 469"), "{json}");
    assert!(json.contains("\"ok\": true"), "{json}");
    let m = model::load(&out).unwrap();
    let scans = m
        .graph
        .node
        .iter()
        .filter(|n| n.op_type == "S6Scan" && n.domain == "s6plugin")
        .count();
    assert_eq!(scans, 2);
}

/// Vision exports (fixtures/vision/): `--verify` checks each scan node on its own — SS2D's one
/// grouped node, Vim's two — and skips the second length, which the image size fixes.
#[test]
fn verifies_each_scan_of_the_vision_exports() {
    let d = common::tmpdir("onnx-patch-test", "vision");
    for (name, scans) in [("ss2d_3x5", 1), ("vim_6x10", 2)] {
        let out = d.join(format!("{name}.onnx"));
        let report = d.join(format!("{name}.json"));
        let input = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/vision")
            .join(name)
            .join("model.onnx");
        let o = patch(&[
            input.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "--verify".as_ref(),
            "--report".as_ref(),
            report.as_os_str(),
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{err}");
        assert!(err.contains(&format!("{scans} layer(s) patched")), "{err}");
        let lines = err
            .lines()
            .filter(|l| l.starts_with("verify scan '"))
            .count();
        assert_eq!(lines, scans, "{err}");
        assert!(err.contains("no input has a sequence axis"), "{err}");
        let json = std::fs::read_to_string(&report).unwrap();
        assert_eq!(json.matches("\"scan\": ").count(), scans, "{json}");
        assert!(!json.contains("\"ok\": false"), "{json}");
    }
}

#[test]
fn verification_above_tolerance_fails_and_writes_nothing() {
    let d = common::tmpdir("onnx-patch-test", "tol");
    let out = d.join("patched.onnx");
    let o = patch(&[
        fixture("hf_dynamo_L7").as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--verify".as_ref(),
        "--tolerance".as_ref(),
        "0".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("ABOVE TOLERANCE"));
    assert!(!out.exists());
}

#[test]
fn refuses_non_onnx() {
    let d = common::tmpdir("onnx-patch-test", "garbage");
    let input = d.join("garbage.onnx");
    std::fs::write(&input, b"\xff\xfe this is not protobuf \x00\x01\x02").unwrap();
    let o = patch(&[
        input.as_os_str(),
        "-o".as_ref(),
        d.join("o.onnx").as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not an ONNX model"), "{}", stderr(&o));
    assert!(!d.join("o.onnx").exists());
}

#[test]
fn refuses_a_model_without_a_scan() {
    let d = common::tmpdir("onnx-patch-test", "notmamba");
    let mut m = model::load(&fixture("hf_ts_L7")).unwrap();
    // Keep only the embedding lookup: a valid model with no scan.
    let g = m.graph.as_mut().unwrap();
    let first: NodeProto = g.node[0].clone();
    g.node = vec![first.clone()];
    g.output[0].name = first.output[0].clone();
    let input = d.join("embed.onnx");
    model::save(&m, &input).unwrap();
    let o = patch(&[
        input.as_os_str(),
        "-o".as_ref(),
        d.join("o.onnx").as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a Mamba model"), "{}", stderr(&o));
}

#[test]
fn names_the_node_it_cannot_prove() {
    let d = common::tmpdir("onnx-patch-test", "unprovable");
    let mut m: ModelProto = model::load(&fixture("hf_ts_L7")).unwrap();
    // Stack the steps out of order: no longer the scan's output.
    let g = m.graph.as_mut().unwrap();
    let concat = g.node.iter_mut().find(|n| n.op_type == "Concat").unwrap();
    concat.input.swap(2, 3);
    let input = d.join("swapped.onnx");
    model::save(&m, &input).unwrap();
    let o = patch(&[
        input.as_os_str(),
        "-o".as_ref(),
        d.join("o.onnx").as_os_str(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot prove node '/inner/backbone/layers.0/mixer/"),
        "{err}"
    );
    assert!(err.contains("step 2"), "{err}");
}

#[test]
fn refuses_mamba2_clearly() {
    let d = common::tmpdir("onnx-patch-test", "mamba2");
    let o = patch(&[
        fixture("mamba2_ts_L8").as_os_str(),
        "-o".as_ref(),
        d.join("o.onnx").as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not supported yet: Mamba2"),
        "{}",
        stderr(&o)
    );
}

/// transformers' Mamba2 and the minimal SSD formulation of fixtures/mamba2 (dynamo, dynamic
/// length): one S6ScanHeads per layer, verified.
#[test]
fn patches_mamba2_and_verifies() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/mamba2");
    let d = common::tmpdir("onnx-patch-test", "mamba2-ok");
    let out = d.join("patched.onnx");
    let o = patch(&[
        dir.join("hf2_dynamo_dynseq_L12/model.onnx").as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--verify".as_ref(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("2 layer(s) patched, nodes 243 -> 97"), "{err}");
    assert!(err.contains("ok") && !err.contains("FAIL"), "{err}");
    let m = model::load(&out).unwrap();
    let heads = m
        .graph
        .node
        .iter()
        .filter(|n| n.op_type == "S6ScanHeads" && n.domain == "s6plugin")
        .count();
    assert_eq!(heads, 2);
    // The minimal SSD formulation: its own rule, verified too.
    let minimal = d.join("minimal.onnx");
    let o = patch(&[
        dir.join("ssd_minimal_dynamo_dynseq_L12/model.onnx")
            .as_os_str(),
        "-o".as_ref(),
        minimal.as_os_str(),
        "--verify".as_ref(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("2 layer(s) patched, nodes 111 -> 20"), "{err}");
    assert!(err.contains("ok") && !err.contains("FAIL"), "{err}");
    let m = model::load(&minimal).unwrap();
    let heads = m
        .graph
        .node
        .iter()
        .filter(|n| n.op_type == "S6ScanHeads" && n.domain == "s6plugin")
        .count();
    assert_eq!(heads, 2);
    assert!(
        !m.graph.node.iter().any(|n| n.op_type == "Pad"),
        "chunk padding left"
    );
}

#[test]
fn never_writes_over_the_input() {
    let d = common::tmpdir("onnx-patch-test", "same");
    let sub = d.join("m");
    std::fs::create_dir_all(&sub).unwrap();
    let input = sub.join("model.onnx");
    std::fs::copy(fixture("hf_ts_L7"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let link = d.join("link.onnx");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let spellings = [input.clone(), d.join("m/../m/./model.onnx"), link.clone()];
    for out in spellings {
        let o = patch(&[input.as_os_str(), "-o".as_ref(), out.as_os_str()]);
        assert_eq!(o.status.code(), Some(2), "{}", out.display());
        assert!(
            stderr(&o).contains("refusing to write over the input"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(std::fs::read(&input).unwrap(), before);
    assert_eq!(
        std::fs::read_dir(&sub).unwrap().count(),
        1,
        "stray files left"
    );
}

#[test]
fn missing_output_folder_leaves_nothing() {
    let d = common::tmpdir("onnx-patch-test", "nodir");
    let out = d.join("absent/o.onnx");
    let o = patch(&[
        fixture("hf_ts_L7").as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
}

#[test]
fn external_data_in_and_out() {
    let d = common::tmpdir("onnx-patch-test", "external");
    let src = fixture("hf_dynamo_L7");
    let m = model::load(&src).unwrap();
    let input = d.join("ext.onnx");
    let data = model::save_external_data(&m, &input, src.parent().unwrap()).unwrap();
    assert!(data.exists());
    let reloaded = model::load(&input).unwrap();
    assert!(reloaded.graph.initializer.iter().any(model::is_external));

    let out_dir = d.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("patched.onnx");
    let o = patch(&[
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--verify".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let patched = model::load(&out).unwrap();
    assert!(patched.graph.initializer.iter().any(model::is_external));
    assert!(out_dir.join("patched.onnx.data").exists());
    // The written data reads back: inlined, the model equals the in-memory patch of the original.
    let mut inlined = patched.clone();
    model::inline_external_data(&mut inlined, &out_dir).unwrap();
    let mut direct = m.clone();
    s6_onnx::patch::patch_model(&mut direct, src.parent().unwrap()).unwrap();
    let find = |mm: &ModelProto, name: &str| {
        mm.graph
            .initializer
            .iter()
            .find(|t| t.name == name)
            .map(|t| (t.dims.clone(), t.raw_data.clone()))
    };
    for t in &direct.graph.initializer {
        if !t.raw_data.is_empty() {
            assert_eq!(
                find(&inlined, &t.name),
                Some((t.dims.clone(), t.raw_data.clone())),
                "{}",
                t.name
            );
        }
    }
}

#[test]
fn never_writes_over_the_inputs_external_data() {
    let d = common::tmpdir("onnx-patch-test", "overdata");
    let src = fixture("hf_dynamo_L7");
    let m = model::load(&src).unwrap();
    let input = d.join("ext.onnx");
    let data = model::save_external_data(&m, &input, src.parent().unwrap()).unwrap();
    let before = std::fs::read(&data).unwrap();
    // -o naming the data file itself, and -o whose own data file would be the input's.
    std::fs::rename(&data, d.join("x.onnx.data")).unwrap();
    let mut m2 = model::load(&input).unwrap();
    for t in m2.graph.as_mut().unwrap().initializer.iter_mut() {
        for e in t.external_data.iter_mut() {
            if e.key == "location" {
                e.value = "x.onnx.data".into();
            }
        }
    }
    model::save(&m2, &input).unwrap();
    for out in [d.join("x.onnx.data"), d.join("x.onnx")] {
        let o = patch(&[input.as_os_str(), "-o".as_ref(), out.as_os_str()]);
        assert_eq!(o.status.code(), Some(2), "{}", out.display());
        assert!(stderr(&o).contains("external data"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(d.join("x.onnx.data")).unwrap(), before);
}

#[test]
fn refuses_external_data_outside_the_model_folder() {
    let d = common::tmpdir("onnx-patch-test", "escape");
    let src = fixture("hf_dynamo_L7");
    let m = model::load(&src).unwrap();
    let inner = d.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    let input = inner.join("ext.onnx");
    model::save_external_data(&m, &input, src.parent().unwrap()).unwrap();
    std::fs::rename(inner.join("ext.onnx.data"), d.join("ext.onnx.data")).unwrap();
    let mut m2 = model::load(&input).unwrap();
    for t in m2.graph.as_mut().unwrap().initializer.iter_mut() {
        for e in t.external_data.iter_mut() {
            if e.key == "location" {
                e.value = "../ext.onnx.data".into();
            }
        }
    }
    model::save(&m2, &input).unwrap();
    let o = patch(&[
        input.as_os_str(),
        "-o".as_ref(),
        inner.join("o.onnx").as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("escapes the model's folder"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn dynamic_axes_export_verifies_at_batch_2_and_keeps_its_dim_names() {
    // A TorchScript export with dynamic_axes {0: "batch", 1: "seq"}: verified against the
    // original at batch 1 and 2, run at another length and batch; the names survive.
    let d = common::tmpdir("onnx-patch-test", "dynamic");
    let out = d.join("patched.onnx");
    let report = d.join("report.json");
    let input = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/dynamic/hf_ts_dynbs_b1_L6/model.onnx");
    let o = patch(&[
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--verify".as_ref(),
        "--report".as_ref(),
        report.as_os_str(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("verify L=6: logits"), "{err}");
    assert!(err.contains("verify L=6 batch 2: logits"), "{err}");
    assert!(
        err.contains("verify L=4 batch 3: patched model runs, output shapes [[3, 4, 96]]"),
        "{err}"
    );
    assert!(
        !err.contains("ABOVE TOLERANCE") && !err.contains("skipped"),
        "{err}"
    );
    let json = std::fs::read_to_string(&report).unwrap();
    assert!(json.contains("\"seq_dim\": \"seq\""), "{json}");
    assert!(json.contains("\"batch\": 2"), "{json}");
    assert!(!json.contains("\"ok\": false"), "{json}");
    let m = model::load(&out).unwrap();
    let dims: Vec<String> = match m.graph.input[0].type_.value.as_ref().unwrap() {
        s6_onnx::proto::type_proto::Value::TensorType(t) => t
            .shape
            .dim
            .iter()
            .map(|d| d.dim_param().to_string())
            .collect(),
        _ => unreachable!(),
    };
    assert_eq!(dims, ["batch", "seq"]);
}
