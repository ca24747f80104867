//! Rule family: Mamba2's chunked scan (SSD) as transformers' `Mamba2Mixer.torch_forward`
//! computes it, exported by the dynamo exporter (static or dynamic length), → one
//! `S6ScanHeads` node (`docs/s6scan_heads.md`).
//!
//! ```text
//! Δ    = Clip?(softplus?(dt + dt_bias?))              softplus: Softplus, or Where(x > 20, x, Softplus(x))
//! Xc   = chunks(Δ·x)   Ac = chunks(A·Δ)   Bc, Cc = chunks(repeat_heads(B), (C))
//!        chunks(v) = Reshape(Pad(v, zeros after the time axis), (b, c, T, …))
//! cum  = CumSum(Transpose(Ac), last axis)            (b, h, c, T)
//! Ydiag = Einsum(bclsh,bcshp->bclhp, Einsum(bclhn,bcshn->bclsh, Cc, Bc) · exp(segsum(Ac)), Xc)
//! S    = Einsum(bclhn,bclhp->bchpn, Bc · exp(cum[-1] − cum), Xc)
//! Sin  = Einsum(bzch,bzhpn->bchpn, exp(segsum(pad₁(cum[…, -1]))), Concat(0, S))[:, :-1]
//! Yoff = Einsum(bclhn,bchpn->bclhp, Cc, Sin) · exp(cum)
//! y    = Slice(Reshape(Ydiag + Yoff) + D·Pad(x), 0:L along time)
//! ```
//!
//! The rule proves this value equation node by node and replaces the final `Slice` by the
//! `S6ScanHeads` node producing the same value; the nodes only it used become dead and are
//! pruned. Padding arguments (docs/s6scan_heads.md): zeros appended after the time axis leave
//! every output at t < L unchanged (Δ·x = 0, A·Δ = 0, B = C = 0 there), and the final Slice keeps
//! exactly t < L, so the padding amount need not be proven. A region that does not match is left
//! alone (the Mamba2 refusal then reports it).

use super::error::PatchError;
use super::graph::{
    attr_i, attr_ints, attr_s, f32_tensor, i64_tensor, is_default_domain, GraphIndex, BFLOAT16,
    FLOAT, FLOAT16,
};
use super::infer::{Infer, SymDim};
use super::rewrite::{Ctx, Patch, Rule};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, NodeProto};
use s6_contract::contract_heads::{HeadsAttrs, ONNX_DOMAIN, OP_TYPE};

pub struct ChunkedScanHeads;

impl Rule for ChunkedScanHeads {
    fn name(&self) -> &'static str {
        "chunked-scan-heads"
    }

    fn apply(&self, g: &GraphIndex, ctx: &mut Ctx) -> Result<Option<Patch>, PatchError> {
        let inf = Infer::new(g);
        let m = Matcher { g, inf: &inf };
        for (i, n) in g.graph.node.iter().enumerate() {
            if is_default_domain(n) && n.op_type == "Slice" {
                if let Some(found) = m.output_slice(n) {
                    return Ok(Some(found.patch(g, ctx, i)));
                }
            }
        }
        Ok(None)
    }
}

/// What the proof found: the node's inputs (value names or new constants).
pub(super) struct Found {
    pub x: String,
    pub dt: String,
    pub a: Vec<f32>,
    /// B and C: (b, L, G, N), or (b, L, N) when `bc_ungrouped` (one group, no group axis: the
    /// node gets them through an Unsqueeze at axis 2).
    pub b: String,
    pub c: String,
    pub bc_ungrouped: bool,
    pub d: Option<Vec<f32>>,
    pub dt_bias: Option<Vec<f32>>,
    pub dt_limit: Option<[f32; 2]>,
    pub softplus: bool,
    pub y: String,
}

