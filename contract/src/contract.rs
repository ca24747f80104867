//! The `S6Scan` op contract (`docs/s6scan.md`), in one place for every part of s6plugin.
//!
//! Inputs are *packed*: absent optional inputs leave no gap, and the `has_*` attributes say which
//! are present. TensorRT plugins cannot take empty inputs, so flags are the only encoding that
//! works in both ONNX and TensorRT.

use crate::checks::{
    check_input_count, check_known_dims, check_packed_dtypes, expect_dim, expect_shape, mark_once,
    parse_flag, rank_err, require_all, PackedRole,
};
use crate::error::ContractError;

/// Plugin / node `op_type`.
pub const OP_TYPE: &str = "S6Scan";
/// Plugin version (`plugin_version` node attribute, TensorRT's default "1").
pub const PLUGIN_VERSION: &str = "1";
/// Plugin namespace: empty, TensorRT's default, so that every TensorRT version finds it.
pub const PLUGIN_NAMESPACE: &str = "";
/// ONNX domain the node carries (its opset import is version 1).
pub const ONNX_DOMAIN: &str = "s6plugin";
/// Opset version of [`ONNX_DOMAIN`].
pub const ONNX_DOMAIN_VERSION: i64 = 1;

/// Activation dtype (u, delta, B, C, z, y). A, D, delta_bias and the states are always fp32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
}

impl DType {
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Role of an input, in packed order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputRole {
    U,
    Delta,
    A,
    B,
    C,
    D,
    Z,
    DeltaBias,
    InitialState,
}

impl InputRole {
    pub const ALL: [InputRole; 9] = [
        InputRole::U,
        InputRole::Delta,
        InputRole::A,
        InputRole::B,
        InputRole::C,
        InputRole::D,
        InputRole::Z,
        InputRole::DeltaBias,
        InputRole::InitialState,
    ];
    pub fn name(self) -> &'static str {
        match self {
            InputRole::U => "u",
            InputRole::Delta => "delta",
            InputRole::A => "A",
            InputRole::B => "B",
            InputRole::C => "C",
            InputRole::D => "D",
            InputRole::Z => "z",
            InputRole::DeltaBias => "delta_bias",
            InputRole::InitialState => "initial_state",
        }
    }
    /// True for inputs that carry the activation dtype; the others are always fp32.
    pub fn is_activation(self) -> bool {
        matches!(
            self,
            InputRole::U | InputRole::Delta | InputRole::B | InputRole::C | InputRole::Z
        )
    }
}

impl PackedRole for InputRole {
    fn role_name(self) -> &'static str {
        self.name()
    }
    fn carries_activation(self) -> bool {
        self.is_activation()
    }
}

/// Role of an output, in packed order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputRole {
    Y,
    LastState,
}

impl OutputRole {
    pub fn name(self) -> &'static str {
        match self {
            OutputRole::Y => "y",
            OutputRole::LastState => "last_state",
        }
    }
}

/// The op's attributes (= TensorRT plugin fields), all INT 0/1 in ONNX (kINT32 in TensorRT).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct S6Attrs {
    /// delta ← softplus(delta + delta_bias) (mamba_ssm's threshold 20).
    pub delta_softplus: bool,
    pub has_d: bool,
    pub has_z: bool,
    pub has_delta_bias: bool,
    pub has_initial_state: bool,
    pub has_last_state: bool,
    /// u, delta, z and y are (B, L, D) instead of (B, D, L).
    pub channels_last: bool,
    /// B and C are (B, L, N) / (B, L, G, N) instead of (B, N, L) / (B, G, N, L).
    pub bc_channels_last: bool,
}

impl S6Attrs {
    /// Attribute / plugin-field names, in the order `getFieldNames()` lists them.
    pub const FIELD_NAMES: [&'static str; 8] = [
        "delta_softplus",
        "has_D",
        "has_z",
        "has_delta_bias",
        "has_initial_state",
        "has_last_state",
        "channels_last",
        "bc_channels_last",
    ];

