//! Reading and writing numpy `.npy` files (format versions 1–3, little-endian, C order) for
//! the interpreter's tensors.

use crate::interp::{DataType, Tensor, TensorData};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a usable .npy file: {reason}")]
    Format { path: PathBuf, reason: String },
}

const MAGIC: &[u8] = b"\x93NUMPY";

fn descr_of(dtype: DataType) -> &'static str {
    match dtype {
        DataType::F32 => "<f4",
        DataType::F16 => "<f2",
        DataType::F64 => "<f8",
        DataType::I64 => "<i8",
        DataType::I32 => "<i4",
        DataType::I16 => "<i2",
        DataType::I8 => "|i1",
        DataType::U8 => "|u1",
        DataType::U16 => "<u2",
        DataType::U32 => "<u4",
        DataType::U64 => "<u8",
        DataType::Bool => "|b1",
        // numpy has no bfloat16; ml_dtypes writes it as 2-byte void. Keep the bits readable.
        DataType::BF16 => "<V2",
    }
}

fn dtype_of(descr: &str) -> Option<DataType> {
    // '=' is native order; every target this project builds for is little-endian.
    let d = descr.replace('=', "<");
    Some(match d.as_str() {
        "<f4" => DataType::F32,
        "<f2" => DataType::F16,
        "<f8" => DataType::F64,
        "<i8" => DataType::I64,
        "<i4" => DataType::I32,
        "<i2" => DataType::I16,
        "|i1" | "<i1" => DataType::I8,
        "|u1" | "<u1" => DataType::U8,
        "<u2" => DataType::U16,
        "<u4" => DataType::U32,
        "<u8" => DataType::U64,
        "|b1" | "<b1" => DataType::Bool,
        // numpy has no bfloat16: ml_dtypes (and npyz) write it as 2-byte void, as we do.
        "<V2" | "|V2" => DataType::BF16,
        _ => return None,
    })
}

/// Encodes a tensor as `.npy` bytes (format 1.0, or 2.0 when the header needs it).
pub fn to_bytes(t: &Tensor) -> Vec<u8> {
    let shape = match t.shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", t.shape[0]),
        _ => format!(
            "({})",
            t.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        descr_of(t.dtype())
    );
    let v1 = header.len() + 1 + 10 <= u16::MAX as usize;
    let prefix = if v1 { 10 } else { 12 };
    // Pad so that the data starts on a 64-byte boundary, header ends with '\n'.
    let pad = (64 - (prefix + header.len() + 1) % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut out = Vec::with_capacity(prefix + header.len() + t.len() * t.dtype().size_bytes());
    out.extend_from_slice(MAGIC);
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&t.data.to_le_bytes());
    out
}

/// Decodes `.npy` bytes; `origin` names the file in errors. The header is parsed by `npyz`;
/// the data by the interpreter's one decoder of little-endian tensor bytes.
pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Tensor, NpyError> {
    let bad = |reason: String| NpyError::Format {
        path: origin.to_path_buf(),
        reason,
    };
    let file = npyz::NpyFile::new(bytes).map_err(|e| bad(format!("header: {e}")))?;
    let descr = match file.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => return Err(bad(format!("dtype {other:?} is not a plain numeric type"))),
    };
    let dtype = dtype_of(&descr).ok_or_else(|| {
        bad(format!(
            "dtype '{descr}' not supported (little-endian float16/32/64, bfloat16 as <V2, int8–64, uint8–64, bool)"
        ))
    })?;
    if file.order() == npyz::Order::Fortran && file.shape().len() > 1 {
        return Err(bad(
            "Fortran-order arrays are not supported; save with np.ascontiguousarray".into(),
        ));
    }
    let shape = file
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad("shape overflows".into())))
        .collect::<Result<Vec<usize>, _>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("shape overflows".into()))?;
    let need = n
        .checked_mul(dtype.size_bytes())
        .ok_or_else(|| bad("shape overflows".into()))?;
    let body: &[u8] = file.into_inner();
    if body.len() != need {
        return Err(bad(format!(
            "shape {shape:?} of {dtype} needs {need} data bytes, file has {}",
            body.len()
        )));
    }
    let data = TensorData::from_le_bytes(dtype, body).expect("length checked above");
    Ok(Tensor { shape, data })
}

/// A safe file name (`<stem>.npy`) for a tensor named `name`: characters outside
/// `[A-Za-z0-9._-]` become `_`, a leading `.` becomes `_` (so no hidden files, no `..`), and
/// long names are cut. The result never contains a path separator, so it stays inside the
/// folder it is joined to. Distinct tensors may map to one name: see [`file_names_for`].
pub fn file_name_for(name: &str) -> String {
    let mut stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(150)
        .collect();
    if stem.is_empty() {
        stem.push_str("unnamed");
    }
    if stem.starts_with('.') {
        stem.replace_range(0..1, "_");
    }
    format!("{stem}.npy")
}

