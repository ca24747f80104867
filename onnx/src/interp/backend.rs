//! Execution backends: a backend may take over any node (e.g. S6Scan and MatMul on a GPU);
//! what it declines runs on the CPU ops of the registry.

use super::error::InterpError;
use super::tensor::Tensor;
use onnx_protobuf::NodeProto;

/// A device that can run some nodes. The session offers each node to its backends in order
/// before running it on the CPU.
pub trait Backend: Send + Sync {
    /// Short name for logs and errors ("wgpu", ...).
    fn name(&self) -> &str;

    /// Runs `node` on `inputs` (one entry per node input, `None` for an omitted optional
    /// input). `Ok(None)` = not handled here, run it on the CPU instead. On `Ok(Some(outs))`,
    /// `outs` holds one tensor per node output, in order.
    fn try_run(
        &self,
        node: &NodeProto,
        inputs: &[Option<&Tensor>],
    ) -> Result<Option<Vec<Tensor>>, InterpError>;
}
