//! Dense tensors of the interpreter: a shape and a typed, row-major buffer, and their
//! conversion from / to ONNX `TensorProto` (raw, typed-field and external data).

use super::error::InterpError;
use half::{bf16, f16};
use onnx_protobuf::tensor_proto::DataLocation;
use onnx_protobuf::TensorProto;
use std::path::Path;

/// Element types the interpreter handles. Discriminants are ONNX `TensorProto.DataType` codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    F32 = 1,
    U8 = 2,
    I8 = 3,
    U16 = 4,
    I16 = 5,
    I32 = 6,
    I64 = 7,
    Bool = 9,
    F16 = 10,
    F64 = 11,
    U32 = 12,
    U64 = 13,
    BF16 = 16,
}

impl DataType {
    /// From an ONNX `TensorProto.DataType` code; `None` for types not handled (strings,
    /// complex, 8-bit floats, ...).
    pub fn from_onnx(code: i32) -> Option<DataType> {
        use DataType::*;
        Some(match code {
            1 => F32,
            2 => U8,
            3 => I8,
            4 => U16,
            5 => I16,
            6 => I32,
            7 => I64,
            9 => Bool,
            10 => F16,
            11 => F64,
            12 => U32,
            13 => U64,
            16 => BF16,
            _ => return None,
        })
    }

    pub fn onnx_code(self) -> i32 {
        self as i32
    }

    /// numpy-style name (`float32`, `int64`, ...).
    pub fn name(self) -> &'static str {
        use DataType::*;
        match self {
            F32 => "float32",
            U8 => "uint8",
            I8 => "int8",
            U16 => "uint16",
            I16 => "int16",
            I32 => "int32",
            I64 => "int64",
            Bool => "bool",
            F16 => "float16",
            F64 => "float64",
            U32 => "uint32",
            U64 => "uint64",
            BF16 => "bfloat16",
        }
    }

    pub fn size_bytes(self) -> usize {
        use DataType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 | F16 | BF16 => 2,
            F32 | I32 | U32 => 4,
            I64 | U64 | F64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            DataType::F32 | DataType::F16 | DataType::BF16 | DataType::F64
        )
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A typed, row-major element buffer.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    I16(Vec<i16>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    Bool(Vec<bool>),
}

/// Applies `$body` to the buffer of any variant, binding it to `$v`.
#[macro_export]
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::interp::TensorData::F32($v) => $body,
            $crate::interp::TensorData::F16($v) => $body,
            $crate::interp::TensorData::BF16($v) => $body,
            $crate::interp::TensorData::F64($v) => $body,
            $crate::interp::TensorData::I64($v) => $body,
            $crate::interp::TensorData::I32($v) => $body,
            $crate::interp::TensorData::I16($v) => $body,
            $crate::interp::TensorData::I8($v) => $body,
            $crate::interp::TensorData::U8($v) => $body,
            $crate::interp::TensorData::U16($v) => $body,
            $crate::interp::TensorData::U32($v) => $body,
            $crate::interp::TensorData::U64($v) => $body,
            $crate::interp::TensorData::Bool($v) => $body,
        }
    };
}

/// Like [`with_data!`] but rebuilds the same variant from `$body`'s `Vec` result (for ops that
/// only move elements: Transpose, Gather, Slice, Concat, ...).
#[macro_export]
macro_rules! map_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::interp::TensorData::F32($v) => $crate::interp::TensorData::F32($body),
            $crate::interp::TensorData::F16($v) => $crate::interp::TensorData::F16($body),
            $crate::interp::TensorData::BF16($v) => $crate::interp::TensorData::BF16($body),
            $crate::interp::TensorData::F64($v) => $crate::interp::TensorData::F64($body),
            $crate::interp::TensorData::I64($v) => $crate::interp::TensorData::I64($body),
            $crate::interp::TensorData::I32($v) => $crate::interp::TensorData::I32($body),
            $crate::interp::TensorData::I16($v) => $crate::interp::TensorData::I16($body),
            $crate::interp::TensorData::I8($v) => $crate::interp::TensorData::I8($body),
            $crate::interp::TensorData::U8($v) => $crate::interp::TensorData::U8($body),
            $crate::interp::TensorData::U16($v) => $crate::interp::TensorData::U16($body),
            $crate::interp::TensorData::U32($v) => $crate::interp::TensorData::U32($body),
            $crate::interp::TensorData::U64($v) => $crate::interp::TensorData::U64($body),
            $crate::interp::TensorData::Bool($v) => $crate::interp::TensorData::Bool($body),
        }
    };
}

