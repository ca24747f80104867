//! S6ScanHeads shader (through the interpreter backend) against the PyTorch fixtures in
//! fixtures/ssd/ and the fp64 CPU reference (`s6_contract::reference_heads`) at larger shapes.
//! Skips (prints SKIP) without a GPU adapter.

mod common;

use common::nodes::{backend, int_attr, node};
use common::{assert_close, repo_root, Rng};
use half::f16;
use s6_contract::contract_heads::{HeadsAttrs, HeadsDims, HeadsInputRole as R};
use s6_contract::reference_heads::{scan_heads_f64, HeadsInputs};
use s6_onnx::interp::{Backend, Tensor, TensorData};
use s6_onnx::npy;
use s6_onnx::proto::NodeProto;

fn heads_node(attrs: &HeadsAttrs) -> NodeProto {
    let inputs: Vec<&str> = attrs.inputs().iter().map(|r| r.name()).collect();
    let outputs: Vec<&str> = attrs.outputs().iter().map(|r| r.name()).collect();
    let mut n = node("S6ScanHeads", "s6plugin", &inputs, &outputs);
    for (name, v) in HeadsAttrs::FIELD_NAMES.iter().zip(attrs.values()) {
        n.attribute.push(int_attr(name, v as i64));
    }
    n
}

fn run(test: &str, attrs: &HeadsAttrs, tensors: &[Tensor]) -> Option<Vec<Tensor>> {
    let be = backend(test)?;
    let refs: Vec<Option<&Tensor>> = tensors.iter().map(Some).collect();
    let out = be
        .try_run(&heads_node(attrs), &refs)
        .unwrap_or_else(|e| panic!("{test}: {e}"))
        .unwrap_or_else(|| panic!("{test}: the backend declined the node"));
    assert_eq!(be.stats().s6scan, 1, "{test}: ran on the GPU");
    Some(out)
}

#[test]
fn pytorch_fixtures() {
    let dir = repo_root().join("fixtures/ssd");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/ssd")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 12, "cases under {}", dir.display());
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let json = std::fs::read_to_string(case.join("case.json")).unwrap();
        let mut attrs = HeadsAttrs::default();
        for f in HeadsAttrs::FIELD_NAMES {
            attrs
                .set(f, json.contains(&format!("\"{f}\": 1")) as i64)
                .unwrap();
        }
        let tensors: Vec<Tensor> = attrs
            .inputs()
            .iter()
            .map(|r| npy::read(&case.join(format!("{}.npy", r.name()))).unwrap())
            .collect();
        let Some(out) = run(&name, &attrs, &tensors) else {
            return;
        };
        let f16_acts = matches!(tensors[0].data, TensorData::F16(_));
        for (got, role) in out.iter().zip(attrs.outputs()) {
            let want = npy::read(&case.join(format!("{}.npy", role.name()))).unwrap();
            assert_eq!(got.shape, want.shape, "{name}");
            let rtol = if f16_acts && role.name() == "y" {
                1.0 / 1024.0
            } else {
                1e-4
            };
            let g: Vec<f32> = got.to_f64_vec().iter().map(|&v| v as f32).collect();
            assert_close(
                &format!("{name} {}", role.name()),
                &g,
                &want.to_f64_vec(),
                1e-4,
                rtol,
            );
        }
    }
}

/// Random inputs (every option), as tensors and as the reference's slices.
fn random(dims: &HeadsDims, attrs: &HeadsAttrs, seed: u64) -> Vec<(R, Vec<usize>, Vec<f32>)> {
    let mut r = Rng::new(seed);
    let (b, l, h, p, n, g) = (
        dims.batch,
        dims.seqlen,
        dims.heads,
        dims.headdim,
        dims.dstate,
        dims.groups,
    );
    attrs
        .inputs()
        .into_iter()
        .map(|role| {
            let (shape, lo, hi) = match role {
                R::X | R::Z => (vec![b, l, h, p], -1.0, 1.0),
                R::Dt => (vec![b, l, h], -4.0, 1.0),
                R::A => (vec![h], -12.0, -0.5),
                R::B | R::C => (vec![b, l, g, n], -1.0, 1.0),
                R::D => (vec![h], -1.0, 1.0),
                R::DtBias => (vec![h], -1.0, 0.5),
                R::DtLimit => (vec![2], 0.0, 0.0),
                R::InitialState => (vec![b, h, p, n], -1.0, 1.0),
            };
            let len = shape.iter().product();
            let v = if role == R::DtLimit {
                vec![0.01, 0.6]
            } else {
                r.vec(len, lo, hi)
            };
            (role, shape, v)
        })
        .collect()
}

