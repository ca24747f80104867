//! Rule family 2: folding the work around a scan into the `S6Scan` node, each only when the
//! folded value has no other consumer: softplus on Δ (PyTorch's `Where(x > 20, x, Softplus(x))`
//! too: the contract's threshold is the same), the Δ bias, the D skip and the z gate.

use super::error::PatchError;
use super::graph::{
    attr_i, f32_tensor, input, is_default_domain, output, GraphIndex, BFLOAT16, FLOAT, FLOAT16,
};
use super::rewrite::{Ctx, Patch, Rule};
use super::s6node::ScanNode;
use onnx_protobuf::NodeProto;

/// Every `S6Scan` node with its index.
fn scans<'g>(g: &'g GraphIndex) -> impl Iterator<Item = (usize, ScanNode)> + 'g {
    g.graph
        .node
        .iter()
        .enumerate()
        .filter_map(|(i, n)| ScanNode::from_node(n).map(|s| (i, s)))
}

fn op<'g>(g: &GraphIndex<'g>, value: &str, op: &str) -> Option<(usize, &'g NodeProto)> {
    g.producer_op(value, op)
}

/// Replaces scan node `si` by `sn` and drops `also`.
fn replace(si: usize, sn: &ScanNode, also: &[usize]) -> Patch {
    let mut p = Patch::default();
    p.remove.push(si);
    p.remove.extend_from_slice(also);
    p.add_nodes.push(sn.to_node());
    p
}

/// A per-channel fp32 constant for an activation laid out (B, D, L) or (B, L, D), reshaped to
/// (D) as a new initializer; `a` is the scan's A (D, N), which gives D.
fn per_channel(
    g: &GraphIndex,
    ctx: &mut Ctx,
    value: &str,
    channels_last: bool,
    a: &str,
    what: &str,
    patch: &mut Patch,
) -> Option<String> {
    let proto = g.constant_proto(value)?;
    if proto.dims.len() > 3 || !matches!(proto.data_type, FLOAT | FLOAT16 | BFLOAT16) {
        return None;
    }
    // Right-aligned against rank 3: the channel axis is 1 from the right when channels-first.
    let from_right = if channels_last { 0 } else { 1 };
    let r = proto.dims.len();
    let mut dim = None;
    for (i, &d) in proto.dims.iter().enumerate() {
        let pos = r - 1 - i;
        if pos == from_right {
            dim = Some(d);
        } else if d != 1 {
            return None;
        }
    }
    let d = dim?;
    // A size-1 constant broadcasts one value over every channel; the op wants one per channel.
    // The channel count is A's first axis when A is a constant; otherwise only d > 1 is sure.
    let channels = g.constant_proto(a).and_then(|t| t.dims.first().copied());
    if channels.map_or(d <= 1, |c| c != d) {
        return None;
    }
    let name = ctx.fresh(g, what);
    let t = if proto.data_type == FLOAT {
        // Same bytes (inline or external), new shape.
        let mut t = proto.clone();
        t.name = name;
        t.dims = vec![d];
        t
    } else {
        // The op takes D and delta_bias in fp32: widen (exact).
        let v = g.constant(value)?;
        let f: Vec<f32> = v.values.iter().map(|&x| x as f32).collect();
        f32_tensor(&name, &[d], &f)
    };
    patch.add_initializers.push(t.clone());
    Some(t.name)
}

pub struct Softplus;

impl Rule for Softplus {
    fn name(&self) -> &'static str {
        "absorb-softplus"
    }
    fn apply(&self, g: &GraphIndex, _ctx: &mut Ctx) -> Result<Option<Patch>, PatchError> {
        for (si, mut sn) in scans(g) {
            if sn.attrs.delta_softplus || sn.delta_bias.is_some() || !g.only_used_by(&sn.delta, si)
            {
                continue;
            }
            let x = if let Some((_, sp)) = op(g, &sn.delta, "Softplus") {
                input(sp, 0).to_string()
            } else if let Some((_, w)) = op(g, &sn.delta, "Where") {
                // Where(Greater(x, 20), x, Softplus(x))
                let Some((_, gt)) = op(g, input(w, 0), "Greater") else {
                    continue;
                };
                let Some((_, sp)) = op(g, input(w, 2), "Softplus") else {
                    continue;
                };
                let x = input(w, 1);
                let thr = g.constant(input(gt, 1)).and_then(|c| c.scalar());
                if input(gt, 0) != x || input(sp, 0) != x || thr != Some(20.0) {
                    continue;
                }
                x.to_string()
            } else {
                continue;
            };
            sn.delta = x;
            sn.attrs.delta_softplus = true;
            return Ok(Some(replace(si, &sn, &[])));
        }
        Ok(None)
    }
}

pub struct DeltaBias;

impl Rule for DeltaBias {
    fn name(&self) -> &'static str {
        "absorb-delta-bias"
    }
    fn apply(&self, g: &GraphIndex, ctx: &mut Ctx) -> Result<Option<Patch>, PatchError> {
        for (si, mut sn) in scans(g) {
            if sn.delta_bias.is_some() || !g.only_used_by(&sn.delta, si) {
                continue;
            }
            let Some((_, add)) = op(g, &sn.delta, "Add") else {
                continue;
            };
            let mut patch = Patch::default();
            for (m, b) in [(0, 1), (1, 0)] {
                if let Some(bias) = per_channel(
                    g,
                    ctx,
                    input(add, b),
                    sn.attrs.channels_last,
                    &sn.a,
                    "delta_bias",
                    &mut patch,
                ) {
                    sn.delta = input(add, m).to_string();
                    sn.delta_bias = Some(bias);
                    let mut p = replace(si, &sn, &[]);
                    p.add_initializers = patch.add_initializers;
                    return Ok(Some(p));
                }
            }
        }
        Ok(None)
    }
}

