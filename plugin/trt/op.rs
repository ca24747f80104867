//! The two ops the plugin serves, `S6Scan` (`docs/s6scan.md`) and `S6ScanHeads`
//! (`docs/s6scan_heads.md`). What differs between them is their contract — fields, inputs, shape
//! rules, output shapes, kernels — and that is read here from `contract` / `contract_heads`.
//! Everything TensorRT-facing (`core`, `fields`, `blob`, the C++ shim) is written once over
//! [`OpAttrs`].

use std::ffi::c_void;

use super::error::PluginError;
use super::ffi::bridge::{DimRef, OpCode};
use crate::contract::{self, AttrValue, DType, InputRole, OutputRole, S6Attrs};
use crate::contract_heads::{self, HeadsAttrs, HeadsInputRole};
use crate::cuda;
use crate::error::ContractError;

/// Which op a creator, core or blob is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Scan,
    Heads,
}

impl Op {
    pub const ALL: [Op; 2] = [Op::Scan, Op::Heads];

    /// TensorRT plugin name (= ONNX `op_type`).
    pub fn name(self) -> &'static str {
        match self {
            Op::Scan => contract::OP_TYPE,
            Op::Heads => contract_heads::OP_TYPE,
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            Op::Scan => contract::PLUGIN_VERSION,
            Op::Heads => contract_heads::PLUGIN_VERSION,
        }
    }

    /// Plugin field names, in `getFieldNames()` order.
    pub fn field_names(self) -> &'static [&'static str] {
        match self {
            Op::Scan => &S6Attrs::FIELD_NAMES,
            Op::Heads => &HeadsAttrs::FIELD_NAMES,
        }
    }
}

impl TryFrom<OpCode> for Op {
    type Error = PluginError;
    fn try_from(code: OpCode) -> Result<Self, PluginError> {
        match code {
            OpCode::Scan => Ok(Op::Scan),
            OpCode::Heads => Ok(Op::Heads),
            other => Err(PluginError::Tensor {
                tensor: "op".into(),
                reason: format!("unknown op code {}", other.repr),
            }),
        }
    }
}

impl From<Op> for OpCode {
    fn from(op: Op) -> Self {
        match op {
            Op::Scan => OpCode::Scan,
            Op::Heads => OpCode::Heads,
        }
    }
}

/// One plugin's attributes, of either op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpAttrs {
    Scan(S6Attrs),
    Heads(HeadsAttrs),
}

impl From<S6Attrs> for OpAttrs {
    fn from(a: S6Attrs) -> Self {
        OpAttrs::Scan(a)
    }
}

impl From<HeadsAttrs> for OpAttrs {
    fn from(a: HeadsAttrs) -> Self {
        OpAttrs::Heads(a)
    }
}

/// One present input: its contract name and whether it carries the activation dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputInfo {
    pub name: &'static str,
    pub activation: bool,
}

impl OpAttrs {
    pub fn op(&self) -> Op {
        match self {
            OpAttrs::Scan(_) => Op::Scan,
            OpAttrs::Heads(_) => Op::Heads,
        }
    }

    /// Builds the attributes from validated (name, value) pairs with the op's own reader
    /// (`S6Attrs::from_attributes`, `HeadsAttrs::from_fields`): all fields, once, 0 or 1.
    pub fn from_fields(op: Op, fields: &[(&str, i64)]) -> Result<Self, ContractError> {
        let pairs = fields.iter().map(|&(n, v)| (n, v));
        Ok(match op {
            Op::Scan => OpAttrs::Scan(S6Attrs::from_attributes(
                pairs.map(|(n, v)| (n, AttrValue::Int(v))),
            )?),
            Op::Heads => OpAttrs::Heads(HeadsAttrs::from_fields(pairs)?),
        })
    }

    /// The field values in [`Op::field_names`] order.
    pub fn values(&self) -> Vec<bool> {
        match self {
            OpAttrs::Scan(a) => a.values().to_vec(),
            OpAttrs::Heads(a) => a.values().to_vec(),
        }
    }

    /// The present inputs, in packed order.
    pub fn inputs(&self) -> Vec<InputInfo> {
        match self {
            OpAttrs::Scan(a) => a
                .inputs()
                .into_iter()
                .map(|r| InputInfo {
                    name: r.name(),
                    activation: r.is_activation(),
                })
                .collect(),
            OpAttrs::Heads(a) => a
                .inputs()
                .into_iter()
                .map(|r| InputInfo {
                    name: r.name(),
                    activation: r.is_activation(),
                })
                .collect(),
        }
    }

