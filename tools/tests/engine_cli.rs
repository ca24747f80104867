//! The s6-engine binary without TensorRT: the one-line failure, trtexec lines per version,
//! argument errors, and the fp16 subcommand.

use s6_onnx::proto::{tensor_shape_proto::dimension, type_proto, NodeProto};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_s6-engine"))
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("s6-engine-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models/hf_ts_L12/model.onnx")
}

/// The bundled export with symbolic batch/sequence on its input (as onnx-patch leaves it) and,
/// if `with_scan`, an S6Scan node so that the plugin is needed.
fn dynamic_model(dir: &Path, with_scan: bool) -> PathBuf {
    let mut m = s6_onnx::model::load(&fixture()).unwrap();
    let g = m.graph.mut_or_insert_default();
    let Some(type_proto::Value::TensorType(t)) = &mut g.input[0].type_.as_mut().unwrap().value
    else {
        panic!("tensor input expected")
    };
    let dims = &mut t.shape.as_mut().unwrap().dim;
    dims[0].value = Some(dimension::Value::DimParam("batch".into()));
    dims[1].value = Some(dimension::Value::DimParam("sequence".into()));
    if with_scan {
        let mut n = NodeProto::new();
        n.op_type = "S6Scan".into();
        n.domain = "s6plugin".into();
        g.node.push(n);
    }
    let p = dir.join("model.onnx");
    s6_onnx::model::save(&m, &p).unwrap();
    p
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const SHAPES: [&str; 6] = [
    "--min",
    "batch=1,sequence=1",
    "--opt",
    "batch=1,sequence=64",
    "--max",
    "batch=2,sequence=256",
];

#[test]
fn without_tensorrt_build_and_run_fail_in_one_line() {
    let dir = tmpdir("none");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let model = dynamic_model(&dir, false);
    let engine = dir.join("m.engine");
    let o = bin()
        .arg("build")
        .arg(&model)
        .arg("-o")
        .arg(&engine)
        .args(SHAPES)
        .args(["--backend", "trt", "--trt-lib-dir"])
        .arg(&empty)
        .output()
        .unwrap();
    let err = stderr(&o);
    let want = format!(
        "s6-engine: TensorRT not found: looked for libnvinfer.so.11, libnvinfer.so.10, libnvinfer.so.8 in {} (--trt-lib-dir); install TensorRT or pass --trt-lib-dir DIR (the folder holding libnvinfer.so.N)\n",
        empty.display()
    );
    assert_eq!(err, want);
    assert_eq!(o.status.code(), Some(3));
    assert!(!engine.exists());

    // The default (auto) looks for TensorRT, then TensorRT-RTX, and names both searches.
    let d = empty.display();
    let want_auto = format!(
        "s6-engine: TensorRT or TensorRT-RTX not found: looked for libnvinfer.so.11, libnvinfer.so.10, libnvinfer.so.8 in {d} (--trt-lib-dir), and libtensorrt_rtx.so.1 in {d} (--trt-lib-dir); install one, or pass --trt-lib-dir DIR (the folder holding libnvinfer.so.N or libtensorrt_rtx.so.1) or set S6_TRT_RTX_LIB_DIR\n"
    );
    let o = bin()
        .arg("run")
        .arg(&engine)
        .args(["--input", "input_ids=ids.npy", "--out-dir"])
        .arg(dir.join("out"))
        .arg("--trt-lib-dir")
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(stderr(&o), want_auto);
    assert_eq!(o.status.code(), Some(3));
    assert!(!dir.join("out").exists());

    // TensorRT-RTX alone says where it looked and how to point at it.
    let o = bin()
        .arg("build")
        .arg(&model)
        .arg("-o")
        .arg(&engine)
        .args(SHAPES)
        .args(["--backend", "rtx", "--trt-lib-dir"])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(
        stderr(&o),
        format!("s6-engine: TensorRT-RTX not found: looked for libtensorrt_rtx.so.1 in {d} (--trt-lib-dir); install TensorRT-RTX (e.g. the tensorrt-rtx-cu12-libs wheel) and set S6_TRT_RTX_LIB_DIR or pass --trt-lib-dir DIR (the folder holding libtensorrt_rtx.so.1)\n")
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(!engine.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn print_trtexec(dir: &Path, model: &Path, version: &str, extra: &[&str]) -> Output {
    bin()
        .arg("build")
        .arg(model)
        .arg("-o")
        .arg(dir.join("m.engine"))
        .args(SHAPES)
        .args([
            "--plugin",
            "/opt/s6/libs6plugin.so",
            "--print-trtexec",
            version,
        ])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn trtexec_lines_follow_the_version() {
    let dir = tmpdir("trtexec");
    let model = dynamic_model(&dir, true);
    let (m, e) = (model.display(), dir.join("m.engine"));
    let e = e.display();

    let o = print_trtexec(
        &dir,
        &model,
        "8.6",
        &["--precision", "fp16", "--workspace-mib", "512"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "equivalent trtexec (TensorRT 8.6.0):\n  trtexec --onnx={m} --saveEngine={e} --plugins=/opt/s6/libs6plugin.so \
             --minShapes=input_ids:1x1 --optShapes=input_ids:1x64 --maxShapes=input_ids:2x256 --fp16 --memPoolSize=workspace:512\n"
        )
    );

    let o = print_trtexec(
        &dir,
        &model,
        "10.3",
        &["--precision", "bf16", "--timing-cache", "/tmp/t.cache"],
    );
    let s = stderr(&o);
    assert!(o.status.success(), "{s}");
    assert!(
        s.contains(" --dynamicPlugins=/opt/s6/libs6plugin.so "),
        "{s}"
    );
    assert!(
        s.ends_with(" --bf16 --timingCacheFile=/tmp/t.cache\n"),
        "{s}"
    );

    let o = print_trtexec(&dir, &model, "11.0", &["--to-fp16"]);
    let s = stderr(&o);
    assert!(o.status.success(), "{s}");
    let fp16 = dir.join("m.fp16.onnx");
    assert!(s.contains(&format!("--onnx={} ", fp16.display())), "{s}");
    assert!(s.ends_with(" --stronglyTyped\n"), "{s}");
    assert!(!fp16.exists(), "print-only must not write files");

    let o = print_trtexec(&dir, &model, "11.0", &["--precision", "fp16"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("add --to-fp16"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn profile_errors_name_the_input() {
    let dir = tmpdir("profile");
    let model = dynamic_model(&dir, false);
    let o = bin()
        .arg("build")
        .arg(&model)
        .arg("-o")
        .arg(dir.join("m.engine"))
        .args([
            "--min",
            "batch=1",
            "--opt",
            "batch=1,sequence=8",
            "--max",
            "batch=1,sequence=8",
        ])
        .args(["--print-trtexec", "10.3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "s6-engine: input \"input_ids\" axis 1: dynamic (sequence) is taken as \"sequence\", but --min gives no sequence=N\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fp16_subcommand_writes_a_new_file_only() {
    let dir = tmpdir("fp16");
    let model = dynamic_model(&dir, false);
    let before = std::fs::read(&model).unwrap();
    let o = bin()
        .arg("fp16")
        .arg(&model)
        .arg("-o")
        .arg(&model)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("refusing to overwrite the input"));
    let out = dir.join("m16.onnx");
    let o = bin()
        .arg("fp16")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&model).unwrap(), before);
    let m = s6_onnx::model::load(&out).unwrap();
    assert!(
        m.graph
            .initializer
            .iter()
            .filter(|t| t.data_type == 1)
            .count()
            == 0
    );
    assert!(m.graph.initializer.iter().any(|t| t.data_type == 10));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The 3-layer d_conv = 3 export made stateful (as `onnx-patch --stateful` saves it).
fn stateful_model(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models/hf_ts_3l_conv3_L8");
    let mut m = s6_onnx::model::load(&src.join("model.onnx")).unwrap();
    let how = s6_tools::generate::prepare(&mut m, &src).unwrap();
    assert_eq!(how, s6_tools::generate::Prepared::PatchedAndMadeStateful);
    let p = dir.join("model.st.onnx");
    s6_onnx::model::save(&m, &p).unwrap();
    p
}

/// `build --stateful`: --min and --opt default to the one-token decode step, every state input
/// follows the batch, and a profile that cannot decode (or a graph without states) is refused,
/// all before any TensorRT is needed.
#[test]
fn stateful_profile_covers_the_decode_step() {
    let dir = tmpdir("stateful");
    let model = stateful_model(&dir);
    let build = |extra: &[&str]| {
        bin()
            .arg("build")
            .arg(&model)
            .arg("-o")
            .arg(dir.join("m.engine"))
            .args(["--plugin", "/opt/s6/libs6plugin.so"])
            .args(extra)
            .args(["--print-trtexec", "10.3"])
            .output()
            .unwrap()
    };
    let o = build(&["--stateful", "--max", "batch=4,sequence=1024"]);
    let s = stderr(&o);
    assert!(o.status.success(), "{s}");
    // d_inner 64, d_conv 3 (conv state of 2 steps), N 16, three layers.
    let layer = |i: usize, b: usize| format!("conv_state.{i}:{b}x64x2,ssm_state.{i}:{b}x64x16");
    let shapes = |b: usize, l: usize| {
        let mut v = vec![format!("input_ids:{b}x{l}")];
        v.extend((0..3).map(|i| layer(i, b)));
        v.join(",")
    };
    for want in [
        format!("--minShapes={} ", shapes(1, 1)),
        format!("--optShapes={} ", shapes(1, 1)),
        format!("--maxShapes={}", shapes(4, 1024)),
    ] {
        assert!(s.contains(&want), "{want} missing: {s}");
    }
    assert!(!dir.join("m.engine").exists());

    // --opt given: kept; --min defaults still.
    let o = build(&[
        "--stateful",
        "--opt",
        "batch=2,sequence=64",
        "--max",
        "batch=4,sequence=1024",
    ]);
    let s = stderr(&o);
    assert!(o.status.success(), "{s}");
    assert!(s.contains(&format!("--minShapes={} ", shapes(1, 1))), "{s}");
    assert!(
        s.contains(&format!("--optShapes={} ", shapes(2, 64))),
        "{s}"
    );

    // A profile from sequence 8 cannot run a decode step: refused, with or without --stateful.
    for extra in [&["--stateful"][..], &[]] {
        let mut args = vec!["--min", "batch=1,sequence=8", "--opt", "batch=1,sequence=8"];
        args.extend_from_slice(extra);
        args.extend(["--max", "batch=1,sequence=64"]);
        let o = build(&args);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert_eq!(
            stderr(&o),
            "s6-engine: input \"input_ids\" axis 1: a stateful graph decodes one token per call, so its profile must start at sequence=1 (--min gives 8; s6-engine build --stateful defaults --min and --opt to batch=1,sequence=1)\n"
        );
    }

    // Without --stateful, --min and --opt stay required.
    let o = build(&["--max", "batch=1,sequence=64"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--min <MIN>"), "{}", stderr(&o));

    // --stateful on a graph without states.
    let plain = dynamic_model(&dir, true);
    let o = bin()
        .arg("build")
        .arg(&plain)
        .arg("-o")
        .arg(dir.join("p.engine"))
        .args(["--stateful", "--max", "batch=1,sequence=64"])
        .args([
            "--plugin",
            "/opt/s6/libs6plugin.so",
            "--print-trtexec",
            "10.3",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "s6-engine: {}: --stateful: not a stateful graph (no input conv_state.0); make one with onnx-patch --stateful\n",
            plain.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `generate` checks its arguments before loading anything, and without TensorRT fails in one
/// line with status 3 and writes nothing.
#[test]
fn generate_fails_clearly_without_tensorrt_or_a_prompt() {
    let dir = tmpdir("generate");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let engine = dir.join("m.engine");
    std::fs::write(&engine, b"not an engine").unwrap();
    let tokens = dir.join("tokens.npy");
    let generate = |extra: &[&str]| {
        bin()
            .arg("generate")
            .arg(&engine)
            .arg("--out")
            .arg(&tokens)
            .args(["--backend", "trt", "--trt-lib-dir"])
            .arg(&empty)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = generate(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "s6-engine: give the prompt: --prompt IDS.npy, or --tokenizer FILE --text \"...\"\n"
    );
    let floats = dir.join("f.npy");
    s6_onnx::npy::write(
        &floats,
        &s6_onnx::interp::Tensor::from_f32(vec![1, 2], vec![1.0, 2.0]).unwrap(),
    )
    .unwrap();
    let ids = dir.join("ids.npy");
    s6_onnx::npy::write(
        &ids,
        &s6_onnx::interp::Tensor::from_i64(vec![2, 3], vec![1, 2, 3, 4, 5, 6]).unwrap(),
    )
    .unwrap();
    let o = generate(&["--prompt", floats.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "s6-engine: prompt: token ids must be integers, got float32\n"
    );
    let o = generate(&["--prompt", ids.to_str().unwrap(), "--top-p", "2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--top-p must be in (0, 1], got 2"),
        "{}",
        stderr(&o)
    );
    let o = generate(&["--prompt", ids.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "s6-engine: TensorRT not found: looked for libnvinfer.so.11, libnvinfer.so.10, libnvinfer.so.8 in {} (--trt-lib-dir); install TensorRT or pass --trt-lib-dir DIR (the folder holding libnvinfer.so.N)\n",
            empty.display()
        )
    );
    assert!(!tokens.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
