//! `WgpuBackend` as the interpreter sees it: nodes handed to `try_run` directly (S6Scan and
//! MatMul taken, everything else declined). Skips (prints SKIP) without a GPU adapter.

mod common;

use common::nodes::{all_on, backend, node, scan_node, scan_reference, scan_tensors, t32};
use common::{assert_close, Rng};
use s6_contract::contract::ScanDims;
use s6_onnx::interp::{Backend, Tensor, TensorData};

#[test]
fn scan_node_runs_on_the_gpu() {
    let Some(be) = backend("scan_node_runs_on_the_gpu") else {
        return;
    };
    for (f16_acts, seed) in [(false, 1), (true, 2)] {
        let attrs = all_on();
        let d = ScanDims {
            batch: 2,
            dim: 8,
            seqlen: 9,
            dstate: 16,
            groups: 2,
        };
        let tensors = scan_tensors(&attrs, &d, f16_acts, seed);
        let (_, want) = scan_reference(&attrs, &tensors);
        let args: Vec<Option<&Tensor>> = tensors.iter().map(Some).collect();
        let outs = be
            .try_run(&scan_node(&attrs), &args)
            .expect("no error")
            .expect("taken by the GPU");
        assert_eq!(outs.len(), 2);
        assert_eq!(outs[0].shape, tensors[0].shape);
        assert_eq!(outs[0].data.dtype(), tensors[0].data.dtype());
        assert_eq!(outs[1].shape, vec![2, 8, 16]);
        let rtol = if f16_acts { 1.0 / 1024.0 } else { 1e-4 };
        assert_close("node y", &outs[0].data.to_f32_vec(), &want.y, 1e-4, rtol);
        assert_close(
            "node last_state",
            &outs[1].data.to_f32_vec(),
            &want.last_state,
            1e-4,
            1e-4,
        );
    }
    assert_eq!(be.stats().s6scan, 2);
}

#[test]
fn matmul_node_runs_on_the_gpu() {
    let Some(be) = backend("matmul_node_runs_on_the_gpu") else {
        return;
    };
    let mut r = Rng::new(3);
    let a = t32(&[1, 7, 32], r.vec(224, -1.0, 1.0));
    let b = t32(&[32, 20], r.vec(640, -1.0, 1.0));
    let n = node("MatMul", "", &["a", "b"], &["c"]);
    let outs = be
        .try_run(&n, &[Some(&a), Some(&b)])
        .unwrap()
        .expect("taken by the GPU");
    assert_eq!(outs[0].shape, vec![1, 7, 20]);
    let (av, bv) = (a.data.to_f32_vec(), b.data.to_f32_vec());
    let want: Vec<f64> = (0..7)
        .flat_map(|i| {
            let (av, bv) = (&av, &bv);
            (0..20).map(move |j| {
                (0..32)
                    .map(|p| av[i * 32 + p] as f64 * bv[p * 20 + j] as f64)
                    .sum()
            })
        })
        .collect();
    assert_close("node matmul", &outs[0].data.to_f32_vec(), &want, 1e-4, 1e-4);
    assert_eq!(be.stats().matmul, 1);
}

#[test]
fn other_nodes_are_left_to_the_cpu() {
    let Some(be) = backend("other_nodes_are_left_to_the_cpu") else {
        return;
    };
    let a = t32(&[2, 2], vec![1.0; 4]);
    let i = Tensor {
        shape: vec![2, 2],
        data: TensorData::I64(vec![1; 4]),
    };
    let mm = node("MatMul", "", &["a", "b"], &["c"]);
    // Integer MatMul, mixed dtypes, a missing input, another op, another domain.
    assert!(be.try_run(&mm, &[Some(&i), Some(&i)]).unwrap().is_none());
    assert!(be.try_run(&mm, &[Some(&a), Some(&i)]).unwrap().is_none());
    assert!(be.try_run(&mm, &[Some(&a), None]).unwrap().is_none());
    let conv = node("Conv", "", &["a", "b"], &["c"]);
    assert!(be.try_run(&conv, &[Some(&a), Some(&a)]).unwrap().is_none());
    let attrs = all_on();
    let d = ScanDims {
        batch: 1,
        dim: 4,
        seqlen: 3,
        dstate: 2,
        groups: 1,
    };
    let tensors = scan_tensors(&attrs, &d, false, 4);
    let args: Vec<Option<&Tensor>> = tensors.iter().map(Some).collect();
    let mut wrong_domain = scan_node(&attrs);
    wrong_domain.domain = String::new();
    assert!(be.try_run(&wrong_domain, &args).unwrap().is_none());
    // An attribute out of range, and inputs that contradict the flags: the CPU op reports it.
    let mut bad_attr = scan_node(&attrs);
    bad_attr.attribute[1].i = 2;
    assert!(be.try_run(&bad_attr, &args).unwrap().is_none());
    assert!(be
        .try_run(&scan_node(&attrs), &args[..args.len() - 1])
        .unwrap()
        .is_none());
    // N beyond the shader's limit.
    let big = ScanDims { dstate: 300, ..d };
    let tensors = scan_tensors(&attrs, &big, false, 5);
    let args: Vec<Option<&Tensor>> = tensors.iter().map(Some).collect();
    assert!(be.try_run(&scan_node(&attrs), &args).unwrap().is_none());
    assert_eq!(be.stats(), Default::default());
}
