//! Sizes and bytes of tensor data, in one place for the loader, the patcher and the interpreter:
//! checked element counts, the cap on any single tensor allocation, and the one reader of
//! external data (location inside the model's folder, offset and length checked against the
//! file's size before anything is allocated).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;

/// Default cap on the bytes of any single tensor a model makes us allocate (initializer,
/// external data, or an op's output). Far above any weight of the Mamba sizes (mamba-2.8b's
/// embedding is 0.5 GB); `--max-tensor-bytes` raises it.
pub const DEFAULT_MAX_TENSOR_BYTES: u64 = 4 << 30;

static MAX_TENSOR_BYTES: AtomicU64 = AtomicU64::new(DEFAULT_MAX_TENSOR_BYTES);

/// The current cap on one tensor's bytes.
pub fn max_tensor_bytes() -> u64 {
    MAX_TENSOR_BYTES.load(Ordering::Relaxed)
}

/// Sets the cap on one tensor's bytes for the whole process (CLIs' `--max-tensor-bytes`).
pub fn set_max_tensor_bytes(bytes: u64) {
    MAX_TENSOR_BYTES.store(bytes, Ordering::Relaxed);
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DataError {
    #[error("shape {dims:?} has more elements than fit in memory")]
    Overflow { dims: Vec<i64> },
    #[error("negative dimension in {dims:?}")]
    Negative { dims: Vec<i64> },
    #[error(
        "{bytes} bytes exceed the cap of {cap} bytes on one tensor (raise it with --max-tensor-bytes)"
    )]
    TooLarge { bytes: u128, cap: u64 },
    #[error("external data {path}: {reason}")]
    External { path: PathBuf, reason: String },
}

/// Element count of `dims` (all ≥ 0), checked for overflow.
pub fn numel(dims: &[i64]) -> Result<usize, DataError> {
    let mut n: usize = 1;
    for &d in dims {
        let d = usize::try_from(d).map_err(|_| DataError::Negative {
            dims: dims.to_vec(),
        })?;
        n = n.checked_mul(d).ok_or_else(|| DataError::Overflow {
            dims: dims.to_vec(),
        })?;
    }
    Ok(n)
}

/// Element count of a shape of `usize` dims, checked for overflow.
pub fn numel_usize(shape: &[usize]) -> Result<usize, DataError> {
    shape.iter().try_fold(1usize, |n, &d| {
        n.checked_mul(d).ok_or_else(|| DataError::Overflow {
            dims: shape
                .iter()
                .map(|&d| d.min(i64::MAX as usize) as i64)
                .collect(),
        })
    })
}

/// Refuses `count` elements of `elem_bytes` each when they exceed the cap.
pub fn check_alloc(count: usize, elem_bytes: usize) -> Result<(), DataError> {
    check_bytes(count as u128 * elem_bytes as u128)
}

/// Refuses an allocation of `bytes` when it exceeds the cap.
pub fn check_bytes(bytes: u128) -> Result<(), DataError> {
    let cap = max_tensor_bytes();
    if bytes > cap as u128 {
        return Err(DataError::TooLarge { bytes, cap });
    }
    Ok(())
}

/// Checked element count of `shape` within the cap for `elem_bytes`-sized elements. Zero-size
/// axes count as 1 for the cap: a tensor of shape (2^40, 0) holds nothing, but every loop over
/// its outer axes would run 2^40 times.
pub fn checked_len(shape: &[usize], elem_bytes: usize) -> Result<usize, DataError> {
    let n = numel_usize(shape)?;
    let extent: Vec<usize> = shape.iter().map(|&d| d.max(1)).collect();
    check_alloc(numel_usize(&extent)?, elem_bytes)?;
    Ok(n)
}

/// Where an external tensor's bytes are: the `location`, `offset`, `length` keys of
/// `TensorProto.external_data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalRef {
    pub location: String,
    pub offset: u64,
    pub length: Option<u64>,
}

