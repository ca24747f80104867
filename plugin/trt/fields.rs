//! Plugin fields → [`OpAttrs`]: what `IPluginCreator::createPlugin` receives, for either op.
//!
//! TensorRT's ONNX parser passes each INT node attribute as one `kINT32` value, and only the
//! names `getFieldNames()` lists. We also accept `kINT8`, `kINT16` and `kINT64` (other producers
//! of fields). Every field of the op is required (`docs/s6scan.md`: the parser drops a missing
//! attribute with only a warning, so a default would hide a patcher bug). A missing, unknown,
//! repeated, non-integer, multi-valued or out-of-range field refuses the whole plugin, naming
//! the field.

use super::error::PluginError;
use super::op::{Op, OpAttrs};

/// TensorRT's `PluginFieldType` values we read (the enum is stable across 8.x–11.x).
pub mod field_type {
    pub const FLOAT16: i32 = 0;
    pub const FLOAT32: i32 = 1;
    pub const FLOAT64: i32 = 2;
    pub const INT8: i32 = 3;
    pub const INT16: i32 = 4;
    pub const INT32: i32 = 5;
    pub const CHAR: i32 = 6;
    pub const DIMS: i32 = 7;
    pub const UNKNOWN: i32 = 8;
    pub const BF16: i32 = 9;
    pub const INT64: i32 = 10;

    pub fn type_name(t: i32) -> String {
        match t {
            FLOAT16 => "kFLOAT16".into(),
            FLOAT32 => "kFLOAT32".into(),
            FLOAT64 => "kFLOAT64".into(),
            INT8 => "kINT8".into(),
            INT16 => "kINT16".into(),
            INT32 => "kINT32".into(),
            CHAR => "kCHAR".into(),
            DIMS => "kDIMS".into(),
            UNKNOWN => "kUNKNOWN".into(),
            BF16 => "kBF16".into(),
            INT64 => "kINT64".into(),
            other => format!("type code {other}"),
        }
    }
}

/// Node attributes of TensorRT's plugin mechanism itself, not of the op: ignored if passed.
const PLUGIN_MECHANISM_FIELDS: [&str; 2] = ["plugin_version", "plugin_namespace"];

/// One field as TensorRT passed it; `value` is read only for a single integer.
#[derive(Debug, Clone)]
struct RawField {
    name: String,
    ftype: i32,
    length: i32,
    value: Option<i64>,
}

/// Fields collected from a `PluginFieldCollection`, validated by [`FieldSet::attrs`].
#[derive(Debug, Default, Clone)]
pub struct FieldSet {
    fields: Vec<RawField>,
}

impl FieldSet {
    /// Records a field.
    ///
    /// # Safety
    /// `data` is null or points to at least `length` elements of the type `ftype` names.
    pub unsafe fn add_raw(
        &mut self,
        name: &[u8],
        ftype: i32,
        length: i32,
        data: *const u8,
    ) -> Result<(), PluginError> {
        let name = std::str::from_utf8(name)
            .map_err(|_| PluginError::Field {
                name: String::from_utf8_lossy(name).into_owned(),
                reason: "name is not UTF-8".into(),
            })?
            .to_string();
        use field_type::*;
        let value = if length == 1 && !data.is_null() {
            // SAFETY: the caller guarantees `data` holds `length` (= 1) elements of `ftype`;
            // read_unaligned because TensorRT gives no alignment promise for field data.
            unsafe {
                match ftype {
                    INT8 => Some(std::ptr::read_unaligned(data as *const i8) as i64),
                    INT16 => Some(std::ptr::read_unaligned(data as *const i16) as i64),
                    INT32 => Some(std::ptr::read_unaligned(data as *const i32) as i64),
                    INT64 => Some(std::ptr::read_unaligned(data as *const i64)),
                    _ => None,
                }
            }
        } else {
            None
        };
        self.fields.push(RawField {
            name,
            ftype,
            length,
            value,
        });
        Ok(())
    }

    /// Records a field from a safe value (tests, Rust callers).
    pub fn add_i64(&mut self, name: &str, ftype: i32, value: i64) {
        self.fields.push(RawField {
            name: name.into(),
            ftype,
            length: 1,
            value: Some(value),
        });
    }

