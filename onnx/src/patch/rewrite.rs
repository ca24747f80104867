//! The rewriting engine: rules return patches; patches are applied, the graph is re-sorted and
//! dead nodes pruned, until no rule applies.

use super::error::PatchError;
use super::graph::GraphIndex;
use super::PatchReport;
use onnx_protobuf::{GraphProto, NodeProto, TensorProto};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};

/// State shared by the rules across one run.
pub struct Ctx {
    pub base_dir: PathBuf,
    /// Sequence length of the export, learnt from the first scan found (steps of the loop).
    pub seq_len: Option<usize>,
    /// The model's opset imports (for trial runs of the graph, `groups.rs`).
    pub opset_import: Vec<onnx_protobuf::OperatorSetIdProto>,
    next_id: usize,
}

impl Ctx {
    pub fn new(base_dir: &Path) -> Ctx {
        Ctx {
            base_dir: base_dir.to_path_buf(),
            seq_len: None,
            opset_import: Vec::new(),
            next_id: 0,
        }
    }

    /// A name not used in the graph, for new nodes, values and initializers.
    pub fn fresh(&mut self, g: &GraphIndex, prefix: &str) -> String {
        loop {
            let name = format!("s6patch/{prefix}_{}", self.next_id);
            self.next_id += 1;
            if g.producer(&name).is_none()
                && g.initializer(&name).is_none()
                && g.consumers(&name).is_empty()
                && !g.has_node_named(&name)
            {
                return name;
            }
        }
    }
}

/// A change to the graph: nodes removed (by index), nodes and initializers added. Values keep
/// their names: a replacement node produces the names the removed nodes produced.
#[derive(Default)]
pub struct Patch {
    pub remove: Vec<usize>,
    pub add_nodes: Vec<NodeProto>,
    pub add_initializers: Vec<TensorProto>,
    /// Number of scans this patch creates (for the report).
    pub scans_created: usize,
    /// Matches merged into this patch, for the report's rule counts (0 counts as 1).
    pub matches: usize,
}

impl Patch {
    /// Adds `other` (a disjoint match found on the same index) to this patch.
    pub fn merge(&mut self, other: Patch) {
        self.matches = self.matches.max(1) + other.matches.max(1);
        self.remove.extend(other.remove);
        self.add_nodes.extend(other.add_nodes);
        self.add_initializers.extend(other.add_initializers);
        self.scans_created += other.scans_created;
    }
}

pub trait Rule {
    fn name(&self) -> &'static str;
    /// Looks for one match; returns the patch for it, nothing, or an error when a region looks
    /// like its pattern but cannot be proven to be it.
    fn apply(&self, g: &GraphIndex, ctx: &mut Ctx) -> Result<Option<Patch>, PatchError>;
}

pub fn run_to_fixed_point(
    graph: &mut GraphProto,
    rules: &[Box<dyn Rule>],
    ctx: &mut Ctx,
    report: &mut PatchReport,
) -> Result<(), PatchError> {
    let max_passes = graph.node.len() * 2 + 64;
    for _ in 0..max_passes {
        let mut applied = None;
        {
            let base_dir = ctx.base_dir.clone();
            let idx = GraphIndex::new(graph, &base_dir);
            for rule in rules {
                if let Some(p) = rule.apply(&idx, ctx)? {
                    applied = Some((rule.name(), p));
                    break;
                }
            }
        }
        let Some((name, patch)) = applied else {
            return Ok(());
        };
        tracing::debug!(rule = name, removed = patch.remove.len(), "rule applied");
        *report.rules.entry(name.to_string()).or_default() += patch.matches.max(1);
        report.layers_patched += patch.scans_created;
        apply(graph, patch)?;
    }
    Err(PatchError::NoFixedPoint(max_passes))
}

pub fn apply(graph: &mut GraphProto, patch: Patch) -> Result<(), PatchError> {
    let remove: HashSet<usize> = patch.remove.into_iter().collect();
    let old = std::mem::take(&mut graph.node);
    graph.node = old
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !remove.contains(i))
        .map(|(_, n)| n)
        .collect();
    graph.node.extend(patch.add_nodes);
    graph.initializer.extend(patch.add_initializers);
    topo_sort(graph)?;
    prune(graph);
    Ok(())
}

