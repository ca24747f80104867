//! The `S6ScanHeads` op contract (`docs/s6scan_heads.md`): Mamba2's scan (SSD) in its heads
//! form, with `A` and `dt` per head, shared by the head's `P` channels.
//!
//! A separate op from `S6Scan` (same domain, its own plugin name): its inputs, layouts and
//! fields differ, and lowering it into `S6Scan` by broadcasting `A`/`dt` over a head's
//! channels would multiply the exponentials by `P·N` and the bytes read by `P`. Inputs are
//! packed with `has_*` flags, as for `S6Scan`; there is one layout only (mamba_ssm's).

use crate::checks::{
    check_input_count, check_known_dims, check_packed_dtypes, expect_shape, mark_once, parse_flag,
    rank_err, require_all, unknown_dim, PackedRole,
};
use crate::contract::{packed_outputs, DType, OutputRole};
use crate::error::ContractError;

/// Plugin / node `op_type`.
pub const OP_TYPE: &str = "S6ScanHeads";
/// Plugin version (`plugin_version` node attribute, TensorRT's default "1").
pub const PLUGIN_VERSION: &str = "1";
/// Plugin namespace, as for `S6Scan`.
pub const PLUGIN_NAMESPACE: &str = crate::contract::PLUGIN_NAMESPACE;
/// ONNX domain (shared with `S6Scan`; its opset import stays version 1).
pub const ONNX_DOMAIN: &str = crate::contract::ONNX_DOMAIN;
/// Opset version of [`ONNX_DOMAIN`].
pub const ONNX_DOMAIN_VERSION: i64 = crate::contract::ONNX_DOMAIN_VERSION;

/// Role of an input, in packed order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeadsInputRole {
    X,
    Dt,
    A,
    B,
    C,
    D,
    Z,
    DtBias,
    DtLimit,
    InitialState,
}

impl HeadsInputRole {
    pub const ALL: [HeadsInputRole; 10] = [
        HeadsInputRole::X,
        HeadsInputRole::Dt,
        HeadsInputRole::A,
        HeadsInputRole::B,
        HeadsInputRole::C,
        HeadsInputRole::D,
        HeadsInputRole::Z,
        HeadsInputRole::DtBias,
        HeadsInputRole::DtLimit,
        HeadsInputRole::InitialState,
    ];
    pub fn name(self) -> &'static str {
        match self {
            HeadsInputRole::X => "x",
            HeadsInputRole::Dt => "dt",
            HeadsInputRole::A => "A",
            HeadsInputRole::B => "B",
            HeadsInputRole::C => "C",
            HeadsInputRole::D => "D",
            HeadsInputRole::Z => "z",
            HeadsInputRole::DtBias => "dt_bias",
            HeadsInputRole::DtLimit => "dt_limit",
            HeadsInputRole::InitialState => "initial_state",
        }
    }
    /// True for inputs that carry the activation dtype; the others are always fp32.
    pub fn is_activation(self) -> bool {
        matches!(
            self,
            HeadsInputRole::X
                | HeadsInputRole::Dt
                | HeadsInputRole::B
                | HeadsInputRole::C
                | HeadsInputRole::Z
        )
    }
}

impl PackedRole for HeadsInputRole {
    fn role_name(self) -> &'static str {
        self.name()
    }
    fn carries_activation(self) -> bool {
        self.is_activation()
    }
}

/// The op's attributes (= TensorRT plugin fields), all INT 0/1 in ONNX (kINT32 in TensorRT).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HeadsAttrs {
    /// dt ← softplus(dt + dt_bias) (threshold 20), before the limits.
    pub dt_softplus: bool,
    pub has_d: bool,
    pub has_z: bool,
    pub has_dt_bias: bool,
    /// Input `dt_limit` = [lo, hi] present: dt ← min(max(dt, lo), hi) after softplus.
    pub has_dt_limit: bool,
    pub has_initial_state: bool,
    pub has_last_state: bool,
}

impl HeadsAttrs {
    /// Attribute / plugin-field names, in the order `getFieldNames()` lists them.
    pub const FIELD_NAMES: [&'static str; 7] = [
        "dt_softplus",
        "has_D",
        "has_z",
        "has_dt_bias",
        "has_dt_limit",
        "has_initial_state",
        "has_last_state",
    ];