    /// The present outputs (both ops: `y`, then `last_state` if flagged).
    pub fn outputs(&self) -> Vec<OutputRole> {
        match self {
            OpAttrs::Scan(a) => a.outputs(),
            OpAttrs::Heads(a) => a.outputs(),
        }
    }

    pub fn num_inputs(&self) -> usize {
        match self {
            OpAttrs::Scan(a) => a.num_inputs(),
            OpAttrs::Heads(a) => a.num_inputs(),
        }
    }

    pub fn num_outputs(&self) -> usize {
        match self {
            OpAttrs::Scan(a) => a.num_outputs(),
            OpAttrs::Heads(a) => a.num_outputs(),
        }
    }

    /// Which input dimension each dimension of output `role` copies (no output needs
    /// arithmetic on dimensions), after checking the ranks it reads. `S6Scan`: y = u's shape,
    /// last_state = (batch, D of u, N of A). `S6ScanHeads`: y = x's shape, last_state =
    /// (x.d[0], x.d[2], x.d[3], B.d[3]).
    pub fn output_dims(
        &self,
        role: OutputRole,
        input_ranks: &[i32],
    ) -> Result<Vec<DimRef>, PluginError> {
        let inputs = self.inputs();
        let need = |i: usize, rank: i32| -> Result<(), PluginError> {
            match input_ranks.get(i) {
                Some(&r) if r == rank => Ok(()),
                got => Err(PluginError::Tensor {
                    tensor: inputs.get(i).map_or("input", |x| x.name).to_string(),
                    reason: match got {
                        Some(r) => format!("expected rank {rank}, got {r}"),
                        None => format!("expected rank {rank}, but there is no such input"),
                    },
                }),
            }
        };
        let r = |input: usize, axis: i32| DimRef {
            input: input as i32,
            axis,
        };
        Ok(match (self, role) {
            (OpAttrs::Scan(a), role) => {
                need(0, 3)?;
                let ai = a.input_index(InputRole::A).unwrap_or(2);
                need(ai, 2)?;
                match role {
                    OutputRole::Y => vec![r(0, 0), r(0, 1), r(0, 2)],
                    OutputRole::LastState => {
                        let d_axis = if a.channels_last { 2 } else { 1 };
                        vec![r(0, 0), r(0, d_axis), r(ai, 1)]
                    }
                }
            }
            (OpAttrs::Heads(a), role) => {
                need(0, 4)?;
                let bi = a.input_index(HeadsInputRole::B).unwrap_or(3);
                need(bi, 4)?;
                match role {
                    OutputRole::Y => vec![r(0, 0), r(0, 1), r(0, 2), r(0, 3)],
                    OutputRole::LastState => vec![r(0, 0), r(0, 2), r(0, 3), r(bi, 3)],
                }
            }
        })
    }

    /// The contract's dtype rules; returns the activation dtype.
    pub fn check_dtypes(&self, dtypes: &[DType]) -> Result<DType, ContractError> {
        match self {
            OpAttrs::Scan(a) => contract::check_dtypes(a, dtypes),
            OpAttrs::Heads(a) => contract_heads::check_heads_dtypes(a, dtypes),
        }
    }

    /// The contract's shape rules on the packed input shapes.
    pub fn check_shapes(&self, shapes: &[&[i64]]) -> Result<(), ContractError> {
        match self {
            OpAttrs::Scan(a) => contract::infer_dims(a, shapes).map(drop),
            OpAttrs::Heads(a) => contract_heads::infer_heads_dims(a, shapes).map(drop),
        }
    }

    /// Scratch bytes a launch at these input shapes needs.
    pub fn workspace_size(&self, shapes: &[&[i64]], dtype: DType) -> Result<usize, ContractError> {
        Ok(match self {
            OpAttrs::Scan(a) => cuda::workspace_size(a, &contract::infer_dims(a, shapes)?, dtype),
            OpAttrs::Heads(a) => {
                cuda::heads_workspace_size(a, &contract_heads::infer_heads_dims(a, shapes)?, dtype)
            }
        })
    }