/// Stable topological sort: nodes keep their relative order unless a dependency forces a move.
pub fn topo_sort(graph: &mut GraphProto) -> Result<(), PatchError> {
    let n = graph.node.len();
    let mut producer: HashMap<&str, usize> =
        HashMap::with_capacity_and_hasher(n, Default::default());
    for (i, node) in graph.node.iter().enumerate() {
        // "" is an omitted optional input or output, not a value.
        for o in node.output.iter().filter(|o| !o.is_empty()) {
            producer.insert(o.as_str(), i);
        }
        // A node reading its own output is a cycle of one.
        if let Some(x) = node
            .input
            .iter()
            .find(|x| !x.is_empty() && node.output.contains(x))
        {
            return Err(PatchError::Cycle {
                node: node.name.clone(),
                op_type: node.op_type.clone(),
                value: x.clone(),
            });
        }
    }
    let mut indeg = vec![0usize; n];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in graph.node.iter().enumerate() {
        let mut deps: Vec<usize> = node
            .input
            .iter()
            .filter_map(|x| producer.get(x.as_str()).copied())
            .filter(|&p| p != i)
            .collect();
        deps.sort_unstable();
        deps.dedup();
        indeg[i] = deps.len();
        for p in deps {
            users[p].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indeg[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &u in &users[i] {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.push(Reverse(u));
            }
        }
    }
    if order.len() != n {
        let stuck = (0..n).find(|&i| indeg[i] > 0).unwrap_or(0);
        let node = &graph.node[stuck];
        return Err(PatchError::Cycle {
            node: node.name.clone(),
            op_type: node.op_type.clone(),
            value: node.input.first().cloned().unwrap_or_default(),
        });
    }
    let mut slots: Vec<Option<NodeProto>> = std::mem::take(&mut graph.node)
        .into_iter()
        .map(Some)
        .collect();
    graph.node = order
        .into_iter()
        .map(|i| slots[i].take().expect("each node once"))
        .collect();
    Ok(())
}

/// Removes nodes no graph output depends on, then initializers (and their graph-input entries)
/// and value_info entries nothing refers to any more.
pub fn prune(graph: &mut GraphProto) {
    // What stays, decided on borrowed names before anything moves.
    let (keep, dead_inits, keep_vi) = {
        let mut live: HashSet<&str> =
            HashSet::with_capacity_and_hasher(2 * graph.node.len(), Default::default());
        live.extend(graph.output.iter().map(|o| o.name.as_str()));
        let mut keep = vec![false; graph.node.len()];
        for (i, node) in graph.node.iter().enumerate().rev() {
            if node.output.iter().any(|o| live.contains(o.as_str())) {
                keep[i] = true;
                live.extend(node.input.iter().map(String::as_str));
                // Subgraph attributes (If/Loop bodies) may capture outer values.
                for a in &node.attribute {
                    for g in a.g.iter().chain(a.graphs.iter()) {
                        collect_captures(g, &mut live);
                    }
                }
            }
        }
        let dead_inits: HashSet<String> = graph
            .initializer
            .iter()
            .filter(|t| !live.contains(t.name.as_str()))
            .map(|t| t.name.clone())
            .collect();
        let produced: HashSet<&str> = graph
            .node
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .flat_map(|(n, _)| n.output.iter().map(String::as_str))
            .collect();
        let keep_vi: Vec<bool> = graph
            .value_info
            .iter()
            .map(|v| produced.contains(v.name.as_str()) || live.contains(v.name.as_str()))
            .collect();
        (keep, dead_inits, keep_vi)
    };
    let old = std::mem::take(&mut graph.node);
    graph.node = old
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(n, _)| n)
        .collect();
    graph.initializer.retain(|t| !dead_inits.contains(&t.name));
    graph.input.retain(|i| !dead_inits.contains(&i.name));
    let vi = std::mem::take(&mut graph.value_info);
    graph.value_info = vi
        .into_iter()
        .zip(keep_vi)
        .filter(|(_, k)| *k)
        .map(|(v, _)| v)
        .collect();
}

fn collect_captures<'g>(g: &'g GraphProto, live: &mut HashSet<&'g str>) {
    for n in &g.node {
        live.extend(n.input.iter().map(String::as_str));
        for a in &n.attribute {
            for sub in a.g.iter().chain(a.graphs.iter()) {
                collect_captures(sub, live);
            }
        }
    }
}
