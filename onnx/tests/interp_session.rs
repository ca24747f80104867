//! Session mechanics: backends are offered nodes first and may decline, progress is reported
//! per node, and a session can be shared between threads.

use s6_onnx::interp::{Backend, InterpError, Session, Tensor};
use s6_onnx::proto::{ModelProto, NodeProto};
use s6_onnx::{model, npy};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn case() -> (ModelProto, PathBuf, HashMap<String, Tensor>, Tensor) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models/hf_ts_L12");
    let m = model::load(&dir.join("model.onnx")).unwrap();
    let mut inputs = HashMap::new();
    inputs.insert(
        "input_ids".to_string(),
        npy::read(&dir.join("inputs/input_ids.npy")).unwrap(),
    );
    let want = npy::read(&dir.join("expected/logits.npy")).unwrap();
    (m, dir, inputs, want)
}

/// Takes the MatMuls with a 2-D right operand and computes them itself
/// (naively, in f64), so that a wrong wiring of backend outputs would show in the logits.
struct NaiveMatMul {
    taken: Arc<AtomicUsize>,
    offered: Arc<AtomicUsize>,
}

impl Backend for NaiveMatMul {
    fn name(&self) -> &str {
        "naive"
    }
    fn try_run(
        &self,
        node: &NodeProto,
        inputs: &[Option<&Tensor>],
    ) -> Result<Option<Vec<Tensor>>, InterpError> {
        self.offered.fetch_add(1, Ordering::Relaxed);
        if node.op_type != "MatMul" {
            return Ok(None);
        }
        let (a, b) = (inputs[0].unwrap(), inputs[1].unwrap());
        // Only the 2-D-weight case of these exports: (..., k) x (k, n).
        if b.rank() != 2 || a.rank() < 2 {
            return Ok(None);
        }
        let (k, n) = (b.shape[0], b.shape[1]);
        let rows = a.len() / k;
        let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
        let mut out = vec![0.0f32; rows * n];
        for r in 0..rows {
            for j in 0..n {
                out[r * n + j] = (0..k).map(|p| x[r * k + p] * y[p * n + j]).sum::<f64>() as f32;
            }
        }
        let mut shape = a.shape.clone();
        *shape.last_mut().unwrap() = n;
        self.taken.fetch_add(1, Ordering::Relaxed);
        Ok(Some(vec![Tensor::from_f32(shape, out)?]))
    }
}

#[test]
fn backend_takes_what_it_can_and_cpu_the_rest() {
    let (m, dir, inputs, want) = case();
    let taken = Arc::new(AtomicUsize::new(0));
    let offered = Arc::new(AtomicUsize::new(0));
    let s = Session::new(&m, &dir)
        .unwrap()
        .with_backend(Box::new(NaiveMatMul {
            taken: taken.clone(),
            offered: offered.clone(),
        }));
    let got = s.run(&inputs).unwrap().remove(0).1;
    assert_eq!(offered.load(Ordering::Relaxed), s.num_nodes());
    // 7 MatMuls of this export have 2-D weights (in_proj, x_proj, out_proj... and the LM
    // head); the 24 per-step (.., 16) x (.., 16, 1) products stay on the CPU.
    assert_eq!(taken.load(Ordering::Relaxed), 7);
    for (a, b) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

struct Failing;
impl Backend for Failing {
    fn name(&self) -> &str {
        "failing"
    }
    fn try_run(
        &self,
        node: &NodeProto,
        _: &[Option<&Tensor>],
    ) -> Result<Option<Vec<Tensor>>, InterpError> {
        if node.op_type == "Conv" {
            return Err(InterpError::op("device lost"));
        }
        Ok(None)
    }
}

#[test]
fn backend_errors_name_backend_and_node() {
    let (m, dir, inputs, _) = case();
    let s = Session::new(&m, &dir)
        .unwrap()
        .with_backend(Box::new(Failing));
    let msg = s.run(&inputs).unwrap_err().to_string();
    assert!(
        msg.contains("backend 'failing'") && msg.contains("device lost"),
        "{msg}"
    );
    assert!(msg.contains("Conv"), "{msg}");
}

#[test]
fn progress_reports_every_node_in_order() {
    let (m, dir, inputs, _) = case();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let s = Session::new(&m, &dir)
        .unwrap()
        .with_progress(move |p| sink.lock().unwrap().push((p.done, p.total)));
    s.run(&inputs).unwrap();
    let seen = seen.lock().unwrap();
    let n = s.num_nodes();
    assert_eq!(seen.len(), n);
    assert!(seen
        .iter()
        .enumerate()
        .all(|(i, &(d, t))| d == i + 1 && t == n));
}

#[test]
fn session_is_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Session>();
    let (m, dir, inputs, want) = case();
    let s = Session::new(&m, &dir).unwrap();
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..2)
            .map(|_| sc.spawn(|| s.run(&inputs).unwrap()))
            .collect();
        for h in hs {
            let got = h.join().unwrap().remove(0).1;
            assert_eq!(got.shape, want.shape);
        }
    });
}