    /// Sets one attribute by name from an integer value; only 0 and 1 are accepted.
    pub fn set(&mut self, name: &str, value: i64) -> Result<(), ContractError> {
        let flag = parse_flag(name, value)?;
        let slot = match name {
            "delta_softplus" => &mut self.delta_softplus,
            "has_D" => &mut self.has_d,
            "has_z" => &mut self.has_z,
            "has_delta_bias" => &mut self.has_delta_bias,
            "has_initial_state" => &mut self.has_initial_state,
            "has_last_state" => &mut self.has_last_state,
            "channels_last" => &mut self.channels_last,
            "bc_channels_last" => &mut self.bc_channels_last,
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
    pub fn values(&self) -> [bool; 8] {
        [
            self.delta_softplus,
            self.has_d,
            self.has_z,
            self.has_delta_bias,
            self.has_initial_state,
            self.has_last_state,
            self.channels_last,
            self.bc_channels_last,
        ]
    }

    /// Present inputs, in packed order.
    pub fn inputs(&self) -> Vec<InputRole> {
        InputRole::ALL
            .into_iter()
            .filter(|r| match r {
                InputRole::D => self.has_d,
                InputRole::Z => self.has_z,
                InputRole::DeltaBias => self.has_delta_bias,
                InputRole::InitialState => self.has_initial_state,
                _ => true,
            })
            .collect()
    }

    /// Position of `role` among the packed inputs, if present.
    pub fn input_index(&self, role: InputRole) -> Option<usize> {
        self.inputs().iter().position(|r| *r == role)
    }

    pub fn num_inputs(&self) -> usize {
        5 + self.has_d as usize
            + self.has_z as usize
            + self.has_delta_bias as usize
            + self.has_initial_state as usize
    }

    /// Present outputs, in packed order.
    pub fn outputs(&self) -> Vec<OutputRole> {
        packed_outputs(self.has_last_state)
    }

    pub fn num_outputs(&self) -> usize {
        1 + self.has_last_state as usize
    }
}

/// Present outputs of either op, in packed order: `y`, then `last_state` if flagged.
pub(crate) fn packed_outputs(has_last_state: bool) -> Vec<OutputRole> {
    let mut o = vec![OutputRole::Y];
    if has_last_state {
        o.push(OutputRole::LastState);
    }
    o
}

/// One attribute of an `S6Scan` node as a reader found it (the contract has no ONNX types: each
/// reader maps its own attribute representation to this).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrValue<'a> {
    Int(i64),
    Str(&'a [u8]),
    /// Any other type (float, tensor, list, ...): refused for every name.
    Other(&'static str),
}

impl S6Attrs {
    /// The one reader of an `S6Scan` node's attributes, with the rules of `docs/s6scan.md` that
    /// every consumer applies: all eight flags present, once, as INT 0 or 1; `plugin_version`
    /// (STRING `"1"`) and `plugin_namespace` (STRING `""`) accepted; anything else refused.
    pub fn from_attributes<'a>(
        attrs: impl IntoIterator<Item = (&'a str, AttrValue<'a>)>,
    ) -> Result<S6Attrs, ContractError> {
        let bad = |name: &str, reason: String| ContractError::Attribute {
            name: name.to_string(),
            reason,
        };
        let mut out = S6Attrs::default();
        let mut seen = [false; 8];
        let mut seen_mechanism = [false; 2];
        for (name, value) in attrs {
            if let Some(i) = Self::FIELD_NAMES.iter().position(|f| *f == name) {
                mark_once(&mut seen[i], name)?;
                match value {
                    AttrValue::Int(v) => out.set(name, v)?,
                    AttrValue::Str(_) => {
                        return Err(bad(name, "must be an INT, is a STRING".into()))
                    }
                    AttrValue::Other(t) => {
                        return Err(bad(name, format!("must be an INT, is {t}")))
                    }
                }
                continue;
            }
            let (k, want) = match name {
                "plugin_version" => (0, PLUGIN_VERSION),
                "plugin_namespace" => (1, PLUGIN_NAMESPACE),
                _ => {
                    return Err(ContractError::UnknownAttribute {
                        name: name.to_string(),
                    })
                }
            };
            mark_once(&mut seen_mechanism[k], name)?;
            match value {
                AttrValue::Str(s) if s == want.as_bytes() => {}
                AttrValue::Str(s) => {
                    return Err(bad(
                        name,
                        format!("must be {want:?}, got {:?}", String::from_utf8_lossy(s)),
                    ))
                }
                _ => return Err(bad(name, format!("must be the STRING {want:?}"))),
            }
        }
        require_all(
            &seen,
            &Self::FIELD_NAMES,
            "missing (all eight flags are required, zeros included)",
        )?;
        Ok(out)
    }
}

/// Problem sizes: batch, channels D (`dim`), sequence L, state N, groups G of B/C.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScanDims {
    pub batch: usize,
    pub dim: usize,
    pub seqlen: usize,
    pub dstate: usize,
    pub groups: usize,
}

/// Element strides (batch, channel, time) of an activation tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strides3 {
    pub batch: usize,
    pub chan: usize,
    pub time: usize,
}

