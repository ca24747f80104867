//! The CPU reference against the PyTorch fixtures of `scripts/make_scan_fixtures.py`
//! (`fixtures/scan/<case>/`), and its refusals of malformed inputs.

use std::path::{Path, PathBuf};

use s6plugin::reference::{scan_f32, scan_packed_f32, scan_packed_f64, ScanInputs};
use s6plugin::{ContractError, S6Attrs, ScanDims};

mod ref_fixtures;
use ref_fixtures::{load, worst, Array, F32_ABS, F32_REL, F64_ABS, F64_REL};

fn case_dirs() -> Vec<PathBuf> {
    ref_fixtures::case_dirs("scan")
}

struct Case {
    name: String,
    attrs: S6Attrs,
    inputs: Vec<Array>,
    outputs: Vec<(String, Array)>,
    dims: ScanDims,
    act_f16: bool,
}

fn read_case(dir: &Path) -> Case {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
    let mut attrs = S6Attrs::default();
    for (k, v) in meta["attrs"].as_object().unwrap() {
        attrs.set(k, v.as_i64().unwrap()).unwrap();
    }
    let names: Vec<&str> = meta["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let roles: Vec<&str> = attrs.inputs().iter().map(|r| r.name()).collect();
    assert_eq!(names, roles, "{}: packed input order", dir.display());
    let inputs = names
        .iter()
        .map(|n| load(&dir.join(format!("{n}.npy"))))
        .collect();
    let outputs = meta["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let n = v.as_str().unwrap().to_string();
            let a = load(&dir.join(format!("{n}.npy")));
            (n, a)
        })
        .collect();
    let d = &meta["dims"];
    let get = |k: &str| d[k].as_u64().unwrap() as usize;
    Case {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        attrs,
        inputs,
        outputs,
        dims: ScanDims {
            batch: get("batch"),
            dim: get("dim"),
            seqlen: get("seqlen"),
            dstate: get("dstate"),
            groups: get("groups"),
        },
        act_f16: meta["act_dtype"] == "float16",
    }
}

#[test]
fn reference_matches_pytorch_fixtures() {
    let dirs = case_dirs();
    assert!(
        dirs.len() >= 15,
        "expected the fixture cases, found {}",
        dirs.len()
    );
    for dir in dirs {
        let case = read_case(&dir);
        let name = &case.name;
        assert!(
            case.inputs.iter().any(|a| a.was_f16) == case.act_f16,
            "{name}: stored dtypes disagree with act_dtype"
        );
        let packed: Vec<&[f32]> = case.inputs.iter().map(|a| a.data.as_slice()).collect();
        let shapes: Vec<&[i64]> = case.inputs.iter().map(|a| a.shape.as_slice()).collect();
        let (dims, o32) = scan_packed_f32(&case.attrs, &packed, &shapes)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(dims, case.dims, "{name}: inferred dims");
        let (_, o64) = scan_packed_f64(&case.attrs, &packed, &shapes).unwrap();
        assert_eq!(case.outputs.len(), case.attrs.num_outputs(), "{name}");
        for (out_name, want) in &case.outputs {
            let (g32, g64) = match out_name.as_str() {
                "y" => (&o32.y, &o64.y),
                "last_state" => (&o32.last_state, &o64.last_state),
                other => panic!("{name}: unknown output {other}"),
            };
            assert_eq!(g32.len(), want.data.len(), "{name}/{out_name} length");
            let w32 = worst(g32.iter().map(|&v| v as f64), &want.data, F32_REL, F32_ABS);
            let w64 = worst(g64.iter().copied(), &want.data, F64_REL, F64_ABS);
            println!("{name}/{out_name}: error / bound = {w32:.3} (fp32), {w64:.3} (fp64)");
            assert!(
                w32 <= 1.0,
                "{name}/{out_name}: fp32 error {w32:.3}× the bound"
            );
            assert!(
                w64 <= 1.0,
                "{name}/{out_name}: fp64 error {w64:.3}× the bound"
            );
        }
    }
}

/// The fixtures must catch a wrong reference: breaking one input value moves the result.
#[test]
fn fixtures_detect_a_perturbed_input() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scan/groups");
    let mut case = read_case(&dir);
    case.inputs[3].data[5] += 1e-3; // one B value
    let packed: Vec<&[f32]> = case.inputs.iter().map(|a| a.data.as_slice()).collect();
    let shapes: Vec<&[i64]> = case.inputs.iter().map(|a| a.shape.as_slice()).collect();
    let (_, o32) = scan_packed_f32(&case.attrs, &packed, &shapes).unwrap();
    let want = &case.outputs[0].1.data;
    assert!(worst(o32.y.iter().map(|&v| v as f64), want, F32_REL, F32_ABS) > 1.0);
}

fn small_dims() -> ScanDims {
    ScanDims {
        batch: 1,
        dim: 4,
        seqlen: 3,
        dstate: 2,
        groups: 2,
    }
}

