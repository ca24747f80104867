//! The vision-Mamba exports (fixtures/vision/, `scripts/export_vision.py`) patched by
//! onnx-patch and run with the GPU backend: SS2D's grouped S6Scan (G = 4) and Vim's two
//! S6Scan nodes on the device, the outputs against onnxruntime on the originals. Skips (prints
//! SKIP) without a GPU adapter.

mod common;

use common::{assert_close, ctx, repo_root};
use s6_onnx::interp::{Backend, Session, Tensor};
use s6_onnx::proto::NodeProto;
use s6_wgpu::{WgpuBackend, WgpuContext};
use std::collections::HashMap;
use std::sync::Arc;

fn npys(dir: &std::path::Path) -> HashMap<String, Tensor> {
    std::fs::read_dir(dir)
        .expect("npy folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "npy"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, s6_onnx::npy::read(&p).expect("npy"))
        })
        .collect()
}

/// Lets the test read the backend's counters after handing it to the session.
struct Shared(Arc<WgpuBackend>);

impl Backend for Shared {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn try_run(
        &self,
        node: &NodeProto,
        inputs: &[Option<&Tensor>],
    ) -> Result<Option<Vec<Tensor>>, s6_onnx::interp::InterpError> {
        self.0.try_run(node, inputs)
    }
}

#[test]
fn patched_vision_exports_on_the_gpu_match_onnxruntime() {
    let Some(_) = ctx("patched_vision_exports_on_the_gpu_match_onnxruntime") else {
        return;
    };
    // (fixture, S6Scan nodes, tolerance: fp16 exports round every step to fp16 in onnxruntime)
    for (name, scans, tol) in [
        ("ss2d_4x4", 1, 1e-4),
        ("ss2d_3x5", 1, 1e-4),
        ("ss2d_cl_expand_4x4", 1, 1e-4),
        ("vim_8x8", 2, 1e-4),
        ("vim_6x10", 2, 1e-4),
        ("ss2d_dynamo_4x4", 1, 1e-4),
        ("mambavision_4x6", 1, 1e-4),
        ("vim_dynamo_8x8", 2, 1e-4),
        ("ss2d_fp16_4x4", 1, 1e-2),
        ("vim_fp16_8x8", 2, 1e-2),
    ] {
        let dir = repo_root().join("fixtures/vision").join(name);
        let mut model = s6_onnx::model::load(&dir.join("model.onnx")).expect("load");
        let report = s6_onnx::patch::patch_model(&mut model, &dir)
            .unwrap_or_else(|e| panic!("{name}: onnx-patch: {e}"));
        assert_eq!(report.layers_patched, scans, "{name}");
        let be = Arc::new(WgpuBackend::from_context(
            WgpuContext::new().expect("adapter"),
        ));
        let got = Session::new(&model, &dir)
            .unwrap_or_else(|e| panic!("{name}: parse: {e}"))
            .with_backend(Box::new(Shared(be.clone())))
            .run(&npys(&dir.join("inputs")))
            .unwrap_or_else(|e| panic!("{name}: gpu run: {e}"));
        let stats = be.stats();
        eprintln!("{name}: GPU ran {stats:?}");
        assert_eq!(stats.s6scan, scans, "{name}: every S6Scan on the GPU");
        let want = npys(&dir.join("expected"));
        for (out, g) in &got {
            let w = &want[out];
            assert_eq!(g.shape, w.shape, "{name} {out}");
            assert_close(
                &format!("{name} {out}"),
                &g.data.to_f32_vec(),
                &w.data.to_f64_vec(),
                tol,
                tol,
            );
        }
    }
}