    /// Sets one attribute by name from an integer value; only 0 and 1 are accepted.
    pub fn set(&mut self, name: &str, value: i64) -> Result<(), ContractError> {
        let flag = parse_flag(name, value)?;
        let slot = match name {
            "dt_softplus" => &mut self.dt_softplus,
            "has_D" => &mut self.has_d,
            "has_z" => &mut self.has_z,
            "has_dt_bias" => &mut self.has_dt_bias,
            "has_dt_limit" => &mut self.has_dt_limit,
            "has_initial_state" => &mut self.has_initial_state,
            "has_last_state" => &mut self.has_last_state,
            _ => {
                return Err(ContractError::UnknownAttribute {
                    name: name.to_string(),
                })
            }
        };
        *slot = flag;
        Ok(())
    }

    /// Attribute values in [`Self::FIELD_NAMES`] order.
    pub fn values(&self) -> [bool; 7] {
        [
            self.dt_softplus,
            self.has_d,
            self.has_z,
            self.has_dt_bias,
            self.has_dt_limit,
            self.has_initial_state,
            self.has_last_state,
        ]
    }

    /// Builds the attributes from (name, value) pairs, requiring every field exactly once:
    /// a missing field is an error naming it (docs/s6scan.md: no defaults).
    pub fn from_fields<'a>(
        fields: impl IntoIterator<Item = (&'a str, i64)>,
    ) -> Result<Self, ContractError> {
        let mut a = HeadsAttrs::default();
        let mut seen = [false; 7];
        for (name, v) in fields {
            a.set(name, v)?;
            let i = Self::FIELD_NAMES.iter().position(|n| *n == name).unwrap();
            mark_once(&mut seen[i], name)?;
        }
        require_all(
            &seen,
            &Self::FIELD_NAMES,
            "missing (all seven fields are required)",
        )?;
        Ok(a)
    }

    fn present(&self, role: HeadsInputRole) -> bool {
        match role {
            HeadsInputRole::D => self.has_d,
            HeadsInputRole::Z => self.has_z,
            HeadsInputRole::DtBias => self.has_dt_bias,
            HeadsInputRole::DtLimit => self.has_dt_limit,
            HeadsInputRole::InitialState => self.has_initial_state,
            _ => true,
        }
    }

    /// Present inputs, in packed order.
    pub fn inputs(&self) -> Vec<HeadsInputRole> {
        HeadsInputRole::ALL
            .into_iter()
            .filter(|r| self.present(*r))
            .collect()
    }

    /// Position of `role` among the packed inputs, if present.
    pub fn input_index(&self, role: HeadsInputRole) -> Option<usize> {
        self.inputs().iter().position(|r| *r == role)
    }

    pub fn num_inputs(&self) -> usize {
        self.inputs().len()
    }

    /// Present outputs, in packed order (the roles of `S6Scan`: `y`, `last_state`).
    pub fn outputs(&self) -> Vec<OutputRole> {
        packed_outputs(self.has_last_state)
    }

    pub fn num_outputs(&self) -> usize {
        1 + self.has_last_state as usize
    }
}

/// Problem sizes: batch, sequence L, heads H, head dim P, state N, groups G of B/C.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HeadsDims {
    pub batch: usize,
    pub seqlen: usize,
    pub heads: usize,
    pub headdim: usize,
    pub dstate: usize,
    pub groups: usize,
}

impl HeadsDims {
    pub const fn new(
        batch: usize,
        seqlen: usize,
        heads: usize,
        headdim: usize,
        dstate: usize,
        groups: usize,
    ) -> Self {
        HeadsDims {
            batch,
            seqlen,
            heads,
            headdim,
            dstate,
            groups,
        }
    }

    /// Shape of x, z and y: (batch, L, H, P).
    pub fn x_shape(&self) -> [usize; 4] {
        [self.batch, self.seqlen, self.heads, self.headdim]
    }
    /// Shape of dt: (batch, L, H).
    pub fn dt_shape(&self) -> [usize; 3] {
        [self.batch, self.seqlen, self.heads]
    }
    /// Shape of B and C: (batch, L, G, N).
    pub fn bc_shape(&self) -> [usize; 4] {
        [self.batch, self.seqlen, self.groups, self.dstate]
    }
    /// Shape of initial_state and last_state: (batch, H, P, N).
    pub fn state_shape(&self) -> [usize; 4] {
        [self.batch, self.heads, self.headdim, self.dstate]
    }
    pub fn x_len(&self) -> usize {
        self.x_shape().iter().product()
    }
    pub fn dt_len(&self) -> usize {
        self.dt_shape().iter().product()
    }
    pub fn bc_len(&self) -> usize {
        self.bc_shape().iter().product()
    }
    pub fn state_len(&self) -> usize {
        self.state_shape().iter().product()
    }
    /// Heads per group; head `h` reads group `h / heads_per_group()`.
    pub fn heads_per_group(&self) -> usize {
        self.heads / self.groups
    }
}