/// Element strides (batch, group, state, time) of B or C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StridesBC {
    pub batch: usize,
    pub group: usize,
    pub state: usize,
    pub time: usize,
}

impl ScanDims {
    pub const fn new(
        batch: usize,
        dim: usize,
        seqlen: usize,
        dstate: usize,
        groups: usize,
    ) -> Self {
        ScanDims {
            batch,
            dim,
            seqlen,
            dstate,
            groups,
        }
    }

    /// Strides of u, delta, z and y for the layout in `attrs` (contiguous tensors).
    pub fn act_strides(&self, attrs: &S6Attrs) -> Strides3 {
        let (d, l) = (self.dim, self.seqlen);
        if attrs.channels_last {
            Strides3 {
                batch: l * d,
                chan: 1,
                time: d,
            }
        } else {
            Strides3 {
                batch: d * l,
                chan: l,
                time: 1,
            }
        }
    }

    /// Strides of B and C for the layout in `attrs` (contiguous tensors).
    pub fn bc_strides(&self, attrs: &S6Attrs) -> StridesBC {
        let (g, n, l) = (self.groups, self.dstate, self.seqlen);
        if attrs.bc_channels_last {
            StridesBC {
                batch: l * g * n,
                group: n,
                state: 1,
                time: g * n,
            }
        } else {
            StridesBC {
                batch: g * n * l,
                group: n * l,
                state: l,
                time: 1,
            }
        }
    }

    /// Shape of an activation tensor (u, delta, z, y).
    pub fn act_shape(&self, attrs: &S6Attrs) -> [usize; 3] {
        if attrs.channels_last {
            [self.batch, self.seqlen, self.dim]
        } else {
            [self.batch, self.dim, self.seqlen]
        }
    }

    /// Shape of the state tensors (initial_state, last_state): (B, D, N).
    pub fn state_shape(&self) -> [usize; 3] {
        [self.batch, self.dim, self.dstate]
    }

    pub fn act_len(&self) -> usize {
        self.batch * self.dim * self.seqlen
    }
    pub fn bc_len(&self) -> usize {
        self.batch * self.groups * self.dstate * self.seqlen
    }
    pub fn state_len(&self) -> usize {
        self.batch * self.dim * self.dstate
    }
}

