//! The serialised form of a plugin (IPluginV2DynamicExt): a versioned prost message.
//!
//! Layout: an outer [`BlobMsg`] carrying a magic number (one per op: `S6SC` for `S6Scan`,
//! `S6SH` for `S6ScanHeads`), the format version, the attributes as an encoded [`AttrsMsg`]
//! (field `i` = the op's `i`-th plugin field) and a CRC-32 of those bytes. Readers refuse anything that is not
//! exactly what a writer of a known version produces (magic, version, CRC, every field present,
//! canonical encoding), so truncated, bit-flipped or foreign blobs never become a plugin.
//! Version 1 is the only one so far; a later s6plugin keeps reading it.

use prost::Message;

use super::error::PluginError;
use super::op::{Op, OpAttrs};

/// `S6Scan`'s magic, "S6SC" little-endian.
pub const MAGIC: u32 = u32::from_le_bytes(*b"S6SC");
/// `S6ScanHeads`' magic, "S6SH" little-endian.
pub const MAGIC_HEADS: u32 = u32::from_le_bytes(*b"S6SH");

/// The magic of `op`'s blobs.
pub fn magic(op: Op) -> u32 {
    match op {
        Op::Scan => MAGIC,
        Op::Heads => MAGIC_HEADS,
    }
}
/// Current blob format version.
pub const VERSION: u32 = 1;

#[derive(Clone, PartialEq, Message)]
struct BlobMsg {
    #[prost(fixed32, optional, tag = "1")]
    magic: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    version: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    attrs: Option<Vec<u8>>,
    #[prost(fixed32, optional, tag = "4")]
    crc32: Option<u32>,
}

/// The attributes: field `i` (tag `i`) is the op's `i`-th plugin field (`Op::field_names`), each
/// present; an op with fewer fields (`S6ScanHeads`: 7) leaves the later tags absent. The tags
/// and wire format of `S6Scan`'s version 1 are unchanged (`V1_BLOB` below).
#[derive(Clone, PartialEq, Message)]
struct AttrsMsg {
    #[prost(bool, optional, tag = "1")]
    f1: Option<bool>,
    #[prost(bool, optional, tag = "2")]
    f2: Option<bool>,
    #[prost(bool, optional, tag = "3")]
    f3: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    f4: Option<bool>,
    #[prost(bool, optional, tag = "5")]
    f5: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    f6: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    f7: Option<bool>,
    #[prost(bool, optional, tag = "8")]
    f8: Option<bool>,
}

impl AttrsMsg {
    fn from_values(v: &[bool]) -> Self {
        let at = |i: usize| v.get(i).copied();
        AttrsMsg {
            f1: at(0),
            f2: at(1),
            f3: at(2),
            f4: at(3),
            f5: at(4),
            f6: at(5),
            f7: at(6),
            f8: at(7),
        }
    }

    fn values(&self) -> [Option<bool>; 8] {
        [
            self.f1, self.f2, self.f3, self.f4, self.f5, self.f6, self.f7, self.f8,
        ]
    }
}

/// CRC-32 (IEEE, reflected), bitwise: blobs are a few dozen bytes.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn refuse(reason: impl Into<String>) -> PluginError {
    PluginError::Blob {
        reason: reason.into(),
    }
}

/// Serialises `attrs` (version [`VERSION`]).
pub fn encode(attrs: &OpAttrs) -> Vec<u8> {
    let a = AttrsMsg::from_values(&attrs.values()).encode_to_vec();
    BlobMsg {
        magic: Some(magic(attrs.op())),
        version: Some(VERSION),
        crc32: Some(crc32(&a)),
        attrs: Some(a),
    }
    .encode_to_vec()
}

