//! Execution backends: a backend may take over any node (e.g. S6Scan and MatMul on a GPU);
//! what it declines runs on the CPU ops of the registry.

use super::error::InterpError;
use super::tensor::Tensor;
use onnx_protobuf::NodeProto;

/// Names a constant node input (an initializer) of one session. The session guarantees that
/// one key stands for one unchanging tensor for as long as that session lives, so a backend may
/// keep a device copy under it. The name alone is not enough (two sessions sharing a backend may
/// both have an initializer "A"), nor is the tensor's address (activations are freed and their
/// memory reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConstKey<'a> {
    /// Unique per [`Session`](super::Session) within the process.
    pub session: u64,
    pub name: &'a str,
}

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

    /// [`try_run`](Backend::try_run) told which inputs are constants: `consts[i]` is
    /// `Some(key)` when input `i` is an initializer of the calling session. The default ignores
    /// it.
    fn try_run_consts(
        &self,
        node: &NodeProto,
        inputs: &[Option<&Tensor>],
        consts: &[Option<ConstKey<'_>>],
    ) -> Result<Option<Vec<Tensor>>, InterpError> {
        let _ = consts;
        self.try_run(node, inputs)
    }

    /// The session `session` is gone: whatever was kept under its [`ConstKey`]s may go.
    fn end_session(&self, session: u64) {
        let _ = session;
    }
}
