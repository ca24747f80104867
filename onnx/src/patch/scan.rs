//! Rule family 1: the unrolled selective scan.
//!
//! Both torch.onnx exporters trace the Python loop over time, so a scan appears as
//!
//! ```text
//! dA = Exp(A ⊗ Δ)          dBu = Δ ⊗ B ⊗ u           (Mul of broadcast views, or Einsum)
//! h_t = Add(Mul(Gather(dA, t, ax), h_{t-1}), Gather(dBu, t, ax))     h_{-1} = 0 (a constant)
//! y_t = readout(h_t, Gather(C, t, axc))   MatMul(h, Unsqueeze(C_t, -1)) → Gather/Squeeze, or
//!                                         Einsum("bdn,bn->bd")
//! y   = Concat(Unsqueeze(y_0), …, Unsqueeze(y_{L-1}))                 (torch.stack)
//! ```
//!
//! The rule starts at a Concat whose first input reads out a state, proves every step (indices
//! 0..L in order, one state chain, one dA / dBu / C source), then proves the factors of dA and
//! dBu (which operand is A, Δ, B, u, and their layouts) from how they are broadcast. Once a
//! Concat looks like a scan, any failed proof is an error naming the node.

use super::error::PatchError;
use super::forms::{self, Role};
use super::graph::{
    attr_i, attr_ints, attr_s, input, is_default_domain, norm_axis, output, GraphIndex, BFLOAT16,
    DOUBLE, FLOAT, FLOAT16,
};
use super::groups;
use super::infer::{self, type_name, Infer};
use super::rewrite::{Ctx, Patch, Rule};
use super::s6node::ScanNode;
use onnx_protobuf::{GraphProto, NodeProto};
use s6_contract::contract::S6Attrs;

pub struct UnrolledScan;

impl Rule for UnrolledScan {
    fn name(&self) -> &'static str {
        "unrolled-scan"
    }

    /// Every scan the index shows, in one patch: each layer's scan is its own region (its stack
    /// and what only it reads), matched here as it would be alone, and a pass per scan would
    /// re-index a graph of 10^4–10^5 nodes each time. The nodes are in topological order, so a
    /// matched region lies before its stack and no later candidate is inside it.
    fn apply(&self, g: &GraphIndex, ctx: &mut Ctx) -> Result<Option<Patch>, PatchError> {
        let mut found: Option<Patch> = None;
        for (i, n) in g.graph.node.iter().enumerate() {
            if !is_default_domain(n) {
                continue;
            }
            // A one-step scan (L = 1) has no Concat: its only step is just Unsqueezed.
            let lone = n.op_type == "Unsqueeze"
                && !g
                    .consumers(output(n, 0))
                    .iter()
                    .any(|&c| g.node(c).op_type == "Concat");
            if n.op_type == "Concat" || lone {
                match match_stack(g, ctx, i) {
                    Ok(Some(p)) => match found.as_mut() {
                        Some(all) => all.merge(p),
                        None => found = Some(p),
                    },
                    Ok(None) => {}
                    Err(e) if found.is_none() => return Err(e),
                    // Left to the next pass, which sees the graph with this pass's scans
                    // applied (and reports the error again if it still is one).
                    Err(_) => break,
                }
            }
        }
        Ok(found)
    }
}

fn unprovable(n: &NodeProto, reason: impl Into<String>) -> PatchError {
    PatchError::Unprovable {
        node: n.name.clone(),
        op_type: n.op_type.clone(),
        reason: reason.into(),
    }
}

/// Unsqueeze's single axis (attribute before opset 13, input after).
fn unsqueeze_axes(g: &GraphIndex, n: &NodeProto) -> Option<Vec<i64>> {
    if let Some(a) = attr_ints(n, "axes") {
        return Some(a);
    }
    g.constant(n.input.get(1)?).map(|c| c.ints())
}

/// A scalar integer constant (a step index).
fn scalar_index(g: &GraphIndex, value: &str) -> Option<i64> {
    let c = g.constant(value)?;
    (c.dims.is_empty() && c.values.len() == 1).then(|| c.values[0] as i64)
}

/// `Gather(src, k, axis)` with a scalar constant index: (src, k, axis).
fn step_gather(g: &GraphIndex, value: &str) -> Option<(String, i64, i64)> {
    let (_, n) = g.producer_op(&g.strip_casts(value), "Gather")?;
    let k = scalar_index(g, input(n, 1))?;
    Some((input(n, 0).to_string(), k, attr_i(n, "axis").unwrap_or(0)))
}

