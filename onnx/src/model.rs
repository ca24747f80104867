//! Loading and saving ONNX models, external data included. rust-protobuf keeps unknown fields,
//! so a load/save round trip loses nothing.
//!
//! External data stays on disk when loading (only the graph is parsed); saving copies it,
//! tensor by tensor with a bounded buffer, into one data file next to the output. Locations
//! that escape the model's folder are refused.

use crate::error::OnnxError;
use onnx_protobuf::tensor_proto::DataLocation;
use onnx_protobuf::{ModelProto, StringStringEntryProto, TensorProto};
use protobuf::Message;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

/// Protobuf's hard limit on one message; models at or above it must use external data.
pub const PROTOBUF_LIMIT: u64 = 2 * 1024 * 1024 * 1024 - 1;
/// Inline tensors at least this big move to the data file when a model needs external data.
const EXTERNALIZE_MIN_BYTES: usize = 1024;

/// Reads an ONNX model from `path` (external data stays where it is).
pub fn load(path: &Path) -> Result<ModelProto, OnnxError> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&bytes, path)
}

/// Parses an ONNX model from memory; `origin` names it in errors.
pub fn parse(bytes: &[u8], origin: &Path) -> Result<ModelProto, OnnxError> {
    let model = ModelProto::parse_from_bytes(bytes).map_err(|e| OnnxError::Parse {
        path: origin.to_path_buf(),
        reason: e.to_string(),
    })?;
    // Random bytes can parse as a message with nothing in it.
    if model.graph.is_none() || model.ir_version <= 0 {
        return Err(OnnxError::Parse {
            path: origin.to_path_buf(),
            reason: "no graph or no IR version".into(),
        });
    }
    Ok(model)
}