/// Validates the packed input shapes against the contract and returns the problem sizes.
///
/// `shapes[i]` is the shape of the i-th *present* input (see [`S6Attrs::inputs`]).
pub fn infer_dims(attrs: &S6Attrs, shapes: &[&[i64]]) -> Result<ScanDims, ContractError> {
    let roles = attrs.inputs();
    check_input_count(roles.len(), shapes.len())?;
    let get = |role: InputRole| shapes[roles.iter().position(|r| *r == role).unwrap()];

    let u = get(InputRole::U);
    if u.len() != 3 {
        return Err(rank_err("u", "3", u));
    }
    check_known_dims("u", u)?;
    let (batch, dim, seqlen) = if attrs.channels_last {
        (u[0], u[2], u[1])
    } else {
        (u[0], u[1], u[2])
    };
    for (role, name) in [(InputRole::Delta, "delta"), (InputRole::Z, "z")] {
        if role == InputRole::Z && !attrs.has_z {
            continue;
        }
        expect_shape(name, get(role), u, "3", "must match u")?;
    }
    let a = get(InputRole::A);
    if a.len() != 2 {
        return Err(rank_err("A", "2 (D, N)", a));
    }
    expect_dim("A", a, 0, dim, "D of u")?;
    let dstate = a[1];

    let b = get(InputRole::B);
    let (groups, bc_shape) = match b.len() {
        3 => {
            let want = if attrs.bc_channels_last {
                [batch, seqlen, dstate]
            } else {
                [batch, dstate, seqlen]
            };
            (1, want.to_vec())
        }
        4 => {
            let g = if attrs.bc_channels_last { b[2] } else { b[1] };
            if g <= 0 || dim % g != 0 {
                return Err(ContractError::Groups {
                    input: "B",
                    groups: g,
                    dim,
                });
            }
            let want = if attrs.bc_channels_last {
                [batch, seqlen, g, dstate]
            } else {
                [batch, g, dstate, seqlen]
            };
            (g, want.to_vec())
        }
        _ => return Err(rank_err("B", "3 or 4", b)),
    };
    for (role, name) in [(InputRole::B, "B"), (InputRole::C, "C")] {
        expect_shape(
            name,
            get(role),
            &bc_shape,
            &format!("{} (same as B)", bc_shape.len()),
            "batch, groups, N and L must agree with u and A",
        )?;
    }
    for (role, name) in [(InputRole::D, "D"), (InputRole::DeltaBias, "delta_bias")] {
        if attrs.input_index(role).is_none() {
            continue;
        }
        expect_shape(name, get(role), &[dim], "1 (D)", "D of u")?;
    }
    if attrs.has_initial_state {
        let s = get(InputRole::InitialState);
        if s.len() != 3 {
            return Err(rank_err("initial_state", "3 (B, D, N)", s));
        }
        expect_dim("initial_state", s, 0, batch, "batch of u")?;
        expect_dim("initial_state", s, 1, dim, "D of u")?;
        expect_dim("initial_state", s, 2, dstate, "N of A")?;
    }
    Ok(ScanDims {
        batch: batch as usize,
        dim: dim as usize,
        seqlen: seqlen as usize,
        dstate: dstate as usize,
        groups: groups as usize,
    })
}

