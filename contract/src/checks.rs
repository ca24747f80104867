//! The checks both ops (`S6Scan`, `S6ScanHeads`) apply in the same way, written once: 0/1
//! flags, fields given once and all present, input counts, shapes, dtypes and data lengths.
//! What differs between the ops (their roles, shapes and messages) stays in their own files.

use crate::contract::DType;
use crate::error::ContractError;

/// A flag's value: only 0 and 1 are accepted.
pub(crate) fn parse_flag(name: &str, value: i64) -> Result<bool, ContractError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(ContractError::Attribute {
            name: name.to_string(),
            reason: format!("must be 0 or 1, got {value}"),
        }),
    }
}

/// Marks field `name` seen; an error if it already was.
pub(crate) fn mark_once(seen: &mut bool, name: &str) -> Result<(), ContractError> {
    if std::mem::replace(seen, true) {
        return Err(ContractError::Attribute {
            name: name.to_string(),
            reason: "given twice".into(),
        });
    }
    Ok(())
}

/// The first field of `names` not `seen` is an error with `reason`.
pub(crate) fn require_all(
    seen: &[bool],
    names: &[&str],
    reason: &str,
) -> Result<(), ContractError> {
    match seen.iter().position(|s| !s) {
        Some(i) => Err(ContractError::Attribute {
            name: names[i].to_string(),
            reason: reason.to_string(),
        }),
        None => Ok(()),
    }
}

/// `got` packed inputs where the flags ask for `expected`.
pub(crate) fn check_input_count(expected: usize, got: usize) -> Result<(), ContractError> {
    if expected != got {
        return Err(ContractError::InputCount { expected, got });
    }
    Ok(())
}

pub(crate) fn rank_err(input: &'static str, expected: &str, shape: &[i64]) -> ContractError {
    ContractError::Rank {
        input,
        expected: expected.to_string(),
        shape: shape.to_vec(),
    }
}

/// Dimension `axis` of `input` is `got`, unknown (-1) or negative.
pub(crate) fn unknown_dim(input: &'static str, axis: usize, got: i64) -> ContractError {
    ContractError::Dim {
        input,
        axis,
        got,
        expected: 0,
        why: "dimensions must be known and non-negative",
    }
}

/// Every dimension of `shape` known and non-negative.
pub(crate) fn check_known_dims(input: &'static str, shape: &[i64]) -> Result<(), ContractError> {
    match shape.iter().position(|&v| v < 0) {
        Some(axis) => Err(unknown_dim(input, axis, shape[axis])),
        None => Ok(()),
    }
}

/// Dimension `axis` of `shape` (which has it) is `expected`.
pub(crate) fn expect_dim(
    input: &'static str,
    shape: &[i64],
    axis: usize,
    expected: i64,
    why: &'static str,
) -> Result<(), ContractError> {
    if shape[axis] != expected {
        return Err(ContractError::Dim {
            input,
            axis,
            got: shape[axis],
            expected,
            why,
        });
    }
    Ok(())
}

/// `shape` is `want`: its rank (else a rank error saying `rank_text`), then each dimension.
pub(crate) fn expect_shape(
    input: &'static str,
    shape: &[i64],
    want: &[i64],
    rank_text: &str,
    why: &'static str,
) -> Result<(), ContractError> {
    if shape.len() != want.len() {
        return Err(rank_err(input, rank_text, shape));
    }
    for (axis, &expected) in want.iter().enumerate() {
        expect_dim(input, shape, axis, expected, why)?;
    }
    Ok(())
}

/// An input role of either op, as the dtype rule sees it.
pub(crate) trait PackedRole: Copy {
    fn role_name(self) -> &'static str;
    /// Carries the activation dtype; the others are always fp32.
    fn carries_activation(self) -> bool;
}

/// The dtype rule of both ops: activations share the first input's dtype, the others are
/// fp32. Returns the activation dtype.
pub(crate) fn check_packed_dtypes<R: PackedRole>(
    roles: &[R],
    dtypes: &[DType],
) -> Result<DType, ContractError> {
    check_input_count(roles.len(), dtypes.len())?;
    let act = dtypes[0];
    for (role, &dt) in roles.iter().zip(dtypes) {
        let want = if role.carries_activation() {
            act
        } else {
            DType::F32
        };
        if dt != want {
            return Err(ContractError::DType {
                input: role.role_name(),
                got: dt.name().to_string(),
                expected: want.name().to_string(),
            });
        }
    }
    Ok(act)
}

/// `data` of `input` has `expected` elements.
pub(crate) fn check_len(
    input: &'static str,
    data: &[f32],
    expected: usize,
) -> Result<(), ContractError> {
    if data.len() != expected {
        return Err(ContractError::DataLen {
            input,
            got: data.len(),
            expected,
        });
    }
    Ok(())
}

/// An optional input is given exactly when its flag says so, with `expected` elements.
pub(crate) fn check_opt<'a>(
    flag_name: &'static str,
    flag: bool,
    input: &'static str,
    data: Option<&'a [f32]>,
    expected: usize,
) -> Result<Option<&'a [f32]>, ContractError> {
    match (flag, data) {
        (true, Some(v)) => check_len(input, v, expected).map(|_| Some(v)),
        (false, None) => Ok(None),
        (true, None) => Err(ContractError::Attribute {
            name: flag_name.to_string(),
            reason: format!("is 1 but no `{input}` data was given"),
        }),
        (false, Some(_)) => Err(ContractError::Attribute {
            name: flag_name.to_string(),
            reason: format!("is 0 but `{input}` data was given"),
        }),
    }
}