/// Validates the packed input shapes and returns the problem sizes.
///
/// `shapes[i]` is the shape of the i-th *present* input (see [`HeadsAttrs::inputs`]).
pub fn infer_heads_dims(attrs: &HeadsAttrs, shapes: &[&[i64]]) -> Result<HeadsDims, ContractError> {
    let roles = attrs.inputs();
    check_input_count(roles.len(), shapes.len())?;
    let get = |role: HeadsInputRole| roles.iter().position(|r| *r == role).map(|i| shapes[i]);
    let x = shapes[0];
    if x.len() != 4 {
        return Err(rank_err("x", "4 (batch, L, H, P)", x));
    }
    check_known_dims("x", x)?;
    let (batch, seqlen, heads, headdim) = (x[0], x[1], x[2], x[3]);
    let dt = get(HeadsInputRole::Dt).unwrap();
    expect_shape(
        "dt",
        dt,
        &[batch, seqlen, heads],
        "3 (batch, L, H)",
        "must match x",
    )?;
    let a = get(HeadsInputRole::A).unwrap();
    expect_shape("A", a, &[heads], "1 (H)", "H of x")?;

    let b = get(HeadsInputRole::B).unwrap();
    if b.len() != 4 {
        return Err(rank_err("B", "4 (batch, L, G, N)", b));
    }
    let (groups, dstate) = (b[2], b[3]);
    if groups <= 0 || heads % groups != 0 {
        return Err(ContractError::Dim {
            input: "B",
            axis: 2,
            got: groups,
            expected: heads,
            why: "groups G must be ≥ 1 and divide the heads H (the expected value is H)",
        });
    }
    if dstate < 0 {
        return Err(unknown_dim("B", 3, dstate));
    }
    let bc = [batch, seqlen, groups, dstate];
    expect_shape(
        "B",
        b,
        &bc,
        "4 (batch, L, G, N)",
        "batch and L must agree with x",
    )?;
    let c = get(HeadsInputRole::C).unwrap();
    expect_shape("C", c, &bc, "4 (batch, L, G, N)", "must match B")?;
    if let Some(s) = get(HeadsInputRole::D) {
        expect_shape("D", s, &[heads], "1 (H)", "H of x")?;
    }
    if let Some(s) = get(HeadsInputRole::Z) {
        expect_shape("z", s, x, "4 (batch, L, H, P)", "must match x")?;
    }
    if let Some(s) = get(HeadsInputRole::DtBias) {
        expect_shape("dt_bias", s, &[heads], "1 (H)", "H of x")?;
    }
    if let Some(s) = get(HeadsInputRole::DtLimit) {
        expect_shape("dt_limit", s, &[2], "1 (2)", "[lo, hi]")?;
    }
    if let Some(s) = get(HeadsInputRole::InitialState) {
        expect_shape(
            "initial_state",
            s,
            &[batch, heads, headdim, dstate],
            "4 (batch, H, P, N)",
            "batch, H, P of x and N of B",
        )?;
    }
    Ok(HeadsDims {
        batch: batch as usize,
        seqlen: seqlen as usize,
        heads: heads as usize,
        headdim: headdim as usize,
        dstate: dstate as usize,
        groups: groups as usize,
    })
}