    /// Validates the fields as `op`'s and returns its attributes.
    pub fn attrs(&self, op: Op) -> Result<OpAttrs, PluginError> {
        use field_type::*;
        let names = op.field_names();
        let mut pairs: Vec<(&str, i64)> = Vec::with_capacity(names.len());
        for f in &self.fields {
            let err = |reason: String| PluginError::Field {
                name: f.name.clone(),
                reason,
            };
            if PLUGIN_MECHANISM_FIELDS.contains(&f.name.as_str()) {
                continue;
            }
            if !names.contains(&f.name.as_str()) {
                return Err(err(format!(
                    "unknown field ({} v{} takes {})",
                    op.name(),
                    op.version(),
                    names.join(", ")
                )));
            }
            if pairs.iter().any(|(n, _)| *n == f.name) {
                return Err(err("given twice".into()));
            }
            if !matches!(f.ftype, INT8 | INT16 | INT32 | INT64) {
                return Err(err(format!(
                    "type {} is not an integer type (expected kINT32, as TensorRT's ONNX parser \
                     passes INT attributes)",
                    field_type::type_name(f.ftype)
                )));
            }
            if f.length != 1 {
                return Err(err(format!("expected exactly 1 value, got {}", f.length)));
            }
            let v = f.value.ok_or_else(|| err("data pointer is null".into()))?;
            pairs.push((&f.name, v));
        }
        if let Some(missing) = names.iter().find(|n| !pairs.iter().any(|(p, _)| p == *n)) {
            return Err(PluginError::Field {
                name: missing.to_string(),
                reason: format!(
                    "missing (all {} {} fields are required, zeros included)",
                    names.len(),
                    op.name()
                ),
            });
        }
        // Range (0/1) and the op's own reading: its contract reader, naming the field.
        OpAttrs::from_fields(op, &pairs).map_err(|e| match e {
            crate::error::ContractError::Attribute { name, reason } => {
                PluginError::Field { name, reason }
            }
            other => other.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::field_type::*;
    use super::*;
    use crate::contract::S6Attrs;
    use crate::contract_heads::HeadsAttrs;

    fn scan(fs: &FieldSet) -> S6Attrs {
        match fs.attrs(Op::Scan).unwrap() {
            OpAttrs::Scan(a) => a,
            other => panic!("{other:?}"),
        }
    }

    /// The fields not in `except`, as kINT32 zeros.
    fn zeros_except(except: &[&str]) -> FieldSet {
        let mut fs = FieldSet::default();
        for n in S6Attrs::FIELD_NAMES {
            if !except.contains(&n) {
                fs.add_i64(n, INT32, 0);
            }
        }
        fs
    }

    #[test]
    fn onnx_parser_style_fields() {
        let mut fs = zeros_except(&["has_z", "has_D", "delta_softplus"]);
        let one: i32 = 1;
        let zero: i32 = 0;
        // SAFETY: pointers to live i32 values, length 1.
        unsafe {
            fs.add_raw(b"has_z", INT32, 1, &one as *const i32 as *const u8)
                .unwrap();
            fs.add_raw(b"has_D", INT32, 1, &zero as *const i32 as *const u8)
                .unwrap();
            fs.add_raw(b"delta_softplus", INT32, 1, &one as *const i32 as *const u8)
                .unwrap();
        }
        let a = scan(&fs);
        assert!(a.has_z && a.delta_softplus && !a.has_d && !a.has_last_state);
    }

    #[test]
    fn other_integer_widths() {
        let mut fs = zeros_except(&["has_last_state", "channels_last"]);
        let v8: i8 = 1;
        let v64: i64 = 1;
        // SAFETY: pointers to live values of the named types, length 1.
        unsafe {
            fs.add_raw(b"has_last_state", INT8, 1, &v8 as *const i8 as *const u8)
                .unwrap();
            fs.add_raw(b"channels_last", INT64, 1, &v64 as *const i64 as *const u8)
                .unwrap();
        }
        fs.add_i64("plugin_version", INT32, 1);
        let a = scan(&fs);
        assert_eq!(
            a,
            S6Attrs {
                has_last_state: true,
                channels_last: true,
                ..Default::default()
            }
        );
    }

    fn refused(fs: &FieldSet) -> String {
        let e = fs.attrs(Op::Scan).unwrap_err().to_string();
        assert!(e.contains('`'), "{e}");
        e
    }

    #[test]
    fn refusals_name_the_field() {
        let fs = zeros_except(&["bc_channels_last"]);
        let e = refused(&fs);
        assert!(
            e.contains("`bc_channels_last`") && e.contains("missing"),
            "{e}"
        );

        let mut fs = zeros_except(&[]);
        fs.add_i64("has_zz", INT32, 1);
        assert!(refused(&fs).contains("`has_zz`"));

        let mut fs = zeros_except(&["has_z"]);
        fs.add_i64("has_z", INT32, 2);
        let e = refused(&fs);
        assert!(e.contains("`has_z`") && e.contains("got 2"), "{e}");

        let mut fs = zeros_except(&["has_z"]);
        fs.add_i64("has_z", INT32, -1);
        assert!(refused(&fs).contains("`has_z`"));

        let mut fs = zeros_except(&["has_D"]);
        let f: f32 = 1.0;
        // SAFETY: pointer to a live f32, length 1.
        unsafe {
            fs.add_raw(b"has_D", FLOAT32, 1, &f as *const f32 as *const u8)
                .unwrap()
        };
        let e = refused(&fs);
        assert!(e.contains("`has_D`") && e.contains("kFLOAT32"), "{e}");

        let mut fs = zeros_except(&["has_D"]);
        let two = [1i32, 1];
        // SAFETY: pointer to two live i32 values, length 2.
        unsafe {
            fs.add_raw(b"has_D", INT32, 2, two.as_ptr() as *const u8)
                .unwrap()
        };
        assert!(refused(&fs).contains("exactly 1 value"));

        let mut fs = zeros_except(&["has_D"]);
        // SAFETY: null data is allowed by the contract of add_raw.
        unsafe { fs.add_raw(b"has_D", INT32, 1, std::ptr::null()).unwrap() };
        assert!(refused(&fs).contains("null"));

        let mut fs = zeros_except(&[]);
        fs.add_i64("has_D", INT32, 1);
        assert!(refused(&fs).contains("twice"));
    }

    /// The heads op reads its own seven fields, as the ONNX parser passes them, and refuses
    /// S6Scan's.
    #[test]
    fn heads_fields() {
        let mut fs = FieldSet::default();
        for (i, n) in HeadsAttrs::FIELD_NAMES.iter().enumerate() {
            fs.add_i64(n, INT32, (i % 2) as i64);
        }
        let want = HeadsAttrs {
            has_d: true,
            has_dt_bias: true,
            has_initial_state: true,
            ..Default::default()
        };
        assert_eq!(fs.attrs(Op::Heads).unwrap(), OpAttrs::Heads(want));
        let e = fs.attrs(Op::Scan).unwrap_err().to_string();
        assert!(e.contains("`dt_softplus`") && e.contains("unknown"), "{e}");

        let mut fs = FieldSet::default();
        for n in &HeadsAttrs::FIELD_NAMES[..6] {
            fs.add_i64(n, INT32, 0);
        }
        let e = fs.attrs(Op::Heads).unwrap_err().to_string();
        assert!(
            e.contains("`has_last_state`") && e.contains("missing") && e.contains("7 S6ScanHeads"),
            "{e}"
        );
        fs.add_i64("has_last_state", INT32, 2);
        let e = fs.attrs(Op::Heads).unwrap_err().to_string();
        assert!(
            e.contains("`has_last_state`") && e.contains("0 or 1"),
            "{e}"
        );
        let mut fs = FieldSet::default();
        for n in HeadsAttrs::FIELD_NAMES {
            fs.add_i64(n, INT32, 0);
        }
        fs.add_i64("channels_last", INT32, 0);
        let e = fs.attrs(Op::Heads).unwrap_err().to_string();
        assert!(
            e.contains("`channels_last`") && e.contains("S6ScanHeads v1 takes dt_softplus"),
            "{e}"
        );
    }
}
