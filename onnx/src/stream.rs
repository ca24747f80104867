//! Large single-file models without holding their weights: the file is memory-mapped, every
//! initializer's `raw_data` of at least [`MIN_STREAMED`] bytes is left where it is and the
//! tensor is parsed as an external-data reference *into the model file itself* (marked with the
//! [`MARK`] key), so the patcher and the interpreter read it like any external tensor. Saving
//! writes the model back as one file in one pass, copying those bytes file to file; a model that
//! would pass protobuf's 2 GB limit is saved with external data instead.
//!
//! Only the protobuf wire format of the three enclosing messages is walked here (ModelProto
//! field 7 `graph`, GraphProto field 5 `initializer`, TensorProto field 9 `raw_data`, 13
//! `external_data`, 14 `data_location`); everything else is copied byte for byte.

use crate::error::OnnxError;
use onnx_protobuf::ModelProto;
use protobuf::Message;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Raw data at least this big stays in the file.
pub const MIN_STREAMED: usize = 4096;
/// `external_data` key marking a reference into the model file itself.
pub const MARK: &str = "s6plugin_inline";

const MODEL_GRAPH: u32 = 7;
const GRAPH_INITIALIZER: u32 = 5;
const TENSOR_RAW_DATA: u32 = 9;
const TENSOR_EXTERNAL_DATA: u32 = 13;
const TENSOR_DATA_LOCATION: u32 = 14;

fn parse_err(path: &Path, reason: impl Into<String>) -> OnnxError {
    OnnxError::Parse {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - v.max(1).leading_zeros() as usize).div_ceil(7)
}

/// One field: number, wire type, the whole field's byte range, and for length-delimited fields
/// the payload's range.
struct Field {
    num: u32,
    whole: std::ops::Range<usize>,
    payload: Option<std::ops::Range<usize>>,
}

/// The fields of the message in `b[range]` (offsets into `b`).
fn fields(b: &[u8], range: std::ops::Range<usize>) -> Option<Vec<Field>> {
    let mut out = Vec::new();
    let mut pos = range.start;
    while pos < range.end {
        let start = pos;
        let key = varint(b, &mut pos)?;
        let (num, wt) = ((key >> 3) as u32, key & 7);
        let payload = match wt {
            0 => {
                varint(b, &mut pos)?;
                None
            }
            1 => {
                pos = pos.checked_add(8)?;
                None
            }
            5 => {
                pos = pos.checked_add(4)?;
                None
            }
            2 => {
                let len = usize::try_from(varint(b, &mut pos)?).ok()?;
                let p = pos..pos.checked_add(len)?;
                pos = p.end;
                Some(p)
            }
            _ => return None, // groups: not in ONNX
        };
        if pos > range.end {
            return None;
        }
        out.push(Field {
            num,
            whole: start..pos,
            payload,
        });
    }
    Some(out)
}