/// Checks input dtypes: activations share x's dtype, the others are fp32. Returns the
/// activation dtype.
pub fn check_heads_dtypes(attrs: &HeadsAttrs, dtypes: &[DType]) -> Result<DType, ContractError> {
    check_packed_dtypes(&attrs.inputs(), dtypes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base_shapes() -> Vec<Vec<i64>> {
        vec![
            vec![2, 5, 4, 3],
            vec![2, 5, 4],
            vec![4],
            vec![2, 5, 2, 6],
            vec![2, 5, 2, 6],
        ]
    }

    fn refs(v: &[Vec<i64>]) -> Vec<&[i64]> {
        v.iter().map(|s| s.as_slice()).collect()
    }

    #[test]
    fn packed_inputs_follow_flags() {
        let attrs = HeadsAttrs {
            has_z: true,
            has_dt_limit: true,
            has_initial_state: true,
            ..Default::default()
        };
        assert_eq!(attrs.num_inputs(), 8);
        assert_eq!(attrs.input_index(HeadsInputRole::Z), Some(5));
        assert_eq!(attrs.input_index(HeadsInputRole::DtLimit), Some(6));
        assert_eq!(attrs.input_index(HeadsInputRole::InitialState), Some(7));
        assert_eq!(attrs.input_index(HeadsInputRole::D), None);
    }

    #[test]
    fn infers_dims_and_checks_groups() {
        let attrs = HeadsAttrs::default();
        let dims = infer_heads_dims(&attrs, &refs(&base_shapes())).unwrap();
        assert_eq!(
            dims,
            HeadsDims {
                batch: 2,
                seqlen: 5,
                heads: 4,
                headdim: 3,
                dstate: 6,
                groups: 2
            }
        );
        assert_eq!(dims.heads_per_group(), 2);
        let mut bad = base_shapes();
        bad[3][2] = 3;
        bad[4][2] = 3;
        let err = infer_heads_dims(&attrs, &refs(&bad)).unwrap_err();
        assert!(matches!(
            err,
            ContractError::Dim {
                input: "B",
                axis: 2,
                got: 3,
                ..
            }
        ));
        // A per channel (the Mamba1 form) is refused: A must be (H).
        let mut bad = base_shapes();
        bad[2] = vec![4, 6];
        let err = infer_heads_dims(&attrs, &refs(&bad)).unwrap_err();
        assert!(matches!(err, ContractError::Rank { input: "A", .. }));
    }

    #[test]
    fn optional_shapes_are_checked() {
        let attrs = HeadsAttrs {
            has_d: true,
            has_dt_limit: true,
            has_initial_state: true,
            ..Default::default()
        };
        let mut s = base_shapes();
        s.push(vec![4]);
        s.push(vec![2]);
        s.push(vec![2, 4, 3, 6]);
        assert!(infer_heads_dims(&attrs, &refs(&s)).is_ok());
        s[7] = vec![2, 4, 6, 3];
        let err = infer_heads_dims(&attrs, &refs(&s)).unwrap_err();
        assert!(matches!(
            err,
            ContractError::Dim {
                input: "initial_state",
                axis: 2,
                ..
            }
        ));
        s[7] = vec![2, 4, 3, 6];
        s[6] = vec![3];
        let err = infer_heads_dims(&attrs, &refs(&s)).unwrap_err();
        assert!(matches!(
            err,
            ContractError::Dim {
                input: "dt_limit",
                ..
            }
        ));
        let err = infer_heads_dims(&attrs, &refs(&s[..7])).unwrap_err();
        assert_eq!(
            err,
            ContractError::InputCount {
                expected: 8,
                got: 7
            }
        );
    }

    #[test]
    fn fields_are_all_required() {
        let all: Vec<(&str, i64)> = HeadsAttrs::FIELD_NAMES.iter().map(|n| (*n, 1)).collect();
        let a = HeadsAttrs::from_fields(all.iter().copied()).unwrap();
        assert!(a.values().iter().all(|v| *v));
        let err = HeadsAttrs::from_fields(all[1..].iter().copied()).unwrap_err();
        assert!(matches!(err, ContractError::Attribute { ref name, .. } if name == "dt_softplus"));
        assert!(matches!(
            HeadsAttrs::default().set("delta_softplus", 1),
            Err(ContractError::UnknownAttribute { .. })
        ));
        assert!(HeadsAttrs::default().set("has_D", 2).is_err());
    }

    #[test]
    fn dtype_rules() {
        let attrs = HeadsAttrs {
            has_dt_bias: true,
            ..Default::default()
        };
        use DType::*;
        assert_eq!(
            check_heads_dtypes(&attrs, &[BF16, BF16, F32, BF16, BF16, F32]),
            Ok(BF16)
        );
        let err = check_heads_dtypes(&attrs, &[F16, F16, F16, F16, F16, F32]).unwrap_err();
        assert!(matches!(err, ContractError::DType { input: "A", .. }));
    }
}
