//! Rule family: Mamba2's chunked scan (SSD) in the formulation of `scripts/export_mamba2.py`'s
//! `MinimalSSD` — `Trilu` masks, multi-operand Einsums, the chunk-to-chunk carry from a `CumSum`
//! of chunk totals — exported by the dynamo exporter, → one `S6ScanHeads` node
//! (`docs/s6scan_heads.md`). One group, B and C without a group axis.
//!
//! ```text
//! Δ     = softplus?(dt + dt_bias?)
//! Xc    = chunks(Δ·x)  Ac = chunks(A·Δ)  Bc, Cc = chunks(B), chunks(C)     (time split into (c, T))
//! cum   = Transpose(CumSum(Ac, T axis), (b, c, h, T))
//! Ydiag = Einsum(bcin,bcjn,bchij,bcjhp->bcihp, Cc, Bc, tril₀(exp(cum_i − cum_j)), Xc)
//! S     = Einsum(bcjn,bchj,bcjhp->bchpn, Bc, exp(cum[…, -1:] − cum), Xc)
//! tot   = cum[…, -1]   ctot = CumSum(tot, chunk axis)
//! Sin   = Einsum(bhck,bkhpn->bchpn, tril₋₁(exp((ctot − tot)_c − ctot_k)), S)
//! Yoff  = Einsum(bcin,bchpn,bchi->bcihp, Cc, Sin, exp(cum))
//! y     = Slice(Reshape(Ydiag + Yoff), 0:L along time) (+ D·x)
//! ```
//!
//! Sin is the state entering chunk c: Σ_{k<c} exp(tot_{k+1} + … + tot_{c−1}) · S_k, the
//! exponent (ctot_c − tot_c) − ctot_k being exactly that sum for k < c, and tril₋₁ keeping
//! k < c. Einsums are matched by what they compute: operands in any order, letters renamed.
//! The proof is anchored on what only an SSD has — the CumSum of chunked A·Δ over the chunk's
//! time axis, the causal mask of the segment sums, the carry's CumSum of chunk totals — and
//! then bounds the region: every value it reads is x, Δ, B, C or the constants A and D (or a
//! shape/padding operand), and nothing it computes is used outside it but y. The padding
//! argument of `ssd.rs` holds unchanged (zeros after the time axis, cut off by the Slice).

use super::error::PatchError;
use super::graph::{
    attr_i, input, is_default_domain, output, GraphIndex, BFLOAT16, FLOAT, FLOAT16,
};
use super::infer::{Infer, SymDim};
use super::rewrite::{Ctx, Patch, Rule};
use super::ssd::{equation, Found, Matcher};
use onnx_protobuf::NodeProto;
use rustc_hash::FxHashSet as HashSet;

pub struct TriluChunkedScanHeads;

impl Rule for TriluChunkedScanHeads {
    fn name(&self) -> &'static str {
        "chunked-scan-heads-trilu"
    }

    fn apply(&self, g: &GraphIndex, ctx: &mut Ctx) -> Result<Option<Patch>, PatchError> {
        let inf = Infer::new(g);
        let m = Trilu {
            m: Matcher { g, inf: &inf },
        };
        for n in &g.graph.node {
            if is_default_domain(n) && n.op_type == "Slice" {
                if let Some((found, last)) = m.region(n) {
                    return Ok(Some(found.patch(g, ctx, last)));
                }
            }
        }
        Ok(None)
    }
}

const INTRA: &str = "bcin,bcjn,bchij,bcjhp->bcihp";
const STATES: &str = "bcjn,bchj,bcjhp->bchpn";
const CARRY: &str = "bhck,bkhpn->bchpn";
const INTER: &str = "bcin,bchpn,bchi->bcihp";

/// An Einsum equation with its letters renamed in order of first appearance.
fn canonical(eq: &str) -> String {
    let mut seen: Vec<char> = Vec::new();
    eq.chars()
        .map(|ch| {
            if !ch.is_ascii_alphabetic() {
                return ch;
            }
            let k = seen.iter().position(|&s| s == ch).unwrap_or_else(|| {
                seen.push(ch);
                seen.len() - 1
            });
            (b'a' + k as u8) as char
        })
        .collect()
}