/// One step's readout: the state it reads and C_t.
struct Readout {
    h: String,
    c_src: String,
    c_axis: i64,
    k: i64,
    /// C_t's axes: (batch, state), or with a channel axis when C is spread over channels.
    c_roles: Vec<Role>,
    /// The readout's last node (named in errors).
    node: usize,
    /// The node that consumes the state (MatMul or Einsum).
    reader: usize,
}

fn match_readout(g: &GraphIndex, y: &str) -> Option<Readout> {
    let y = g.strip_casts(y);
    let (pi, p) = g.producer(&y)?;
    if !is_default_domain(p) {
        return None;
    }
    match p.op_type.as_str() {
        "Einsum" => {
            // Any spelling: forms::readout_einsum finds the state operand and C_t's axes.
            forms::readout_einsum(p)
                .into_iter()
                .find_map(|(hi, c_roles)| {
                    let (c_src, k, c_axis) = step_gather(g, input(p, 1 - hi))?;
                    Some(Readout {
                        h: g.strip_float_casts(input(p, hi)),
                        c_src,
                        c_axis,
                        k,
                        c_roles,
                        node: pi,
                        reader: pi,
                    })
                })
        }
        "ReduceSum" => {
            // Σₙ h ⊙ C_t: a product summed over the state axis (keepdims 0).
            let axes =
                attr_ints(p, "axes").or_else(|| g.constant(p.input.get(1)?).map(|c| c.ints()));
            if !matches!(axes.as_deref(), Some([2]) | Some([-1]))
                || attr_i(p, "keepdims").unwrap_or(1) != 0
            {
                return None;
            }
            let (mi, mul) = g.producer_op(&g.strip_casts(input(p, 0)), "Mul")?;
            let c_t = |v: &str| -> Option<((String, i64, i64), Vec<Role>)> {
                let v = g.strip_casts(v);
                if let Some(s) = step_gather(g, &v) {
                    // C_t (b, d, n), as spread over the channels.
                    return Some((s, vec![Role::Batch, Role::Channel, Role::State]));
                }
                // (b, 1, n) = Unsqueeze(C_t (b, n), 1).
                let (_, u) = g.producer_op(&v, "Unsqueeze")?;
                if unsqueeze_axes(g, u)?.as_slice() != [1] {
                    return None;
                }
                Some((step_gather(g, input(u, 0))?, vec![Role::Batch, Role::State]))
            };
            (0..2).find_map(|hi| {
                let ((c_src, k, c_axis), c_roles) = c_t(input(mul, 1 - hi))?;
                let h = g.strip_float_casts(input(mul, hi));
                // The state is the Add of the update (or, folded, a Gather of dBu).
                g.producer(&h)
                    .filter(|(_, n)| matches!(n.op_type.as_str(), "Add" | "Gather"))?;
                Some(Readout {
                    h,
                    c_src,
                    c_axis,
                    k,
                    c_roles,
                    node: pi,
                    reader: mi,
                })
            })
        }
        "Gather" | "Squeeze" => {
            // (B, D, 1) → (B, D): Gather(·, 0, axis=2|-1) or Squeeze(axes=[2|-1]).
            let ok = if p.op_type == "Gather" {
                scalar_index(g, input(p, 1)) == Some(0)
                    && matches!(attr_i(p, "axis"), Some(2) | Some(-1))
            } else {
                let axes =
                    attr_ints(p, "axes").or_else(|| g.constant(p.input.get(1)?).map(|c| c.ints()));
                matches!(axes.as_deref(), Some([2]) | Some([-1]))
            };
            if !ok {
                return None;
            }
            let (mi, mm) = g.producer_op(&g.strip_casts(input(p, 0)), "MatMul")?;
            let (_, uc) = g.producer_op(&g.strip_casts(input(mm, 1)), "Unsqueeze")?;
            if !matches!(unsqueeze_axes(g, uc)?.as_slice(), [-1] | [2]) {
                return None;
            }
            let (c_src, k, c_axis) = step_gather(g, input(uc, 0))?;
            Some(Readout {
                h: g.strip_float_casts(input(mm, 0)),
                c_src,
                c_axis,
                k,
                c_roles: vec![Role::Batch, Role::State],
                node: pi,
                reader: mi,
            })
        }
        _ => None,
    }
}

/// A state update h_t = dA_t * h_prev + dBu_t.
struct Update {
    da: (String, i64, i64),
    dbu: (String, i64, i64),
    h_prev: Option<String>,
}

