//! The `S6ScanHeads` CPU reference against the PyTorch fixtures of
//! `scripts/make_ssd_fixtures.py` (`fixtures/ssd/<case>/`: a float64 recurrence and a float64
//! chunked SSD evaluation that agree to 1e-12), its decode step, and its refusals.

use std::path::{Path, PathBuf};

use s6plugin::contract_heads::{HeadsAttrs, HeadsDims};
use s6plugin::reference_heads::{scan_heads_f64, scan_heads_packed, HeadsInputs};
use s6plugin::reference_ssd::scan_heads_chunked;
use s6plugin::ContractError;

mod ref_fixtures;
use ref_fixtures::{load, worst, Array, F32_ABS, F32_REL, F64_ABS, F64_REL};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ssd")
}

fn case_dirs() -> Vec<PathBuf> {
    ref_fixtures::case_dirs("ssd")
}

struct Case {
    name: String,
    attrs: HeadsAttrs,
    inputs: Vec<Array>,
    outputs: Vec<(String, Array)>,
    dims: HeadsDims,
    act_f16: bool,
}

impl Case {
    fn packed(&self) -> Vec<&[f32]> {
        self.inputs.iter().map(|a| a.data.as_slice()).collect()
    }
    fn shapes(&self) -> Vec<&[i64]> {
        self.inputs.iter().map(|a| a.shape.as_slice()).collect()
    }
}

