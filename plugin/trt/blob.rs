//! The serialised form of an `S6Scan` plugin: a versioned prost message.
//!
//! Layout: an outer [`BlobMsg`] carrying a magic number, the format version, the attributes as
//! an encoded [`AttrsMsg`] and a CRC-32 of those bytes. Readers refuse anything that is not
//! exactly what a writer of a known version produces (magic, version, CRC, every field present,
//! canonical encoding), so truncated, bit-flipped or foreign blobs never become a plugin.
//! Version 1 is the only one so far; a later s6plugin keeps reading it.

use prost::Message;

use super::error::PluginError;
use crate::contract::S6Attrs;

/// "S6SC", little-endian.
pub const MAGIC: u32 = u32::from_le_bytes(*b"S6SC");
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

/// The attributes, one field per `S6Attrs::FIELD_NAMES` entry, in that order.
#[derive(Clone, PartialEq, Message)]
struct AttrsMsg {
    #[prost(bool, optional, tag = "1")]
    delta_softplus: Option<bool>,
    #[prost(bool, optional, tag = "2")]
    has_d: Option<bool>,
    #[prost(bool, optional, tag = "3")]
    has_z: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    has_delta_bias: Option<bool>,
    #[prost(bool, optional, tag = "5")]
    has_initial_state: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    has_last_state: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    channels_last: Option<bool>,
    #[prost(bool, optional, tag = "8")]
    bc_channels_last: Option<bool>,
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
pub fn encode(attrs: &S6Attrs) -> Vec<u8> {
    let a = AttrsMsg {
        delta_softplus: Some(attrs.delta_softplus),
        has_d: Some(attrs.has_d),
        has_z: Some(attrs.has_z),
        has_delta_bias: Some(attrs.has_delta_bias),
        has_initial_state: Some(attrs.has_initial_state),
        has_last_state: Some(attrs.has_last_state),
        channels_last: Some(attrs.channels_last),
        bc_channels_last: Some(attrs.bc_channels_last),
    }
    .encode_to_vec();
    BlobMsg {
        magic: Some(MAGIC),
        version: Some(VERSION),
        crc32: Some(crc32(&a)),
        attrs: Some(a),
    }
    .encode_to_vec()
}

/// Parses a blob written by [`encode`] of this or an earlier version.
pub fn decode(blob: &[u8]) -> Result<S6Attrs, PluginError> {
    if blob.is_empty() {
        return Err(refuse("empty"));
    }
    let msg = BlobMsg::decode(blob).map_err(|e| refuse(format!("not an s6plugin blob ({e})")))?;
    if msg.magic != Some(MAGIC) {
        return Err(refuse(format!(
            "magic is {:?}, expected {MAGIC:#010x} (not an S6Scan plugin blob)",
            msg.magic
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
    let vals = [
        a.delta_softplus,
        a.has_d,
        a.has_z,
        a.has_delta_bias,
        a.has_initial_state,
        a.has_last_state,
        a.channels_last,
        a.bc_channels_last,
    ];
    let mut attrs = S6Attrs::default();
    for (name, v) in S6Attrs::FIELD_NAMES.iter().zip(vals) {
        let v = v.ok_or_else(|| refuse(format!("attribute `{name}` missing")))?;
        attrs.set(name, v as i64)?;
    }
    Ok(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_attrs() -> Vec<S6Attrs> {
        (0u32..256)
            .map(|bits| {
                let mut a = S6Attrs::default();
                for (i, name) in S6Attrs::FIELD_NAMES.iter().enumerate() {
                    a.set(name, ((bits >> i) & 1) as i64).unwrap();
                }
                a
            })
            .collect()
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The CRC-32/IEEE check value of "123456789".
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn round_trips_every_attribute_combination() {
        for a in all_attrs() {
            assert_eq!(decode(&encode(&a)).unwrap(), a);
        }
    }

    #[test]
    fn refuses_every_truncation_and_every_bit_flip() {
        for a in all_attrs() {
            let blob = encode(&a);
            for len in 0..blob.len() {
                assert!(
                    decode(&blob[..len]).is_err(),
                    "truncation to {len} bytes accepted for {a:?}"
                );
            }
            for byte in 0..blob.len() {
                for bit in 0..8 {
                    let mut bad = blob.clone();
                    bad[byte] ^= 1 << bit;
                    assert!(
                        decode(&bad).is_err(),
                        "bit {bit} of byte {byte} flipped and accepted for {a:?}"
                    );
                }
            }
            let mut longer = blob.clone();
            longer.push(0);
            assert!(decode(&longer).is_err(), "trailing byte accepted");
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
        let attrs = S6Attrs {
            delta_softplus: true,
            has_d: true,
            has_z: true,
            has_last_state: true,
            ..Default::default()
        };
        assert_eq!(decode(&V1_BLOB).unwrap(), attrs);
        assert_eq!(encode(&attrs), V1_BLOB);
    }

    #[test]
    fn refuses_newer_versions_and_foreign_data() {
        let a = S6Attrs::default();
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
        let err = decode(&newer).unwrap_err().to_string();
        assert!(err.contains("format version 2"), "{err}");
        assert!(decode(b"\x08\x01garbage").is_err());
        assert!(decode(&[0xff; 64]).is_err());
    }
}
