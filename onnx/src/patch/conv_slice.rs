//! Rule family 3: the causal conv's length-baked Slice.
//!
//! Mamba's conv is `Conv(pads=[k-1, k-1])` (length L + k - 1) cut back to L by
//! `Slice(starts=0, ends=L, axes=2)`; the exporters bake L. `ends = -(k-1)` cuts the same at
//! every length.

use super::error::PatchError;
use super::graph::{attr_ints, i64_tensor, input, is_default_domain, GraphIndex};
use super::rewrite::{Ctx, Patch, Rule};

pub struct CausalConvSlice;

impl Rule for CausalConvSlice {
    fn name(&self) -> &'static str {
        "conv-slice-dynamic"
    }
    fn apply(&self, g: &GraphIndex, ctx: &mut Ctx) -> Result<Option<Patch>, PatchError> {
        let Some(seq_len) = ctx.seq_len else {
            return Ok(None);
        };
        for (i, n) in g.graph.node.iter().enumerate() {
            if n.op_type != "Slice" || !is_default_domain(n) || n.input.len() < 4 {
                continue;
            }
            let Some((_, conv)) = g.producer_op(input(n, 0), "Conv") else {
                continue;
            };
            let Some(w) = g.constant_proto(input(conv, 1)) else {
                continue;
            };
            if w.dims.len() != 3 {
                continue;
            }
            let k = w.dims[2];
            if !(1..=i64::MAX / 2).contains(&k) {
                continue;
            }
            let ones = |name: &str| attr_ints(conv, name).is_none_or(|v| v.iter().all(|&x| x == 1));
            let pads = attr_ints(conv, "pads").unwrap_or_default();
            if pads != [k - 1, k - 1] || !ones("strides") || !ones("dilations") {
                continue;
            }
            let c = |j: usize| {
                n.input
                    .get(j)
                    .filter(|s| !s.is_empty())
                    .and_then(|s| g.constant(s))
            };
            let (Some(starts), Some(ends), Some(axes)) = (c(1), c(2), c(3)) else {
                continue;
            };
            let steps_ok = n.input.get(4).is_none_or(|s| s.is_empty())
                || c(4).is_some_and(|s| s.ints() == [1]);
            if starts.ints() != [0]
                || ends.ints() != [seq_len as i64]
                || !matches!(axes.ints().as_slice(), [2] | [-1])
                || !steps_ok
            {
                continue;
            }
            let end = if k > 1 { -(k - 1) } else { i64::MAX };
            let name = ctx.fresh(g, "conv_slice_end");
            let mut p = Patch::default();
            p.add_initializers.push(i64_tensor(&name, &[1], &[end]));
            let mut s = n.clone();
            s.input[2] = name;
            p.remove.push(i);
            p.add_nodes.push(s);
            return Ok(Some(p));
        }
        Ok(None)
    }
}