/// Lossy numeric conversion between element types (`as` semantics; bool is 0/1).
pub trait Elem: Copy + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn to_i64(self) -> i64 {
        self.to_f64() as i64
    }
    fn from_i64(v: i64) -> Self {
        Self::from_f64(v as f64)
    }
}

macro_rules! impl_elem_int {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            fn to_f64(self) -> f64 { self as f64 }
            fn from_f64(v: f64) -> Self { v as $t }
            fn to_i64(self) -> i64 { self as i64 }
            fn from_i64(v: i64) -> Self { v as $t }
        }
    )*};
}
impl_elem_int!(i64, i32, i16, i8, u8, u16, u32, u64);

impl Elem for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}
impl Elem for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}
impl Elem for f16 {
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
}
impl Elem for bf16 {
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
}
impl Elem for bool {
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
}

impl TensorData {
    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype(&self) -> DataType {
        match self {
            TensorData::F32(_) => DataType::F32,
            TensorData::F16(_) => DataType::F16,
            TensorData::BF16(_) => DataType::BF16,
            TensorData::F64(_) => DataType::F64,
            TensorData::I64(_) => DataType::I64,
            TensorData::I32(_) => DataType::I32,
            TensorData::I16(_) => DataType::I16,
            TensorData::I8(_) => DataType::I8,
            TensorData::U8(_) => DataType::U8,
            TensorData::U16(_) => DataType::U16,
            TensorData::U32(_) => DataType::U32,
            TensorData::U64(_) => DataType::U64,
            TensorData::Bool(_) => DataType::Bool,
        }
    }

    /// `n` zeros (false) of type `dtype`.
    pub fn zeros(dtype: DataType, n: usize) -> TensorData {
        TensorData::from_f64_iter(dtype, std::iter::repeat_n(0.0, n))
    }

    /// Builds a buffer of `dtype` from f64 values (`as` conversion).
    pub fn from_f64_iter(dtype: DataType, it: impl Iterator<Item = f64>) -> TensorData {
        fn c<T: Elem>(it: impl Iterator<Item = f64>) -> Vec<T> {
            it.map(T::from_f64).collect()
        }
        match dtype {
            DataType::F32 => TensorData::F32(c(it)),
            DataType::F16 => TensorData::F16(c(it)),
            DataType::BF16 => TensorData::BF16(c(it)),
            DataType::F64 => TensorData::F64(c(it)),
            DataType::I64 => TensorData::I64(c(it)),
            DataType::I32 => TensorData::I32(c(it)),
            DataType::I16 => TensorData::I16(c(it)),
            DataType::I8 => TensorData::I8(c(it)),
            DataType::U8 => TensorData::U8(c(it)),
            DataType::U16 => TensorData::U16(c(it)),
            DataType::U32 => TensorData::U32(c(it)),
            DataType::U64 => TensorData::U64(c(it)),
            DataType::Bool => TensorData::Bool(c(it)),
        }
    }

