//! Grouped `B`/`C` (`docs/s6scan.md`, rule 1): a scan whose `B` and `C` are (batch, G, N, L) —
//! VMamba's SS2D scans its K = 4 directions in one call this way — reaches the recurrence with
//! `B`/`C` spread over each group's `dim / G` consecutive channels: `repeat_interleave`,
//! `expand` + `reshape` or einops' `repeat`, exported as chains of Unsqueeze, Tile / Expand and
//! Reshape whose repeat counts and shapes are computed from other shapes at run time.
//!
//! Those counts cannot be read off the graph, so the spread is proven by what it computes: the
//! chain may only move data, and a trial run of the graph (the interpreter, on generated
//! inputs, only the nodes the chain needs) must show that the spread value equals its source
//! repeated block-wise along the channel axis — `spread[.., g·H + h, ..] = source[.., g, ..]`.
//! One trial run per grouped scan (B and C together); nothing is kept afterwards.

use super::error::PatchError;
use super::graph::{attr_i, is_default_domain, GraphIndex};
use super::rewrite::Ctx;
use super::verify;
use crate::interp::{Session, Tensor};
use onnx_protobuf::{GraphProto, ModelProto, NodeProto, ValueInfoProto};
use std::collections::{HashMap, HashSet};

/// A proven spread: `base` (batch, G, …) is the value before it, `groups` = G.
#[derive(Clone, Debug)]
pub struct Spread {
    pub base: String,
    pub groups: usize,
}

/// Ops that only move or copy data (float Casts included).
fn moves_data(n: &NodeProto) -> bool {
    is_default_domain(n)
        && match n.op_type.as_str() {
            "Reshape" | "Unsqueeze" | "Tile" | "Expand" | "Identity" | "Squeeze" | "Flatten" => {
                true
            }
            "Cast" => matches!(attr_i(n, "to"), Some(1) | Some(10) | Some(11) | Some(16)),
            _ => false,
        }
}

/// The values below `value` along its data-moving producers (first inputs), nearest first.
fn chain(g: &GraphIndex, value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut v = value.to_string();
    while let Some((_, n)) = g.producer(&v) {
        if !moves_data(n) || n.input.is_empty() || out.len() > 64 {
            break;
        }
        v = n.input[0].clone();
        out.push(v.clone());
    }
    out
}

/// For each (value, axis, node to name in errors): if `value` spreads a grouped tensor along
/// `axis` (its channel axis), the tensor it spreads. `None` when `value` is not made by
/// data-moving ops at all (then it is no spread); an error when it is, but the trial run fails
/// or shows something else. One trial run serves all of them.
pub fn resolve_all(
    g: &GraphIndex,
    ctx: &Ctx,
    spreads: &[(&str, usize, &NodeProto)],
) -> Result<Vec<Option<Spread>>, PatchError> {
    let chains: Vec<Vec<String>> = spreads.iter().map(|(v, _, _)| chain(g, v)).collect();
    let mut want = Vec::new();
    for ((v, _, _), below) in spreads.iter().zip(&chains) {
        if !below.is_empty() {
            want.push(v.to_string());
            want.extend(below.iter().cloned());
        }
    }
    if want.is_empty() {
        return Ok(vec![None; spreads.len()]);
    }
    let at = spreads[0].2;
    let vals = probe(g, ctx, &want, at)?;
    let mut out = Vec::with_capacity(spreads.len());
    for (&(value, axis, at), below) in spreads.iter().zip(&chains) {
        if below.is_empty() {
            out.push(None);
            continue;
        }
        let v = vals.get(value).ok_or_else(|| PatchError::Unprovable {
            node: at.name.clone(),
            op_type: at.op_type.clone(),
            reason: format!("grouped B/C: the trial run did not produce '{value}'"),
        })?;
        // The deepest candidate of the same rank that it repeats block-wise.
        let found = below.iter().rev().find_map(|cand| {
            let groups = block_repeat(vals.get(cand)?, v, axis)?;
            Some(Spread {
                base: cand.clone(),
                groups,
            })
        });
        let Some(found) = found else {
            return Err(PatchError::Unprovable {
                node: at.name.clone(),
                op_type: at.op_type.clone(),
                reason: format!(
                    "'{value}' {:?} is built by data-moving ops but is not a block-wise repeat \
                     of a (batch, G, …) tensor along axis {axis} (Tile's interleaving `d mod G` \
                     is not the contract's grouping `d / (dim / G)`)",
                    v.shape
                ),
            });
        };
        out.push(Some(found));
    }
    Ok(out)
}