fn match_update(g: &GraphIndex, h: &str, at: &NodeProto) -> Result<Update, PatchError> {
    let (_, add) = g
        .producer(h)
        .ok_or_else(|| unprovable(at, "the state is not computed"))?;
    if let Some(dbu) = step_gather(g, h) {
        // h_0 = dBu_0 when the exporter folded 0 * dA_0 away.
        return Ok(Update {
            da: (String::new(), dbu.1, -1),
            dbu,
            h_prev: None,
        });
    }
    if add.op_type != "Add" || !is_default_domain(add) {
        return Err(unprovable(
            add,
            "state update is not Add(Mul(dA_t, h), dBu_t)",
        ));
    }
    for (p, q) in [(0, 1), (1, 0)] {
        let Some((_, mul)) = g.producer_op(&g.strip_casts(input(add, p)), "Mul") else {
            continue;
        };
        let Some(dbu) = step_gather(g, input(add, q)) else {
            continue;
        };
        for (r, s) in [(0, 1), (1, 0)] {
            if let Some(da) = step_gather(g, input(mul, r)) {
                return Ok(Update {
                    da,
                    dbu,
                    h_prev: Some(g.strip_float_casts(input(mul, s))),
                });
            }
        }
    }
    Err(unprovable(
        add,
        "state update is not Add(Mul(Gather(dA, t), h), Gather(dBu, t))",
    ))
}

/// A factor of a broadcast product: `base` with base axis i placed at output axis `map[i]`
/// (None: a size-1 axis of a constant, broadcast).
#[derive(Clone, Debug)]
struct Factor {
    base: String,
    map: Vec<Option<usize>>,
    /// Dims when the base is a constant.
    const_dims: Option<Vec<i64>>,
}

/// Splits `value` (rank `rank`) into broadcast factors through Mul, Unsqueeze, Cast and Einsum.
/// Only products at full rank are split: below an Unsqueeze a Mul is an operand's own
/// computation (SiLU's x·sigmoid(x), say), not part of the discretisation.
fn factors(
    g: &GraphIndex,
    value: &str,
    rank: usize,
    at: &NodeProto,
) -> Result<Vec<Factor>, PatchError> {
    factors_at(g, value, rank, at, true)
}

fn factors_at(
    g: &GraphIndex,
    value: &str,
    rank: usize,
    at: &NodeProto,
    top: bool,
) -> Result<Vec<Factor>, PatchError> {
    let v = g.strip_casts(value);
    if let Some(c) = g.constant(&v) {
        let r = c.dims.len();
        if r > rank {
            return Err(unprovable(
                at,
                format!("constant '{v}' has rank {r} > {rank}"),
            ));
        }
        let map = c
            .dims
            .iter()
            .enumerate()
            .map(|(i, &d)| (d != 1).then_some(rank - r + i))
            .collect();
        return Ok(vec![Factor {
            base: v,
            map,
            const_dims: Some(c.dims),
        }]);
    }
    match g.producer(&v) {
        Some((_, n)) if top && is_default_domain(n) && n.op_type == "Mul" => {
            let mut f = factors_at(g, input(n, 0), rank, at, true)?;
            f.extend(factors_at(g, input(n, 1), rank, at, true)?);
            Ok(f)
        }
        Some((_, n)) if is_default_domain(n) && n.op_type == "Unsqueeze" => {
            let axes =
                unsqueeze_axes(g, n).ok_or_else(|| unprovable(n, "Unsqueeze axes unknown"))?;
            let mut inserted: Vec<usize> = axes
                .iter()
                .map(|&a| norm_axis(a, rank).ok_or_else(|| unprovable(n, "bad Unsqueeze axis")))
                .collect::<Result<_, _>>()?;
            inserted.sort_unstable();
            let kept: Vec<usize> = (0..rank).filter(|a| !inserted.contains(a)).collect();
            let inner = factors_at(g, input(n, 0), kept.len(), at, false)?;
            Ok(inner
                .into_iter()
                .map(|f| Factor {
                    map: f.map.iter().map(|m| m.map(|a| kept[a])).collect(),
                    ..f
                })
                .collect())
        }
        Some((_, n)) if top && is_default_domain(n) && n.op_type == "Einsum" => {
            let eq = attr_s(n, "equation").unwrap_or_default().replace(' ', "");
            let (lhs, out) = eq
                .split_once("->")
                .ok_or_else(|| unprovable(n, "Einsum without an explicit output"))?;
            if out.len() != rank || lhs.contains("...") {
                return Err(unprovable(
                    n,
                    format!("Einsum '{eq}' is not a rank-{rank} broadcast product"),
                ));
            }
            let terms: Vec<&str> = lhs.split(',').collect();
            if terms.len() != n.input.len() {
                return Err(unprovable(n, "Einsum terms do not match its inputs"));
            }
            let mut f = Vec::new();
            for (t, x) in terms.iter().zip(&n.input) {
                let map = t
                    .chars()
                    .map(|c| out.find(c).map(Some))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| unprovable(n, format!("Einsum '{eq}' sums over an index")))?;
                f.push(Factor {
                    base: g.strip_casts(x),
                    map,
                    const_dims: None,
                });
            }
            Ok(f)
        }
        _ => Ok(vec![Factor {
            base: v,
            map: (0..rank).map(Some).collect(),
            const_dims: None,
        }]),
    }
}

