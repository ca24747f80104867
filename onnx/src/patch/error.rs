//! Errors of the patcher: each names the node (by name and op type) where the proof failed.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PatchError {
    #[error("the model has no graph")]
    NoGraph,
    #[error("not a Mamba model: no selective-scan recurrence found ({detail})")]
    NotMamba { detail: String },
    #[error("not supported yet: {what} (node '{node}', {op_type})")]
    Unsupported {
        what: String,
        node: String,
        op_type: String,
    },
    #[error("cannot prove node '{node}' ({op_type}) is part of a selective scan: {reason}")]
    Unprovable {
        node: String,
        op_type: String,
        reason: String,
    },
    #[error("initializer '{name}': {reason}")]
    Tensor { name: String, reason: String },
    #[error("graph is not a DAG: node '{node}' ({op_type}) takes an input nobody produces before it: '{value}'")]
    Cycle {
        node: String,
        op_type: String,
        value: String,
    },
    #[error("the rewrite did not reach a fixed point after {0} passes")]
    NoFixedPoint(usize),
}