    /// Launches the op's kernels on `stream`.
    ///
    /// # Safety
    /// `in_ptrs` / `out_ptrs` are device buffers of the packed tensors `shapes` describes (0
    /// only for empty ones), `workspace` holds [`Self::workspace_size`] bytes, and `stream` is a
    /// stream of the current CUDA context.
    pub unsafe fn launch(
        &self,
        shapes: &[&[i64]],
        dtype: DType,
        in_ptrs: &[usize],
        out_ptrs: &[usize],
        workspace: usize,
        stream: *mut c_void,
    ) -> Result<(), PluginError> {
        let ptr = |p: Option<&usize>| p.map_or(0, |&p| p as u64);
        let out = |role: OutputRole, outputs: Vec<OutputRole>| {
            ptr(outputs
                .iter()
                .position(|r| *r == role)
                .and_then(|i| out_ptrs.get(i)))
        };
        match self {
            OpAttrs::Scan(a) => {
                let dims = contract::infer_dims(a, shapes)?;
                let at = |role: InputRole| ptr(a.input_index(role).and_then(|i| in_ptrs.get(i)));
                let ptrs = cuda::ScanPtrs {
                    u: at(InputRole::U),
                    delta: at(InputRole::Delta),
                    a: at(InputRole::A),
                    b: at(InputRole::B),
                    c: at(InputRole::C),
                    d: at(InputRole::D),
                    z: at(InputRole::Z),
                    delta_bias: at(InputRole::DeltaBias),
                    initial_state: at(InputRole::InitialState),
                    y: out(OutputRole::Y, a.outputs()),
                    last_state: out(OutputRole::LastState, a.outputs()),
                    workspace: workspace as u64,
                };
                let l = cuda::ScanLaunch {
                    attrs: *a,
                    dims,
                    dtype,
                    ptrs,
                };
                // SAFETY: the caller's contract, with dims validated against the contract.
                unsafe { cuda::launch(&l, stream)? };
            }
            OpAttrs::Heads(a) => {
                let dims = contract_heads::infer_heads_dims(a, shapes)?;
                let at =
                    |role: HeadsInputRole| ptr(a.input_index(role).and_then(|i| in_ptrs.get(i)));
                let ptrs = cuda::HeadsPtrs {
                    x: at(HeadsInputRole::X),
                    dt: at(HeadsInputRole::Dt),
                    a: at(HeadsInputRole::A),
                    b: at(HeadsInputRole::B),
                    c: at(HeadsInputRole::C),
                    d: at(HeadsInputRole::D),
                    z: at(HeadsInputRole::Z),
                    dt_bias: at(HeadsInputRole::DtBias),
                    dt_limit: at(HeadsInputRole::DtLimit),
                    initial_state: at(HeadsInputRole::InitialState),
                    y: out(OutputRole::Y, a.outputs()),
                    last_state: out(OutputRole::LastState, a.outputs()),
                    workspace: workspace as u64,
                };
                let l = cuda::HeadsLaunch {
                    attrs: *a,
                    dims,
                    dtype,
                    ptrs,
                };
                // SAFETY: as above.
                unsafe { cuda::launch_heads(&l, stream)? };
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_contracts() {
        assert_eq!(Op::Scan.name(), "S6Scan");
        assert_eq!(Op::Heads.name(), "S6ScanHeads");
        assert_eq!(Op::Heads.version(), "1");
        assert_eq!(Op::Heads.field_names().len(), 7);
        for op in Op::ALL {
            assert_eq!(Op::try_from(OpCode::from(op)).unwrap(), op);
        }
        assert!(Op::try_from(OpCode { repr: 7 }).is_err());
    }

    #[test]
    fn heads_output_dims_read_x_and_b() {
        let a = OpAttrs::Heads(HeadsAttrs {
            has_d: true,
            has_last_state: true,
            ..Default::default()
        });
        // x, dt, A, B, C, D
        let ranks = [4, 3, 1, 4, 4, 1];
        let pairs = |v: Vec<DimRef>| v.iter().map(|r| (r.input, r.axis)).collect::<Vec<_>>();
        assert_eq!(
            pairs(a.output_dims(OutputRole::Y, &ranks).unwrap()),
            [(0, 0), (0, 1), (0, 2), (0, 3)]
        );
        assert_eq!(
            pairs(a.output_dims(OutputRole::LastState, &ranks).unwrap()),
            [(0, 0), (0, 2), (0, 3), (3, 3)]
        );
        let mut bad = ranks;
        bad[0] = 3; // a Mamba1-shaped u
        let e = a.output_dims(OutputRole::Y, &bad).unwrap_err().to_string();
        assert!(e.contains('x') && e.contains("rank 4"), "{e}");
    }
}