/// Splits a factor that is itself a broadcast product (Δ·u or Δ·B computed before the
/// product with the third factor, by Mul or Einsum) into its factors, their axes mapped
/// through the outer factor's.
fn split_factor(
    g: &GraphIndex,
    f: &Factor,
    at: &NodeProto,
) -> Result<Option<Vec<Factor>>, PatchError> {
    if f.const_dims.is_some() {
        return Ok(None);
    }
    let rank = f.map.len();
    let parts = if let Some((_, mul)) = g.producer_op(&f.base, "Mul") {
        // One level only: u's own products (SiLU's x·sigmoid(x)) stay whole.
        let mut p = factors_at(g, input(mul, 0), rank, at, false)?;
        p.extend(factors_at(g, input(mul, 1), rank, at, false)?);
        p
    } else if g.producer_op(&f.base, "Einsum").is_some() {
        // The Einsum's operands, each whole.
        factors_at(g, &f.base, rank, at, true)?
    } else {
        return Ok(None);
    };
    if parts.len() < 2 {
        return Ok(None);
    }
    Ok(Some(
        parts
            .into_iter()
            .map(|p| Factor {
                map: p.map.iter().map(|m| m.and_then(|j| f.map[j])).collect(),
                ..p
            })
            .collect(),
    ))
}

/// Axis letters of the 4-D dA / dBu tensors.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ax {
    B,
    D,
    L,
    N,
}

fn letters(f: &Factor, layout: &[Ax; 4]) -> Vec<Ax> {
    f.map.iter().flatten().map(|&a| layout[a]).collect()
}

fn covers(f: &Factor, layout: &[Ax; 4], want: &[Ax]) -> bool {
    let mut l = letters(f, layout);
    l.sort_by_key(|a| *a as u8);
    let mut w = want.to_vec();
    w.sort_by_key(|a| *a as u8);
    // Constants may have size-1 batch axes, so B is optional for them.
    if f.const_dims.is_some() {
        w.retain(|a| *a != Ax::B || l.contains(&Ax::B));
    }
    l == w
}