#[test]
fn wrong_data_lengths_are_named() {
    let attrs = S6Attrs {
        has_d: true,
        has_initial_state: true,
        ..Default::default()
    };
    let act = vec![0.5f32; 12];
    let a = vec![-1.0f32; 8];
    let bc = vec![1.0f32; 12];
    let d = vec![1.0f32; 4];
    let state = vec![0.0f32; 8];
    let good = ScanInputs {
        u: &act,
        delta: &act,
        a: &a,
        b: &bc,
        c: &bc,
        d: Some(&d),
        initial_state: Some(&state),
        ..Default::default()
    };
    let dims = small_dims();
    assert!(scan_f32(&attrs, &dims, &good).is_ok());

    let short = vec![0.0f32; 7];
    let cases: [(ScanInputs, &str, usize); 5] = [
        (ScanInputs { u: &short, ..good }, "u", 12),
        (ScanInputs { a: &short, ..good }, "A", 8),
        (ScanInputs { c: &short, ..good }, "C", 12),
        (
            ScanInputs {
                d: Some(&short),
                ..good
            },
            "D",
            4,
        ),
        (
            ScanInputs {
                initial_state: Some(&short),
                ..good
            },
            "initial_state",
            8,
        ),
    ];
    for (x, input, expected) in cases {
        assert_eq!(
            scan_f32(&attrs, &dims, &x).unwrap_err(),
            ContractError::DataLen {
                input,
                got: 7,
                expected
            }
        );
    }
    // An optional input given against its flag, or missing though flagged.
    let err = scan_f32(&attrs, &dims, &ScanInputs { d: None, ..good }).unwrap_err();
    assert!(matches!(err, ContractError::Attribute { ref name, .. } if name == "has_D"));
    let err = scan_f32(
        &attrs,
        &dims,
        &ScanInputs {
            z: Some(&act),
            ..good
        },
    )
    .unwrap_err();
    assert!(matches!(err, ContractError::Attribute { ref name, .. } if name == "has_z"));
}

#[test]
fn bad_shapes_and_counts_through_the_packed_entry() {
    let attrs = S6Attrs::default();
    let act = vec![0.0f32; 24];
    let a = vec![-1.0f32; 8];
    let bc = vec![0.0f32; 12];
    let packed: [&[f32]; 5] = [&act, &act, &a, &bc, &bc];
    // Groups 3 do not divide D = 4.
    let err = scan_packed_f32(
        &attrs,
        &packed,
        &[
            &[2, 4, 3],
            &[2, 4, 3],
            &[4, 2],
            &[2, 3, 2, 1],
            &[2, 3, 2, 1],
        ],
    )
    .unwrap_err();
    assert!(matches!(err, ContractError::Groups { groups: 3, .. }));
    // A's D differs from u's.
    let err = scan_packed_f32(
        &attrs,
        &packed,
        &[&[2, 4, 3], &[2, 4, 3], &[3, 2], &[2, 2, 3], &[2, 2, 3]],
    )
    .unwrap_err();
    assert!(matches!(err, ContractError::Dim { input: "A", .. }));
    // Shapes fine, B's data too short for them.
    let short_bc = vec![0.0f32; 10];
    let err = scan_packed_f32(
        &attrs,
        &[&act, &act, &a, &short_bc, &bc],
        &[&[2, 4, 3], &[2, 4, 3], &[4, 2], &[2, 2, 3], &[2, 2, 3]],
    )
    .unwrap_err();
    assert_eq!(
        err,
        ContractError::DataLen {
            input: "B",
            got: 10,
            expected: 12
        }
    );
    // One input too many for the flags.
    let err =
        scan_packed_f32(&attrs, &[&act, &act, &a, &bc, &bc, &a], &[&[1i64][..]; 6]).unwrap_err();
    assert!(matches!(
        err,
        ContractError::InputCount {
            expected: 5,
            got: 6
        }
    ));
}

/// A prefill of L steps equals L decode steps (L = 1) chained through initial/last state.
#[test]
fn decode_steps_chain_to_the_prefill() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scan/odd_l");
    let case = read_case(&dir);
    let ScanDims {
        batch,
        dim,
        seqlen,
        dstate,
        ..
    } = case.dims;
    assert!(!case.attrs.channels_last && !case.attrs.bc_channels_last && batch == 1);
    let packed: Vec<&[f32]> = case.inputs.iter().map(|a| a.data.as_slice()).collect();
    let shapes: Vec<&[i64]> = case.inputs.iter().map(|a| a.shape.as_slice()).collect();
    let (_, full) = scan_packed_f64(&case.attrs, &packed, &shapes).unwrap();

    let step_attrs = S6Attrs {
        has_initial_state: true,
        has_last_state: true,
        ..case.attrs
    };
    let step_dims = ScanDims {
        seqlen: 1,
        ..case.dims
    };
    let at = |v: &[f32], chans: usize, t: usize| -> Vec<f32> {
        (0..chans).map(|c| v[c * seqlen + t]).collect()
    };
    let mut state = vec![0.0f32; batch * dim * dstate];
    for t in 0..seqlen {
        let (u, dt, b, c, z) = (
            at(packed[0], dim, t),
            at(packed[1], dim, t),
            at(packed[3], dstate, t),
            at(packed[4], dstate, t),
            at(packed[6], dim, t),
        );
        let x = ScanInputs {
            u: &u,
            delta: &dt,
            a: packed[2],
            b: &b,
            c: &c,
            d: Some(packed[5]),
            z: Some(&z),
            delta_bias: Some(packed[7]),
            initial_state: Some(&state),
        };
        let out = s6plugin::reference::scan_f64(&step_attrs, &step_dims, &x).unwrap();
        for ch in 0..dim {
            let want = full.y[ch * seqlen + t];
            assert!(
                (out.y[ch] - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "t {t} ch {ch}"
            );
        }
        // The state travels as fp32 between steps, as it does between decode calls.
        state = out.last_state.iter().map(|&v| v as f32).collect();
    }
}