/// The single consumer of `value`, if it has exactly one use.
fn single_use<'g>(g: &GraphIndex<'g>, value: &str) -> Option<(usize, &'g NodeProto)> {
    if g.is_graph_output(value) || g.consumers(value).len() != 1 {
        return None;
    }
    let c = g.consumers(value)[0];
    let n = g.node(c);
    is_default_domain(n).then_some((c, n))
}

/// What consumes the scan's y: the op itself, possibly behind a Cast to fp32 (fp16 exports do
/// the D skip and z gate in fp32).
struct YUse<'g> {
    op_idx: usize,
    op: &'g NodeProto,
    /// The name under which the op sees y.
    seen_as: String,
    /// The Cast in between, if any.
    cast: Option<(usize, &'g NodeProto)>,
}

fn y_use<'g>(g: &GraphIndex<'g>, sn: &ScanNode) -> Option<YUse<'g>> {
    let (c, n) = single_use(g, &sn.y)?;
    if n.op_type == "Cast" && attr_i(n, "to") == Some(FLOAT as i64) {
        let (oi, op) = single_use(g, output(n, 0))?;
        return Some(YUse {
            op_idx: oi,
            op,
            seen_as: output(n, 0).to_string(),
            cast: Some((c, n)),
        });
    }
    Some(YUse {
        op_idx: c,
        op: n,
        seen_as: sn.y.clone(),
        cast: None,
    })
}

/// Replaces the scan node by `sn` computing what `u.op` computed, and drops `u.op` (and the
/// Cast): the node now produces `u.op`'s output, through a new Cast when there was one.
fn fold_into(si: usize, mut sn: ScanNode, u: &YUse, ctx: &mut Ctx, g: &GraphIndex) -> Patch {
    let out = output(u.op, 0).to_string();
    let mut p = Patch::default();
    p.remove.push(si);
    p.remove.push(u.op_idx);
    match u.cast {
        None => sn.y = out,
        Some((ci, cast)) => {
            p.remove.push(ci);
            sn.y = ctx.fresh(g, "y");
            let mut c = cast.clone();
            c.input = vec![sn.y.clone()];
            c.output = vec![out];
            p.add_nodes.push(c);
        }
    }
    p.add_nodes.insert(0, sn.to_node());
    p
}

pub struct DSkip;

impl Rule for DSkip {
    fn name(&self) -> &'static str {
        "absorb-d-skip"
    }
    fn apply(&self, g: &GraphIndex, ctx: &mut Ctx) -> Result<Option<Patch>, PatchError> {
        for (si, mut sn) in scans(g) {
            if sn.d.is_some() || sn.z.is_some() {
                continue;
            }
            let Some(yu) = y_use(g, &sn) else {
                continue;
            };
            let add = yu.op;
            if add.op_type != "Add" {
                continue;
            }
            let other = if input(add, 0) == yu.seen_as {
                input(add, 1)
            } else {
                input(add, 0)
            };
            let Some((_, mul)) = op(g, &g.strip_casts(other), "Mul") else {
                continue;
            };
            for (x, dv) in [(0, 1), (1, 0)] {
                if g.strip_casts(input(mul, x)) != sn.u {
                    continue;
                }
                let mut inits = Patch::default();
                if let Some(d) = per_channel(
                    g,
                    ctx,
                    input(mul, dv),
                    sn.attrs.channels_last,
                    &sn.a,
                    "D",
                    &mut inits,
                ) {
                    sn.d = Some(d);
                    let mut p = fold_into(si, sn, &yu, ctx, g);
                    p.add_initializers = inits.add_initializers;
                    return Ok(Some(p));
                }
            }
        }
        Ok(None)
    }
}

pub struct ZGate;

impl Rule for ZGate {
    fn name(&self) -> &'static str {
        "absorb-z-gate"
    }
    fn apply(&self, g: &GraphIndex, ctx: &mut Ctx) -> Result<Option<Patch>, PatchError> {
        for (si, mut sn) in scans(g) {
            if sn.z.is_some() {
                continue;
            }
            let Some(yu) = y_use(g, &sn) else {
                continue;
            };
            let mul = yu.op;
            if mul.op_type != "Mul" {
                continue;
            }
            let other = if input(mul, 0) == yu.seen_as {
                input(mul, 1)
            } else {
                input(mul, 0)
            };
            // silu(z) = Mul(z, Sigmoid(z))
            let Some((_, silu)) = op(g, &g.strip_casts(other), "Mul") else {
                continue;
            };
            let mut z = None;
            for (a, b) in [(0, 1), (1, 0)] {
                if let Some((_, sig)) = op(g, input(silu, b), "Sigmoid") {
                    if g.strip_casts(input(sig, 0)) == g.strip_casts(input(silu, a)) {
                        z = Some(g.strip_casts(input(silu, a)));
                    }
                }
            }
            let Some(z) = z else { continue };
            // z must have u's type (the op's one activation type); unknown is not folded.
            let (tz, tu) = (g.dtype(&z), g.dtype(&sn.u));
            if g.constant(&z).is_some() || tz.is_none() || tz != tu {
                continue;
            }
            sn.z = Some(z);
            return Ok(Some(fold_into(si, sn, &yu, ctx, g)));
        }
        Ok(None)
    }
}