fn match_stack(g: &GraphIndex, ctx: &mut Ctx, ci: usize) -> Result<Option<Patch>, PatchError> {
    let concat = g.node(ci);
    let elements: Vec<String> = if concat.op_type == "Concat" {
        concat.input.clone()
    } else {
        vec![output(concat, 0).to_string()]
    };
    let steps = elements.len();
    // Candidate test: the first element is Unsqueeze(readout of a state update).
    let Some(first_elem) = elements.first() else {
        return Ok(None);
    };
    let first = match g.producer_op(first_elem, "Unsqueeze") {
        Some((_, u)) => u,
        None => return Ok(None),
    };
    let Some(r0) = match_readout(g, input(first, 0)) else {
        return Ok(None);
    };
    match g.producer(&r0.h) {
        Some((_, n)) if matches!(n.op_type.as_str(), "Add" | "Gather") => {}
        _ => return Ok(None),
    }

    // Every element: Unsqueeze on one axis of a readout of step k.
    let cat_axis = if concat.op_type == "Concat" {
        attr_i(concat, "axis").ok_or_else(|| unprovable(concat, "Concat without axis"))?
    } else {
        match unsqueeze_axes(g, concat).as_deref() {
            Some([a]) => *a,
            _ => return Err(unprovable(concat, "step output unsqueezed on several axes")),
        }
    };
    let cat_axis = norm_axis(cat_axis, 3)
        .ok_or_else(|| unprovable(concat, "Concat axis out of range for (B, D, L)"))?;
    let mut readouts = Vec::with_capacity(steps);
    for (k, x) in elements.iter().enumerate() {
        let (_, u) = g.producer_op(x, "Unsqueeze").ok_or_else(|| {
            unprovable(
                concat,
                format!("element {k} is not an Unsqueeze of a step output"),
            )
        })?;
        let axes = unsqueeze_axes(g, u).unwrap_or_default();
        if axes.len() != 1 || norm_axis(axes[0], 3) != Some(cat_axis) {
            return Err(unprovable(u, "step output not stacked on the Concat axis"));
        }
        let r = match_readout(g, input(u, 0))
            .ok_or_else(|| unprovable(u, format!("step {k}: output is not C_t · h_t")))?;
        let idx = if r.k < 0 { r.k + steps as i64 } else { r.k };
        if idx != k as i64 {
            return Err(unprovable(
                g.node(r.node),
                format!("step {k} reads C at index {}", r.k),
            ));
        }
        if r.c_src != r0.c_src || r.c_axis != r0.c_axis || r.c_roles != r0.c_roles {
            return Err(unprovable(
                g.node(r.node),
                "steps read C from different tensors",
            ));
        }
        readouts.push(r);
    }
    let channels_last = match cat_axis {
        2 => false,
        1 => true,
        _ => return Err(unprovable(concat, "steps stacked on the batch axis")),
    };

    // The state chain.
    let mut da_src: Option<(String, i64)> = None;
    let mut dbu_src: Option<(String, i64)> = None;
    let mut initial_state = None;
    for (k, r) in readouts.iter().enumerate() {
        let at = g.node(r.node);
        let up = match_update(g, &r.h, at)?;
        let norm = |i: i64| if i < 0 { i + steps as i64 } else { i };
        if norm(up.dbu.1) != k as i64 || (up.da.2 >= 0 && norm(up.da.1) != k as i64) {
            return Err(unprovable(
                at,
                format!("step {k} gathers dA/dBu at another index"),
            ));
        }
        let prev_expected = (k > 0).then(|| readouts[k - 1].h.clone());
        match (&up.h_prev, prev_expected) {
            (Some(p), Some(e)) if *p == e => {}
            (Some(p), None) => {
                // A zero fill is the op's default: recognised here (forms::is_zero_fill), or
                // (ConstantOfShape / Expand over the input's dynamic dims) checked below, once
                // the layout is known.
                if !forms::is_zero_fill(g, p) {
                    initial_state = Some(p.clone());
                }
            }
            (None, None) => {}
            _ => {
                return Err(unprovable(
                    at,
                    format!("step {k} does not update the previous state"),
                ))
            }
        }
        if up.da.2 >= 0 {
            let s = (up.da.0.clone(), up.da.2);
            match &da_src {
                None => da_src = Some(s),
                Some(d) if *d == s => {}
                _ => return Err(unprovable(at, "steps read dA from different tensors")),
            }
        }
        let s = (up.dbu.0.clone(), up.dbu.2);
        match &dbu_src {
            None => dbu_src = Some(s),
            Some(d) if *d == s => {}
            _ => return Err(unprovable(at, "steps read dBu from different tensors")),
        }
    }
    let (da, da_axis) =
        da_src.ok_or_else(|| unprovable(concat, "no step multiplies the state by dA"))?;
    let (dbu, dbu_axis) = dbu_src.expect("every step has dBu");
    let ta =
        norm_axis(da_axis, 4).ok_or_else(|| unprovable(concat, "dA time axis out of range"))?;
    if norm_axis(dbu_axis, 4) != Some(ta) {
        return Err(unprovable(
            concat,
            "dA and dBu are indexed on different axes",
        ));
    }
    // h_t is (B, D, N); dA / dBu are that with L inserted at the gathered axis.
    let mut layout = [Ax::B, Ax::D, Ax::N, Ax::N];
    {
        let mut rest = [Ax::B, Ax::D, Ax::N].into_iter();
        for (i, slot) in layout.iter_mut().enumerate() {
            *slot = if i == ta { Ax::L } else { rest.next().unwrap() };
        }
    }

    // h_{-1} = 0 is dropped when it cannot broadcast the state beyond (B, D, N); otherwise
    // it stays the initial state (right at runtime as long as it is (B, D, N)).
    let inf = Infer::new(g);
    if let Some(z) = initial_state.clone() {
        match inf.zero_fill(&z) {
            Some(Ok(dims)) => match infer::zero_state_fits(&inf, &z, &dims, &da, &dbu, ta) {
                Ok(()) => initial_state = None,
                Err(e) => tracing::info!("zero initial state kept as an input: {e}"),
            },
            Some(Err(e)) => tracing::info!("zero initial state of unknown shape kept: {e}"),
            None => {}
        }
    }

    // dA = Exp(A ⊗ Δ).
    let (_, exp) = g
        .producer_op(&g.strip_casts(&da), "Exp")
        .ok_or_else(|| unprovable(concat, "dA is not Exp(Δ·A)"))?;
    let fa = factors(g, input(exp, 0), 4, exp)?;
    if fa.len() != 2 {
        return Err(unprovable(
            exp,
            format!("Δ·A has {} factors, expected 2", fa.len()),
        ));
    }
    let (a_f, delta_f) = if covers(&fa[0], &layout, &[Ax::D, Ax::N]) {
        (&fa[0], &fa[1])
    } else {
        (&fa[1], &fa[0])
    };
    if !covers(a_f, &layout, &[Ax::D, Ax::N]) || !covers(delta_f, &layout, &[Ax::B, Ax::D, Ax::L]) {
        return Err(unprovable(
            exp,
            "cannot tell A (D, N) and Δ (B, D, L) apart",
        ));
    }

    // dBu = Δ ⊗ B ⊗ u.
    let dbu_node = g
        .producer(&g.strip_casts(&dbu))
        .map(|(_, n)| n)
        .unwrap_or(concat);
    let mut fb = factors(g, &dbu, 4, dbu_node)?;
    let is_delta = |f: &Factor| f.base == delta_f.base && f.map == delta_f.map;
    // Δ·u (or Δ·B) formed before the product with the third factor: split the one holding Δ.
    if fb.len() == 2 && !fb.iter().any(is_delta) {
        let split = fb.iter().enumerate().find_map(|(i, f)| {
            split_factor(g, f, dbu_node)
                .ok()
                .flatten()
                .filter(|p| p.iter().any(is_delta))
                .map(|p| (i, p))
        });
        if let Some((i, parts)) = split {
            fb.remove(i);
            fb.extend(parts);
        }
    }
    if fb.len() != 3 {
        return Err(unprovable(
            dbu_node,
            format!("Δ·B·u has {} factors, expected 3", fb.len()),
        ));
    }
    let di = fb
        .iter()
        .position(is_delta)
        .ok_or_else(|| unprovable(dbu_node, "dBu does not use the Δ of dA"))?;
    let rest: Vec<&Factor> = fb
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != di)
        .map(|(_, f)| f)
        .collect();
    // B is (B, N, L), or (B, D, N, L) when a grouped B is spread over the channels.
    let is_b = |f: &Factor| {
        covers(f, &layout, &[Ax::B, Ax::L, Ax::N])
            || (f.const_dims.is_none() && covers(f, &layout, &[Ax::B, Ax::D, Ax::L, Ax::N]))
    };
    let (b_f, u_f) = if is_b(rest[0]) {
        (rest[0], rest[1])
    } else {
        (rest[1], rest[0])
    };
    if !is_b(b_f) || !covers(u_f, &layout, &[Ax::B, Ax::D, Ax::L]) {
        return Err(unprovable(
            dbu_node,
            "cannot tell B (B, N, L) and u (B, D, L) apart",
        ));
    }
    if delta_f.const_dims.is_some() || u_f.const_dims.is_some() || b_f.const_dims.is_some() {
        return Err(unprovable(dbu_node, "Δ, B or u is a constant"));
    }

    // Layouts of the activations, from the order their axes appear in.
    let act_layout = |f: &Factor, what: &str| -> Result<bool, PatchError> {
        match letters(f, &layout).as_slice() {
            [Ax::B, Ax::D, Ax::L] => Ok(false),
            [Ax::B, Ax::L, Ax::D] => Ok(true),
            other => Err(unprovable(dbu_node, format!("{what} has axes {other:?}"))),
        }
    };
    let delta_last = act_layout(delta_f, "Δ")?;
    let u_last = act_layout(u_f, "u")?;
    if delta_last != channels_last || u_last != channels_last {
        return Err(PatchError::Unsupported {
            what: "u, Δ and y in different layouts".into(),
            node: concat.name.clone(),
            op_type: concat.op_type.clone(),
        });
    }
    // B's and C's layouts: (batch, N, L) / (batch, L, N), with a channel axis where grouped.
    let bc_layout = |axes: &[Ax]| match axes {
        [Ax::B, Ax::N, Ax::L] => Some((false, false)),
        [Ax::B, Ax::L, Ax::N] => Some((true, false)),
        [Ax::B, Ax::D, Ax::N, Ax::L] => Some((false, true)),
        [Ax::B, Ax::L, Ax::D, Ax::N] => Some((true, true)),
        _ => None,
    };
    let b_axes = letters(b_f, &layout);
    let (bc_last, grouped) =
        bc_layout(&b_axes).ok_or_else(|| unprovable(dbu_node, format!("B has axes {b_axes:?}")))?;
    // C's axes: C_t's, with L inserted where the steps gather it.
    let mut c_axes: Vec<Ax> = r0
        .c_roles
        .iter()
        .map(|r| match r {
            Role::Batch => Ax::B,
            Role::Channel => Ax::D,
            Role::State => Ax::N,
        })
        .collect();
    let ca = norm_axis(r0.c_axis, c_axes.len() + 1)
        .ok_or_else(|| unprovable(g.node(r0.node), "C's time axis out of range"))?;
    c_axes.insert(ca, Ax::L);
    let (c_last, c_grouped) = bc_layout(&c_axes)
        .ok_or_else(|| unprovable(g.node(r0.node), format!("C has axes {c_axes:?}")))?;
    if c_last != bc_last || c_grouped != grouped {
        return Err(PatchError::Unsupported {
            what: "B and C in different layouts".into(),
            node: g.node(r0.node).name.clone(),
            op_type: g.node(r0.node).op_type.clone(),
        });
    }
    // Grouped: the node takes B and C before they were spread over the channels.
    let (b_name, c_name) = if grouped {
        let at_c = g.node(r0.node);
        let axis_of_d = |axes: &[Ax]| axes.iter().position(|a| *a == Ax::D).unwrap_or(0);
        let not_spread = |n: &NodeProto, what: &str| {
            unprovable(
                n,
                format!("{what} has a channel axis but is not spread from a grouped tensor"),
            )
        };
        let mut found = groups::resolve_all(
            g,
            ctx,
            &[
                (&b_f.base, axis_of_d(&b_axes), dbu_node),
                (&r0.c_src, axis_of_d(&c_axes), at_c),
            ],
        )?
        .into_iter();
        let sb = found
            .next()
            .flatten()
            .ok_or_else(|| not_spread(dbu_node, "B"))?;
        let sc = found
            .next()
            .flatten()
            .ok_or_else(|| not_spread(at_c, "C"))?;
        if sb.groups != sc.groups {
            return Err(PatchError::Unsupported {
                what: format!("B in {} groups, C in {}", sb.groups, sc.groups),
                node: at_c.name.clone(),
                op_type: at_c.op_type.clone(),
            });
        }
        (sb.base, sc.base)
    } else {
        (b_f.base.clone(), r0.c_src.clone())
    };

    // A as a (D, N) fp32 tensor.
    let mut patch = Patch::default();
    let a_name = match &a_f.const_dims {
        None => {
            if letters(a_f, &layout) != [Ax::D, Ax::N] {
                return Err(unprovable(exp, "A is not laid out (D, N)"));
            }
            a_f.base.clone()
        }
        Some(dims) => {
            let proto = g
                .constant_proto(&a_f.base)
                .ok_or_else(|| unprovable(exp, "A constant unreadable"))?;
            let kept: Vec<i64> = dims.iter().copied().filter(|&d| d != 1).collect();
            if kept.len() != 2 || letters(a_f, &layout) != [Ax::D, Ax::N] {
                return Err(unprovable(
                    exp,
                    format!("A constant of shape {dims:?} is not (D, N)"),
                ));
            }
            let name = ctx.fresh(g, "A");
            let t = if proto.data_type == FLOAT {
                let mut t = proto.clone();
                t.name = name;
                t.dims = kept;
                t
            } else {
                // A half-precision export's A: the op takes it in fp32 (widening is exact).
                let v = g
                    .constant(&a_f.base)
                    .ok_or_else(|| unprovable(exp, "A constant unreadable"))?;
                let f: Vec<f32> = v.values.iter().map(|&x| x as f32).collect();
                super::graph::f32_tensor(&name, &kept, &f)
            };
            patch.add_initializers.push(t.clone());
            t.name
        }
    };
    // A computed in half precision (`-exp(A_log)` of an fp16 export) is widened by a Cast.
    let a_name = match g.dtype(&a_name) {
        Some(FLOAT16 | BFLOAT16 | DOUBLE) if a_f.const_dims.is_none() => {
            let (cast, wide) = forms::cast_to_f32(g, ctx, &a_name);
            patch.add_nodes.push(cast);
            wide
        }
        _ => a_name,
    };

    // Dtypes per the contract: u, Δ, B, C share one; A and the initial state are fp32. Casts to
    // fp32 were looked through, so an fp16 export would show up here.
    check_types(
        &inf,
        concat,
        &[
            ("u", u_f.base.as_str()),
            ("Δ", delta_f.base.as_str()),
            ("B", b_f.base.as_str()),
            ("C", r0.c_src.as_str()),
        ],
        &initial_state
            .as_deref()
            .map(|s| ("initial_state", s))
            .into_iter()
            .collect::<Vec<_>>(),
    )?;

    match ctx.seq_len {
        None => ctx.seq_len = Some(steps),
        Some(l) if l == steps => {}
        Some(l) => {
            return Err(unprovable(
                concat,
                format!("{steps} steps where another scan has {l}"),
            ));
        }
    }

    // The final state used elsewhere (a cache output, say) becomes the node's last_state: the
    // node then produces that value itself and the unrolled chain dies.
    let last = readouts.last().expect("at least one step");
    let mut last_state = None;
    if used_outside_readout(g, &last.h, last.reader) && g.dtype(&last.h).is_none_or(|t| t == FLOAT)
    {
        if let Some((pi, _)) = g.producer(&last.h) {
            patch.remove.push(pi);
            last_state = Some(last.h.clone());
        }
    }

    let name = ctx.fresh(g, "S6Scan");
    let node = ScanNode {
        name,
        attrs: S6Attrs {
            channels_last,
            bc_channels_last: bc_last,
            ..Default::default()
        },
        u: u_f.base.clone(),
        delta: delta_f.base.clone(),
        a: a_name,
        b: b_name,
        c: c_name,
        initial_state,
        last_state,
        y: output(concat, 0).to_string(),
        ..Default::default()
    };
    patch.remove.push(ci);
    patch.add_nodes.push(node.to_node());
    patch.scans_created = 1;
    Ok(Some(patch))
}