/// [`file_name_for`] over several names, made unique by a `__<n>` suffix where two collide.
pub fn file_names_for<S: AsRef<str>>(names: &[S]) -> Vec<String> {
    let mut used = std::collections::HashSet::new();
    names
        .iter()
        .map(|n| {
            let base = file_name_for(n.as_ref());
            let mut f = base.clone();
            let mut k = 1;
            while !used.insert(f.to_ascii_lowercase()) {
                f = format!("{}__{k}.npy", base.trim_end_matches(".npy"));
                k += 1;
            }
            f
        })
        .collect()
}

/// Reads a `.npy` file.
pub fn read(path: &Path) -> Result<Tensor, NpyError> {
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    from_bytes(&bytes, path)
}

/// Writes a `.npy` file atomically.
pub fn write(path: &Path, t: &Tensor) -> Result<(), NpyError> {
    crate::model::write_atomic(path, &to_bytes(t)).map_err(|e| match e {
        crate::OnnxError::Io { path, source } => NpyError::Io { path, source },
        other => NpyError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn round_trips_every_dtype_and_rank() {
        let cases = vec![
            Tensor::from_f32(vec![2, 3], vec![1.0, 2.0, 3.0, -4.0, 5.5, 6.0]).unwrap(),
            Tensor::new(vec![], TensorData::F64(vec![3.25])).unwrap(),
            Tensor::new(vec![3], TensorData::I64(vec![-1, 0, i64::MAX])).unwrap(),
            Tensor::new(vec![0, 4], TensorData::I32(vec![])).unwrap(),
            Tensor::new(vec![2], TensorData::Bool(vec![true, false])).unwrap(),
            Tensor::new(
                vec![1, 1, 2],
                TensorData::F16(vec![f16::from_f32(0.5), f16::MAX]),
            )
            .unwrap(),
            // bfloat16 as 2-byte void, the way ml_dtypes and npyz write it.
            Tensor::new(
                vec![2],
                TensorData::BF16(vec![half::bf16::from_f32(-1.5), half::bf16::MIN]),
            )
            .unwrap(),
        ];
        for t in cases {
            let b = to_bytes(&t);
            assert_eq!((10 + u16::from_le_bytes([b[8], b[9]]) as usize) % 64, 0);
            assert_eq!(from_bytes(&b, Path::new("x.npy")).unwrap(), t);
        }
    }

    #[test]
    fn reads_numpy_written_header() {
        // Exactly what numpy 1.x/2.x writes for np.arange(3, dtype='<i4').
        let mut b =
            b"\x93NUMPY\x01\x00v\x00{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }"
                .to_vec();
        b.extend(std::iter::repeat_n(b' ', 118 - (b.len() - 10) - 1));
        b.push(b'\n');
        for i in 0..3i32 {
            b.extend_from_slice(&i.to_le_bytes());
        }
        let t = from_bytes(&b, Path::new("a.npy")).unwrap();
        assert_eq!(t.shape, vec![3]);
        assert_eq!(t.data, TensorData::I32(vec![0, 1, 2]));
    }

    #[test]
    fn file_names_stay_in_folder_and_unique() {
        assert_eq!(file_name_for("logits"), "logits.npy");
        assert_eq!(file_name_for("../../etc/passwd"), "_._.._etc_passwd.npy");
        assert_eq!(file_name_for(".hidden"), "_hidden.npy");
        assert_eq!(file_name_for(""), "unnamed.npy");
        assert_eq!(file_name_for("a/b:c"), "a_b_c.npy");
        for n in ["..", ".", "/", "a\\b", "x\0y"] {
            let f = file_name_for(n);
            assert!(
                !f.contains('/') && !f.contains('\\') && !f.starts_with('.'),
                "{f}"
            );
        }
        assert_eq!(
            file_names_for(&["a/b", "a:b", "A_b"]),
            vec!["a_b.npy", "a_b__1.npy", "A_b__2.npy"]
        );
    }

    #[test]
    fn refuses_truncated_and_foreign() {
        let t = Tensor::from_f32(vec![4], vec![1.0; 4]).unwrap();
        let b = to_bytes(&t);
        let e = from_bytes(&b[..b.len() - 1], Path::new("t.npy")).unwrap_err();
        assert!(e.to_string().contains("needs 16 data bytes"), "{e}");
        assert!(from_bytes(b"PK\x03\x04junkjunk", Path::new("z.npy")).is_err());
        let be = String::from_utf8_lossy(&b).replace("<f4", ">f4");
        assert!(from_bytes(be.as_bytes(), Path::new("b.npy")).is_err());
    }
}