/// Parses a blob of `op` written by [`encode`] of this or an earlier version.
pub fn decode(op: Op, blob: &[u8]) -> Result<OpAttrs, PluginError> {
    if blob.is_empty() {
        return Err(refuse("empty"));
    }
    let msg = BlobMsg::decode(blob).map_err(|e| refuse(format!("not an s6plugin blob ({e})")))?;
    let want_magic = magic(op);
    if msg.magic != Some(want_magic) {
        return Err(refuse(format!(
            "magic is {}, expected {want_magic:#010x} (not an {} plugin blob)",
            msg.magic.map_or("missing".into(), |m| format!("{m:#010x}")),
            op.name()
        )));
    }
    match msg.version {
        Some(VERSION) => {}
        Some(v) => {
            return Err(refuse(format!(
                "format version {v}; this s6plugin reads version {VERSION} (written by a newer s6plugin?)"
            )))
        }
        None => return Err(refuse("format version missing")),
    }
    let attrs_bytes = msg
        .attrs
        .as_deref()
        .ok_or_else(|| refuse("attributes missing"))?;
    let want = msg.crc32.ok_or_else(|| refuse("checksum missing"))?;
    let got = crc32(attrs_bytes);
    if got != want {
        return Err(refuse(format!(
            "checksum mismatch (stored {want:#010x}, computed {got:#010x}): blob is corrupt"
        )));
    }
    // Anything a writer would not have produced (unknown fields, non-minimal varints, trailing
    // bytes folded into a field) is corruption.
    if msg.encode_to_vec() != blob {
        return Err(refuse("non-canonical encoding: blob is corrupt"));
    }
    let a = AttrsMsg::decode(attrs_bytes)
        .map_err(|e| refuse(format!("attributes do not decode ({e})")))?;
    if a.encode_to_vec() != attrs_bytes {
        return Err(refuse("attributes: non-canonical encoding"));
    }
    let names = op.field_names();
    let vals = a.values();
    let mut pairs = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let v = vals[i].ok_or_else(|| refuse(format!("attribute `{name}` missing")))?;
        pairs.push((*name, v as i64));
    }
    if let Some(extra) = vals[names.len()..].iter().position(|v| v.is_some()) {
        return Err(refuse(format!(
            "attribute {} given, but {} has {} fields",
            names.len() + extra + 1,
            op.name(),
            names.len()
        )));
    }
    Ok(OpAttrs::from_fields(op, &pairs)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::S6Attrs;
    use crate::contract_heads::HeadsAttrs;

    /// Every attribute combination of both ops.
    fn all_attrs() -> Vec<OpAttrs> {
        let mut all = Vec::new();
        for op in Op::ALL {
            let names = op.field_names();
            for bits in 0u32..(1 << names.len()) {
                let pairs: Vec<(&str, i64)> = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (*n, ((bits >> i) & 1) as i64))
                    .collect();
                all.push(OpAttrs::from_fields(op, &pairs).unwrap());
            }
        }
        all
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The CRC-32/IEEE check value of "123456789".
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn round_trips_every_attribute_combination() {
        for a in all_attrs() {
            assert_eq!(decode(a.op(), &encode(&a)).unwrap(), a);
        }
    }

    #[test]
    fn refuses_every_truncation_and_every_bit_flip() {
        for a in all_attrs() {
            let blob = encode(&a);
            let op = a.op();
            for len in 0..blob.len() {
                assert!(
                    decode(op, &blob[..len]).is_err(),
                    "truncation to {len} bytes accepted for {a:?}"
                );
            }
            for byte in 0..blob.len() {
                for bit in 0..8 {
                    let mut bad = blob.clone();
                    bad[byte] ^= 1 << bit;
                    assert!(
                        decode(op, &bad).is_err(),
                        "bit {bit} of byte {byte} flipped and accepted for {a:?}"
                    );
                }
            }
            let mut longer = blob.clone();
            longer.push(0);
            assert!(decode(op, &longer).is_err(), "trailing byte accepted");
            // A blob of the other op is refused by its magic.
            let other = if op == Op::Scan { Op::Heads } else { Op::Scan };
            let e = decode(other, &blob).unwrap_err().to_string();
            assert!(e.contains("magic"), "{e}");
        }
    }

    /// A version-1 blob, written out by hand from the protobuf wire format (and zlib's CRC-32):
    /// every later s6plugin must keep reading it, and this one must keep writing exactly it.
    const V1_BLOB: [u8; 30] = [
        0x0d, 0x53, 0x36, 0x53, 0x43, // magic, fixed32 "S6SC"
        0x10, 0x01, // version 1
        0x1a, 0x10, // attrs, 16 bytes:
        0x08, 0x01, 0x10, 0x01, 0x18, 0x01, 0x20, 0x00, 0x28, 0x00, 0x30, 0x01, 0x38, 0x00, 0x40,
        0x00, // delta_softplus, has_D, has_z, has_last_state set
        0x25, 0xbc, 0x65, 0xdf, 0xcf, // crc32, fixed32
    ];

    #[test]
    fn version_1_blob_is_stable() {
        let attrs = OpAttrs::Scan(S6Attrs {
            delta_softplus: true,
            has_d: true,
            has_z: true,
            has_last_state: true,
            ..Default::default()
        });
        assert_eq!(decode(Op::Scan, &V1_BLOB).unwrap(), attrs);
        assert_eq!(encode(&attrs), V1_BLOB);
    }

    /// A version-1 `S6ScanHeads` blob, by hand as above: magic "S6SH", seven attributes.
    const V1_HEADS_BLOB: [u8; 28] = [
        0x0d, 0x53, 0x36, 0x53, 0x48, // magic, fixed32 "S6SH"
        0x10, 0x01, // version 1
        0x1a, 0x0e, // attrs, 14 bytes:
        0x08, 0x01, 0x10, 0x01, 0x18, 0x00, 0x20, 0x01, 0x28, 0x01, 0x30, 0x00, 0x38,
        0x00, // dt_softplus, has_D, has_dt_bias, has_dt_limit set
        0x25, 0x07, 0xce, 0xb1, 0xa8, // crc32, fixed32 (zlib's)
    ];

    #[test]
    fn heads_version_1_blob_is_stable() {
        let attrs = OpAttrs::Heads(HeadsAttrs {
            dt_softplus: true,
            has_d: true,
            has_dt_bias: true,
            has_dt_limit: true,
            ..Default::default()
        });
        assert_eq!(encode(&attrs), V1_HEADS_BLOB);
        assert_eq!(decode(Op::Heads, &V1_HEADS_BLOB).unwrap(), attrs);
    }

    #[test]
    fn refuses_newer_versions_and_foreign_data() {
        let a = OpAttrs::Scan(S6Attrs::default());
        let attrs = AttrsMsg::decode(&BlobMsg::decode(&encode(&a)[..]).unwrap().attrs.unwrap()[..])
            .unwrap()
            .encode_to_vec();
        let newer = BlobMsg {
            magic: Some(MAGIC),
            version: Some(2),
            crc32: Some(crc32(&attrs)),
            attrs: Some(attrs),
        }
        .encode_to_vec();
        let err = decode(Op::Scan, &newer).unwrap_err().to_string();
        assert!(err.contains("format version 2"), "{err}");
        for op in Op::ALL {
            assert!(decode(op, b"\x08\x01garbage").is_err());
            assert!(decode(op, &[0xff; 64]).is_err());
        }
    }
}