impl ExternalRef {
    /// Parses the key/value entries; `base_dir` only names the model's folder in errors.
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
        base_dir: &Path,
    ) -> Result<ExternalRef, DataError> {
        let err = |reason: String| DataError::External {
            path: base_dir.to_path_buf(),
            reason,
        };
        let (mut location, mut offset, mut length) = (None, 0u64, None);
        for (k, v) in entries {
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| err(format!("{k}={v:?} is not a byte count")))
            };
            match k {
                "location" => location = Some(v.to_string()),
                "offset" => offset = num(v)?,
                "length" => length = Some(num(v)?),
                _ => {}
            }
        }
        let location = location.ok_or_else(|| err("external data without a location".into()))?;
        Ok(ExternalRef {
            location,
            offset,
            length,
        })
    }

    /// The file, resolved inside `base_dir` (absolute paths, `..` and symlinks out refused).
    pub fn path(&self, base_dir: &Path) -> Result<PathBuf, DataError> {
        crate::model::external_path(base_dir, &self.location).map_err(|e| DataError::External {
            path: base_dir.join(&self.location),
            reason: e.to_string(),
        })
    }

    /// (file, offset, length) with the range checked against the file's size (`length`
    /// defaults to the rest of the file).
    pub fn resolve(&self, base_dir: &Path) -> Result<(PathBuf, u64, u64), DataError> {
        let path = self.path(base_dir)?;
        let err = |reason: String| DataError::External {
            path: path.clone(),
            reason,
        };
        let size = std::fs::metadata(&path)
            .map_err(|e| err(e.to_string()))?
            .len();
        if self.offset > size {
            return Err(err(format!(
                "offset {} is past the file's {size} bytes",
                self.offset
            )));
        }
        let length = self.length.unwrap_or(size - self.offset);
        if self.offset.checked_add(length).is_none_or(|end| end > size) {
            return Err(err(format!(
                "offset {} + length {length} exceeds the file's {size} bytes",
                self.offset
            )));
        }
        Ok((path, self.offset, length))
    }

    /// Reads the bytes, after checking the range against the file and the length against
    /// `expected` (the bytes the tensor's dims and type call for, when known) and the cap.
    pub fn read(&self, base_dir: &Path, expected: Option<u64>) -> Result<Vec<u8>, DataError> {
        let (path, offset, length) = self.resolve(base_dir)?;
        let err = |reason: String| DataError::External {
            path: path.clone(),
            reason,
        };
        if let Some(want) = expected {
            if want != length {
                return Err(err(format!(
                    "length {length} bytes, the tensor's dims and type need {want}"
                )));
            }
        }
        check_bytes(length as u128)?;
        let mut buf = vec![0u8; length as usize];
        read_at(&path, offset, &mut buf)?;
        Ok(buf)
    }

    /// Reads the bytes straight into `dst`, whose length must be the reference's: a weight
    /// goes from the file (or the page cache) into its typed buffer in one copy.
    pub fn read_into(&self, base_dir: &Path, dst: &mut [u8]) -> Result<(), DataError> {
        let (path, offset, length) = self.resolve(base_dir)?;
        if length != dst.len() as u64 {
            return Err(DataError::External {
                path,
                reason: format!(
                    "length {length} bytes, the tensor's dims and type need {}",
                    dst.len()
                ),
            });
        }
        read_at(&path, offset, dst)
    }
}

/// `dst.len()` bytes of `path` from `offset` (positioned read: no seek state, no buffer).
fn read_at(path: &Path, offset: u64, dst: &mut [u8]) -> Result<(), DataError> {
    use std::os::unix::fs::FileExt;
    let err = |e: std::io::Error| DataError::External {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let f = std::fs::File::open(path).map_err(err)?;
    f.read_exact_at(dst, offset).map_err(err)
}

/// The external reference of an ONNX tensor.
pub fn external_ref(
    t: &onnx_protobuf::TensorProto,
    base_dir: &Path,
) -> Result<ExternalRef, DataError> {
    ExternalRef::parse(
        t.external_data
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str())),
        base_dir,
    )
}

/// Bytes of one element of an ONNX data type code, for the types the interpreter knows.
pub fn elem_bytes(data_type: i32) -> Option<usize> {
    crate::interp::DataType::from_onnx(data_type).map(|d| d.size_bytes())
}

/// Reads an external tensor's bytes, checking the length against its dims and type (when the
/// type is numeric) before allocating.
pub fn read_external(
    t: &onnx_protobuf::TensorProto,
    base_dir: &Path,
) -> Result<Vec<u8>, DataError> {
    let expected = match elem_bytes(t.data_type) {
        Some(size) => {
            let n = numel(&t.dims)?;
            Some(
                (n as u128 * size as u128)
                    .try_into()
                    .map_err(|_| DataError::Overflow {
                        dims: t.dims.clone(),
                    })?,
            )
        }
        None => None,
    };
    external_ref(t, base_dir)?.read(base_dir, expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numel_checks_overflow_and_sign() {
        assert_eq!(numel(&[2, 3, 4]), Ok(24));
        assert_eq!(numel(&[]), Ok(1));
        assert!(matches!(
            numel(&[i64::MAX, i64::MAX]),
            Err(DataError::Overflow { .. })
        ));
        assert!(matches!(numel(&[2, -1]), Err(DataError::Negative { .. })));
    }

    #[test]
    fn external_ranges_are_checked_before_reading() {
        let dir = std::env::temp_dir().join(format!("s6-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("w.bin"), [7u8; 16]).unwrap();
        let r = |off: u64, len: Option<u64>| ExternalRef {
            location: "w.bin".into(),
            offset: off,
            length: len,
        };
        assert_eq!(r(4, Some(8)).read(&dir, None).unwrap(), vec![7u8; 8]);
        assert_eq!(r(12, None).read(&dir, None).unwrap().len(), 4);
        // An offset past the end, with no length (would underflow), and a wrapping end.
        let e = r(17, None).read(&dir, None).unwrap_err().to_string();
        assert!(e.contains("past the file"), "{e}");
        let e = r(8, Some(u64::MAX - 4)).read(&dir, None).unwrap_err();
        assert!(e.to_string().contains("exceeds"), "{e}");
        // A claimed length that disagrees with the dims.
        let e = r(0, Some(16)).read(&dir, Some(12)).unwrap_err();
        assert!(e.to_string().contains("need 12"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
