//! Node attributes decoded once, when the graph is parsed, with typed getters whose errors
//! name the attribute.

use super::error::InterpError;
use super::tensor::Tensor;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::AttributeProto;
use std::collections::HashMap;
use std::path::Path;

/// One decoded attribute value.
#[derive(Clone, Debug)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Floats(Vec<f32>),
    Str(String),
    Strings(Vec<String>),
    Tensor(Tensor),
    /// Kinds the interpreter's ops never read (graphs, sparse tensors, types).
    Other(&'static str),
}

/// The attributes of one node, by name.
#[derive(Clone, Debug, Default)]
pub struct Attrs {
    map: HashMap<String, Attr>,
}

impl Attrs {
    /// Decodes `attrs`; tensors with external data are read relative to `base_dir`.
    pub fn parse(attrs: &[AttributeProto], base_dir: &Path) -> Result<Attrs, InterpError> {
        let mut map = HashMap::new();
        for a in attrs {
            let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            let v = match a.type_.enum_value() {
                Ok(AttributeType::INT) => Attr::Int(a.i),
                Ok(AttributeType::INTS) => Attr::Ints(a.ints.clone()),
                Ok(AttributeType::FLOAT) => Attr::Float(a.f),
                Ok(AttributeType::FLOATS) => Attr::Floats(a.floats.clone()),
                Ok(AttributeType::STRING) => Attr::Str(s(&a.s)),
                Ok(AttributeType::STRINGS) => {
                    Attr::Strings(a.strings.iter().map(|x| s(x)).collect())
                }
                Ok(AttributeType::TENSOR) => match a.t.as_ref() {
                    Some(t) => Attr::Tensor(Tensor::from_proto(t, base_dir)?),
                    None => Attr::Other("empty tensor"),
                },
                Ok(AttributeType::GRAPH) | Ok(AttributeType::GRAPHS) => Attr::Other("graph"),
                Ok(AttributeType::SPARSE_TENSOR) | Ok(AttributeType::SPARSE_TENSORS) => {
                    Attr::Other("sparse tensor")
                }
                _ => Attr::Other("unsupported attribute type"),
            };
            map.insert(a.name.clone(), v);
        }
        Ok(Attrs { map })
    }

    pub fn get(&self, name: &str) -> Option<&Attr> {
        self.map.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(|s| s.as_str())
    }

    fn wrong(name: &str, want: &str, got: &Attr) -> InterpError {
        InterpError::op(format!("attribute '{name}' must be {want}, got {got:?}"))
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, InterpError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Attr::Int(i)) => Ok(Some(*i)),
            Some(o) => Err(Self::wrong(name, "an int", o)),
        }
    }

    pub fn int_or(&self, name: &str, default: i64) -> Result<i64, InterpError> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, InterpError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v.clone())),
            Some(Attr::Int(i)) => Ok(Some(vec![*i])),
            Some(o) => Err(Self::wrong(name, "ints", o)),
        }
    }

    pub fn float(&self, name: &str) -> Result<Option<f32>, InterpError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Attr::Float(f)) => Ok(Some(*f)),
            Some(Attr::Int(i)) => Ok(Some(*i as f32)),
            Some(o) => Err(Self::wrong(name, "a float", o)),
        }
    }

    pub fn float_or(&self, name: &str, default: f32) -> Result<f32, InterpError> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, InterpError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Attr::Floats(v)) => Ok(Some(v.clone())),
            Some(o) => Err(Self::wrong(name, "floats", o)),
        }
    }

    pub fn string(&self, name: &str) -> Result<Option<&str>, InterpError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Attr::Str(s)) => Ok(Some(s.as_str())),
            Some(o) => Err(Self::wrong(name, "a string", o)),
        }
    }

    pub fn tensor(&self, name: &str) -> Result<Option<&Tensor>, InterpError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Attr::Tensor(t)) => Ok(Some(t)),
            Some(o) => Err(Self::wrong(name, "a tensor", o)),
        }
    }
}
