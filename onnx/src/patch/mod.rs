//! The Mamba patcher: finds every unrolled selective scan in an exported graph and replaces it
//! with one `S6Scan` node (`docs/s6scan.md`), then folds neighbouring work the op can do into it
//! and makes the sequence length dynamic.
//!
//! It is a rewriter: each [`Rule`] looks at the graph through a [`GraphIndex`] and returns a
//! [`Patch`] or nothing; the rules run until none applies (a fixed point). Rules match dataflow
//! structure only, never node or value names. One rule family per file.

pub mod absorb;
pub mod conv_slice;
pub mod dynamic;
pub mod error;
pub mod forms;
pub mod graph;
pub mod groups;
pub mod infer;
pub mod rewrite;
pub mod s6node;
pub mod scan;
pub mod ssd;
pub mod ssd_trilu;
pub mod stateful;
pub mod stateful_verify;
pub mod verify;

pub use error::PatchError;
pub use graph::GraphIndex;
pub use rewrite::{Ctx, Patch, Rule};

use onnx_protobuf::{ModelProto, OperatorSetIdProto};
use s6_contract::contract::{ONNX_DOMAIN, ONNX_DOMAIN_VERSION, OP_TYPE};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// What a patch run did, for the CLI's summary and `--report`.
#[derive(Clone, Debug, Default)]
pub struct PatchReport {
    pub layers_patched: usize,
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub initializers_before: usize,
    pub initializers_after: usize,
    /// The export's sequence length (steps of the unrolled scans).
    pub export_seq_len: Option<usize>,
    /// The symbolic name of the sequence axis in the patched graph (`seq_len`, or the name the
    /// export already gave it).
    pub seq_dim: Option<String>,
    /// Rule name → times applied.
    pub rules: BTreeMap<String, usize>,
    /// `S6Scan` node name → attribute summary.
    pub scans: Vec<(String, String)>,
    pub warnings: Vec<String>,
    pub seconds: f64,
}

impl PatchReport {
    /// The report as a JSON value (`--report` adds the verification to it).
    pub fn to_json_value(&self) -> serde_json::Value {
        serde_json::json!({
            "layers_patched": self.layers_patched,
            "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after,
            "initializers_before": self.initializers_before,
            "initializers_after": self.initializers_after,
            "export_seq_len": self.export_seq_len,
            "seq_dim": self.seq_dim,
            "seconds": self.seconds,
            "rules": self.rules,
            "scans": self.scans.iter().map(|(n, a)| serde_json::json!({"node": n, "attributes": a})).collect::<Vec<_>>(),
            "warnings": self.warnings,
        })
    }

    /// The report as pretty-printed JSON text.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.to_json_value()).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// The rules, in the order they are tried on each pass.
pub fn default_rules() -> Vec<Box<dyn Rule>> {
    vec![
        Box::new(scan::UnrolledScan),
        Box::new(ssd::ChunkedScanHeads),
        Box::new(ssd_trilu::TriluChunkedScanHeads),
        Box::new(absorb::Softplus),
        Box::new(absorb::DeltaBias),
        Box::new(absorb::DSkip),
        Box::new(absorb::ZGate),
        Box::new(conv_slice::CausalConvSlice),
    ]
}

/// Patches `model` in place. `base_dir` is the model's folder (for external data).
pub fn patch_model(model: &mut ModelProto, base_dir: &Path) -> Result<PatchReport, PatchError> {
    let start = Instant::now();
    let opset_import = model.opset_import.clone();
    let graph = model.graph.as_mut().ok_or(PatchError::NoGraph)?;
    let mut report = PatchReport {
        nodes_before: graph.node.len(),
        initializers_before: graph.initializer.len(),
        ..Default::default()
    };
    // The rules walk producers back from values: a cycle would send them round forever.
    rewrite::topo_sort(graph)?;
    let mut ctx = Ctx::new(base_dir);
    ctx.opset_import = opset_import;
    if graph.node.iter().any(|n| n.op_type == "CumSum") {
        // A possible Mamba2 graph: rewrite a copy, so that one whose SSD regions are not all
        // turned into S6ScanHeads is refused unchanged.
        let mut work = graph.clone();
        rewrite::run_to_fixed_point(&mut work, &default_rules(), &mut ctx, &mut report)?;
        scan::refuse_mamba2(&work)?;
        *graph = work;
    } else {
        rewrite::run_to_fixed_point(graph, &default_rules(), &mut ctx, &mut report)?;
    }
    if report.layers_patched == 0 {
        return Err(PatchError::NotMamba {
            detail:
                "no unrolled h = exp(Δ·A)·h + Δ·B·u recurrence read out by C and stacked over time"
                    .into(),
        });
    }
    report.export_seq_len = ctx.seq_len;
    if let Some(l) = ctx.seq_len {
        report.seq_dim = Some(dynamic::make_seq_dynamic(graph, l, &mut report));
        dynamic::warn_baked_shapes(graph, base_dir, l, &mut report);
    }
    for n in &graph.node {
        if n.op_type == s6_contract::contract_heads::OP_TYPE && n.domain == ONNX_DOMAIN {
            let flags: Vec<&str> = n
                .attribute
                .iter()
                .filter(|a| a.i == 1)
                .map(|a| a.name.as_str())
                .collect();
            report
                .scans
                .push((n.name.clone(), format!("S6ScanHeads:{}", flags.join(","))));
        }
        if let Some(sn) = s6node::ScanNode::from_node(n) {
            let a = sn.attrs;
            let flags: Vec<&str> = s6_contract::contract::S6Attrs::FIELD_NAMES
                .iter()
                .zip(a.values())
                .filter(|(_, v)| *v)
                .map(|(k, _)| *k)
                .collect();
            report.scans.push((n.name.clone(), flags.join(",")));
        }
    }
    if !model.opset_import.iter().any(|o| o.domain == ONNX_DOMAIN) {
        let mut o = OperatorSetIdProto::new();
        o.domain = ONNX_DOMAIN.to_string();
        o.version = ONNX_DOMAIN_VERSION;
        model.opset_import.push(o);
    }
    let graph = model.graph.as_ref().ok_or(PatchError::NoGraph)?;
    report.nodes_after = graph.node.len();
    report.initializers_after = graph.initializer.len();
    report.seconds = start.elapsed().as_secs_f64();
    tracing::info!(
        layers = report.layers_patched,
        nodes_before = report.nodes_before,
        nodes_after = report.nodes_after,
        "patched ({OP_TYPE})"
    );
    Ok(report)
}
