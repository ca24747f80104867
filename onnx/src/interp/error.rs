//! Errors of the interpreter, naming the node, op, input or file concerned.

use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum InterpError {
    /// No implementation of `op_type` (in `domain`) in the registry or in any backend.
    #[error("node '{node}': unsupported op '{op_type}' (domain '{domain}')")]
    UnsupportedOp {
        node: String,
        op_type: String,
        domain: String,
    },
    /// An op was given inputs or attributes it cannot work with.
    #[error("node '{node}' ({op_type}): {reason}")]
    Op {
        node: String,
        op_type: String,
        reason: String,
    },
    /// A tensor (initializer, Constant, input) could not be decoded.
    #[error("tensor '{name}': {reason}")]
    Tensor { name: String, reason: String },
    /// Reading external tensor data failed.
    #[error("tensor '{name}': external data {path}: {reason}")]
    ExternalData {
        name: String,
        path: PathBuf,
        reason: String,
    },
    /// The graph itself is malformed (missing value, cycle, missing input).
    #[error("graph: {reason}")]
    Graph { reason: String },
    /// A graph input was not supplied or does not match its declaration.
    #[error("input '{name}': {reason}")]
    Input { name: String, reason: String },
    /// A backend failed while running a node it accepted.
    #[error("backend '{backend}', node '{node}': {reason}")]
    Backend {
        backend: String,
        node: String,
        reason: String,
    },
}

impl InterpError {
    /// Error about a value inside an op that has not yet been tagged with its node; the
    /// session fills the node in (see [`InterpError::in_node`]).
    pub fn op(reason: impl Into<String>) -> Self {
        InterpError::Op {
            node: String::new(),
            op_type: String::new(),
            reason: reason.into(),
        }
    }

    /// Fills in the node name and op type of an [`InterpError::Op`] raised by op code.
    pub fn in_node(self, node: &str, op_type: &str) -> Self {
        match self {
            InterpError::Op {
                node: n,
                op_type: o,
                reason,
            } if n.is_empty() => InterpError::Op {
                node: node.to_string(),
                op_type: if o.is_empty() { op_type.to_string() } else { o },
                reason,
            },
            other => other,
        }
    }
}
