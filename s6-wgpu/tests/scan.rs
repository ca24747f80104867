//! S6Scan shader against the fp64 CPU reference (`s6_contract::reference`) and against the
//! PyTorch fixtures in fixtures/scan/. Skips (prints SKIP) without a GPU adapter.

mod common;

use common::{assert_close, ctx, read_npy, repo_root, Rng};
use half::{bf16, f16};
use s6_contract::reference;
use s6_contract::{S6Attrs, ScanDims};
use s6_wgpu::{Act, ActVec, ScanInputs, WgpuError};

/// Random inputs for `attrs` and `dims`, in f32.
struct Data {
    u: Vec<f32>,
    delta: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    d: Vec<f32>,
    z: Vec<f32>,
    bias: Vec<f32>,
    init: Vec<f32>,
}

impl Data {
    fn new(attrs: &S6Attrs, dims: &ScanDims, seed: u64) -> Data {
        let mut r = Rng::new(seed);
        let act = dims.act_len();
        let (dlo, dhi) = if attrs.delta_softplus {
            (-4.0, 1.0)
        } else {
            (0.0, 0.3)
        };
        Data {
            u: r.vec(act, -1.0, 1.0),
            delta: r.vec(act, dlo, dhi),
            // Mamba's A = -exp(A_log): negative, up to about -N.
            a: r.vec(dims.dim * dims.dstate, -8.0, -0.5),
            b: r.vec(dims.bc_len(), -1.0, 1.0),
            c: r.vec(dims.bc_len(), -1.0, 1.0),
            d: r.vec(dims.dim, -1.0, 1.0),
            z: r.vec(act, -3.0, 3.0),
            // Without softplus a negative delta makes the state grow without bound.
            bias: if attrs.delta_softplus {
                r.vec(dims.dim, -1.0, 1.0)
            } else {
                r.vec(dims.dim, 0.0, 0.1)
            },
            init: r.vec(dims.state_len(), -1.0, 1.0),
        }
    }

    fn reference(&self, attrs: &S6Attrs, dims: &ScanDims) -> reference::ScanOutputs<f64> {
        let x = reference::ScanInputs {
            u: &self.u,
            delta: &self.delta,
            a: &self.a,
            b: &self.b,
            c: &self.c,
            d: attrs.has_d.then_some(&self.d[..]),
            z: attrs.has_z.then_some(&self.z[..]),
            delta_bias: attrs.has_delta_bias.then_some(&self.bias[..]),
            initial_state: attrs.has_initial_state.then_some(&self.init[..]),
        };
        reference::scan_f64(attrs, dims, &x).expect("reference")
    }

    fn inputs<'a>(&'a self, attrs: &S6Attrs, act: impl Fn(&'a [f32]) -> Act<'a>) -> ScanInputs<'a> {
        ScanInputs {
            u: act(&self.u),
            delta: act(&self.delta),
            a: &self.a,
            b: act(&self.b),
            c: act(&self.c),
            d: attrs.has_d.then_some(&self.d[..]),
            z: attrs.has_z.then(|| act(&self.z)),
            delta_bias: attrs.has_delta_bias.then_some(&self.bias[..]),
            initial_state: attrs.has_initial_state.then_some(&self.init[..]),
        }
    }

    /// Rounds the activations through `round` (to compare a half-precision run with the
    /// reference on exactly the values the GPU saw).
    fn round_acts(&mut self, round: impl Fn(f32) -> f32) {
        for v in [
            &mut self.u,
            &mut self.delta,
            &mut self.b,
            &mut self.c,
            &mut self.z,
        ] {
            v.iter_mut().for_each(|x| *x = round(*x));
        }
    }
}

fn all_on() -> S6Attrs {
    S6Attrs {
        delta_softplus: true,
        has_d: true,
        has_z: true,
        has_delta_bias: true,
        has_initial_state: true,
        has_last_state: true,
        channels_last: false,
        bc_channels_last: false,
    }
}

/// Runs one f32 case on the GPU and checks y and last_state against the fp64 reference.
fn check_f32(name: &str, attrs: S6Attrs, dims: ScanDims, seed: u64) {
    let Some(gpu) = ctx(name) else { return };
    let data = Data::new(&attrs, &dims, seed);
    let want = data.reference(&attrs, &dims);
    let got = gpu
        .s6scan(&attrs, &dims, &data.inputs(&attrs, Act::F32))
        .expect("gpu scan");
    assert!(matches!(got.y, ActVec::F32(_)));
    assert_close(&format!("{name} y"), &got.y.to_f32(), &want.y, 1e-4, 1e-4);
    match got.last_state {
        Some(ls) => {
            assert!(attrs.has_last_state);
            assert_close(
                &format!("{name} last_state"),
                &ls,
                &want.last_state,
                1e-4,
                1e-4,
            );
        }
        None => assert!(!attrs.has_last_state),
    }
}

