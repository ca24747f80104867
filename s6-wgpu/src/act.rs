//! Activation buffers in any of the contract's dtypes, and their conversions.

use crate::context::Storage;
use half::{bf16, f16};
use s6_contract::DType;

/// A borrowed activation tensor (row-major data) in its own dtype.
#[derive(Clone, Copy, Debug)]
pub enum Act<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    BF16(&'a [bf16]),
}

impl Act<'_> {
    pub fn dtype(&self) -> DType {
        match self {
            Act::F32(_) => DType::F32,
            Act::F16(_) => DType::F16,
            Act::BF16(_) => DType::BF16,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Act::F32(v) => v.len(),
            Act::F16(v) => v.len(),
            Act::BF16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the values, widened to f32, to `out`.
    pub(crate) fn extend_f32(&self, out: &mut Vec<f32>) {
        match self {
            Act::F32(v) => out.extend_from_slice(v),
            Act::F16(v) => out.extend(v.iter().map(|x| x.to_f32())),
            Act::BF16(v) => out.extend(v.iter().map(|x| x.to_f32())),
        }
    }

    /// The f16 values, if this is f16.
    pub(crate) fn as_f16(&self) -> Option<&[f16]> {
        match self {
            Act::F16(v) => Some(v),
            _ => None,
        }
    }
}

/// An owned activation tensor in its own dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum ActVec {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
}

impl ActVec {
    pub fn dtype(&self) -> DType {
        match self {
            ActVec::F32(_) => DType::F32,
            ActVec::F16(_) => DType::F16,
            ActVec::BF16(_) => DType::BF16,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ActVec::F32(v) => v.len(),
            ActVec::F16(v) => v.len(),
            ActVec::BF16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values widened to f32.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            ActVec::F32(v) => v.clone(),
            ActVec::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            ActVec::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    /// Rounds f32 results to `dtype`.
    pub(crate) fn from_f32(dtype: DType, v: Vec<f32>) -> ActVec {
        match dtype {
            DType::F32 => ActVec::F32(v),
            DType::F16 => ActVec::F16(v.into_iter().map(f16::from_f32).collect()),
            DType::BF16 => ActVec::BF16(v.into_iter().map(bf16::from_f32).collect()),
        }
    }
    /// A result read back from a device buffer in `storage`, as `dtype` (f32 storage is
    /// rounded to it; f16 storage only holds f16).
    pub(crate) fn from_device(storage: Storage, dtype: DType, raw: &[u8]) -> ActVec {
        match storage {
            Storage::F16 => ActVec::F16(bytemuck::pod_collect_to_vec(raw)),
            Storage::F32 => ActVec::from_f32(dtype, bytemuck::pod_collect_to_vec(raw)),
        }
    }
}

/// `parts` back to back as the bytes of one device buffer in `storage`: widened for f32,
/// as they are for f16 (which only f16 inputs get).
pub(crate) fn device_bytes(parts: &[Act], storage: Storage) -> Vec<u8> {
    let total = parts.iter().map(Act::len).sum();
    match storage {
        Storage::F32 => {
            let mut v = Vec::with_capacity(total);
            for p in parts {
                p.extend_f32(&mut v);
            }
            bytemuck::cast_slice(&v).to_vec()
        }
        Storage::F16 => {
            fn f16_of<'a>(p: &'a Act) -> &'a [f16] {
                p.as_f16().expect("f16 storage only for f16 inputs")
            }
            if let [one] = parts {
                return bytemuck::cast_slice(f16_of(one)).to_vec();
            }
            let mut v: Vec<f16> = Vec::with_capacity(total);
            for p in parts {
                v.extend_from_slice(f16_of(p));
            }
            bytemuck::cast_slice(&v).to_vec()
        }
    }
}
