//! The plugin's behaviour behind every `IPluginV3` / `IPluginV2DynamicExt` method and creator the
//! shim forwards, for both ops (`S6Scan`, `S6ScanHeads`; what differs between them is in
//! [`super::op`]): both interfaces and both ops share every decision made here. Each bridge entry
//! catches panics ([`guard`]) so that none crosses into C++.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::blob;
use super::error::PluginError;
use super::ffi::bridge::{DimRef, DynDesc, OpCode, TensorDesc};
pub use super::fields::FieldSet;
use super::op::{Op, OpAttrs};
use crate::contract::{DType, OutputRole};

/// TensorRT `DataType` values (stable across 8.x–11.x).
pub mod trt_dtype {
    pub const FLOAT: i32 = 0;
    pub const HALF: i32 = 1;
    pub const BF16: i32 = 7;
}
/// TensorRT `TensorFormat::kLINEAR`.
pub const FORMAT_LINEAR: i32 = 0;

pub fn dtype_from_trt(code: i32) -> Option<DType> {
    match code {
        trt_dtype::FLOAT => Some(DType::F32),
        trt_dtype::HALF => Some(DType::F16),
        trt_dtype::BF16 => Some(DType::BF16),
        _ => None,
    }
}

pub fn dtype_to_trt(dt: DType) -> i32 {
    match dt {
        DType::F32 => trt_dtype::FLOAT,
        DType::F16 => trt_dtype::HALF,
        DType::BF16 => trt_dtype::BF16,
    }
}

/// Runs one bridge entry, turning a panic into an error (cxx would abort on an unwinding panic).
fn guard<T>(
    entry: &'static str,
    f: impl FnOnce() -> Result<T, PluginError>,
) -> Result<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".into());
            Err(PluginError::Panic { entry, message })
        }
    }
}

/// For entries that cannot report failure: a panic yields `fallback`.
fn guard_or<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// `op`'s plugin name (creators' and plugins' `getPluginName`).
pub fn op_name(op: OpCode) -> Result<&'static str, PluginError> {
    Ok(Op::try_from(op)?.name())
}

/// `op`'s plugin version.
pub fn op_version(op: OpCode) -> Result<&'static str, PluginError> {
    Ok(Op::try_from(op)?.version())
}

/// `op`'s plugin field names, in `getFieldNames()` order (none for an unknown op).
pub fn field_names(op: OpCode) -> Vec<String> {
    guard_or(Vec::new(), || {
        Op::try_from(op)
            .map(|op| op.field_names().iter().map(|s| s.to_string()).collect())
            .unwrap_or_default()
    })
}

pub fn new_field_set() -> Box<FieldSet> {
    Box::default()
}

impl FieldSet {
    /// Bridge entry: see [`FieldSet::add_raw`].
    ///
    /// # Safety
    /// As [`FieldSet::add_raw`].
    pub unsafe fn add_field(
        &mut self,
        name: &[u8],
        ftype: i32,
        length: i32,
        data: *const u8,
    ) -> Result<(), PluginError> {
        // SAFETY: forwarded contract of the caller.
        guard("createPlugin", || unsafe {
            self.add_raw(name, ftype, length, data)
        })
    }

    /// The plugin of `op` these fields describe.
    pub fn build(&self, op: OpCode) -> Result<Box<PluginCore>, PluginError> {
        guard("createPlugin", || {
            Ok(Box::new(PluginCore::new(self.attrs(Op::try_from(op)?)?)))
        })
    }
}

pub fn core_from_blob(op: OpCode, blob: &[u8]) -> Result<Box<PluginCore>, PluginError> {
    guard("deserializePlugin", || {
        Ok(Box::new(PluginCore::new(blob::decode(
            Op::try_from(op)?,
            blob,
        )?)))
    })
}

/// One plugin instance: its op and attributes and, once configured, the activation dtype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginCore {
    attrs: OpAttrs,
    dtype: Option<DType>,
}