fn check_random(test: &str, dims: HeadsDims, attrs: HeadsAttrs, f16_acts: bool) {
    let mut data = random(&dims, &attrs, dims.seqlen as u64 * 31 + dims.dstate as u64);
    if f16_acts {
        // The reference reads the values the GPU reads.
        for (role, _, v) in &mut data {
            if role.is_activation() {
                v.iter_mut().for_each(|x| *x = f16::from_f32(*x).to_f32());
            }
        }
    }
    let tensors: Vec<Tensor> = data
        .iter()
        .map(|(role, shape, v)| Tensor {
            shape: shape.clone(),
            data: if f16_acts && role.is_activation() {
                TensorData::F16(v.iter().map(|&x| f16::from_f32(x)).collect())
            } else {
                TensorData::F32(v.clone())
            },
        })
        .collect();
    let Some(out) = run(test, &attrs, &tensors) else {
        return;
    };
    let packed: Vec<&[f32]> = data.iter().map(|(_, _, v)| v.as_slice()).collect();
    let x = HeadsInputs::from_packed(&attrs, &packed).unwrap();
    let want = scan_heads_f64(&attrs, &dims, &x).unwrap();
    let y: Vec<f32> = out[0].to_f64_vec().iter().map(|&v| v as f32).collect();
    let rtol = if f16_acts { 1.0 / 1024.0 } else { 1e-4 };
    assert_close(&format!("{test} y"), &y, &want.y, 1e-4, rtol);
    if attrs.has_last_state {
        let s: Vec<f32> = out[1].to_f64_vec().iter().map(|&v| v as f32).collect();
        assert_close(
            &format!("{test} last_state"),
            &s,
            &want.last_state,
            1e-4,
            1e-4,
        );
    }
}

const ALL: HeadsAttrs = HeadsAttrs {
    dt_softplus: true,
    has_d: true,
    has_z: true,
    has_dt_bias: true,
    has_dt_limit: true,
    has_initial_state: true,
    has_last_state: true,
};

/// Several time chunks of the shader (TS = 32) plus a partial one, 2 groups, N = 64.
#[test]
fn long_sequence_grouped_all_options() {
    let dims = HeadsDims {
        batch: 2,
        seqlen: 70,
        heads: 4,
        headdim: 8,
        dstate: 64,
        groups: 2,
    };
    check_random("long_sequence_grouped_all_options", dims, ALL, false);
}

/// Mamba2's d_state 128 (four state slots per invocation), odd P, f16 activations.
#[test]
fn mamba2_state_size_f16() {
    let dims = HeadsDims {
        batch: 1,
        seqlen: 33,
        heads: 3,
        headdim: 5,
        dstate: 128,
        groups: 1,
    };
    let attrs = HeadsAttrs {
        has_dt_limit: false,
        has_z: false,
        ..ALL
    };
    check_random("mamba2_state_size_f16", dims, attrs, true);
}

/// One decode step with a state, and rows that do not fill the last workgroup (N = 3).
#[test]
fn decode_step_small_state() {
    let dims = HeadsDims {
        batch: 3,
        seqlen: 1,
        heads: 2,
        headdim: 3,
        dstate: 3,
        groups: 2,
    };
    check_random("decode_step_small_state", dims, ALL, false);
}

/// L = 0: y empty, the last state is the initial state, without a dispatch.
#[test]
fn empty_sequence() {
    let dims = HeadsDims {
        batch: 1,
        seqlen: 0,
        heads: 2,
        headdim: 2,
        dstate: 4,
        groups: 1,
    };
    let attrs = HeadsAttrs {
        has_initial_state: true,
        has_last_state: true,
        ..Default::default()
    };
    let data = random(&dims, &attrs, 5);
    let tensors: Vec<Tensor> = data
        .iter()
        .map(|(_, shape, v)| Tensor {
            shape: shape.clone(),
            data: TensorData::F32(v.clone()),
        })
        .collect();
    let Some(out) = run("empty_sequence", &attrs, &tensors) else {
        return;
    };
    assert_eq!(out[0].shape, vec![1, 0, 2, 2]);
    assert_eq!(out[1].to_f64_vec(), tensors[5].to_f64_vec());
}