/// The folder external data locations are relative to.
pub fn base_dir(model_path: &Path) -> PathBuf {
    match model_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn ext_err(path: &Path, reason: impl Into<String>) -> OnnxError {
    OnnxError::Write {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Resolves an external-data `location` against `base_dir`, refusing absolute paths, `..`
/// and symlinks that lead out of the folder.
pub fn external_path(base_dir: &Path, location: &str) -> Result<PathBuf, OnnxError> {
    let rel = Path::new(location);
    let bad = location.is_empty()
        || rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if bad {
        return Err(ext_err(
            base_dir,
            format!("external data location '{location}' escapes the model's folder"),
        ));
    }
    let full = base_dir.join(rel);
    if let (Ok(real), Ok(root)) = (full.canonicalize(), base_dir.canonicalize()) {
        if !real.starts_with(&root) {
            return Err(ext_err(
                base_dir,
                format!("external data location '{location}' links out of the model's folder"),
            ));
        }
    }
    Ok(full)
}

pub fn is_external(t: &TensorProto) -> bool {
    t.data_location.value() == DataLocation::EXTERNAL as i32
}

/// (file, offset, length) of an external tensor, its range checked against the file's size.
fn ext_range(t: &TensorProto, base_dir: &Path) -> Result<(PathBuf, u64, u64), OnnxError> {
    let tensor_err = |source| OnnxError::Tensor {
        name: t.name.clone(),
        source,
    };
    crate::data::external_ref(t, base_dir)
        .and_then(|r| r.resolve(base_dir))
        .map_err(tensor_err)
}

/// Every initializer (main graph) of `model`.
fn tensors_mut(model: &mut ModelProto) -> impl Iterator<Item = &mut TensorProto> {
    model
        .graph
        .as_mut()
        .into_iter()
        .flat_map(|g| g.initializer.iter_mut())
}

/// Checks every external location of `model` (relative to `base_dir`) and that the files exist
/// and are long enough. Returns the data files referenced.
pub fn check_external_data(model: &ModelProto, base_dir: &Path) -> Result<Vec<PathBuf>, OnnxError> {
    let mut files: Vec<PathBuf> = Vec::new();
    for t in model.graph.iter().flat_map(|g| g.initializer.iter()) {
        if !is_external(t) {
            continue;
        }
        let (path, _, _) = ext_range(t, base_dir)?;
        if !files.contains(&path) {
            files.push(path);
        }
    }
    Ok(files)
}

/// Reads every external tensor into `raw_data` (for small models, tests and the interpreter).
pub fn inline_external_data(model: &mut ModelProto, base_dir: &Path) -> Result<(), OnnxError> {
    for t in tensors_mut(model) {
        if !is_external(t) {
            continue;
        }
        let buf = crate::data::read_external(t, base_dir).map_err(|source| OnnxError::Tensor {
            name: t.name.clone(),
            source,
        })?;
        t.raw_data = buf;
        t.external_data.clear();
        t.data_location = DataLocation::DEFAULT.into();
    }
    Ok(())
}

/// Writes `model` to `path` atomically (temporary file in the same folder, then rename).
/// All data must be inline; see [`save_with_external_data`] otherwise.
pub fn save(model: &ModelProto, path: &Path) -> Result<(), OnnxError> {
    let bytes = model.write_to_bytes().map_err(|e| OnnxError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// Saves `model` to `path`, whose external data (if any) lies relative to `src_dir`.
///
/// When the model has external data, or would reach protobuf's 2 GB limit inline, all tensors
/// of external data and inline tensors ≥ 1 KiB go to `<file name>.data` next to `path`
/// (written first, atomically, then the model). The data file must not be one the model reads
/// from. Returns the data file written, if any.
pub fn save_with_external_data(
    model: &ModelProto,
    path: &Path,
    src_dir: &Path,
) -> Result<Option<PathBuf>, OnnxError> {
    let any_external = model
        .graph
        .iter()
        .flat_map(|g| g.initializer.iter())
        .any(is_external);
    if !any_external && model.compute_size() < PROTOBUF_LIMIT {
        save(model, path)?;
        return Ok(None);
    }
    write_external(model, path, src_dir).map(Some)
}

/// Saves `model` with every tensor of external data or ≥ 1 KiB in `<file name>.data` next to
/// `path`, whatever the model's size. Returns the data file.
pub fn save_external_data(
    model: &ModelProto,
    path: &Path,
    src_dir: &Path,
) -> Result<PathBuf, OnnxError> {
    write_external(model, path, src_dir)
}

fn write_external(model: &ModelProto, path: &Path, src_dir: &Path) -> Result<PathBuf, OnnxError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| ext_err(path, "output path has no file name"))?;
    let data_name = format!("{file_name}.data");
    let out_dir = base_dir(path);
    let data_path = out_dir.join(&data_name);
    let sources = check_external_data(model, src_dir)?;
    if let Ok(dp) = data_path.canonicalize() {
        if sources
            .iter()
            .any(|s| s.canonicalize().ok().as_ref() == Some(&dp))
        {
            return Err(ext_err(
                &data_path,
                "the output's data file is the input's external data; choose another output name",
            ));
        }
    }

    let mut out = model.clone();
    let tmp = tmp_sibling(&data_path);
    let result = (|| -> Result<(), OnnxError> {
        let io = |source| OnnxError::Io {
            path: tmp.clone(),
            source,
        };
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        let mut offset = 0u64;
        for t in tensors_mut(&mut out) {
            let len;
            if is_external(t) {
                let (src, off, l) = ext_range(t, src_dir)?;
                let sio = |source| OnnxError::Io {
                    path: src.clone(),
                    source,
                };
                let mut r = std::fs::File::open(&src).map_err(sio)?;
                r.seek(SeekFrom::Start(off)).map_err(sio)?;
                // File to file: std copies in the kernel (copy_file_range) where it can, so the
                // data never passes through this process's memory.
                let copied = std::io::copy(&mut r.take(l), &mut f).map_err(io)?;
                if copied != l {
                    return Err(ext_err(
                        &src,
                        format!("tensor '{}': data file too short", t.name),
                    ));
                }
                len = l;
            } else if t.raw_data.len() >= EXTERNALIZE_MIN_BYTES {
                f.write_all(&t.raw_data).map_err(io)?;
                len = t.raw_data.len() as u64;
                t.raw_data = Vec::new();
            } else {
                continue;
            }
            t.data_location = DataLocation::EXTERNAL.into();
            t.external_data = [
                ("location", data_name.clone()),
                ("offset", offset.to_string()),
                ("length", len.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| {
                let mut e = StringStringEntryProto::new();
                e.key = k.to_string();
                e.value = v;
                e
            })
            .collect();
            offset += len;
            // Keep tensors 64-byte aligned (mmap-friendly for readers that map the file).
            let pad = (64 - offset % 64) % 64;
            f.write_all(&vec![0u8; pad as usize]).map_err(io)?;
            offset += pad;
        }
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &data_path).map_err(|source| OnnxError::Io {
            path: data_path.clone(),
            source,
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    save(&out, path)?;
    Ok(data_path)
}

pub(crate) fn tmp_sibling(path: &Path) -> PathBuf {
    let dir = base_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{name}.tmp{}", std::process::id()))
}

/// Writes `bytes` to `path` through a temporary sibling file and a rename, so that a reader never
/// sees a half-written file and a failure leaves any previous file intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OnnxError> {
    let io = |source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = tmp_sibling(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// True when `a` and `b` name the same file (also through different spellings or links). `b`
/// need not exist.
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        return ma.dev() == mb.dev() && ma.ino() == mb.ino();
    }
    let canon = |p: &Path| -> Option<PathBuf> {
        if let Ok(c) = p.canonicalize() {
            return Some(c);
        }
        let parent = base_dir(p).canonicalize().ok()?;
        Some(parent.join(p.file_name()?))
    };
    matches!((canon(a), canon(b)), (Some(x), Some(y)) if x == y)
}
