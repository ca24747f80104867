//! ONNX graph model, patcher and interpreter.