/// Checks input dtypes: activations share one dtype, the others are fp32. Returns the
/// activation dtype.
pub fn check_dtypes(attrs: &S6Attrs, dtypes: &[DType]) -> Result<DType, ContractError> {
    check_packed_dtypes(&attrs.inputs(), dtypes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_inputs_follow_flags() {
        let attrs = S6Attrs {
            has_z: true,
            has_initial_state: true,
            ..Default::default()
        };
        assert_eq!(attrs.num_inputs(), 7);
        assert_eq!(attrs.input_index(InputRole::Z), Some(5));
        assert_eq!(attrs.input_index(InputRole::InitialState), Some(6));
        assert_eq!(attrs.input_index(InputRole::D), None);
        assert_eq!(attrs.inputs().len(), attrs.num_inputs());
    }

    #[test]
    fn infers_grouped_dims_and_rejects_bad_groups() {
        let attrs = S6Attrs::default();
        let dims = infer_dims(
            &attrs,
            &[
                &[2, 8, 5],
                &[2, 8, 5],
                &[8, 4],
                &[2, 2, 4, 5],
                &[2, 2, 4, 5],
            ],
        )
        .unwrap();
        assert_eq!(
            dims,
            ScanDims {
                batch: 2,
                dim: 8,
                seqlen: 5,
                dstate: 4,
                groups: 2
            }
        );
        let err = infer_dims(
            &attrs,
            &[
                &[2, 8, 5],
                &[2, 8, 5],
                &[8, 4],
                &[2, 3, 4, 5],
                &[2, 3, 4, 5],
            ],
        )
        .unwrap_err();
        assert!(matches!(err, ContractError::Groups { groups: 3, .. }));
    }

    #[test]
    fn channels_last_layouts() {
        let attrs = S6Attrs {
            channels_last: true,
            bc_channels_last: true,
            ..Default::default()
        };
        let dims = infer_dims(
            &attrs,
            &[&[1, 7, 4], &[1, 7, 4], &[4, 3], &[1, 7, 3], &[1, 7, 3]],
        )
        .unwrap();
        assert_eq!((dims.dim, dims.seqlen, dims.dstate), (4, 7, 3));
        assert_eq!(dims.act_strides(&attrs).time, 4);
        assert_eq!(dims.bc_strides(&attrs).time, 3);
        let err = infer_dims(
            &attrs,
            &[&[1, 7, 4], &[1, 7, 4], &[4, 3], &[1, 3, 7], &[1, 7, 3]],
        )
        .unwrap_err();
        assert!(matches!(err, ContractError::Dim { input: "B", .. }));
    }

    #[test]
    fn attribute_values_are_checked() {
        let mut a = S6Attrs::default();
        a.set("has_D", 1).unwrap();
        assert!(a.has_d);
        assert!(a.set("has_D", 2).is_err());
        assert!(matches!(
            a.set("nope", 1),
            Err(ContractError::UnknownAttribute { .. })
        ));
    }

    #[test]
    fn one_reader_applies_every_attribute_rule() {
        use AttrValue::*;
        let all = |v: i64| S6Attrs::FIELD_NAMES.map(|n| (n, Int(v)));
        let a = S6Attrs::from_attributes(all(1)).unwrap();
        assert!(a.values().iter().all(|&v| v));
        // The parser's two mechanism attributes, with their only allowed values.
        let mut with = all(0).to_vec();
        with.push(("plugin_version", Str(b"1")));
        with.push(("plugin_namespace", Str(b"")));
        assert_eq!(
            S6Attrs::from_attributes(with.clone()),
            Ok(S6Attrs::default())
        );
        with[8].1 = Str(b"2");
        assert!(S6Attrs::from_attributes(with).is_err());
        // Missing, twice, wrong type, wrong value, unknown.
        let e = S6Attrs::from_attributes(all(0).into_iter().skip(1)).unwrap_err();
        assert!(e.to_string().contains("delta_softplus") && e.to_string().contains("missing"));
        let mut twice = all(0).to_vec();
        twice.push(("has_z", Int(0)));
        assert!(S6Attrs::from_attributes(twice).is_err());
        let mut typed = all(0);
        typed[2].1 = Other("FLOAT");
        assert!(S6Attrs::from_attributes(typed).is_err());
        assert!(S6Attrs::from_attributes(all(2)).is_err());
        let mut unknown = all(0).to_vec();
        unknown.push(("has_w", Int(0)));
        assert!(matches!(
            S6Attrs::from_attributes(unknown),
            Err(ContractError::UnknownAttribute { .. })
        ));
    }

    #[test]
    fn dtype_rules() {
        let attrs = S6Attrs {
            has_d: true,
            ..Default::default()
        };
        use DType::*;
        assert_eq!(
            check_dtypes(&attrs, &[F16, F16, F32, F16, F16, F32]),
            Ok(F16)
        );
        assert!(check_dtypes(&attrs, &[F16, F16, F16, F16, F16, F32]).is_err());
        assert!(check_dtypes(&attrs, &[F16, BF16, F32, F16, F16, F32]).is_err());
    }
}