#[test]
fn all_options_default_layout() {
    check_f32(
        "all_options_default_layout",
        all_on(),
        ScanDims::new(2, 8, 13, 16, 1),
        1,
    );
}

#[test]
fn no_options() {
    check_f32(
        "no_options",
        S6Attrs::default(),
        ScanDims::new(3, 5, 7, 16, 1),
        2,
    );
}

#[test]
fn groups_both_layouts() {
    let attrs = S6Attrs {
        channels_last: true,
        bc_channels_last: true,
        ..all_on()
    };
    check_f32(
        "groups_both_layouts",
        attrs,
        ScanDims::new(2, 12, 9, 8, 3),
        3,
    );
}

#[test]
fn channels_last_only_and_bc_channels_last_only() {
    let a = S6Attrs {
        channels_last: true,
        has_initial_state: false,
        ..all_on()
    };
    check_f32("channels_last_only", a, ScanDims::new(1, 6, 11, 4, 2), 4);
    let b = S6Attrs {
        bc_channels_last: true,
        delta_softplus: false,
        has_z: false,
        ..all_on()
    };
    check_f32(
        "bc_channels_last_only",
        b,
        ScanDims::new(2, 4, 10, 16, 1),
        5,
    );
}

#[test]
fn decode_step_l1_with_state() {
    check_f32(
        "decode_step_l1_with_state",
        all_on(),
        ScanDims::new(2, 40, 1, 16, 1),
        6,
    );
}

#[test]
fn state_wider_than_a_warp_and_odd_sizes() {
    // N = 40: 32 invocations per channel, two state slots each; D * B not a multiple of the
    // channels per workgroup.
    check_f32("state_40", all_on(), ScanDims::new(3, 7, 5, 40, 1), 7);
    // N = 1 and N = 3: 32 and 8 channels per workgroup.
    check_f32("state_1", all_on(), ScanDims::new(1, 33, 6, 1, 1), 8);
    check_f32("state_3", all_on(), ScanDims::new(2, 17, 4, 3, 1), 9);
    // N = 256, the largest the shader keeps.
    check_f32("state_256", all_on(), ScanDims::new(1, 2, 3, 256, 2), 10);
}

#[test]
fn longer_sequence() {
    let attrs = S6Attrs {
        has_initial_state: false,
        ..all_on()
    };
    check_f32(
        "longer_sequence",
        attrs,
        ScanDims::new(1, 64, 300, 16, 1),
        11,
    );
}

#[test]
fn f16_and_bf16_activations() {
    let Some(gpu) = ctx("f16_and_bf16_activations") else {
        return;
    };
    let attrs = all_on();
    let dims = ScanDims::new(2, 8, 13, 16, 2);
    // f16: the reference sees the f16-rounded inputs; y is rounded to f16 by the op.
    let mut data = Data::new(&attrs, &dims, 12);
    data.round_acts(|x| f16::from_f32(x).to_f32());
    let want = data.reference(&attrs, &dims);
    let h = |v: &[f32]| v.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>();
    let (u, dl, b, c, z) = (
        h(&data.u),
        h(&data.delta),
        h(&data.b),
        h(&data.c),
        h(&data.z),
    );
    let x = ScanInputs {
        u: Act::F16(&u),
        delta: Act::F16(&dl),
        a: &data.a,
        b: Act::F16(&b),
        c: Act::F16(&c),
        d: Some(&data.d),
        z: Some(Act::F16(&z)),
        delta_bias: Some(&data.bias),
        initial_state: Some(&data.init),
    };
    let got = gpu.s6scan(&attrs, &dims, &x).expect("gpu f16 scan");
    assert!(matches!(got.y, ActVec::F16(_)), "y keeps the dtype of u");
    // One f16 rounding of y: relative 2^-11.
    assert_close("f16 y", &got.y.to_f32(), &want.y, 1e-4, 1.0 / 1024.0);
    assert_close(
        "f16 last_state",
        &got.last_state.unwrap(),
        &want.last_state,
        1e-4,
        1e-4,
    );

    let mut data = Data::new(&attrs, &dims, 13);
    data.round_acts(|x| bf16::from_f32(x).to_f32());
    let want = data.reference(&attrs, &dims);
    let g = |v: &[f32]| v.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>();
    let (u, dl, b, c, z) = (
        g(&data.u),
        g(&data.delta),
        g(&data.b),
        g(&data.c),
        g(&data.z),
    );
    let x = ScanInputs {
        u: Act::BF16(&u),
        delta: Act::BF16(&dl),
        a: &data.a,
        b: Act::BF16(&b),
        c: Act::BF16(&c),
        d: Some(&data.d),
        z: Some(Act::BF16(&z)),
        delta_bias: Some(&data.bias),
        initial_state: Some(&data.init),
    };
    let got = gpu.s6scan(&attrs, &dims, &x).expect("gpu bf16 scan");
    assert!(matches!(got.y, ActVec::BF16(_)));
    assert_close("bf16 y", &got.y.to_f32(), &want.y, 1e-4, 1.0 / 128.0);
}