/// `Some(G)` when `v` equals `x` with axis `axis` repeated block-wise (each of x's G entries
/// H = v/x times in a row), everything else equal.
fn block_repeat(x: &Tensor, v: &Tensor, axis: usize) -> Option<usize> {
    if x.rank() != v.rank() || axis >= x.rank() {
        return None;
    }
    let (gx, dv) = (x.shape[axis], v.shape[axis]);
    let same_elsewhere = (0..x.rank()).all(|i| i == axis || x.shape[i] == v.shape[i]);
    if !same_elsewhere || gx == 0 || dv % gx != 0 || x.is_empty() {
        return None;
    }
    let h = dv / gx;
    let inner: usize = x.shape[axis + 1..].iter().product();
    let outer: usize = x.shape[..axis].iter().product();
    let (xv, vv) = (x.to_f64_vec(), v.to_f64_vec());
    for o in 0..outer {
        for d in 0..dv {
            let src = (o * gx + d / h) * inner;
            let dst = (o * dv + d) * inner;
            if xv[src..src + inner] != vv[dst..dst + inner] {
                return None;
            }
        }
    }
    Some(gx)
}

/// Values of `values` from one trial run of the nodes they need, on generated inputs (the
/// ones `--verify` uses).
fn probe(
    g: &GraphIndex,
    ctx: &Ctx,
    values: &[String],
    at: &NodeProto,
) -> Result<HashMap<String, Tensor>, PatchError> {
    let fail = |reason: String| PatchError::Unprovable {
        node: at.name.clone(),
        op_type: at.op_type.clone(),
        reason: format!("grouped B/C: the trial run that sizes the groups failed: {reason}"),
    };
    let model = slice_model(g.graph, &ctx.opset_import, values);
    let session = Session::new(&model, &ctx.base_dir).map_err(|e| fail(e.to_string()))?;
    let inputs = verify::make_inputs(&model, &session, 1, 11).map_err(|e| fail(e.to_string()))?;
    let outs = session.run(&inputs).map_err(|e| fail(e.to_string()))?;
    tracing::debug!(values = values.len(), "group spread probed");
    Ok(outs.into_iter().collect())
}

/// A model of only the nodes `outputs` depend on, with `outputs` as its outputs.
fn slice_model(
    graph: &GraphProto,
    opsets: &[onnx_protobuf::OperatorSetIdProto],
    outputs: &[String],
) -> ModelProto {
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut keep = HashSet::new();
    let mut todo: Vec<&str> = outputs.iter().map(String::as_str).collect();
    while let Some(v) = todo.pop() {
        if let Some(&i) = producer.get(v) {
            if keep.insert(i) {
                todo.extend(graph.node[i].input.iter().map(String::as_str));
            }
        }
    }
    let mut sub = GraphProto::new();
    sub.name = graph.name.clone();
    sub.node = graph
        .node
        .iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, n)| n.clone())
        .collect();
    let used: HashSet<&str> = sub
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .chain(outputs.iter().map(String::as_str))
        .collect();
    sub.initializer = graph
        .initializer
        .iter()
        .filter(|t| used.contains(t.name.as_str()))
        .cloned()
        .collect();
    let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    sub.input = graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()) || used.contains(i.name.as_str()))
        .cloned()
        .collect();
    sub.output = outputs
        .iter()
        .map(|o| {
            let mut vi = ValueInfoProto::new();
            vi.name = o.clone();
            vi
        })
        .collect();
    let mut m = ModelProto::new();
    m.ir_version = 8;
    m.opset_import = opsets.to_vec();
    m.graph = protobuf::MessageField::some(sub);
    m
}

#[cfg(test)]
mod tests {
    use super::block_repeat;
    use crate::interp::Tensor;

    fn t(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
        Tensor::from_f32(shape, v).unwrap()
    }

    #[test]
    fn block_repeats_are_found_and_interleavings_refused() {
        // x (1, G = 2, 2): groups [1, 2] and [3, 4].
        let x = t(vec![1, 2, 2], vec![1., 2., 3., 4.]);
        // Each group over H = 3 consecutive channels: channel d uses group d / 3.
        let block = t(
            vec![1, 6, 2],
            vec![1., 2., 1., 2., 1., 2., 3., 4., 3., 4., 3., 4.],
        );
        assert_eq!(block_repeat(&x, &block, 1), Some(2));
        // Tiled: channel d uses group d mod 2.
        let tiled = t(
            vec![1, 6, 2],
            vec![1., 2., 3., 4., 1., 2., 3., 4., 1., 2., 3., 4.],
        );
        assert_eq!(block_repeat(&x, &tiled, 1), None);
        // G = 1: a broadcast over all channels.
        let one = t(vec![1, 1, 2], vec![5., 6.]);
        let spread = t(vec![1, 3, 2], vec![5., 6., 5., 6., 5., 6.]);
        assert_eq!(block_repeat(&one, &spread, 1), Some(1));
        // Other shapes, other axes, other ranks.
        assert_eq!(block_repeat(&x, &t(vec![1, 5, 2], vec![0.; 10]), 1), None);
        assert_eq!(block_repeat(&x, &block, 2), None);
        assert_eq!(block_repeat(&x, &t(vec![6, 2], vec![0.; 12]), 0), None);
    }
}