fn read_case(dir: &Path) -> Case {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
    let attrs = HeadsAttrs::from_fields(
        meta["attrs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_i64().unwrap())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
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
        dims: HeadsDims {
            batch: get("batch"),
            seqlen: get("seqlen"),
            heads: get("heads"),
            headdim: get("headdim"),
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
        dirs.len() >= 12,
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
        let (packed, shapes) = (case.packed(), case.shapes());
        let (dims, o32) = scan_heads_packed::<f32>(&case.attrs, &packed, &shapes)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(dims, case.dims, "{name}: inferred dims");
        let (_, o64) = scan_heads_packed::<f64>(&case.attrs, &packed, &shapes).unwrap();
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

/// The chunked (SSD) evaluation against the same fixtures, at chunk sizes below, at and above
/// L, with the same bounds: fp32 and fp64.
#[test]
fn chunked_form_matches_the_fixtures() {
    let mut worst32 = 0.0f64;
    for dir in case_dirs() {
        let case = read_case(&dir);
        let packed = case.packed();
        let x = HeadsInputs::from_packed(&case.attrs, &packed).unwrap();
        for chunk in [1, 3, 4, 8, 64] {
            let o32 = scan_heads_chunked::<f32>(&case.attrs, &case.dims, &x, chunk).unwrap();
            let o64 = scan_heads_chunked::<f64>(&case.attrs, &case.dims, &x, chunk).unwrap();
            for (out_name, want) in &case.outputs {
                let (g32, g64) = match out_name.as_str() {
                    "y" => (&o32.y, &o64.y),
                    _ => (&o32.last_state, &o64.last_state),
                };
                let w32 = worst(g32.iter().map(|&v| v as f64), &want.data, F32_REL, F32_ABS);
                let w64 = worst(g64.iter().copied(), &want.data, F64_REL, F64_ABS);
                worst32 = worst32.max(w32);
                let what = format!("{}/{out_name} chunk {chunk}", case.name);
                assert!(w32 <= 1.0, "{what}: fp32 error {w32:.3}× the bound");
                assert!(w64 <= 1.0, "{what}: fp64 error {w64:.3}× the bound");
            }
        }
    }
    println!("chunked fp32: worst error / bound = {worst32:.3}");
}

/// The fixtures catch a wrong reference: one B value, or sharing dt across heads, moves y.
#[test]
fn fixtures_detect_perturbations() {
    let mut case = read_case(&root().join("groups"));
    let want = case.outputs[0].1.data.clone();
    case.inputs[3].data[5] += 1e-3;
    let (_, o) = scan_heads_packed::<f64>(&case.attrs, &case.packed(), &case.shapes()).unwrap();
    assert!(worst(o.y.iter().copied(), &want, F32_REL, F32_ABS) > 1.0);

    // Head 1 given head 0's step sizes: the per-head dt must matter.
    let mut case = read_case(&root().join("softplus_bias"));
    let want = case.outputs[0].1.data.clone();
    let h = case.dims.heads;
    for row in case.inputs[1].data.chunks_mut(h) {
        row[1] = row[0];
    }
    let (_, o) = scan_heads_packed::<f64>(&case.attrs, &case.packed(), &case.shapes()).unwrap();
    assert!(worst(o.y.iter().copied(), &want, F32_REL, F32_ABS) > 1.0);
}

/// Slices time step `t` (or steps `t0..t1`) out of a (batch, L, rest) tensor.
fn time_slice(v: &[f32], batch: usize, seqlen: usize, t0: usize, t1: usize) -> Vec<f32> {
    let rest = v.len() / (batch * seqlen);
    (0..batch)
        .flat_map(|b| v[(b * seqlen + t0) * rest..(b * seqlen + t1) * rest].to_vec())
        .collect()
}

/// Packed inputs of steps `t0..t1` of `case` (time-major inputs sliced; A, D, dt_bias,
/// dt_limit as they are; an initial state of the case left out).
fn window(case: &Case, t0: usize, t1: usize) -> Vec<Vec<f32>> {
    use s6plugin::contract_heads::HeadsInputRole as R;
    let (b, l) = (case.dims.batch, case.dims.seqlen);
    case.attrs
        .inputs()
        .iter()
        .zip(&case.inputs)
        .filter(|(role, _)| **role != R::InitialState)
        .map(|(role, arr)| match role {
            R::X | R::Dt | R::B | R::C | R::Z => time_slice(&arr.data, b, l, t0, t1),
            _ => arr.data.clone(),
        })
        .collect()
}

/// [`window`]'s data with `state` as the initial state, for `attrs` with has_initial_state = 1.
fn with_state<'a>(attrs: &HeadsAttrs, data: &'a [Vec<f32>], state: &'a [f32]) -> HeadsInputs<'a> {
    let mut packed: Vec<&[f32]> = data.iter().map(|v| v.as_slice()).collect();
    packed.push(state);
    HeadsInputs::from_packed(attrs, &packed).unwrap()
}

/// A prefill of L steps equals L decode steps (L = 1) chained through fp32 states, and also two
/// pieces split at a point that is no chunk boundary.
#[test]
fn decode_steps_and_pieces_chain_to_the_prefill() {
    let case = read_case(&root().join("mamba2_layer"));
    let (packed, shapes) = (case.packed(), case.shapes());
    let (dims, full) = scan_heads_packed::<f64>(&case.attrs, &packed, &shapes).unwrap();
    let step_attrs = HeadsAttrs {
        has_initial_state: true,
        has_last_state: true,
        ..case.attrs
    };
    let h0 = case.inputs[case
        .attrs
        .input_index(s6plugin::contract_heads::HeadsInputRole::InitialState)
        .unwrap()]
    .data
    .clone();
    let (b, l) = (dims.batch, dims.seqlen);
    let want_y = |t0: usize, t1: usize| -> Vec<f64> {
        let rest = full.y.len() / (b * l);
        (0..b)
            .flat_map(|bi| full.y[(bi * l + t0) * rest..(bi * l + t1) * rest].to_vec())
            .collect()
    };
    let close = |got: &[f64], want: &[f64], what: &str| {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-6 * (1.0 + w.abs()),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    };

    let mut state = h0.clone();
    for t in 0..l {
        let data = window(&case, t, t + 1);
        let x = with_state(&step_attrs, &data, &state);
        let out = scan_heads_f64(&step_attrs, &HeadsDims { seqlen: 1, ..dims }, &x).unwrap();
        close(&out.y, &want_y(t, t + 1), &format!("decode step {t}"));
        state = out.last_state.iter().map(|&v| v as f32).collect();
    }
    let last: Vec<f64> = state.iter().map(|&v| v as f64).collect();
    close(&last, &full.last_state, "chained last_state");

    // Two pieces, 0..5 and 5..L (the fixture's chunk is 8).
    let split = 5;
    let data = window(&case, 0, split);
    let x = with_state(&step_attrs, &data, &h0);
    let first = scan_heads_f64(
        &step_attrs,
        &HeadsDims {
            seqlen: split,
            ..dims
        },
        &x,
    )
    .unwrap();
    close(&first.y, &want_y(0, split), "first piece");
    let mid: Vec<f32> = first.last_state.iter().map(|&v| v as f32).collect();
    let data = window(&case, split, l);
    let x = with_state(&step_attrs, &data, &mid);
    let second = scan_heads_f64(
        &step_attrs,
        &HeadsDims {
            seqlen: l - split,
            ..dims
        },
        &x,
    )
    .unwrap();
    close(&second.y, &want_y(split, l), "second piece");
    close(&second.last_state, &full.last_state, "pieces' last_state");
}

#[test]
fn bad_shapes_and_counts_through_the_packed_entry() {
    let attrs = HeadsAttrs::default();
    let x = vec![0.0f32; 24];
    let dt = vec![0.0f32; 8];
    let a = vec![-1.0f32; 4];
    let bc = vec![0.0f32; 12];
    let packed: [&[f32]; 5] = [&x, &dt, &a, &bc, &bc];
    // x (1, 2, 4, 3), dt (1, 2, 4), A (4), B/C (1, 2, 2, 3): fine.
    let good: [&[i64]; 5] = [
        &[1, 2, 4, 3],
        &[1, 2, 4],
        &[4],
        &[1, 2, 2, 3],
        &[1, 2, 2, 3],
    ];
    assert!(scan_heads_packed::<f32>(&attrs, &packed, &good).is_ok());
    // Mamba1-style A (H·P, N) is refused.
    let mut s = good;
    s[2] = &[12, 3];
    let err = scan_heads_packed::<f32>(&attrs, &packed, &s).unwrap_err();
    assert!(matches!(err, ContractError::Rank { input: "A", .. }));
    // dt per channel (batch, L, H, P) is refused.
    let mut s = good;
    s[1] = &[1, 2, 4, 3];
    let err = scan_heads_packed::<f32>(&attrs, &packed, &s).unwrap_err();
    assert!(matches!(err, ContractError::Rank { input: "dt", .. }));
    // 3 groups do not divide 4 heads.
    let mut s = good;
    s[3] = &[1, 2, 3, 2];
    s[4] = &[1, 2, 3, 2];
    let err = scan_heads_packed::<f32>(&attrs, &packed, &s).unwrap_err();
    assert!(matches!(
        err,
        ContractError::Dim {
            input: "B",
            axis: 2,
            ..
        }
    ));
    // C's L differs from B's.
    let mut s = good;
    s[4] = &[1, 3, 2, 3];
    let err = scan_heads_packed::<f32>(&attrs, &packed, &s).unwrap_err();
    assert!(matches!(err, ContractError::Dim { input: "C", .. }));
    // Shapes fine, x's data too short for them.
    let short = vec![0.0f32; 23];
    let err = scan_heads_packed::<f32>(&attrs, &[&short, &dt, &a, &bc, &bc], &good).unwrap_err();
    assert_eq!(
        err,
        ContractError::DataLen {
            input: "x",
            got: 23,
            expected: 24
        }
    );
    // One input too many for the flags.
    let err = scan_heads_packed::<f32>(&attrs, &[&x, &dt, &a, &bc, &bc, &a], &[&[1i64][..]; 6])
        .unwrap_err();
    assert_eq!(
        err,
        ContractError::InputCount {
            expected: 5,
            got: 6
        }
    );
}