#[test]
fn bad_inputs_are_refused() {
    let Some(gpu) = ctx("bad_inputs_are_refused") else {
        return;
    };
    let attrs = all_on();
    let d = ScanDims::new(1, 4, 3, 2, 1);
    let data = Data::new(&attrs, &d, 14);
    let mut x = data.inputs(&attrs, Act::F32);
    x.z = None;
    let err = gpu.s6scan(&attrs, &d, &x).unwrap_err();
    assert!(matches!(err, WgpuError::Input { input: "z", .. }), "{err}");
    let mut x = data.inputs(&attrs, Act::F32);
    x.delta = Act::F32(&data.u[1..]);
    let err = gpu.s6scan(&attrs, &d, &x).unwrap_err();
    assert!(
        matches!(err, WgpuError::Input { input: "delta", .. }),
        "{err}"
    );
    let big = ScanDims::new(1, 1, 1, 257, 1);
    let data = Data::new(&attrs, &big, 15);
    let err = gpu
        .s6scan(&attrs, &big, &data.inputs(&attrs, Act::F32))
        .unwrap_err();
    assert!(matches!(err, WgpuError::Unsupported { .. }), "{err}");
}

/// Every case of fixtures/scan/ (PyTorch's `selective_scan_ref`, made by
/// scripts/make_scan_fixtures.py) through the shader.
#[test]
fn pytorch_fixtures() {
    let Some(gpu) = ctx("pytorch_fixtures") else {
        return;
    };
    let dir = repo_root().join("fixtures/scan");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/scan")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").exists())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases under {}", dir.display());
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let json = std::fs::read_to_string(case.join("case.json")).unwrap();
        let flag = |key: &str| json.contains(&format!("\"{key}\": 1"));
        let num = |key: &str| -> usize {
            let i = json.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
            json[i..]
                .trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let attrs = S6Attrs {
            delta_softplus: flag("delta_softplus"),
            has_d: flag("has_D"),
            has_z: flag("has_z"),
            has_delta_bias: flag("has_delta_bias"),
            has_initial_state: flag("has_initial_state"),
            has_last_state: flag("has_last_state"),
            channels_last: flag("channels_last"),
            bc_channels_last: flag("bc_channels_last"),
        };
        let dims = ScanDims::new(
            num("batch"),
            num("dim"),
            num("seqlen"),
            num("dstate"),
            num("groups"),
        );
        let load = |n: &str| read_npy(&case.join(format!("{n}.npy")));
        let f32v = |n: &str| -> Vec<f32> { load(n).data.iter().map(|&x| x as f32).collect() };
        let is_f16 = json.contains("\"act_dtype\": \"float16\"");
        let acts: Vec<_> = ["u", "delta", "B", "C", "z"]
            .iter()
            .map(|n| {
                let p = case.join(format!("{n}.npy"));
                p.exists().then(|| read_npy(&p))
            })
            .collect();
        let f32s: Vec<Vec<f32>> = acts
            .iter()
            .map(|a| {
                a.as_ref()
                    .map(|a| a.data.iter().map(|&x| x as f32).collect())
                    .unwrap_or_default()
            })
            .collect();
        let f16s: Vec<Vec<f16>> = acts
            .iter()
            .map(|a| a.as_ref().and_then(|a| a.f16.clone()).unwrap_or_default())
            .collect();
        let act = |i: usize| {
            if is_f16 {
                Act::F16(&f16s[i])
            } else {
                Act::F32(&f32s[i])
            }
        };
        let a = f32v("A");
        let dd = attrs.has_d.then(|| f32v("D"));
        let bias = attrs.has_delta_bias.then(|| f32v("delta_bias"));
        let init = attrs.has_initial_state.then(|| f32v("initial_state"));
        let x = ScanInputs {
            u: act(0),
            delta: act(1),
            a: &a,
            b: act(2),
            c: act(3),
            d: dd.as_deref(),
            z: attrs.has_z.then(|| act(4)),
            delta_bias: bias.as_deref(),
            initial_state: init.as_deref(),
        };
        let got = gpu.s6scan(&attrs, &dims, &x).expect(&name);
        // fp32 cases: PyTorch computed in fp32 too; fp16: y is rounded to f16 on both sides.
        let (atol, rtol) = if is_f16 {
            (2e-3, 2.0 / 1024.0)
        } else {
            (1e-4, 1e-4)
        };
        let want_y = load("y").data;
        assert_close(&format!("{name} y"), &got.y.to_f32(), &want_y, atol, rtol);
        if attrs.has_last_state {
            assert_close(
                &format!("{name} last_state"),
                &got.last_state.unwrap(),
                &load("last_state").data,
                1e-4,
                1e-4,
            );
        }
    }
    eprintln!("pytorch_fixtures: {} cases", cases.len());
}