impl Found {
    /// The patch replacing node `last` (the one producing `y`) by the `S6ScanHeads` node.
    pub(super) fn patch(self, g: &GraphIndex, ctx: &mut Ctx, last: usize) -> Patch {
        let mut p = Patch {
            remove: vec![last],
            scans_created: 1,
            ..Default::default()
        };
        let mut konst = |p: &mut Patch, prefix: &str, v: &[f32]| {
            let name = ctx.fresh(g, prefix);
            p.add_initializers
                .push(f32_tensor(&name, &[v.len() as i64], v));
            name
        };
        let a = konst(&mut p, "ssd_A", &self.a);
        let d = self.d.as_ref().map(|v| konst(&mut p, "ssd_D", v));
        let bias = self
            .dt_bias
            .as_ref()
            .map(|v| konst(&mut p, "ssd_dt_bias", v));
        let limit = self
            .dt_limit
            .as_ref()
            .map(|v| konst(&mut p, "ssd_dt_limit", v));
        let (b, c) = if self.bc_ungrouped {
            let axes = ctx.fresh(g, "ssd_axis2");
            p.add_initializers.push(i64_tensor(&axes, &[1], &[2]));
            let attr_form = opset(&ctx.opset_import) < 13;
            let mut grouped = |p: &mut Patch, v: String| {
                let mut u = NodeProto::new();
                u.name = ctx.fresh(g, "Unsqueeze");
                u.op_type = "Unsqueeze".into();
                u.output = vec![ctx.fresh(g, "ssd_grouped")];
                u.input = vec![v];
                if attr_form {
                    let mut at = AttributeProto::new();
                    at.name = "axes".into();
                    at.type_ = AttributeType::INTS.into();
                    at.ints = vec![2];
                    u.attribute.push(at);
                } else {
                    u.input.push(axes.clone());
                }
                let out = u.output[0].clone();
                p.add_nodes.push(u);
                out
            };
            (grouped(&mut p, self.b), grouped(&mut p, self.c))
        } else {
            (self.b, self.c)
        };
        let mut inputs = vec![self.x, self.dt, a, b, c];
        let attrs = HeadsAttrs {
            dt_softplus: self.softplus,
            has_d: d.is_some(),
            has_z: false,
            has_dt_bias: bias.is_some(),
            has_dt_limit: limit.is_some(),
            has_initial_state: false,
            has_last_state: false,
        };
        inputs.extend(d);
        inputs.extend(bias);
        inputs.extend(limit);
        let mut n = NodeProto::new();
        n.name = ctx.fresh(g, "S6ScanHeads");
        n.op_type = OP_TYPE.to_string();
        n.domain = ONNX_DOMAIN.to_string();
        n.input = inputs;
        n.output = vec![self.y];
        for (name, v) in HeadsAttrs::FIELD_NAMES.iter().zip(attrs.values()) {
            let mut at = AttributeProto::new();
            at.name = name.to_string();
            at.type_ = AttributeType::INT.into();
            at.i = v as i64;
            n.attribute.push(at);
        }
        p.add_nodes.push(n);
        p
    }
}

/// The default domain's opset version (1 when the model imports none).
fn opset(imports: &[onnx_protobuf::OperatorSetIdProto]) -> i64 {
    imports
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(1, |o| o.version)
}

pub(super) struct Matcher<'a, 'g> {
    pub g: &'a GraphIndex<'g>,
    pub inf: &'a Infer<'a, 'g>,
}

/// Einsum equation without spaces.
pub(super) fn equation(n: &NodeProto) -> Option<String> {
    attr_s(n, "equation").map(|e| e.chars().filter(|c| !c.is_whitespace()).collect())
}

