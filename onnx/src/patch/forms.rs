//! Spellings of the scan's pieces that exports differ in, recognised by what they compute:
//! the readout `y_t = Σₙ h_t · C_t` as an Einsum of any letters, operand order and with or
//! without a channel axis on `C_t` (grouped `C` spread over the channels), and a zero initial
//! state made at run time (`new_zeros` with a dynamic batch: TorchScript's `ConstantOfShape`,
//! dynamo's `Expand` of a zero); and the Cast that widens a half-precision A.

use super::graph::{is_default_domain, GraphIndex, FLOAT};
use super::rewrite::Ctx;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, NodeProto};

/// What an axis of `C_t` is, in the state's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Batch,
    Channel,
    State,
}

/// An Einsum's terms and explicit output, spaces removed; `None` for an implicit output or an
/// ellipsis.
pub fn einsum_terms(n: &NodeProto) -> Option<(Vec<Vec<u8>>, Vec<u8>)> {
    let eq = super::graph::attr_s(n, "equation")?.replace(' ', "");
    let (lhs, out) = eq.split_once("->")?;
    if eq.contains("...") {
        return None;
    }
    let terms = lhs.split(',').map(|t| t.as_bytes().to_vec()).collect();
    Some((terms, out.as_bytes().to_vec()))
}

/// A readout Einsum `(h (b, d, n), C_t) → (b, d)`, summing over n: the position of the state
/// operand and the roles of C_t's axes. The state is the operand whose letters the output
/// starts with; `C_t` has batch and state axes, and a channel axis when `C` is spread over
/// channels. Each candidate (state first or second) is returned for the caller to try.
pub fn readout_einsum(n: &NodeProto) -> Vec<(usize, Vec<Role>)> {
    let Some((terms, out)) = einsum_terms(n) else {
        return Vec::new();
    };
    if terms.len() != 2 || n.input.len() != 2 {
        return Vec::new();
    }
    let mut found = Vec::new();
    for hi in 0..2 {
        let (ht, ct) = (&terms[hi], &terms[1 - hi]);
        let distinct = |t: &[u8]| t.iter().enumerate().all(|(i, c)| !t[..i].contains(c));
        if ht.len() != 3 || !distinct(ht) || !distinct(ct) || out != [ht[0], ht[1]] {
            continue;
        }
        let roles: Option<Vec<Role>> = ct
            .iter()
            .map(|c| match ht.iter().position(|x| x == c) {
                Some(0) => Some(Role::Batch),
                Some(1) => Some(Role::Channel),
                Some(2) => Some(Role::State),
                _ => None,
            })
            .collect();
        let Some(roles) = roles else { continue };
        let has = |r: Role| roles.contains(&r);
        if has(Role::Batch) && has(Role::State) {
            found.push((hi, roles));
        }
    }
    found
}

/// True when `value` is all zeros: a constant of zeros, `ConstantOfShape` whose value is zero
/// (or absent, which means zero), or a zero constant `Expand`ed.
pub fn is_zero_fill(g: &GraphIndex, value: &str) -> bool {
    if let Some(c) = g.constant(value) {
        return c.values.iter().all(|&v| v == 0.0);
    }
    let v = g.strip_float_casts(value);
    let Some((_, n)) = g.producer(&v) else {
        return false;
    };
    if !is_default_domain(n) {
        return false;
    }
    // dynamo's zeros: a zero constant broadcast to the state's shape.
    if n.op_type == "Expand" {
        return g
            .constant(&n.input[0])
            .is_some_and(|c| c.values.iter().all(|&v| v == 0.0));
    }
    if n.op_type != "ConstantOfShape" {
        return false;
    }
    match n.attribute.iter().find(|a| a.name == "value") {
        None => true,
        Some(a) => super::graph::decode(&a.t, std::path::Path::new(""))
            .map(|c| c.values.iter().all(|&x| x == 0.0))
            .unwrap_or(false),
    }
}

/// A `Cast(to = FLOAT)` of `input` into a fresh value: the node and its output (an fp16 export's
/// A, which the op takes in fp32).
pub fn cast_to_f32(g: &GraphIndex, ctx: &mut Ctx, input: &str) -> (NodeProto, String) {
    let out = ctx.fresh(g, "A_fp32");
    let mut cast = NodeProto::new();
    cast.name = ctx.fresh(g, "Cast_A");
    cast.op_type = "Cast".into();
    cast.input = vec![input.to_string()];
    cast.output = vec![out.clone()];
    let mut to = AttributeProto::new();
    to.name = "to".into();
    to.type_ = AttributeType::INT.into();
    to.i = FLOAT as i64;
    cast.attribute.push(to);
    (cast, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn einsum(eq: &str) -> NodeProto {
        let mut n = NodeProto::new();
        n.op_type = "Einsum".into();
        n.input = vec!["a".into(), "b".into()];
        let mut a = onnx_protobuf::AttributeProto::new();
        a.name = "equation".into();
        a.s = eq.as_bytes().to_vec();
        n.attribute.push(a);
        n
    }

    #[test]
    fn readout_spellings() {
        use Role::*;
        type Found = Vec<(usize, Vec<Role>)>;
        let cases: [(&str, Found); 7] = [
            ("bdn,bn->bd", vec![(0, vec![Batch, State])]),
            ("bn,bdn->bd", vec![(1, vec![Batch, State])]),
            (
                "bdn,bdn->bd",
                vec![
                    (0, vec![Batch, Channel, State]),
                    (1, vec![Batch, Channel, State]),
                ],
            ),
            ("xyz, xz -> xy", vec![(0, vec![Batch, State])]),
            ("bdn,nb->bd", vec![(0, vec![State, Batch])]),
            // Output not (b, d), a kept state axis, an ellipsis: not a readout.
            ("bdn,bn->db", vec![]),
            ("bdn,bn->bdn", vec![]),
        ];
        for (eq, want) in cases {
            assert_eq!(readout_einsum(&einsum(eq)), want, "{eq}");
        }
        assert!(readout_einsum(&einsum("...dn,...n->...d")).is_empty());
        assert!(readout_einsum(&einsum("bdn,bm->bd")).is_empty());
    }
}