fn shape(d: &TensorDesc, tensor: &str) -> Result<Vec<i64>, PluginError> {
    dims_of(d.nb_dims, &d.dims, tensor)
}

fn dims_of(nb: i32, dims: &[i64; 8], tensor: &str) -> Result<Vec<i64>, PluginError> {
    if !(0..=8).contains(&nb) {
        return Err(PluginError::Tensor {
            tensor: tensor.into(),
            reason: format!("rank {nb} out of range"),
        });
    }
    Ok(dims[..nb as usize].to_vec())
}

impl PluginCore {
    pub fn new(attrs: impl Into<OpAttrs>) -> Self {
        Self {
            attrs: attrs.into(),
            dtype: None,
        }
    }

    pub fn attrs(&self) -> &OpAttrs {
        &self.attrs
    }

    fn input_name(&self, i: usize) -> String {
        self.attrs
            .inputs()
            .get(i)
            .map(|r| r.name.to_string())
            .unwrap_or_else(|| format!("input {i}"))
    }

    /// Name of the activation input at position 0 (`u`, `x`), for messages.
    fn first_input(&self) -> String {
        self.input_name(0)
    }

    fn check_counts(&self, nb_in: usize, nb_out: usize) -> Result<(), PluginError> {
        if nb_in != self.attrs.num_inputs() {
            return Err(PluginError::Count {
                what: "inputs for these attributes",
                expected: self.attrs.num_inputs(),
                got: nb_in,
            });
        }
        if nb_out != self.attrs.num_outputs() {
            return Err(PluginError::Count {
                what: "outputs for these attributes",
                expected: self.attrs.num_outputs(),
                got: nb_out,
            });
        }
        Ok(())
    }

    fn act_dtype(&self, code: i32, tensor: &str) -> Result<DType, PluginError> {
        dtype_from_trt(code).ok_or_else(|| PluginError::DataType {
            tensor: tensor.into(),
            code,
        })
    }

    fn output_role(&self, output: i32) -> Result<OutputRole, PluginError> {
        usize::try_from(output)
            .ok()
            .and_then(|o| self.attrs.outputs().get(o).copied())
            .ok_or_else(|| PluginError::Tensor {
                tensor: format!("output {output}"),
                reason: format!("this plugin has {} outputs", self.attrs.num_outputs()),
            })
    }

    // ---- bridge entries -------------------------------------------------------------------

    pub fn op(&self) -> OpCode {
        self.attrs.op().into()
    }

    pub fn blob_len(&self) -> usize {
        guard_or(0, || blob::encode(&self.attrs).len())
    }

    pub fn write_blob(&self, out: &mut [u8]) -> Result<(), PluginError> {
        guard("serialize", || {
            let b = blob::encode(&self.attrs);
            if b.len() != out.len() {
                return Err(PluginError::Blob {
                    reason: format!(
                        "serialize buffer is {} bytes, blob is {}",
                        out.len(),
                        b.len()
                    ),
                });
            }
            out.copy_from_slice(&b);
            Ok(())
        })
    }

    pub fn clone_core(&self) -> Box<PluginCore> {
        Box::new(self.clone())
    }

