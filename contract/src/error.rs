//! Errors of the op contract, with the field or input they concern.

use thiserror::Error;

/// A violation of the `S6Scan` op contract (`docs/s6scan.md`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContractError {
    // ---- attributes / plugin fields ----
    #[error("attribute `{name}`: {reason}")]
    Attribute { name: String, reason: String },
    #[error("unknown attribute `{name}`")]
    UnknownAttribute { name: String },

    // ---- inputs and outputs ----
    #[error("expected {expected} inputs for these attributes, got {got}")]
    InputCount { expected: usize, got: usize },
    #[error("expected {expected} outputs for these attributes, got {got}")]
    OutputCount { expected: usize, got: usize },
    #[error("input `{input}`: expected rank {expected}, got shape {shape:?}")]
    Rank {
        input: &'static str,
        expected: String,
        shape: Vec<i64>,
    },
    #[error("input `{input}`: dimension {axis} is {got}, expected {expected} ({why})")]
    Dim {
        input: &'static str,
        axis: usize,
        got: i64,
        expected: i64,
        why: &'static str,
    },
    #[error("input `{input}`: groups G = {groups} must divide D = {dim}")]
    Groups {
        input: &'static str,
        groups: i64,
        dim: i64,
    },
    #[error("input `{input}`: dtype {got} not allowed, expected {expected}")]
    DType {
        input: &'static str,
        got: String,
        expected: String,
    },
    #[error("input `{input}`: data has {got} elements, shape needs {expected}")]
    DataLen {
        input: &'static str,
        got: usize,
        expected: usize,
    },
}