    /// Converts to `dtype` (ONNX Cast semantics for the numeric types: float → int truncates).
    pub fn cast(&self, dtype: DataType) -> TensorData {
        if self.dtype() == dtype {
            return self.clone();
        }
        // Integer → integer goes through i64 so that large int64 values survive exactly.
        let int_like = |d: DataType| !d.is_float();
        if int_like(self.dtype()) && int_like(dtype) {
            let v = self.to_i64_vec();
            fn c<T: Elem>(v: &[i64]) -> Vec<T> {
                v.iter().map(|&x| T::from_i64(x)).collect()
            }
            return match dtype {
                DataType::I64 => TensorData::I64(v),
                DataType::I32 => TensorData::I32(c(&v)),
                DataType::I16 => TensorData::I16(c(&v)),
                DataType::I8 => TensorData::I8(c(&v)),
                DataType::U8 => TensorData::U8(c(&v)),
                DataType::U16 => TensorData::U16(c(&v)),
                DataType::U32 => TensorData::U32(c(&v)),
                DataType::U64 => TensorData::U64(c(&v)),
                DataType::Bool => TensorData::Bool(c(&v)),
                _ => unreachable!("float types excluded above"),
            };
        }
        with_data!(self, v => TensorData::from_f64_iter(dtype, v.iter().map(|x| x.to_f64())))
    }

    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            TensorData::F32(v) => v.clone(),
            TensorData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            TensorData::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
            _ => with_data!(self, v => v.iter().map(|x| x.to_f64() as f32).collect()),
        }
    }

    pub fn to_f64_vec(&self) -> Vec<f64> {
        with_data!(self, v => v.iter().map(|x| x.to_f64()).collect())
    }

    pub fn to_i64_vec(&self) -> Vec<i64> {
        with_data!(self, v => v.iter().map(|x| x.to_i64()).collect())
    }

    /// Raw little-endian bytes (bool as one byte 0/1), as in `TensorProto.raw_data` and `.npy`.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            TensorData::Bool(v) => v.iter().map(|&b| b as u8).collect(),
            TensorData::U8(v) => v.clone(),
            TensorData::I8(v) => v.iter().map(|&x| x as u8).collect(),
            _ => {
                let mut out = Vec::with_capacity(self.len() * self.dtype().size_bytes());
                macro_rules! enc {
                    ($($var:ident),*) => {
                        match self {
                            $(TensorData::$var(v) => {
                                for x in v {
                                    out.extend_from_slice(&x.to_le_bytes());
                                }
                            })*
                            TensorData::Bool(_) | TensorData::U8(_) | TensorData::I8(_) => {
                                unreachable!("handled above")
                            }
                        }
                    };
                }
                enc!(F32, F16, BF16, F64, I64, I32, I16, U16, U32, U64);
                out
            }
        }
    }

    /// Decodes little-endian bytes of `dtype`; `None` when the length is not a multiple of
    /// the element size.
    pub fn from_le_bytes(dtype: DataType, bytes: &[u8]) -> Option<TensorData> {
        let size = dtype.size_bytes();
        if bytes.len() % size != 0 {
            return None;
        }
        macro_rules! dec {
            ($t:ty, $var:ident) => {
                TensorData::$var(
                    bytes
                        .chunks_exact(size)
                        .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
                        .collect(),
                )
            };
        }
        Some(match dtype {
            DataType::F32 => dec!(f32, F32),
            DataType::F16 => dec!(f16, F16),
            DataType::BF16 => dec!(bf16, BF16),
            DataType::F64 => dec!(f64, F64),
            DataType::I64 => dec!(i64, I64),
            DataType::I32 => dec!(i32, I32),
            DataType::I16 => dec!(i16, I16),
            DataType::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
            DataType::U8 => TensorData::U8(bytes.to_vec()),
            DataType::U16 => dec!(u16, U16),
            DataType::U32 => dec!(u32, U32),
            DataType::U64 => dec!(u64, U64),
            DataType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        })
    }
}