    /// The attributes, for log lines and the harnesses' comparisons.
    pub fn describe(&self) -> String {
        guard_or(String::new(), || {
            self.attrs
                .op()
                .field_names()
                .iter()
                .zip(self.attrs.values())
                .map(|(n, v)| format!("{n}={}", v as i32))
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    /// What an IPluginV3 engine stores: the fields, as the ONNX parser would pass them.
    pub fn field_values(&self) -> Vec<i32> {
        guard_or(Vec::new(), || {
            self.attrs.values().iter().map(|&v| v as i32).collect()
        })
    }

    pub fn num_inputs(&self) -> i32 {
        self.attrs.num_inputs() as i32
    }

    pub fn num_outputs(&self) -> i32 {
        self.attrs.num_outputs() as i32
    }

    /// Which input dimension each dimension of output `output` copies ([`OpAttrs::output_dims`]).
    pub fn output_dims(
        &self,
        output: i32,
        input_ranks: &[i32],
    ) -> Result<Vec<DimRef>, PluginError> {
        guard("getOutputDimensions", || {
            self.check_counts(input_ranks.len(), self.attrs.num_outputs())?;
            let role = self.output_role(output)?;
            self.attrs.output_dims(role, input_ranks)
        })
    }

    pub fn output_dtype(&self, output: i32, input_types: &[i32]) -> Result<i32, PluginError> {
        guard("getOutputDataType", || {
            if input_types.len() != self.attrs.num_inputs() {
                return Err(PluginError::Count {
                    what: "inputs for these attributes",
                    expected: self.attrs.num_inputs(),
                    got: input_types.len(),
                });
            }
            match self.output_role(output)? {
                OutputRole::Y => {
                    let dt = self.act_dtype(input_types[0], &self.first_input())?;
                    Ok(dtype_to_trt(dt))
                }
                OutputRole::LastState => Ok(trt_dtype::FLOAT),
            }
        })
    }

    /// Linear format only; the activations (the op's activation inputs and y) share one of
    /// f32/f16/bf16; the other inputs and last_state are f32.
    pub fn supports_format(
        &self,
        pos: i32,
        in_out: &[TensorDesc],
        nb_inputs: i32,
        nb_outputs: i32,
    ) -> Result<bool, PluginError> {
        guard("supportsFormatCombination", || {
            self.check_counts(nb_inputs.max(0) as usize, nb_outputs.max(0) as usize)?;
            let total = (nb_inputs + nb_outputs) as usize;
            if in_out.len() != total || pos < 0 || pos as usize >= total {
                return Err(PluginError::Tensor {
                    tensor: format!("position {pos}"),
                    reason: format!("out of range for {total} tensors"),
                });
            }
            let pos = pos as usize;
            let d = &in_out[pos];
            if d.format != FORMAT_LINEAR {
                return Ok(false);
            }
            let activation = if pos < nb_inputs as usize {
                self.attrs.inputs()[pos].activation
            } else {
                self.attrs.outputs()[pos - nb_inputs as usize] == OutputRole::Y
            };
            let ok = if !activation {
                d.dtype == trt_dtype::FLOAT
            } else if pos == 0 {
                dtype_from_trt(d.dtype).is_some()
            } else {
                // TensorRT has already fixed positions < pos; the first activation is position 0.
                d.dtype == in_out[0].dtype && dtype_from_trt(d.dtype).is_some()
            };
            Ok(ok)
        })
    }

    pub fn configure(&mut self, ins: &[DynDesc], outs: &[DynDesc]) -> Result<(), PluginError> {
        guard("configurePlugin", || {
            self.check_counts(ins.len(), outs.len())?;
            let mut dtypes = Vec::with_capacity(ins.len());
            for (i, d) in ins.iter().enumerate() {
                let name = self.input_name(i);
                if d.desc.format != FORMAT_LINEAR {
                    return Err(PluginError::Tensor {
                        tensor: name,
                        reason: format!("format {} is not kLINEAR", d.desc.format),
                    });
                }
                dtypes.push(self.act_dtype(d.desc.dtype, &name)?);
            }
            let act = self.attrs.check_dtypes(&dtypes)?;
            for (o, role) in outs.iter().zip(self.attrs.outputs()) {
                let want = if role == OutputRole::Y {
                    act
                } else {
                    DType::F32
                };
                let got = self.act_dtype(o.desc.dtype, role.name())?;
                if got != want {
                    return Err(PluginError::OutputType {
                        tensor: role.name(),
                        expected: want,
                        got,
                    });
                }
            }
            // Shapes: check the profile's extremes when they are known (TensorRT may also
            // configure with -1 for dimensions it does not know yet).
            for pick in [0usize, 1] {
                let mut shapes = Vec::with_capacity(ins.len());
                for (i, d) in ins.iter().enumerate() {
                    let dims = if pick == 0 { &d.min } else { &d.max };
                    shapes.push(dims_of(d.desc.nb_dims, dims, &self.input_name(i))?);
                }
                if shapes.iter().all(|s| s.iter().all(|&x| x >= 0)) {
                    let refs: Vec<&[i64]> = shapes.iter().map(|s| s.as_slice()).collect();
                    self.attrs.check_shapes(&refs)?;
                }
            }
            self.dtype = Some(act);
            Ok(())
        })
    }

    /// The input shapes as TensorRT described them, and the activation dtype.
    fn shapes_and_dtype(&self, ins: &[TensorDesc]) -> Result<(Vec<Vec<i64>>, DType), PluginError> {
        let mut shapes = Vec::with_capacity(ins.len());
        for (i, d) in ins.iter().enumerate() {
            shapes.push(shape(d, &self.input_name(i))?);
        }
        let dtype = self.act_dtype(ins[0].dtype, &self.first_input())?;
        Ok((shapes, dtype))
    }

    pub fn workspace_size(
        &self,
        ins: &[TensorDesc],
        outs: &[TensorDesc],
    ) -> Result<usize, PluginError> {
        guard("getWorkspaceSize", || {
            self.check_counts(ins.len(), outs.len())?;
            let (shapes, dtype) = self.shapes_and_dtype(ins)?;
            let refs: Vec<&[i64]> = shapes.iter().map(|s| s.as_slice()).collect();
            Ok(self.attrs.workspace_size(&refs, dtype)?)
        })
    }

    /// # Safety
    /// See the bridge declaration.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn enqueue(
        &self,
        ins: &[TensorDesc],
        outs: &[TensorDesc],
        in_ptrs: &[usize],
        out_ptrs: &[usize],
        workspace: usize,
        stream: usize,
    ) -> Result<(), PluginError> {
        guard("enqueue", || {
            self.check_counts(ins.len(), outs.len())?;
            self.check_counts(in_ptrs.len(), out_ptrs.len())?;
            let (shapes, dtype) = self.shapes_and_dtype(ins)?;
            let refs: Vec<&[i64]> = shapes.iter().map(|s| s.as_slice()).collect();
            // The contract's checks first: the pointers below are only trusted for shapes it
            // accepts.
            self.attrs.check_shapes(&refs)?;
            // TensorRT passes null for empty tensors only; anything else is a caller bug that
            // must not reach a kernel.
            let names = self
                .attrs
                .inputs()
                .into_iter()
                .map(|i| i.name)
                .chain(self.attrs.outputs().into_iter().map(|r| r.name()));
            let descs = ins.iter().chain(outs);
            let ptrs = in_ptrs.iter().chain(out_ptrs);
            for ((name, d), &ptr) in names.zip(descs).zip(ptrs) {
                let empty = shape(d, name)?.contains(&0);
                if ptr == 0 && !empty {
                    return Err(PluginError::Tensor {
                        tensor: format!("`{name}`"),
                        reason: "device pointer is null".into(),
                    });
                }
            }
            // SAFETY: TensorRT hands over device buffers sized for the descriptors we just
            // validated against the contract, and a stream of the current context.
            unsafe {
                self.attrs.launch(
                    &refs,
                    dtype,
                    in_ptrs,
                    out_ptrs,
                    workspace,
                    stream as *mut std::ffi::c_void,
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::S6Attrs;
    use crate::contract_heads::HeadsAttrs;

    fn desc(dims: &[i64], dtype: i32) -> TensorDesc {
        let mut d = [0i64; 8];
        d[..dims.len()].copy_from_slice(dims);
        TensorDesc {
            nb_dims: dims.len() as i32,
            dims: d,
            dtype,
            format: FORMAT_LINEAR,
        }
    }

    fn dyn_desc(dims: &[i64], dtype: i32) -> DynDesc {
        let t = desc(dims, dtype);
        DynDesc {
            desc: t,
            min: t.dims,
            max: t.dims,
        }
    }

    fn full() -> PluginCore {
        PluginCore::new(S6Attrs {
            has_d: true,
            has_z: true,
            has_delta_bias: true,
            has_initial_state: true,
            has_last_state: true,
            channels_last: true,
            delta_softplus: true,
            bc_channels_last: false,
        })
    }

    #[test]
    fn output_dims_map_to_input_dims() {
        let c = full();
        let ranks = [3, 3, 2, 3, 3, 1, 3, 1, 3];
        let y = c.output_dims(0, &ranks).unwrap();
        assert_eq!(
            y.iter().map(|r| (r.input, r.axis)).collect::<Vec<_>>(),
            [(0, 0), (0, 1), (0, 2)]
        );
        let s = c.output_dims(1, &ranks).unwrap();
        // channels_last: u is (B, L, D); last_state is (B, D, N), N from A (input 2).
        assert_eq!(
            s.iter().map(|r| (r.input, r.axis)).collect::<Vec<_>>(),
            [(0, 0), (0, 2), (2, 1)]
        );
        assert!(c.output_dims(2, &ranks).is_err());
        assert!(c.output_dims(0, &ranks[..5]).is_err());
    }

    #[test]
    fn formats_follow_the_dtype_rules() {
        use trt_dtype::*;
        let c = full();
        // u, delta, A, B, C, D, z, delta_bias, initial_state | y, last_state
        let types = [
            HALF, HALF, FLOAT, HALF, HALF, FLOAT, HALF, FLOAT, FLOAT, HALF, FLOAT,
        ];
        let io: Vec<TensorDesc> = types.iter().map(|&t| desc(&[1, 1, 1], t)).collect();
        for pos in 0..11 {
            assert!(c.supports_format(pos, &io, 9, 2).unwrap(), "pos {pos}");
        }
        let mut bad = io.clone();
        bad[2].dtype = HALF; // A must be fp32
        assert!(!c.supports_format(2, &bad, 9, 2).unwrap());
        let mut bad = io.clone();
        bad[6].dtype = BF16; // z must match u
        assert!(!c.supports_format(6, &bad, 9, 2).unwrap());
        let mut bad = io.clone();
        bad[9].format = 1;
        assert!(!c.supports_format(9, &bad, 9, 2).unwrap());
        let mut bad = io.clone();
        bad[0].dtype = 3; // kINT32
        assert!(!c.supports_format(0, &bad, 9, 2).unwrap());
        assert!(c.supports_format(11, &io, 9, 2).is_err());
        assert!(c.supports_format(0, &io[..10], 8, 2).is_err());
    }

    #[test]
    fn output_types() {
        let c = full();
        let t = [7, 7, 0, 7, 7, 0, 7, 0, 0];
        assert_eq!(c.output_dtype(0, &t).unwrap(), trt_dtype::BF16);
        assert_eq!(c.output_dtype(1, &t).unwrap(), trt_dtype::FLOAT);
        assert!(c.output_dtype(0, &[3; 9]).is_err());
    }

    #[test]
    fn configure_validates_shapes_and_types() {
        use trt_dtype::*;
        let mut c = PluginCore::new(S6Attrs {
            has_last_state: true,
            ..Default::default()
        });
        let ins = [
            dyn_desc(&[2, 8, 5], HALF),
            dyn_desc(&[2, 8, 5], HALF),
            dyn_desc(&[8, 4], FLOAT),
            dyn_desc(&[2, 4, 5], HALF),
            dyn_desc(&[2, 4, 5], HALF),
        ];
        let outs = [dyn_desc(&[2, 8, 5], HALF), dyn_desc(&[2, 8, 4], FLOAT)];
        c.configure(&ins, &outs).unwrap();
        let mut bad = ins;
        bad[2] = dyn_desc(&[8, 4], HALF);
        let e = c.configure(&bad, &outs).unwrap_err().to_string();
        assert!(e.contains("`A`"), "{e}");
        let mut bad = ins;
        bad[3] = dyn_desc(&[2, 5, 5], HALF);
        let e = c.configure(&bad, &outs).unwrap_err().to_string();
        assert!(e.contains("`B`"), "{e}");
        let bad_out = [dyn_desc(&[2, 8, 5], FLOAT), outs[1]];
        assert!(c.configure(&ins, &bad_out).is_err());
        assert!(c.configure(&ins[..4], &outs).is_err());
        // Unknown dims (-1) are not checked.
        let mut dynamic = ins;
        dynamic[0].min[2] = -1;
        c.configure(&dynamic, &outs).unwrap();
    }

    #[test]
    fn blob_and_clone_round_trip() {
        let c = full();
        let mut buf = vec![0u8; c.blob_len()];
        c.write_blob(&mut buf).unwrap();
        let d = core_from_blob(OpCode::Scan, &buf).unwrap();
        assert_eq!(*d, c);
        assert_eq!(*c.clone_core(), c);
        assert!(c.write_blob(&mut [0u8; 3]).is_err());
        assert!(c.describe().contains("has_z=1"));
    }

    #[test]
    fn enqueue_refuses_null_pointers_before_any_launch() {
        let c = PluginCore::new(S6Attrs::default());
        let f = trt_dtype::FLOAT;
        let ins = [
            desc(&[1, 4, 3], f),
            desc(&[1, 4, 3], f),
            desc(&[4, 2], f),
            desc(&[1, 2, 3], f),
            desc(&[1, 2, 3], f),
        ];
        let outs = [desc(&[1, 4, 3], f)];
        // SAFETY: refused before any pointer is used.
        let e = unsafe { c.enqueue(&ins, &outs, &[8, 0, 8, 8, 8], &[8], 0, 0) }
            .unwrap_err()
            .to_string();
        assert!(e.contains("`delta`") && e.contains("null"), "{e}");
        // SAFETY: as above.
        let e = unsafe { c.enqueue(&ins, &outs, &[8, 8, 8, 8, 8], &[0], 0, 0) }
            .unwrap_err()
            .to_string();
        assert!(e.contains("`y`"), "{e}");
    }

    /// The IPluginV3 engine path: `getFieldsToSerialize` → `createPlugin(kRUNTIME)` gives the
    /// same plugin for every attribute combination.
    #[test]
    fn v3_fields_round_trip_every_combination() {
        for bits in 0u32..256 {
            let mut a = S6Attrs::default();
            for (i, n) in S6Attrs::FIELD_NAMES.iter().enumerate() {
                a.set(n, ((bits >> i) & 1) as i64).unwrap();
            }
            let c = PluginCore::new(a);
            let values = c.field_values();
            assert_eq!(values.len(), 8);
            let mut fs = FieldSet::default();
            for (n, &v) in S6Attrs::FIELD_NAMES.iter().zip(&values) {
                // SAFETY: a pointer to a live i32, length 1.
                unsafe {
                    fs.add_raw(
                        n.as_bytes(),
                        super::super::fields::field_type::INT32,
                        1,
                        &v as *const i32 as *const u8,
                    )
                }
                .unwrap();
            }
            assert_eq!(*fs.build(OpCode::Scan).unwrap(), c, "bits {bits:08b}");
        }
    }

    /// Every single-field mutation of a stored field list (type, length, value, null data) is
    /// accepted exactly when it still means a 0/1 integer, and none panics.
    #[test]
    fn v3_fields_mutations_are_refused_or_equal() {
        use super::super::fields::field_type::*;
        let base: Vec<i64> = vec![1, 1, 1, 0, 0, 1, 0, 0];
        let types: Vec<i32> = (-1..=12).collect();
        let lengths = [-1i32, 0, 1, 2];
        let values = [i64::MIN, -1, 0, 1, 2, 256, i64::MAX];
        let mut cases = 0;
        for pos in 0..8 {
            for &ftype in &types {
                for &length in &lengths {
                    for &value in &values {
                        for null in [false, true] {
                            let mut fs = FieldSet::default();
                            let data = [value; 2];
                            for (i, n) in S6Attrs::FIELD_NAMES.iter().enumerate() {
                                let (t, len, p) = if i == pos {
                                    (
                                        ftype,
                                        length,
                                        if null {
                                            std::ptr::null()
                                        } else {
                                            data.as_ptr() as *const u8
                                        },
                                    )
                                } else {
                                    (INT64, 1, &base[i] as *const i64 as *const u8)
                                };
                                // SAFETY: p is null or points to two live i64 values, which
                                // covers every integer width at lengths up to 2.
                                unsafe { fs.add_raw(n.as_bytes(), t, len, p) }.unwrap();
                            }
                            cases += 1;
                            let got = fs.build(OpCode::Scan);
                            // What an integer field of this width reads from `value`'s bytes.
                            let read = match ftype {
                                INT8 => Some(value as i8 as i64),
                                INT16 => Some(value as i16 as i64),
                                INT32 => Some(value as i32 as i64),
                                INT64 => Some(value),
                                _ => None,
                            };
                            let ok = !null && length == 1 && matches!(read, Some(0 | 1));
                            assert_eq!(
                                got.is_ok(),
                                ok,
                                "pos {pos} type {ftype} len {length} value {value} null {null}"
                            );
                            if let Ok(core) = got {
                                let mut want = base.clone();
                                want[pos] = read.unwrap();
                                let want: Vec<i32> = want.iter().map(|&x| x as i32).collect();
                                assert_eq!(core.field_values(), want);
                            } else {
                                let e = got.unwrap_err().to_string();
                                assert!(e.contains(S6Attrs::FIELD_NAMES[pos]), "{e}");
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 8 * 14 * 4 * 7 * 2);
    }

    #[test]
    fn panics_become_errors() {
        let r: Result<(), _> = guard("test", || panic!("boom"));
        let e = r.unwrap_err().to_string();
        assert!(e.contains("boom") && e.contains("test"), "{e}");
    }

    fn heads_full() -> PluginCore {
        PluginCore::new(HeadsAttrs {
            dt_softplus: true,
            has_d: true,
            has_z: true,
            has_dt_bias: true,
            has_dt_limit: true,
            has_initial_state: true,
            has_last_state: true,
        })
    }

    #[test]
    fn heads_counts_dims_and_types() {
        use trt_dtype::*;
        let c = heads_full();
        assert_eq!((c.num_inputs(), c.num_outputs()), (10, 2));
        assert_eq!(c.op(), OpCode::Heads);
        // x, dt, A, B, C, D, z, dt_bias, dt_limit, initial_state
        let ranks = [4, 3, 1, 4, 4, 1, 4, 1, 1, 4];
        let s = c.output_dims(1, &ranks).unwrap();
        assert_eq!(
            s.iter().map(|r| (r.input, r.axis)).collect::<Vec<_>>(),
            [(0, 0), (0, 2), (0, 3), (3, 3)]
        );
        assert!(c.output_dims(2, &ranks).is_err());
        assert!(c.output_dims(-1, &ranks).is_err());
        let t = [
            HALF, HALF, FLOAT, HALF, HALF, FLOAT, HALF, FLOAT, FLOAT, FLOAT,
        ];
        assert_eq!(c.output_dtype(0, &t).unwrap(), HALF);
        assert_eq!(c.output_dtype(1, &t).unwrap(), FLOAT);
        let io: Vec<TensorDesc> = t
            .iter()
            .chain(&[HALF, FLOAT])
            .map(|&t| desc(&[1, 1, 1, 1], t))
            .collect();
        for pos in 0..12 {
            assert!(c.supports_format(pos, &io, 10, 2).unwrap(), "pos {pos}");
        }
        let mut bad = io.clone();
        bad[8].dtype = HALF; // dt_limit is fp32
        assert!(!c.supports_format(8, &bad, 10, 2).unwrap());
        let mut bad = io.clone();
        bad[1].dtype = BF16; // dt shares x's dtype
        assert!(!c.supports_format(1, &bad, 10, 2).unwrap());
        assert!(c.describe().starts_with("dt_softplus=1 has_D=1"));
        assert_eq!(c.field_values(), vec![1; 7]);
    }

    #[test]
    fn heads_configure_checks_the_heads_contract() {
        use trt_dtype::*;
        let mut c = PluginCore::new(HeadsAttrs {
            has_last_state: true,
            ..Default::default()
        });
        // batch 2, L 8, H 4, P 3, G 2, N 5
        let ins = [
            dyn_desc(&[2, 8, 4, 3], FLOAT),
            dyn_desc(&[2, 8, 4], FLOAT),
            dyn_desc(&[4], FLOAT),
            dyn_desc(&[2, 8, 2, 5], FLOAT),
            dyn_desc(&[2, 8, 2, 5], FLOAT),
        ];
        let outs = [
            dyn_desc(&[2, 8, 4, 3], FLOAT),
            dyn_desc(&[2, 4, 3, 5], FLOAT),
        ];
        c.configure(&ins, &outs).unwrap();
        let mut bad = ins;
        bad[3] = dyn_desc(&[2, 8, 3, 5], FLOAT); // 3 groups do not divide 4 heads
        let e = c.configure(&bad, &outs).unwrap_err().to_string();
        assert!(e.contains("`B`"), "{e}");
        let mut bad = ins;
        bad[2] = dyn_desc(&[4, 5], FLOAT); // a per-channel (Mamba1) A
        let e = c.configure(&bad, &outs).unwrap_err().to_string();
        assert!(e.contains("`A`"), "{e}");
        let bad_out = [outs[0], dyn_desc(&[2, 4, 3, 5], HALF)];
        assert!(c.configure(&ins, &bad_out).is_err());
        let f = |d: &DynDesc| d.desc;
        let plain: Vec<TensorDesc> = ins.iter().map(f).collect();
        let plain_out: Vec<TensorDesc> = outs.iter().map(f).collect();
        assert_eq!(
            c.workspace_size(&plain, &plain_out).unwrap(),
            crate::cuda::heads_workspace_size(
                &HeadsAttrs {
                    has_last_state: true,
                    ..Default::default()
                },
                &crate::contract_heads::HeadsDims {
                    batch: 2,
                    seqlen: 8,
                    heads: 4,
                    headdim: 3,
                    dstate: 5,
                    groups: 2
                },
                DType::F32
            )
        );
        // SAFETY: refused (null `y`) before any pointer is used.
        let e = unsafe { c.enqueue(&plain, &plain_out, &[8; 5], &[0, 8], 0, 0) }
            .unwrap_err()
            .to_string();
        assert!(e.contains("`y`") && e.contains("null"), "{e}");
    }

    #[test]
    fn heads_blob_and_fields_round_trip_every_combination() {
        use super::super::fields::field_type::INT32;
        for bits in 0u32..128 {
            let pairs: Vec<(&str, i64)> = HeadsAttrs::FIELD_NAMES
                .iter()
                .enumerate()
                .map(|(i, n)| (*n, ((bits >> i) & 1) as i64))
                .collect();
            let c = PluginCore::new(OpAttrs::from_fields(Op::Heads, &pairs).unwrap());
            let mut buf = vec![0u8; c.blob_len()];
            c.write_blob(&mut buf).unwrap();
            assert_eq!(*core_from_blob(OpCode::Heads, &buf).unwrap(), c);
            // A heads blob is no S6Scan blob.
            assert!(core_from_blob(OpCode::Scan, &buf).is_err());
            let mut fs = FieldSet::default();
            for (n, v) in HeadsAttrs::FIELD_NAMES.iter().zip(c.field_values()) {
                fs.add_i64(n, INT32, v as i64);
            }
            assert_eq!(*fs.build(OpCode::Heads).unwrap(), c, "bits {bits:07b}");
            assert!(fs.build(OpCode::Scan).is_err());
        }
        assert_eq!(field_names(OpCode::Heads), HeadsAttrs::FIELD_NAMES.to_vec());
        assert_eq!(op_name(OpCode::Heads).unwrap(), "S6ScanHeads");
        assert!(op_name(OpCode { repr: 9 }).is_err());
        assert!(field_names(OpCode { repr: 9 }).is_empty());
    }
}