/// The op's type rules: one activation type for u, Δ, B, C; fp32 for A and the initial
/// state. Every type must be known; a refusal names the values and their types (or what is
/// unknown about them).
fn check_types(
    inf: &Infer,
    at: &NodeProto,
    acts: &[(&str, &str)],
    fp32: &[(&str, &str)],
) -> Result<(), PatchError> {
    let unsupported = |what: String| PatchError::Unsupported {
        what,
        node: at.name.clone(),
        op_type: at.op_type.clone(),
    };
    let typed = |(k, v): &(&str, &str)| -> Result<(String, i32), PatchError> {
        inf.elem_type(v)
            .map(|t| (format!("{k} '{v}' {}", type_name(t)), t))
            .map_err(|e| {
                unsupported(format!(
                    "a scan whose {k} '{v}' has an element type that cannot be worked out ({e})"
                ))
            })
    };
    let acts: Vec<(String, i32)> = acts.iter().map(typed).collect::<Result<_, _>>()?;
    if acts.windows(2).any(|w| w[0].1 != w[1].1) {
        let list: Vec<&str> = acts.iter().map(|(s, _)| s.as_str()).collect();
        return Err(unsupported(format!(
            "a scan whose u, Δ, B, C differ in element type ({}); the op wants one activation type",
            list.join(", ")
        )));
    }
    for x in fp32 {
        let (s, t) = typed(x)?;
        if t != FLOAT {
            let advice = if matches!(t, FLOAT16 | BFLOAT16 | DOUBLE) {
                " — patch the fp32 export, convert afterwards"
            } else {
                ""
            };
            return Err(unsupported(format!(
                "a scan whose {s} is not float32; the op wants fp32 A and state{advice}"
            )));
        }
    }
    Ok(())
}