/// Every order of 0..n (n ≤ 4 here).
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for at in 0..=p.len() {
            let mut q = p.clone();
            q.insert(at, n - 1);
            out.push(q);
        }
    }
    out
}

struct Trilu<'a, 'g> {
    m: Matcher<'a, 'g>,
}

impl<'a, 'g> Trilu<'a, 'g> {
    /// `v` = an Einsum computing `spec` up to operand order and letter names: its operands in
    /// `spec`'s order.
    fn einsum_as(&self, v: &str, spec: &str) -> Option<Vec<&'g str>> {
        let n = self.m.op(v, "Einsum")?;
        let eq = equation(n)?;
        let (lhs, out) = eq.split_once("->")?;
        if eq.contains('.') {
            return None;
        }
        let terms: Vec<&str> = lhs.split(',').collect();
        let want = canonical(spec);
        if terms.len() != want.split(',').count() || n.input.len() != terms.len() {
            return None;
        }
        permutations(terms.len()).into_iter().find_map(|p| {
            let e: Vec<&str> = p.iter().map(|&i| terms[i]).collect();
            (canonical(&format!("{}->{out}", e.join(","))) == want)
                .then(|| p.iter().map(|&i| n.input[i].as_str()).collect())
        })
    }

    /// Unsqueeze of one axis, the axis normalised against the output rank `rank`.
    fn unsqueeze_at(&self, v: &str, rank: i64) -> Option<(&'g str, i64)> {
        let (src, axis) = self.m.unsqueeze(v)?;
        Some((src, if axis < 0 { axis + rank } else { axis }))
    }

    /// `v` = Trilu(w, k) keeping the lower triangle (j ≤ i + k): w.
    fn tril(&self, v: &str, k: i64) -> Option<&'g str> {
        let t = self.m.op(v, "Trilu")?;
        let kk = match t.input.get(1).filter(|s| !s.is_empty()) {
            Some(kv) => self.m.scalar(kv)? as i64,
            None => 0,
        };
        (attr_i(t, "upper").unwrap_or(1) == 0 && kk == k).then(|| input(t, 0))
    }

    /// Inclusive, forward CumSum of `v` along `axis` (of a rank-`rank` input): its input.
    fn cumsum(&self, v: &str, axis: i64, rank: i64) -> Option<&'g str> {
        let n = self.m.op(v, "CumSum")?;
        let a = self.m.scalar(n.input.get(1)?)? as i64;
        let plain =
            attr_i(n, "exclusive").unwrap_or(0) == 0 && attr_i(n, "reverse").unwrap_or(0) == 0;
        (plain && (a == axis || a == axis - rank)).then(|| input(n, 0))
    }

    /// `v` = Sub(Unsqueeze(p, ap), Unsqueeze(q, aq)) with the axes normalised against `rank`:
    /// (p, ap, q, aq).
    fn outer_diff(&self, v: &str, rank: i64) -> Option<(&'g str, i64, &'g str, i64)> {
        let sub = self.m.op(v, "Sub")?;
        let (p, ap) = self.unsqueeze_at(input(sub, 0), rank)?;
        let (q, aq) = self.unsqueeze_at(input(sub, 1), rank)?;
        Some((p, ap, q, aq))
    }

    /// The region ending at Slice `s` (or at the D term added to it): what the node gets, and
    /// the index of the node whose output it takes over.
    fn region(&self, s: &'g NodeProto) -> Option<(Found, usize)> {
        let m = &self.m;
        let end = m.time_slice(s)?;
        let merged = m.op(input(s, 0), "Reshape")?;
        let add = m.op(input(merged, 0), "Add")?;
        let (intra, yoff) = m.either(add, |v| self.einsum_as(v, INTRA))?;
        let [cc, bc, decay, xc] = intra[..] else {
            return None;
        };
        // decay[b, c, h, i, j] = exp(cum_i − cum_j) for j ≤ i, else 0.
        let ex = m.op(self.tril(decay, 0)?, "Exp")?;
        let (cum_i, ai, cum_j, aj) = self.outer_diff(input(ex, 0), 5)?;
        if cum_i != cum_j || ai != 4 || aj != 3 {
            return None;
        }
        let cum = cum_i;
        // cum (b, c, h, T) = Transpose(CumSum(chunks(A·Δ)) over T): the anchor.
        let ac = self.cumsum(m.transpose(cum, &[0, 1, 3, 2])?, 2, 4)?;
        let (la, t) = m.chunks(ac)?;
        let (a, delta, la_mul) = m.a_times_delta(la)?;
        let heads = a.dims[0];
        let (xd, tx) = m.chunks(xc)?;
        let (b, tb) = m.chunks(bc)?;
        let (c, tc) = m.chunks(cc)?;
        if tx != t || tb != t || tc != t {
            return None;
        }
        let (x, _) = m.delta_times_x(xd, delta, heads)?;
        // Yoff = Einsum(Cc, Sin, exp(cum)).
        let inter = self.einsum_as(yoff, INTER)?;
        let [cc2, sin, ecum] = inter[..] else {
            return None;
        };
        if cc2 != cc || input(m.op(ecum, "Exp")?, 0) != cum {
            return None;
        }
        // Sin = Einsum(carry, S).
        let carry = self.einsum_as(sin, CARRY)?;
        let [gaps, states] = carry[..] else {
            return None;
        };
        // carry[b, h, c, k] = exp((ctot − tot)_c − ctot_k) for k < c, else 0.
        let ex = m.op(self.tril(gaps, -1)?, "Exp")?;
        let gap = m.transpose(input(ex, 0), &[0, 3, 1, 2])?;
        let (excl, ae, ctot, ak) = self.outer_diff(gap, 4)?;
        if ae != 2 || ak != 1 {
            return None;
        }
        let ex_sub = m.op(excl, "Sub")?;
        let tot = input(ex_sub, 1);
        if input(ex_sub, 0) != ctot || self.cumsum(ctot, 1, 3)? != tot {
            return None;
        }
        // tot = cum[..., -1] (a scalar index: the time axis dropped).
        let last = m.op(tot, "Gather")?;
        let idx = m.g.constant(last.input.get(1)?)?;
        if input(last, 0) != cum
            || !idx.dims.is_empty()
            || idx.scalar()? != -1.0
            || !matches!(attr_i(last, "axis"), Some(3) | Some(-1))
        {
            return None;
        }
        // S = Einsum(Bc, exp(cum[..., -1:] − cum), Xc).
        let st = self.einsum_as(states, STATES)?;
        let [bc2, to_end, xc2] = st[..] else {
            return None;
        };
        if bc2 != bc || xc2 != xc {
            return None;
        }
        let sub = m.op(input(m.op(to_end, "Exp")?, 0), "Sub")?;
        let lastc = m.op(input(sub, 0), "Slice")?;
        let li = |i: usize| lastc.input.get(i).and_then(|v| m.ints(v));
        let step_ok = lastc.input.len() < 5 || li(4)? == [1];
        if input(sub, 1) != cum
            || input(lastc, 0) != cum
            || !(li(1)? == [-1] || li(1)? == [t - 1])
            || li(2)?[0] < t
            || !matches!(li(3)?[..], [3] | [-1])
            || !step_ok
        {
            return None;
        }
        // B, C: (b, L, N), one group; x: (b, L, H, P); the merge back to (b, c·T, H, P).
        let xdims = m.dims(x)?;
        let (bd, cd) = (m.dims(b)?, m.dims(c)?);
        if bd.len() != 3 || cd.len() != 3 || bd[2] != cd[2] {
            return None;
        }
        let mt = m.shape_loose(input(merged, 1))?;
        let merge_ok = mt.len() == 4
            && mt[0].as_ref() == Some(&xdims[0])
            && mt[2] == Some(SymDim::Known(heads))
            && mt[3].as_ref() == Some(&xdims[3]);
        if !merge_ok {
            return None;
        }
        let (dt, dt_bias, softplus, dt_limit) = m.step_size(delta);
        let dtd = m.dims(dt)?;
        if dtd.len() != 3 || dtd[2] != SymDim::Known(heads) {
            return None;
        }
        let endv = m.inf.shape_value(end).ok()?;
        if endv.len() != 1 || (endv[0] != xdims[1] && endv[0] != dtd[1]) {
            return None;
        }
        let ty = |v: &str| m.g.dtype(v);
        let act = ty(x)?;
        if ![FLOAT, FLOAT16, BFLOAT16].contains(&act)
            || [dt, b, c].iter().any(|v| ty(v) != Some(act))
        {
            return None;
        }
        // D·x added to the Slice, if that is the Slice's only use: folded into the node.
        let (slice_at, _) = m.g.producer(output(s, 0))?;
        let mut last_node = slice_at;
        let mut y = output(s, 0);
        let mut d = None;
        let mut consts = vec![m.other_than(la_mul, delta)?];
        if let [only] = m.g.consumers(y) {
            let n = m.g.node(*only);
            if !m.g.is_graph_output(y) && is_default_domain(n) && n.op_type == "Add" {
                if let Some((dn, dv)) = self.d_term(m.other_than(n, y)?, x, heads) {
                    d = Some(dv);
                    consts.push(dn);
                    last_node = *only;
                    y = output(n, 0);
                }
            }
        }
        self.bounded(last_node, &[x, delta, b, c], &consts)?;
        Some((
            Found {
                x: x.to_string(),
                dt: dt.to_string(),
                a: a.values.iter().map(|&v| v as f32).collect(),
                b: b.to_string(),
                c: c.to_string(),
                bc_ungrouped: true,
                d,
                dt_bias,
                dt_limit,
                softplus,
                y: y.to_string(),
            },
            last_node,
        ))
    }

    /// `v` = x · D with D a constant (H, 1) in fp32: (D's value name, D).
    fn d_term(&self, v: &str, x: &str, heads: i64) -> Option<(&'g str, Vec<f32>)> {
        let m = &self.m;
        let mul = m.op(v, "Mul")?;
        let ((name, dc), other) = m.either(mul, |v| {
            let c = m.g.constant(v)?;
            (c.dims == [heads, 1] && c.data_type == FLOAT).then_some((v, c))
        })?;
        (other == x).then(|| (name, dc.values.iter().map(|&v| v as f32).collect()))
    }

    /// The region from node `last` back to `inputs` is closed: walking data operands back
    /// from `last`, every path ends at one of `inputs` or `consts` (shape, padding and axis
    /// operands aside), and every value computed on the way is used only inside the region.
    fn bounded(&self, last: usize, inputs: &[&str], consts: &[&str]) -> Option<()> {
        let g = self.m.g;
        let mut region: HashSet<usize> = HashSet::default();
        let mut todo = vec![last];
        while let Some(i) = todo.pop() {
            if !region.insert(i) {
                continue;
            }
            let n = g.node(i);
            if !is_default_domain(n) {
                return None;
            }
            let data = match n.op_type.as_str() {
                "Pad" | "Reshape" | "Slice" | "Trilu" | "CumSum" | "Gather" | "Unsqueeze" => 1,
                "Mul" | "Add" | "Sub" | "Exp" | "Transpose" | "Einsum" | "Cast" | "Identity" => {
                    n.input.len()
                }
                _ => return None,
            };
            for v in n.input.iter().take(data) {
                if inputs.contains(&v.as_str()) || consts.contains(&v.as_str()) {
                    continue;
                }
                match g.producer(v) {
                    Some((p, pn)) if !(pn.op_type == "Constant" && is_default_domain(pn)) => {
                        todo.push(p)
                    }
                    _ => return None,
                }
            }
        }
        let escapes = region.iter().filter(|&&i| i != last).any(|&i| {
            g.node(i)
                .output
                .iter()
                .any(|o| g.is_graph_output(o) || g.consumers(o).iter().any(|c| !region.contains(c)))
        });
        (!escapes).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn einsum_equations_compare_up_to_letter_names() {
        assert_eq!(canonical(INTRA), canonical("xyab,xycb,xyzac,xyczq->xyazq"));
        assert_ne!(canonical(INTRA), canonical("bcin,bcjn,bchji,bcjhp->bcihp"));
        assert_eq!(permutations(3).len(), 6);
        let mut all = permutations(4);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 24);
    }
}
