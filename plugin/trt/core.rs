//! The plugin's behaviour behind every `IPluginV3` / `IPluginV2DynamicExt` method and creator the
//! shim forwards: both interfaces share every decision made here. Each bridge entry catches
//! panics ([`guard`]) so that none crosses into C++.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::blob;
use super::error::PluginError;
use super::ffi::bridge::{DimRef, DynDesc, TensorDesc};
pub use super::fields::FieldSet;
use crate::contract::{self, DType, InputRole, OutputRole, S6Attrs};

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

pub fn field_names() -> Vec<String> {
    guard_or(Vec::new(), || {
        S6Attrs::FIELD_NAMES.iter().map(|s| s.to_string()).collect()
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

    pub fn build(&self) -> Result<Box<PluginCore>, PluginError> {
        guard("createPlugin", || {
            Ok(Box::new(PluginCore::new(self.attrs()?)))
        })
    }
}

pub fn core_from_blob(blob: &[u8]) -> Result<Box<PluginCore>, PluginError> {
    guard("deserializePlugin", || {
        Ok(Box::new(PluginCore::new(blob::decode(blob)?)))
    })
}

/// One `S6Scan` plugin instance: its attributes and, once configured, the activation dtype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginCore {
    attrs: S6Attrs,
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
    pub fn new(attrs: S6Attrs) -> Self {
        Self { attrs, dtype: None }
    }

    pub fn attrs(&self) -> &S6Attrs {
        &self.attrs
    }

    fn input_name(&self, i: usize) -> String {
        self.attrs
            .inputs()
            .get(i)
            .map(|r| r.name().to_string())
            .unwrap_or_else(|| format!("input {i}"))
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

    // ---- bridge entries -------------------------------------------------------------------

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
            S6Attrs::FIELD_NAMES
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

    /// Which input dimension each dimension of output `output` copies (outputs never need
    /// arithmetic on dimensions: y has u's shape, last_state is (B, D, N)).
    pub fn output_dims(
        &self,
        output: i32,
        input_ranks: &[i32],
    ) -> Result<Vec<DimRef>, PluginError> {
        guard("getOutputDimensions", || {
            self.check_counts(input_ranks.len(), self.attrs.num_outputs())?;
            let need = |i: usize, rank: i32| -> Result<(), PluginError> {
                if input_ranks[i] != rank {
                    return Err(PluginError::Tensor {
                        tensor: self.input_name(i),
                        reason: format!("expected rank {rank}, got {}", input_ranks[i]),
                    });
                }
                Ok(())
            };
            need(0, 3)?;
            let a = self.attrs.input_index(InputRole::A).unwrap_or(2);
            need(a, 2)?;
            let r = |input: usize, axis: i32| DimRef {
                input: input as i32,
                axis,
            };
            match self.attrs.outputs().get(output as usize) {
                Some(OutputRole::Y) if output >= 0 => Ok(vec![r(0, 0), r(0, 1), r(0, 2)]),
                Some(OutputRole::LastState) => {
                    let d_axis = if self.attrs.channels_last { 2 } else { 1 };
                    Ok(vec![r(0, 0), r(0, d_axis), r(a, 1)])
                }
                _ => Err(PluginError::Tensor {
                    tensor: format!("output {output}"),
                    reason: format!("this plugin has {} outputs", self.attrs.num_outputs()),
                }),
            }
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
            match self.attrs.outputs().get(output as usize) {
                Some(OutputRole::Y) if output >= 0 => {
                    let dt = self.act_dtype(input_types[0], "u")?;
                    Ok(dtype_to_trt(dt))
                }
                Some(OutputRole::LastState) => Ok(trt_dtype::FLOAT),
                _ => Err(PluginError::Tensor {
                    tensor: format!("output {output}"),
                    reason: format!("this plugin has {} outputs", self.attrs.num_outputs()),
                }),
            }
        })
    }

    /// Linear format only; activations (u, delta, B, C, z, y) share one of f32/f16/bf16; A, D,
    /// delta_bias and the states are f32.
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
                self.attrs.inputs()[pos].is_activation()
            } else {
                self.attrs.outputs()[pos - nb_inputs as usize] == OutputRole::Y
            };
            let ok = if !activation {
                d.dtype == trt_dtype::FLOAT
            } else if pos == 0 {
                dtype_from_trt(d.dtype).is_some()
            } else {
                // TensorRT has already fixed positions < pos; u is position 0.
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
            let act = contract::check_dtypes(&self.attrs, &dtypes)?;
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
                    contract::infer_dims(&self.attrs, &refs)?;
                }
            }
            self.dtype = Some(act);
            Ok(())
        })
    }

    fn dims_and_dtype(
        &self,
        ins: &[TensorDesc],
    ) -> Result<(contract::ScanDims, DType), PluginError> {
        let mut shapes = Vec::with_capacity(ins.len());
        for (i, d) in ins.iter().enumerate() {
            shapes.push(shape(d, &self.input_name(i))?);
        }
        let refs: Vec<&[i64]> = shapes.iter().map(|s| s.as_slice()).collect();
        let dims = contract::infer_dims(&self.attrs, &refs)?;
        let dtype = self.act_dtype(ins[0].dtype, "u")?;
        Ok((dims, dtype))
    }

    pub fn workspace_size(
        &self,
        ins: &[TensorDesc],
        outs: &[TensorDesc],
    ) -> Result<usize, PluginError> {
        guard("getWorkspaceSize", || {
            self.check_counts(ins.len(), outs.len())?;
            let (dims, dtype) = self.dims_and_dtype(ins)?;
            Ok(crate::cuda::workspace_size(&self.attrs, &dims, dtype))
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
            let (dims, dtype) = self.dims_and_dtype(ins)?;
            let mut p = crate::cuda::ScanPtrs {
                workspace: workspace as u64,
                ..Default::default()
            };
            for (role, &ptr) in self.attrs.inputs().iter().zip(in_ptrs) {
                let slot = match role {
                    InputRole::U => &mut p.u,
                    InputRole::Delta => &mut p.delta,
                    InputRole::A => &mut p.a,
                    InputRole::B => &mut p.b,
                    InputRole::C => &mut p.c,
                    InputRole::D => &mut p.d,
                    InputRole::Z => &mut p.z,
                    InputRole::DeltaBias => &mut p.delta_bias,
                    InputRole::InitialState => &mut p.initial_state,
                };
                *slot = ptr as u64;
            }
            for (role, &ptr) in self.attrs.outputs().iter().zip(out_ptrs) {
                match role {
                    OutputRole::Y => p.y = ptr as u64,
                    OutputRole::LastState => p.last_state = ptr as u64,
                }
            }
            // TensorRT passes null for empty tensors only; anything else is a caller bug that
            // must not reach a kernel.
            if dims.act_len() > 0 {
                let required = self
                    .attrs
                    .inputs()
                    .into_iter()
                    .map(|r| r.name())
                    .zip(in_ptrs.iter().copied())
                    .chain(
                        self.attrs
                            .outputs()
                            .into_iter()
                            .map(|r| r.name())
                            .zip(out_ptrs.iter().copied()),
                    );
                for (name, ptr) in required {
                    if ptr == 0 {
                        return Err(PluginError::Tensor {
                            tensor: format!("`{name}`"),
                            reason: "device pointer is null".into(),
                        });
                    }
                }
            }
            let launch = crate::cuda::ScanLaunch {
                attrs: self.attrs,
                dims,
                dtype,
                ptrs: p,
            };
            // SAFETY: TensorRT hands over device buffers sized for the descriptors we just
            // validated against the contract, and a stream of the current context.
            unsafe { crate::cuda::launch(&launch, stream as *mut std::ffi::c_void)? };
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let d = core_from_blob(&buf).unwrap();
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
            assert_eq!(*fs.build().unwrap(), c, "bits {bits:08b}");
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
                            let got = fs.build();
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
}
