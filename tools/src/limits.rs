//! The `--max-tensor-bytes` flag shared by the CLIs: the cap on any single tensor a model makes
//! us allocate (`s6_onnx::data`), so that a hostile model is an error, not an exhausted machine.

/// Flattened into each CLI's arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct Limits {
    /// Largest single tensor (bytes) a model may make the tool allocate: initializers,
    /// external data, op outputs. Raise it for models with larger weights.
    #[arg(long, value_name = "BYTES", default_value_t = s6_onnx::data::DEFAULT_MAX_TENSOR_BYTES)]
    pub max_tensor_bytes: u64,
}

impl Limits {
    /// Sets the cap for this process.
    pub fn apply(&self) {
        s6_onnx::data::set_max_tensor_bytes(self.max_tensor_bytes);
    }
}
