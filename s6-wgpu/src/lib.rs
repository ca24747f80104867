//! wgpu backend for the s6plugin ONNX interpreter.