/// A dense, row-major tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    /// A tensor from a shape and a buffer; errors if the element count does not match.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor, InterpError> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(InterpError::op(format!(
                "shape {shape:?} needs {n} elements, buffer has {}",
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    pub fn from_f32(shape: Vec<usize>, v: Vec<f32>) -> Result<Tensor, InterpError> {
        Tensor::new(shape, TensorData::F32(v))
    }

    pub fn from_i64(shape: Vec<usize>, v: Vec<i64>) -> Result<Tensor, InterpError> {
        Tensor::new(shape, TensorData::I64(v))
    }

    /// A rank-0 tensor.
    pub fn scalar(data: TensorData) -> Tensor {
        debug_assert_eq!(data.len(), 1);
        Tensor {
            shape: vec![],
            data,
        }
    }

    pub fn zeros(dtype: DataType, shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor {
            shape,
            data: TensorData::zeros(dtype, n),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn dtype(&self) -> DataType {
        self.data.dtype()
    }

    pub fn to_f32_vec(&self) -> Vec<f32> {
        self.data.to_f32_vec()
    }

    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.data.to_f64_vec()
    }

    pub fn to_i64_vec(&self) -> Vec<i64> {
        self.data.to_i64_vec()
    }

    pub fn cast(&self, dtype: DataType) -> Tensor {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.cast(dtype),
        }
    }

    /// Same data, another shape of the same element count.
    pub fn reshaped(mut self, shape: Vec<usize>) -> Result<Tensor, InterpError> {
        let n: usize = shape.iter().product();
        if n != self.len() {
            return Err(InterpError::op(format!(
                "cannot reshape {:?} ({} elements) to {shape:?}",
                self.shape,
                self.len()
            )));
        }
        self.shape = shape;
        Ok(self)
    }

    /// Decodes an ONNX tensor. External data is read relative to `base_dir` (the model's
    /// folder); locations that are absolute or climb out of it are refused.
    pub fn from_proto(t: &TensorProto, base_dir: &Path) -> Result<Tensor, InterpError> {
        let err = |reason: String| InterpError::Tensor {
            name: t.name.clone(),
            reason,
        };
        let dtype = DataType::from_onnx(t.data_type)
            .ok_or_else(|| err(format!("unsupported data type code {}", t.data_type)))?;
        crate::data::numel(&t.dims).map_err(|e| err(e.to_string()))?;
        let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        let n =
            crate::data::checked_len(&shape, dtype.size_bytes()).map_err(|e| err(e.to_string()))?;
        let external = t.data_location.enum_value() == Ok(DataLocation::EXTERNAL);
        let data = if external {
            read_external(t, dtype, n, base_dir)?
        } else if !t.raw_data.is_empty() || n == 0 {
            TensorData::from_le_bytes(dtype, &t.raw_data).ok_or_else(|| {
                err(format!(
                    "raw_data of {} bytes for {dtype}",
                    t.raw_data.len()
                ))
            })?
        } else {
            typed_fields(t, dtype).map_err(err)?
        };
        if data.len() != n {
            return Err(err(format!(
                "dims {:?} need {n} elements, data has {}",
                t.dims,
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    /// Encodes as an ONNX tensor with `raw_data`.
    pub fn to_proto(&self, name: &str) -> TensorProto {
        let mut t = TensorProto::new();
        t.name = name.to_string();
        t.data_type = self.dtype().onnx_code();
        t.dims = self.shape.iter().map(|&d| d as i64).collect();
        t.raw_data = self.data.to_le_bytes();
        t
    }
}

/// Decodes the typed repeated fields (`float_data`, `int32_data`, ...), ONNX's packing rules:
/// 16-bit floats and small ints travel in `int32_data` as their bit patterns / values.
fn typed_fields(t: &TensorProto, dtype: DataType) -> Result<TensorData, String> {
    fn c<T: Elem>(v: &[i32]) -> Vec<T> {
        v.iter().map(|&x| T::from_i64(x as i64)).collect()
    }
    Ok(match dtype {
        DataType::F32 => TensorData::F32(t.float_data.clone()),
        DataType::F64 => TensorData::F64(t.double_data.clone()),
        DataType::I64 => TensorData::I64(t.int64_data.clone()),
        DataType::I32 => TensorData::I32(t.int32_data.clone()),
        DataType::I16 => TensorData::I16(c(&t.int32_data)),
        DataType::I8 => TensorData::I8(c(&t.int32_data)),
        DataType::U8 => TensorData::U8(c(&t.int32_data)),
        DataType::U16 => TensorData::U16(c(&t.int32_data)),
        DataType::Bool => TensorData::Bool(c(&t.int32_data)),
        DataType::F16 => TensorData::F16(
            t.int32_data
                .iter()
                .map(|&x| f16::from_bits(x as u16))
                .collect(),
        ),
        DataType::BF16 => TensorData::BF16(
            t.int32_data
                .iter()
                .map(|&x| bf16::from_bits(x as u16))
                .collect(),
        ),
        DataType::U32 => TensorData::U32(t.uint64_data.iter().map(|&x| x as u32).collect()),
        DataType::U64 => TensorData::U64(t.uint64_data.clone()),
    })
}

/// Reads an external-data tensor of `n` elements of `dtype` (the one reader: `crate::data`).
/// On little-endian hosts the file's bytes go straight into the typed buffer, one copy.
fn read_external(
    t: &TensorProto,
    dtype: DataType,
    n: usize,
    base_dir: &Path,
) -> Result<TensorData, InterpError> {
    let map_err = |e: crate::data::DataError| match e {
        crate::data::DataError::External { path, reason } => InterpError::ExternalData {
            name: t.name.clone(),
            path,
            reason,
        },
        other => InterpError::Tensor {
            name: t.name.clone(),
            reason: other.to_string(),
        },
    };
    let r = crate::data::external_ref(t, base_dir).map_err(map_err)?;
    fn direct<T: bytemuck::Pod + Default>(
        r: &crate::data::ExternalRef,
        base_dir: &Path,
        n: usize,
    ) -> Result<Vec<T>, crate::data::DataError> {
        let mut v = vec![T::default(); n];
        r.read_into(base_dir, bytemuck::cast_slice_mut(&mut v))?;
        Ok(v)
    }
    let from_bytes = || {
        let bytes = crate::data::read_external(t, base_dir).map_err(map_err)?;
        TensorData::from_le_bytes(dtype, &bytes).ok_or_else(|| InterpError::Tensor {
            name: t.name.clone(),
            reason: format!("external data of {} bytes", bytes.len()),
        })
    };
    if cfg!(target_endian = "big") {
        return from_bytes();
    }
    match dtype {
        DataType::F32 => direct(&r, base_dir, n).map(TensorData::F32),
        DataType::F16 => direct(&r, base_dir, n).map(TensorData::F16),
        DataType::BF16 => direct(&r, base_dir, n).map(TensorData::BF16),
        DataType::F64 => direct(&r, base_dir, n).map(TensorData::F64),
        DataType::I64 => direct(&r, base_dir, n).map(TensorData::I64),
        DataType::I32 => direct(&r, base_dir, n).map(TensorData::I32),
        DataType::I16 => direct(&r, base_dir, n).map(TensorData::I16),
        DataType::I8 => direct(&r, base_dir, n).map(TensorData::I8),
        DataType::U8 => direct(&r, base_dir, n).map(TensorData::U8),
        DataType::U16 => direct(&r, base_dir, n).map(TensorData::U16),
        DataType::U32 => direct(&r, base_dir, n).map(TensorData::U32),
        DataType::U64 => direct(&r, base_dir, n).map(TensorData::U64),
        // bool has invalid bit patterns: decoded from the bytes.
        DataType::Bool => return from_bytes(),
    }
    .map_err(map_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_typed_protos_decode_alike() {
        let t = Tensor::from_f32(vec![2, 2], vec![1.0, -2.5, 3.0, 0.0]).unwrap();
        let p = t.to_proto("w");
        assert_eq!(Tensor::from_proto(&p, Path::new(".")).unwrap(), t);
        let mut q = TensorProto::new();
        q.data_type = 1;
        q.dims = vec![2, 2];
        q.float_data = vec![1.0, -2.5, 3.0, 0.0];
        assert_eq!(Tensor::from_proto(&q, Path::new(".")).unwrap(), t);
        q.dims = vec![3];
        assert!(Tensor::from_proto(&q, Path::new(".")).is_err());
    }

    #[test]
    fn fp16_in_int32_data_is_bit_pattern() {
        let mut q = TensorProto::new();
        q.data_type = 10;
        q.dims = vec![2];
        q.int32_data = vec![0x3c00, 0xc000]; // 1.0, -2.0
        let t = Tensor::from_proto(&q, Path::new(".")).unwrap();
        assert_eq!(t.to_f32_vec(), vec![1.0, -2.0]);
    }

    #[test]
    fn external_data_is_read_at_its_offset() {
        let dir = std::env::temp_dir().join(format!("s6-interp-ext-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = vec![0xAAu8; 8];
        for v in [1.5f32, -2.0, 3.25] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(dir.join("w.bin"), &bytes).unwrap();
        let mut q = TensorProto::new();
        q.name = "w".into();
        q.data_type = 1;
        q.dims = vec![3];
        q.data_location = DataLocation::EXTERNAL.into();
        for (k, v) in [("location", "w.bin"), ("offset", "8"), ("length", "12")] {
            let mut kv = onnx_protobuf::StringStringEntryProto::new();
            kv.key = k.into();
            kv.value = v.into();
            q.external_data.push(kv);
        }
        let t = Tensor::from_proto(&q, &dir).unwrap();
        assert_eq!(t.to_f32_vec(), vec![1.5, -2.0, 3.25]);
        // A length past the end of the file is refused, naming the tensor.
        q.external_data[1].value = "12".into();
        let e = Tensor::from_proto(&q, &dir).unwrap_err().to_string();
        assert!(e.contains("'w'") && e.contains("exceeds"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn external_data_cannot_escape_folder() {
        let mut q = TensorProto::new();
        q.name = "w".into();
        q.data_type = 1;
        q.dims = vec![1];
        q.data_location = DataLocation::EXTERNAL.into();
        let mut kv = onnx_protobuf::StringStringEntryProto::new();
        kv.key = "location".into();
        kv.value = "../secret.bin".into();
        q.external_data.push(kv);
        let e = Tensor::from_proto(&q, Path::new("/tmp")).unwrap_err();
        assert!(e.to_string().contains("model's folder"), "{e}");
    }

    #[test]
    fn external_data_cannot_link_out_of_folder() {
        let root = std::env::temp_dir().join(format!("s6-interp-link-{}", std::process::id()));
        let (model_dir, outside) = (root.join("model"), root.join("outside.bin"));
        std::fs::create_dir_all(&model_dir).unwrap();
        std::fs::write(&outside, 1.0f32.to_le_bytes()).unwrap();
        std::os::unix::fs::symlink(&outside, model_dir.join("w.bin")).unwrap();
        let mut q = TensorProto::new();
        q.name = "w".into();
        q.data_type = 1;
        q.dims = vec![1];
        q.data_location = DataLocation::EXTERNAL.into();
        let mut kv = onnx_protobuf::StringStringEntryProto::new();
        kv.key = "location".into();
        kv.value = "w.bin".into();
        q.external_data.push(kv);
        let e = Tensor::from_proto(&q, &model_dir).unwrap_err().to_string();
        std::fs::remove_dir_all(&root).unwrap();
        assert!(e.contains("links out of the model's folder"), "{e}");
    }

    #[test]
    fn cast_truncates_and_keeps_int64() {
        let t = TensorData::F32(vec![1.7, -1.7]).cast(DataType::I64);
        assert_eq!(t, TensorData::I64(vec![1, -1]));
        let big = TensorData::I64(vec![i64::MAX]).cast(DataType::U64);
        assert_eq!(big, TensorData::U64(vec![i64::MAX as u64]));
    }
}