impl<'a, 'g> Matcher<'a, 'g> {
    /// The producer of `v` if it is the default-domain op `op`.
    pub(super) fn op(&self, v: &str, op: &str) -> Option<&'g NodeProto> {
        let (_, n) = self.g.producer(v)?;
        (is_default_domain(n) && n.op_type == op).then_some(n)
    }

    pub(super) fn einsum(&self, v: &str, eq: &str) -> Option<&'g NodeProto> {
        let n = self.op(v, "Einsum")?;
        (equation(n).as_deref() == Some(eq) && n.input.len() == eq.split(',').count()).then_some(n)
    }

    pub(super) fn transpose(&self, v: &str, perm: &[i64]) -> Option<&'g str> {
        let n = self.op(v, "Transpose")?;
        (attr_ints(n, "perm").as_deref() == Some(perm)).then(|| n.input[0].as_str())
    }

    /// A shape vector (constant or computed from other values' dims).
    pub(super) fn shape(&self, v: &str) -> Option<Vec<SymDim>> {
        self.inf.shape_value(v).ok()
    }

    /// A shape vector whose elements may be unknown (`None`): a Concat of one-element pieces
    /// some of which are computed in ways shape inference does not follow.
    pub(super) fn shape_loose(&self, v: &str) -> Option<Vec<Option<SymDim>>> {
        if let Some(s) = self.shape(v) {
            return Some(s.into_iter().map(Some).collect());
        }
        let cat = self.op(v, "Concat")?;
        let mut out = Vec::new();
        for piece in &cat.input {
            match self.shape(piece) {
                Some(s) => out.extend(s.into_iter().map(Some)),
                None if self.dims(piece)? == [SymDim::Known(1)] => out.push(None),
                None => return None,
            }
        }
        Some(out)
    }

    /// Ints of a constant input.
    pub(super) fn ints(&self, v: &str) -> Option<Vec<i64>> {
        self.g.constant(v).map(|c| c.ints())
    }

    pub(super) fn scalar(&self, v: &str) -> Option<f64> {
        self.g.constant(v)?.scalar()
    }

    /// Unsqueeze of one axis (attribute or input form): (input, axis).
    pub(super) fn unsqueeze(&self, v: &str) -> Option<(&'g str, i64)> {
        let n = self.op(v, "Unsqueeze")?;
        let axes = match n.input.get(1) {
            Some(a) if !a.is_empty() => self.ints(a)?,
            _ => attr_ints(n, "axes")?,
        };
        (axes.len() == 1).then(|| (n.input[0].as_str(), axes[0]))
    }

    /// The operands of a commutative binary op, as (the one `pick` accepts, the other).
    pub(super) fn either<T>(
        &self,
        n: &'g NodeProto,
        pick: impl Fn(&'g str) -> Option<T>,
    ) -> Option<(T, &'g str)> {
        if n.input.len() != 2 {
            return None;
        }
        let (a, b) = (n.input[0].as_str(), n.input[1].as_str());
        pick(a).map(|t| (t, b)).or_else(|| pick(b).map(|t| (t, a)))
    }

    /// The operand of binary `n` that is not `v` (the other one must be `v`).
    pub(super) fn other_than(&self, n: &'g NodeProto, v: &str) -> Option<&'g str> {
        match &n.input[..] {
            [a, b] if a == v => Some(b.as_str()),
            [a, b] if b == v => Some(a.as_str()),
            _ => None,
        }
    }

    pub(super) fn dims(&self, v: &str) -> Option<Vec<SymDim>> {
        self.inf.dims(v)
    }

    /// `v` = Pad(src, zeros appended after axis 1 only): src.
    pub(super) fn time_pad(&self, v: &str) -> Option<&'g str> {
        let n = self.op(v, "Pad")?;
        if attr_s(n, "mode").is_some_and(|m| m != "constant") {
            return None;
        }
        if let Some(cv) = n.input.get(2).filter(|s| !s.is_empty()) {
            if self.scalar(cv)? != 0.0 {
                return None;
            }
        }
        if n.input.get(3).is_some_and(|s| !s.is_empty()) {
            return None;
        }
        let rank = self.dims(&n.input[0])?.len();
        let pads = self.pad_elems(n.input.get(1)?)?;
        if pads.len() != 2 * rank {
            return None;
        }
        // Every pad is a known 0 but the end of axis 1 (any amount ≥ 0, possibly computed).
        let ok = pads.iter().enumerate().all(|(i, p)| {
            if i == rank + 1 {
                p.is_none_or(|k| k >= 0)
            } else {
                *p == Some(0)
            }
        });
        ok.then(|| n.input[0].as_str())
    }

    /// The elements of a pads vector: constants, or a Concat of one-element pieces of which
    /// the computed ones are `None`.
    pub(super) fn pad_elems(&self, v: &str) -> Option<Vec<Option<i64>>> {
        if let Some(c) = self.ints(v) {
            return Some(c.into_iter().map(Some).collect());
        }
        let cat = self.op(v, "Concat")?;
        let mut out = Vec::new();
        for piece in &cat.input {
            match self.ints(piece) {
                Some(c) => out.extend(c.into_iter().map(Some)),
                None => {
                    let d = self.dims(piece)?;
                    if d != [SymDim::Known(1)] {
                        return None;
                    }
                    out.push(None);
                }
            }
        }
        Some(out)
    }

    /// `v` = Reshape(Pad(src), (b, -1 | c, T, rest…)) splitting the padded time axis into
    /// chunks of `t`: (src, t). `rest` must equal src's dims after the time axis.
    pub(super) fn chunks(&self, v: &str) -> Option<(&'g str, i64)> {
        let n = self.op(v, "Reshape")?;
        let target = self.shape_loose(&n.input[1])?;
        let src = self.time_pad(&n.input[0])?;
        let sd = self.dims(src)?;
        if target.len() != sd.len() + 1 || target.len() < 4 {
            return None;
        }
        let Some(SymDim::Known(t)) = target[2] else {
            return None;
        };
        // Batch and the trailing dims kept, the padded time axis split into (c, T): with every
        // other dim fixed, c (−1, or computed as in dynamic-batch exports) can only be the
        // padded length / T, or the Reshape fails.
        let same = |a: &Option<SymDim>, b: &SymDim| a.as_ref() == Some(b);
        let kept =
            same(&target[0], &sd[0]) && target[3..].iter().zip(&sd[2..]).all(|(a, b)| same(a, b));
        (t > 0 && kept).then_some((src, t))
    }

    /// transformers' `segment_sum(a)` followed by Exp: exp(cum_i − cum_j) below the diagonal,
    /// 0 above. `a` has the summed axis last.
    fn exp_segsum(&self, v: &str) -> Option<&'g str> {
        let e = self.op(v, "Exp")?;
        let w2 = self.op(&e.input[0], "Where")?;
        if !self.mask(&w2.input[0], 0)? || self.scalar(&w2.input[1])? != f64::NEG_INFINITY {
            return None;
        }
        let cs = self.op(&w2.input[2], "CumSum")?;
        if attr_i(cs, "exclusive").unwrap_or(0) != 0 || attr_i(cs, "reverse").unwrap_or(0) != 0 {
            return None;
        }
        let w1 = self.op(&cs.input[0], "Where")?;
        if !self.mask(&w1.input[0], -1)? || self.scalar(&w1.input[1])? != 0.0 {
            return None;
        }
        let ex = self.op(&w1.input[2], "Expand")?;
        let (a, axis) = self.unsqueeze(&ex.input[0])?;
        let rank = self.dims(a)?.len() as i64;
        let cs_axis = self.scalar(&cs.input[1])? as i64;
        // x[..., i] broadcast along a new last axis j, summed over i (axis −2).
        let new_last = axis == rank || axis == -1;
        let over_i = cs_axis == -2 || cs_axis == rank - 1;
        let ex_rank = self.dims(&ex.output[0])?.len() as i64;
        (new_last && over_i && ex_rank == rank + 1).then_some(a)
    }

    /// `v` is the mask ¬tril(k) (true where j > i + k), as a constant or as
    /// Not(Trilu(all-true square, k)). `None` when it cannot be read at all.
    pub(super) fn mask(&self, v: &str, k: i64) -> Option<bool> {
        if let Some(c) = self.g.constant(v) {
            let [r, cols] = c.dims[..] else {
                return Some(false);
            };
            if r != cols {
                return Some(false);
            }
            let ok = (0..r)
                .all(|i| (0..r).all(|j| (c.values[(i * r + j) as usize] != 0.0) == (j > i + k)));
            return Some(ok);
        }
        let not = self.op(v, "Not")?;
        let tri = self.op(&not.input[0], "Trilu")?;
        if attr_i(tri, "upper").unwrap_or(1) != 0 {
            return Some(false);
        }
        let kk = match tri.input.get(1).filter(|s| !s.is_empty()) {
            Some(kv) => self.scalar(kv)? as i64,
            None => 0,
        };
        if kk != k {
            return Some(false);
        }
        // All-true and square: Expand(True, Concat(n, n)) or an all-true constant.
        let ones = &tri.input[0];
        if let Some(c) = self.g.constant(ones) {
            return Some(
                c.dims.len() == 2 && c.dims[0] == c.dims[1] && c.values.iter().all(|&x| x != 0.0),
            );
        }
        let ex = self.op(ones, "Expand")?;
        if self.scalar(&ex.input[0])? == 0.0 {
            return Some(false);
        }
        let cat = self.op(&ex.input[1], "Concat")?;
        Some(cat.input.len() == 2 && cat.input[0] == cat.input[1])
    }

    /// Heads' B (or C), repeated from G groups to H heads (transformers' repeat_interleave:
    /// Reshape(Expand(Unsqueeze(B, 3), (…, H/G, …)), (…, -1 | H, N))), or already per head.
    fn per_head(&self, v: &'g str, heads: i64) -> Option<(&'g str, i64)> {
        if let Some(r) = self.op(v, "Reshape") {
            if let Some(ex) = self.op(&r.input[0], "Expand") {
                let (b, axis) = self.unsqueeze(&ex.input[0])?;
                let bd = self.dims(b)?;
                let SymDim::Known(g) = bd.get(2)?.clone() else {
                    return None;
                };
                let shape = self.shape(&ex.input[1])?;
                let target = self.shape(&r.input[1])?;
                if axis != 3 || bd.len() != 4 || g <= 0 || heads % g != 0 || shape.len() != 5 {
                    return None;
                }
                // (b, L, G, 1, N) expanded to (b, L, G, H/G, N) only along the new axis.
                let unsq = [&bd[0], &bd[1], &bd[2], &SymDim::Known(1), &bd[3]];
                let expand_ok = shape.iter().zip(unsq).enumerate().all(|(i, (s, d))| {
                    if i == 3 {
                        *s == SymDim::Known(heads / g)
                    } else {
                        *s == SymDim::Known(1) || s == d
                    }
                });
                // … then merged to (b, L, H, N).
                let merge_ok = target.len() == 4
                    && target[0] == bd[0]
                    && (target[1] == SymDim::Known(-1) || target[1] == bd[1])
                    && (target[2] == SymDim::Known(-1) || target[2] == SymDim::Known(heads))
                    && !(target[1] == SymDim::Known(-1) && target[2] == SymDim::Known(-1))
                    && target[3] == bd[3];
                return (expand_ok && merge_ok).then_some((b, g));
            }
        }
        let d = self.dims(v)?;
        (d.len() == 4 && d[2] == SymDim::Known(heads)).then_some((v, heads))
    }

    /// Δ from its final value back to the raw dt: bias, softplus, limits.
    pub(super) fn step_size(
        &self,
        v: &'g str,
    ) -> (&'g str, Option<Vec<f32>>, bool, Option<[f32; 2]>) {
        let mut cur = v;
        let mut limit = None;
        if let Some(c) = self.op(cur, "Clip") {
            let get = |i: usize| c.input.get(i).filter(|s| !s.is_empty());
            let lo = get(1).map_or(Some(f64::NEG_INFINITY), |s| self.scalar(s));
            let hi = get(2).map_or(Some(f64::INFINITY), |s| self.scalar(s));
            if let (Some(lo), Some(hi)) = (lo, hi) {
                limit = Some([lo as f32, hi as f32]);
                cur = c.input[0].as_str();
            }
        }
        let mut softplus = false;
        if let Some(w) = self.op(cur, "Where") {
            // Where(x > 20, x, Softplus(x)): torch's softplus with its threshold.
            let gt = self.op(&w.input[0], "Greater");
            let sp = self.op(&w.input[2], "Softplus");
            if let (Some(gt), Some(sp)) = (gt, sp) {
                if gt.input[0] == w.input[1]
                    && sp.input[0] == w.input[1]
                    && self.scalar(&gt.input[1]) == Some(20.0)
                {
                    softplus = true;
                    cur = w.input[1].as_str();
                }
            }
        } else if let Some(sp) = self.op(cur, "Softplus") {
            // Softplus without threshold differs from it by < 2.1e-9 above 20.
            softplus = true;
            cur = sp.input[0].as_str();
        }
        let mut bias = None;
        if let Some(add) = self.op(cur, "Add") {
            let konst = |s: &'g str| {
                let c = self.g.constant(s)?;
                (c.dims.len() == 1 && c.data_type == FLOAT).then_some(c)
            };
            if let Some((c, other)) = self.either(add, konst) {
                bias = Some(c.values.iter().map(|&x| x as f32).collect());
                cur = other;
            }
        }
        (cur, bias, softplus, limit)
    }

    /// `s` = Slice(v, 0:end, axis 1, step 1): its end (proven to be L by the caller).
    pub(super) fn time_slice(&self, s: &'g NodeProto) -> Option<&'g str> {
        let input = |i: usize| s.input.get(i).filter(|x| !x.is_empty());
        if self.ints(input(1)?)? != [0] || self.ints(input(3)?)? != [1] {
            return None;
        }
        if let Some(st) = input(4) {
            if self.ints(st)? != [1] {
                return None;
            }
        }
        input(2).map(String::as_str)
    }

    /// The final Slice(v, 0:L, time axis) of a transformers SSD region.
    fn output_slice(&self, s: &'g NodeProto) -> Option<Found> {
        let input = |i: usize| s.input.get(i).filter(|x| !x.is_empty());
        self.time_slice(s)?;
        // The sum before the Slice: Reshape(Ydiag + Yoff), plus the D term.
        let sum = s.input[0].as_str();
        let (merged, d_term) = match self.op(sum, "Add") {
            Some(add) => {
                let r = self.either(add, |v| self.op(v, "Reshape"))?;
                (r.0, Some(r.1))
            }
            None => (self.op(sum, "Reshape")?, None),
        };
        let add = self.op(&merged.input[0], "Add")?;
        let (ydiag, yoff) = self.either(add, |v| self.einsum(v, "bclsh,bcshp->bclhp"))?;
        // Ydiag = Einsum((C·B) ∘ exp(segsum), Xc).
        let mm = self.op(&ydiag.input[0], "Mul")?;
        let (cb, lmask) = self.either(mm, |v| self.einsum(v, "bclhn,bcshn->bclsh"))?;
        let seg_in = self.exp_segsum(self.transpose(lmask, &[0, 2, 3, 4, 1])?)?;
        let (cc, bc) = (cb.input[0].as_str(), cb.input[1].as_str());
        let xc = ydiag.input[1].as_str();
        // seg_in is cum's input: Transpose(chunks(A·Δ)).
        let ac = self.transpose(seg_in, &[0, 3, 1, 2])?;
        let (la, t) = self.chunks(ac)?;
        let cum = self.g.consumers(seg_in).iter().find_map(|&i| {
            let n = self.g.node(i);
            let axis = n.input.get(1).and_then(|a| self.scalar(a));
            (is_default_domain(n)
                && n.op_type == "CumSum"
                && matches!(axis, Some(a) if a == -1.0 || a == 3.0)
                && attr_i(n, "exclusive").unwrap_or(0) == 0
                && attr_i(n, "reverse").unwrap_or(0) == 0)
                .then(|| n.output[0].as_str())
        })?;
        // Yoff = Einsum(Cc, Sin) · Unsqueeze(Transpose(exp(cum))).
        let (read, decay) = self.either(self.op(yoff, "Mul")?, |v| {
            self.einsum(v, "bclhn,bchpn->bclhp")
        })?;
        let (dv, ax) = self.unsqueeze(decay)?;
        let ex = self.op(self.transpose(dv, &[0, 2, 3, 1])?, "Exp")?;
        if ex.input[0] != cum || ax != 4 || read.input[0] != cc {
            return None;
        }
        // Sin = Einsum(exp(segsum(pad₁(cum[..., -1]))), Concat(0, S))[:, :-1].
        let sl = self.op(&read.input[1], "Slice")?;
        let sl_in = |i: usize| sl.input.get(i).and_then(|x| self.ints(x));
        if sl_in(1)? != [0] || sl_in(2)? != [-1] || sl_in(3)? != [1] {
            return None;
        }
        if sl.input.get(4).is_some() && sl_in(4)? != [1] {
            return None;
        }
        let carry = self.einsum(&sl.input[0], "bzch,bzhpn->bchpn")?;
        let tot = self.exp_segsum(self.transpose(&carry.input[0], &[0, 3, 2, 1])?)?;
        let pad = self.op(tot, "Pad")?;
        if self.ints(&pad.input[1])? != [0, 0, 1, 0, 0, 0]
            || pad
                .input
                .get(2)
                .is_some_and(|c| !c.is_empty() && self.scalar(c) != Some(0.0))
        {
            return None;
        }
        let last = self.op(&pad.input[0], "Gather")?;
        if last.input[0] != cum
            || self.scalar(&last.input[1])? != -1.0
            || attr_i(last, "axis")? != 3
        {
            return None;
        }
        let cat = self.op(&carry.input[1], "Concat")?;
        if attr_i(cat, "axis")? != 1 || cat.input.len() != 2 {
            return None;
        }
        // S = Einsum(Bc · exp(cum[-1] − cum), Xc).
        let st = self.einsum(&cat.input[1], "bclhn,bclhp->bchpn")?;
        if !self.zero_chunk(&cat.input[0], &st.output[0]) {
            return None;
        }
        if st.input[1] != xc {
            return None;
        }
        let bdec = self.other_than(self.op(&st.input[0], "Mul")?, bc)?;
        let (dv, ax) = self.unsqueeze(bdec)?;
        let e = self.op(self.transpose(dv, &[0, 2, 3, 1])?, "Exp")?;
        let sub = self.op(&e.input[0], "Sub")?;
        let lastc = self.op(&sub.input[0], "Slice")?;
        let li = |i: usize| lastc.input.get(i).and_then(|x| self.ints(x));
        if ax != 4
            || sub.input[1] != cum
            || lastc.input[0] != cum
            || li(1)? != [-1]
            || li(3)? != [3]
            || li(2)?[0] < t
        {
            return None;
        }
        // The three chunked inputs: Δ·x, B, C.
        let (xd, tx) = self.chunks(xc)?;
        let (bh, tb) = self.chunks(bc)?;
        let (ch, tc) = self.chunks(cc)?;
        if tx != t || tb != t || tc != t {
            return None;
        }
        let (a, delta, _) = self.a_times_delta(la)?;
        let heads = a.dims[0];
        let (x, _) = self.delta_times_x(xd, delta, heads)?;
        let xdims = self.dims(x)?;
        let (b, gb) = self.per_head(bh, heads)?;
        let (c, gc) = self.per_head(ch, heads)?;
        if gb != gc {
            return None;
        }
        // The merge back to (b, c·T, H, P) and the D term D · Pad(x).
        let mt = self.shape_loose(&merged.input[1])?;
        // (b, c, T, H, P) → (b, c·T, H, P): batch, H and P kept fix the merged axis.
        let merge_ok = mt.len() == 4
            && mt[0].as_ref() == Some(&xdims[0])
            && mt[2] == Some(SymDim::Known(heads))
            && mt[3].as_ref() == Some(&xdims[3]);
        if !merge_ok {
            return None;
        }
        let d = match d_term {
            None => None,
            Some(v) => {
                let mul = self.op(v, "Mul")?;
                let (dc, px) = self.either(mul, |v| {
                    let c = self.g.constant(v)?;
                    (c.dims == [heads, 1] && c.data_type == FLOAT).then_some(c)
                })?;
                if self.time_pad(px)? != x {
                    return None;
                }
                Some(dc.values.iter().map(|&v| v as f32).collect())
            }
        };
        let (dt, dt_bias, softplus, dt_limit) = self.step_size(delta);
        let dtd = self.dims(dt)?;
        if dtd.len() != 3 || dtd[2] != SymDim::Known(heads) {
            return None;
        }
        // The Slice keeps exactly t < L: its end is the length of x or dt (which the op
        // requires equal, and checks when it runs).
        let end = self.inf.shape_value(input(2)?).ok()?;
        if end.len() != 1 || (end[0] != xdims[1] && end[0] != dtd[1]) {
            return None;
        }
        // The op's dtype rule: x, dt, B, C share one float type (A, D, dt_bias are new fp32
        // constants).
        let ty = |v: &str| self.g.dtype(v);
        let act = ty(x)?;
        if ![FLOAT, FLOAT16, BFLOAT16].contains(&act)
            || [dt, b, c].iter().any(|v| ty(v) != Some(act))
        {
            return None;
        }
        Some(Found {
            x: x.to_string(),
            dt: dt.to_string(),
            a: a.values.iter().map(|&v| v as f32).collect(),
            b: b.to_string(),
            c: c.to_string(),
            bc_ungrouped: false,
            d,
            dt_bias,
            dt_limit,
            softplus,
            y: s.output[0].clone(),
        })
    }

    /// `v` = A·Δ with A a constant (H) in fp32: (A, Δ, the Mul).
    pub(super) fn a_times_delta(
        &self,
        v: &str,
    ) -> Option<(super::graph::ConstValue, &'g str, &'g NodeProto)> {
        let mul = self.op(v, "Mul")?;
        let konst_h = |v: &'g str| {
            let c = self.g.constant(v)?;
            (c.dims.len() == 1 && c.data_type == FLOAT).then_some(c)
        };
        let (a, delta) = self.either(mul, konst_h)?;
        Some((a, delta, mul))
    }

    /// `v` = x · Unsqueeze(Δ, 3) with x (b, L, H, P): (x, the Unsqueeze's output). fp16 models
    /// cast Δ to fp32 on both paths, before or after the Unsqueeze (the same values: widening
    /// is exact).
    pub(super) fn delta_times_x(
        &self,
        v: &str,
        delta: &str,
        heads: i64,
    ) -> Option<(&'g str, &'g str)> {
        let xm = self.op(v, "Mul")?;
        let base = self.g.strip_casts(delta);
        let (u, x) = self.either(xm, |v| {
            let (src, axis) = self.unsqueeze(&self.g.strip_casts(v))?;
            (self.g.strip_casts(src) == base && (axis == 3 || axis == -1)).then_some(v)
        })?;
        let xdims = self.dims(x)?;
        (xdims.len() == 4 && xdims[2] == SymDim::Known(heads)).then_some((x, u))
    }

    /// One chunk of zero state before the chunk states `states`: a zero constant of one chunk,
    /// or Expand(0, Shape(states[:, 0:1])) (transformers' `zeros_like(states[:, :1])`).
    fn zero_chunk(&self, v: &str, states: &str) -> bool {
        if let Some(c) = self.g.constant(v) {
            return c.dims.len() == 5 && c.dims[1] == 1 && c.values.iter().all(|&x| x == 0.0);
        }
        let Some(ex) = self.op(v, "Expand") else {
            return false;
        };
        if self.scalar(&ex.input[0]) != Some(0.0) {
            return false;
        }
        let Some(sh) = self.op(&ex.input[1], "Shape") else {
            return false;
        };
        if attr_i(sh, "start").unwrap_or(0) != 0 || attr_i(sh, "end").is_some() {
            return false;
        }
        let Some(sl) = self.op(&sh.input[0], "Slice") else {
            return false;
        };
        let at = |i: usize| sl.input.get(i).and_then(|x| self.ints(x));
        sl.input[0] == states
            && at(1).as_deref() == Some(&[0])
            && at(2).as_deref() == Some(&[1])
            && at(3).as_deref() == Some(&[1])
            && sl
                .input
                .get(4)
                .is_none_or(|_| at(4).as_deref() == Some(&[1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::graph::{i64_tensor, BOOL};
    use onnx_protobuf::{GraphProto, TensorProto};

    fn bool_tensor(name: &str, n: i64, f: impl Fn(i64, i64) -> bool) -> TensorProto {
        let mut t = TensorProto::new();
        t.name = name.into();
        t.data_type = BOOL;
        t.dims = vec![n, n];
        t.raw_data = (0..n * n).map(|k| f(k / n, k % n) as u8).collect();
        t
    }

    /// The masks: ¬tril(−1) is true on and above the diagonal, ¬tril(0) strictly above; a
    /// transposed or shifted mask is refused.
    #[test]
    fn masks_are_read_exactly() {
        let mut g = GraphProto::new();
        g.initializer.push(bool_tensor("ge", 4, |i, j| j >= i));
        g.initializer.push(bool_tensor("gt", 4, |i, j| j > i));
        g.initializer.push(bool_tensor("le", 4, |i, j| j <= i));
        g.initializer.push(i64_tensor("ints", &[2], &[0, 1]));
        let idx = GraphIndex::new(&g, std::path::Path::new("."));
        let inf = Infer::new(&idx);
        let m = Matcher { g: &idx, inf: &inf };
        assert_eq!(m.mask("ge", -1), Some(true));
        assert_eq!(m.mask("gt", 0), Some(true));
        assert_eq!(m.mask("ge", 0), Some(false));
        assert_eq!(m.mask("gt", -1), Some(false));
        assert_eq!(m.mask("le", -1), Some(false));
        assert_eq!(m.mask("ints", -1), Some(false));
        assert_eq!(m.mask("nothing", 0), None);
    }
}