/// True when the state `h` (or a float Cast of it) has a use other than the path into
/// `reader`.
fn used_outside_readout(g: &GraphIndex, h: &str, reader: usize) -> bool {
    let mut frontier = vec![h.to_string()];
    while let Some(v) = frontier.pop() {
        if g.is_graph_output(&v) {
            return true;
        }
        for &c in g.consumers(&v) {
            if c == reader {
                continue;
            }
            let n = g.node(c);
            let float_cast = is_default_domain(n)
                && (n.op_type == "Identity"
                    || (n.op_type == "Cast"
                        && matches!(attr_i(n, "to"), Some(1) | Some(10) | Some(11) | Some(16))));
            if !float_cast {
                return true;
            }
            frontier.push(output(n, 0).to_string());
        }
    }
    false
}

/// Mamba2 (SSD) exports compute the scan in chunks with CumSum over segment sums; refuse them
/// clearly instead of calling them "not Mamba".
pub fn refuse_mamba2(graph: &GraphProto) -> Result<(), PatchError> {
    let cumsum = graph.node.iter().find(|n| n.op_type == "CumSum");
    let tril = graph.node.iter().any(|n| n.op_type == "Trilu");
    let exp = graph.node.iter().any(|n| n.op_type == "Exp");
    if let Some(n) = cumsum {
        if exp && (tril || graph.node.iter().any(|n| n.op_type == "Where")) {
            return Err(PatchError::Unsupported {
                what: "Mamba2 (SSD: chunked scan over CumSum segment sums)".into(),
                node: n.name.clone(),
                op_type: n.op_type.clone(),
            });
        }
    }
    Ok(())
}