fn put_bytes_field(out: &mut Vec<u8>, num: u32, bytes: &[u8]) {
    put_varint(out, ((num as u64) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn entry(key: &str, value: &str) -> Vec<u8> {
    let mut e = Vec::new();
    put_bytes_field(&mut e, 1, key.as_bytes());
    put_bytes_field(&mut e, 2, value.as_bytes());
    e
}

/// The model file [`load`] read, which [`save`] copies the weights from.
pub struct Source {
    path: PathBuf,
    file_name: String,
}

/// Loads `path` with the raw data of its large initializers left in the file (see the module
/// docs). Returns the model and the mapped source [`save`] copies them from.
pub fn load(path: &Path) -> Result<(ModelProto, Source), OnnxError> {
    let io = |source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: the map is read-only; the file is the input, which the tools never write.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| parse_err(path, "no file name"))?;
    let b: &[u8] = &map;
    let bad = || parse_err(path, "malformed protobuf");
    let mut out = Vec::new();
    for f in fields(b, 0..b.len()).ok_or_else(bad)? {
        let Some(gp) = f.payload.clone().filter(|_| f.num == MODEL_GRAPH) else {
            out.extend_from_slice(&b[f.whole]);
            continue;
        };
        let mut graph = Vec::new();
        for g in fields(b, gp).ok_or_else(bad)? {
            let Some(tp) = g.payload.clone().filter(|_| g.num == GRAPH_INITIALIZER) else {
                graph.extend_from_slice(&b[g.whole]);
                continue;
            };
            let mut tensor = Vec::new();
            for t in fields(b, tp).ok_or_else(bad)? {
                match &t.payload {
                    Some(p) if t.num == TENSOR_RAW_DATA && p.len() >= MIN_STREAMED => {
                        for (k, v) in [
                            ("location", file_name.clone()),
                            ("offset", p.start.to_string()),
                            ("length", p.len().to_string()),
                            (MARK, "1".to_string()),
                        ] {
                            put_bytes_field(&mut tensor, TENSOR_EXTERNAL_DATA, &entry(k, &v));
                        }
                        put_varint(&mut tensor, (TENSOR_DATA_LOCATION as u64) << 3);
                        put_varint(&mut tensor, 1); // EXTERNAL, after any earlier value
                    }
                    _ => tensor.extend_from_slice(&b[t.whole]),
                }
            }
            put_bytes_field(&mut graph, GRAPH_INITIALIZER, &tensor);
        }
        put_bytes_field(&mut out, MODEL_GRAPH, &graph);
    }
    let model = crate::model::parse(&out, path)?;
    Ok((
        model,
        Source {
            path: path.to_path_buf(),
            file_name,
        },
    ))
}

/// (offset, length) of a tensor that [`load`] left in `src`'s file, from its serialised
/// external_data entries; None for any other tensor.
fn marked_range(b: &[u8], tensor: std::ops::Range<usize>, src: &Source) -> Option<(u64, u64)> {
    let (mut loc, mut off, mut len, mut marked) = (None, None, None, false);
    for f in fields(b, tensor)? {
        if f.num != TENSOR_EXTERNAL_DATA {
            continue;
        }
        let (mut k, mut v) = (&[][..], &[][..]);
        for e in fields(b, f.payload?)? {
            match e.num {
                1 => k = &b[e.payload?],
                2 => v = &b[e.payload?],
                _ => {}
            }
        }
        let v = std::str::from_utf8(v).ok()?;
        match k {
            b"location" => loc = Some(v),
            b"offset" => off = v.parse().ok(),
            b"length" => len = v.parse().ok(),
            k if k == MARK.as_bytes() => marked = true,
            _ => {}
        }
    }
    (marked && loc == Some(src.file_name.as_str())).then_some((off?, len?))
}

/// Saves `model` to `path`; tensors [`load`] left in `src` go back inline, copied file to file.
/// Models that would reach protobuf's 2 GB limit, or that have other external data, are saved
/// through [`crate::model::save_with_external_data`] (which copies the same bytes into
/// `<path>.data`). Returns the data file written, if any.
pub fn save(
    model: &ModelProto,
    path: &Path,
    src_dir: &Path,
    src: &Source,
) -> Result<Option<PathBuf>, OnnxError> {
    let werr = |reason: String| OnnxError::Write {
        path: path.to_path_buf(),
        reason,
    };
    let b = model.write_to_bytes().map_err(|e| werr(e.to_string()))?;
    let bad = || werr("re-reading the serialised model failed".into());
    // Plan: the model's fields, the graph's fields, and which initializers get data back.
    enum Piece {
        Copy(std::ops::Range<usize>),
        /// A tensor's fields other than its external-data ones, then its raw data.
        Tensor {
            fields: Vec<std::ops::Range<usize>>,
            offset: u64,
            length: u64,
        },
    }
    let mut top: Vec<std::ops::Range<usize>> = Vec::new();
    let mut graph_at = None;
    let mut graph: Vec<Piece> = Vec::new();
    let mut other_external = false;
    for f in fields(&b, 0..b.len()).ok_or_else(bad)? {
        if f.num != MODEL_GRAPH || graph_at.is_some() {
            top.push(f.whole);
            continue;
        }
        graph_at = Some(top.len());
        top.push(0..0); // the graph's slot
        for g in fields(&b, f.payload.clone().ok_or_else(bad)?).ok_or_else(bad)? {
            let tp = g.payload.clone().filter(|_| g.num == GRAPH_INITIALIZER);
            match tp.and_then(|tp| marked_range(&b, tp.clone(), src).map(|r| (tp, r))) {
                Some((tp, (offset, length))) => {
                    let keep = fields(&b, tp)
                        .ok_or_else(bad)?
                        .into_iter()
                        .filter(|t| !matches!(t.num, TENSOR_EXTERNAL_DATA | TENSOR_DATA_LOCATION))
                        .map(|t| t.whole)
                        .collect();
                    graph.push(Piece::Tensor {
                        fields: keep,
                        offset,
                        length,
                    });
                }
                None => {
                    if g.num == GRAPH_INITIALIZER {
                        let tp = g.payload.clone().ok_or_else(bad)?;
                        other_external |= fields(&b, tp)
                            .ok_or_else(bad)?
                            .iter()
                            .any(|t| t.num == TENSOR_EXTERNAL_DATA);
                    }
                    graph.push(Piece::Copy(g.whole));
                }
            }
        }
    }
    let tensor_len = |fields: &[std::ops::Range<usize>], length: u64| -> u64 {
        let head: u64 = fields.iter().map(|r| r.len() as u64).sum();
        head + 1 + varint_len(length) as u64 + length
    };
    let graph_len: u64 = graph
        .iter()
        .map(|p| match p {
            Piece::Copy(r) => r.len() as u64,
            Piece::Tensor { fields, length, .. } => {
                let t = tensor_len(fields, *length);
                1 + varint_len(t) as u64 + t
            }
        })
        .sum();
    let total = top.iter().map(|r| r.len() as u64).sum::<u64>()
        + graph_at.map_or(0, |_| 1 + varint_len(graph_len) as u64 + graph_len);
    if other_external || total >= crate::model::PROTOBUF_LIMIT {
        return crate::model::save_with_external_data(model, path, src_dir);
    }

    let tmp = crate::model::tmp_sibling(path);
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        let mut input = std::fs::File::open(&src.path)?;
        let mut buf = Vec::new();
        let flush = |f: &mut std::fs::File, buf: &mut Vec<u8>| -> std::io::Result<()> {
            f.write_all(buf)?;
            buf.clear();
            Ok(())
        };
        for (i, r) in top.iter().enumerate() {
            if graph_at != Some(i) {
                buf.extend_from_slice(&b[r.clone()]);
            } else {
                put_varint(&mut buf, ((MODEL_GRAPH as u64) << 3) | 2);
                put_varint(&mut buf, graph_len);
                for p in &graph {
                    match p {
                        Piece::Copy(r) => buf.extend_from_slice(&b[r.clone()]),
                        Piece::Tensor {
                            fields,
                            offset,
                            length,
                        } => {
                            put_varint(&mut buf, ((GRAPH_INITIALIZER as u64) << 3) | 2);
                            put_varint(&mut buf, tensor_len(fields, *length));
                            for r in fields {
                                buf.extend_from_slice(&b[r.clone()]);
                            }
                            put_varint(&mut buf, ((TENSOR_RAW_DATA as u64) << 3) | 2);
                            put_varint(&mut buf, *length);
                            flush(&mut f, &mut buf)?;
                            // File to file (copy_file_range where the kernel has it): the
                            // weights never pass through this process's memory.
                            input.seek(SeekFrom::Start(*offset))?;
                            let n = std::io::copy(&mut (&mut input).take(*length), &mut f)?;
                            if n != *length {
                                return Err(std::io::Error::other("input file shrank"));
                            }
                        }
                    }
                }
            }
        }
        flush(&mut f, &mut buf)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            let mut p = 0;
            assert_eq!(varint(&b, &mut p), Some(v));
        }
    }
}
