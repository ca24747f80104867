//! The cxx bridge between the C++ shim (`cpp_shim/`) and the Rust plugin core.
//!
//! C++ owns only what TensorRT's ABI forces on it (the vtables, `char const*` names, the logger);
//! every decision is made on the Rust side, in [`super::core`].

#[cxx::bridge(namespace = "s6")]
pub(crate) mod bridge {
    /// A `PluginTensorDesc` (TensorRT's `Dims` widened to i64; dtype and format as their enum
    /// values).
    #[derive(Clone, Copy, Debug)]
    struct TensorDesc {
        nb_dims: i32,
        dims: [i64; 8],
        dtype: i32,
        format: i32,
    }

    /// A `DynamicPluginTensorDesc`: the descriptor plus the profile's min/max dims.
    #[derive(Clone, Copy, Debug)]
    struct DynDesc {
        desc: TensorDesc,
        min: [i64; 8],
        max: [i64; 8],
    }

    /// Which op a creator or plugin is for (plugin/trt/op.rs).
    #[derive(Debug)]
    enum OpCode {
        /// `S6Scan` (docs/s6scan.md).
        Scan,
        /// `S6ScanHeads` (docs/s6scan_heads.md).
        Heads,
    }

    /// Output dimension `k` is dimension `axis` of input `input`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct DimRef {
        input: i32,
        axis: i32,
    }

    extern "Rust" {
        type FieldSet;
        type PluginCore;

        /// The op's plugin name and version (from its contract).
        fn op_name(op: OpCode) -> Result<&'static str>;
        fn op_version(op: OpCode) -> Result<&'static str>;
        /// The op's plugin field names, in `getFieldNames()` order.
        fn field_names(op: OpCode) -> Vec<String>;

        fn new_field_set() -> Box<FieldSet>;
        /// Records one `PluginField` as TensorRT passed it.
        ///
        /// # Safety
        /// `data` is null or points to `length` elements of the type `ftype` names.
        unsafe fn add_field(
            self: &mut FieldSet,
            name: &[u8],
            ftype: i32,
            length: i32,
            data: *const u8,
        ) -> Result<()>;
        /// The plugin of `op` the recorded fields describe.
        fn build(self: &FieldSet, op: OpCode) -> Result<Box<PluginCore>>;

        fn core_from_blob(op: OpCode, blob: &[u8]) -> Result<Box<PluginCore>>;
        fn op(self: &PluginCore) -> OpCode;
        fn blob_len(self: &PluginCore) -> usize;
        fn write_blob(self: &PluginCore, out: &mut [u8]) -> Result<()>;
        fn clone_core(self: &PluginCore) -> Box<PluginCore>;
        fn describe(self: &PluginCore) -> String;
        /// The field values in `field_names()` order (V3 `getFieldsToSerialize`).
        fn field_values(self: &PluginCore) -> Vec<i32>;

        fn num_inputs(self: &PluginCore) -> i32;
        fn num_outputs(self: &PluginCore) -> i32;
        fn output_dims(self: &PluginCore, output: i32, input_ranks: &[i32]) -> Result<Vec<DimRef>>;
        fn output_dtype(self: &PluginCore, output: i32, input_types: &[i32]) -> Result<i32>;
        fn supports_format(
            self: &PluginCore,
            pos: i32,
            in_out: &[TensorDesc],
            nb_inputs: i32,
            nb_outputs: i32,
        ) -> Result<bool>;
        fn configure(self: &mut PluginCore, ins: &[DynDesc], outs: &[DynDesc]) -> Result<()>;
        fn workspace_size(
            self: &PluginCore,
            ins: &[TensorDesc],
            outs: &[TensorDesc],
        ) -> Result<usize>;
        /// Launches the op's kernels on TensorRT's stream.
        ///
        /// # Safety
        /// The pointers are TensorRT's device buffers for the tensors `ins`/`outs` describe, and
        /// `stream` a stream of the current CUDA context.
        unsafe fn enqueue(
            self: &PluginCore,
            ins: &[TensorDesc],
            outs: &[TensorDesc],
            in_ptrs: &[usize],
            out_ptrs: &[usize],
            workspace: usize,
            stream: usize,
        ) -> Result<()>;
    }
}

pub(crate) use super::core::{
    core_from_blob, field_names, new_field_set, op_name, op_version, FieldSet, PluginCore,
};
