//! The interpreter's [`Backend`] on wgpu: runs `S6Scan`, `S6ScanHeads` (domain `s6plugin`) and MatMul on the
//! GPU and declines everything else — and anything it cannot take as is (other dtypes,
//! invalid nodes, sizes past the device's limits) — so that the CPU runs it and reports
//! errors the CPU way.

use crate::act::{Act, ActVec};
use crate::context::WgpuContext;
use crate::error::WgpuError;
use crate::scan::ScanInputs;
use s6_contract::contract::{check_dtypes, infer_dims, InputRole, ONNX_DOMAIN, OP_TYPE};
use s6_contract::{DType, S6Attrs};
use s6_onnx::interp::{Backend, ConstKey, InterpError, Tensor, TensorData};
use s6_onnx::proto::NodeProto;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many nodes of each kind ran on the GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// `S6Scan` and `S6ScanHeads` nodes.
    pub s6scan: usize,
    pub matmul: usize,
}

/// S6Scan and MatMul on a wgpu device, for `s6-run --backend gpu`.
#[derive(Debug)]
pub struct WgpuBackend {
    ctx: WgpuContext,
    scans: AtomicUsize,
    matmuls: AtomicUsize,
}

impl WgpuBackend {
    /// Opens the default adapter ([`WgpuContext::new`]).
    pub fn new() -> Result<WgpuBackend, WgpuError> {
        Ok(Self::from_context(WgpuContext::new()?))
    }

    pub fn from_context(ctx: WgpuContext) -> WgpuBackend {
        WgpuBackend {
            ctx,
            scans: AtomicUsize::new(0),
            matmuls: AtomicUsize::new(0),
        }
    }

    pub fn context(&self) -> &WgpuContext {
        &self.ctx
    }

    /// Nodes run on the GPU so far.
    pub fn stats(&self) -> BackendStats {
        BackendStats {
            s6scan: self.scans.load(Ordering::Relaxed),
            matmul: self.matmuls.load(Ordering::Relaxed),
        }
    }

    fn run_scan(
        &self,
        node: &NodeProto,
        inputs: &[Option<&Tensor>],
    ) -> Result<Option<Vec<Tensor>>, WgpuError> {
        let Some(attrs) = scan_attrs(node) else {
            return Ok(None);
        };
        let Some(tensors) = present(inputs) else {
            return Ok(None);
        };
        if node.output.len() != attrs.num_outputs() || tensors.len() != attrs.num_inputs() {
            return Ok(None);
        }
        let shapes = shapes_of(&tensors);
        let shape_refs: Vec<&[i64]> = shapes.iter().map(|s| &s[..]).collect();
        let Ok(dims) = infer_dims(&attrs, &shape_refs) else {
            return Ok(None);
        };
        let Some(dtypes) = dtypes_of(&tensors) else {
            return Ok(None);
        };
        if check_dtypes(&attrs, &dtypes).is_err() {
            return Ok(None);
        }
        let get = |role: InputRole| attrs.input_index(role).map(|i| tensors[i]);
        let act = |role: InputRole| get(role).and_then(|t| act_of(&t.data));
        let fp = |role: InputRole| match get(role).map(|t| &t.data) {
            Some(TensorData::F32(v)) => Some(&v[..]),
            _ => None,
        };
        let (Some(u), Some(delta), Some(a), Some(b), Some(c)) = (
            act(InputRole::U),
            act(InputRole::Delta),
            fp(InputRole::A),
            act(InputRole::B),
            act(InputRole::C),
        ) else {
            return Ok(None);
        };
        let x = ScanInputs {
            u,
            delta,
            a,
            b,
            c,
            d: fp(InputRole::D),
            z: act(InputRole::Z),
            delta_bias: fp(InputRole::DeltaBias),
            initial_state: fp(InputRole::InitialState),
        };
        let out = self.ctx.s6scan(&attrs, &dims, &x)?;
        let outs = scan_outputs(tensors[0], out.y, out.last_state, &dims.state_shape());
        self.scans.fetch_add(1, Ordering::Relaxed);
        Ok(Some(outs))
    }

    fn run_matmul(
        &self,
        node: &NodeProto,
        inputs: &[Option<&Tensor>],
        consts: &[Option<ConstKey>],
    ) -> Result<Option<Vec<Tensor>>, WgpuError> {
        let (&[Some(a), Some(b)], 1) = (inputs, node.output.len()) else {
            return Ok(None);
        };
        let (Some(aa), Some(bb)) = (act_of(&a.data), act_of(&b.data)) else {
            return Ok(None);
        };
        if aa.dtype() != bb.dtype() {
            return Ok(None);
        }
        let key = |i: usize| consts.get(i).copied().flatten();
        let out = self
            .ctx
            .matmul_keyed(aa, &a.shape, key(0), bb, &b.shape, key(1))?;
        self.matmuls.fetch_add(1, Ordering::Relaxed);
        Ok(Some(vec![Tensor {
            shape: out.shape,
            data: tensor_data(out.data),
        }]))
    }
}

/// The contract's attributes of an `S6Scan` node, through its one reader; `None` when they
/// break its rules (the CPU op then reports why).
fn scan_attrs(node: &NodeProto) -> Option<S6Attrs> {
    s6_onnx::patch::s6node::attrs_of(node).ok()
}

// Steps of both scan nodes (here and in `scan_heads::run_node`).

/// Every input of a node, or `None` when one is absent.
pub(crate) fn present<'a>(inputs: &[Option<&'a Tensor>]) -> Option<Vec<&'a Tensor>> {
    inputs.iter().copied().collect()
}

/// The tensors' shapes as the contract reads them.
pub(crate) fn shapes_of(tensors: &[&Tensor]) -> Vec<Vec<i64>> {
    tensors
        .iter()
        .map(|t| t.shape.iter().map(|&d| d as i64).collect())
        .collect()
}

/// The tensors' dtypes, or `None` when one is not a contract dtype.
pub(crate) fn dtypes_of(tensors: &[&Tensor]) -> Option<Vec<DType>> {
    tensors.iter().map(|t| dtype_of(&t.data)).collect()
}

/// y in the shape of the first input, then the last state (fp32, `state_shape`) when given.
pub(crate) fn scan_outputs(
    first: &Tensor,
    y: ActVec,
    last_state: Option<Vec<f32>>,
    state_shape: &[usize],
) -> Vec<Tensor> {
    let mut outs = vec![Tensor {
        shape: first.shape.clone(),
        data: tensor_data(y),
    }];
    if let Some(last) = last_state {
        outs.push(Tensor {
            shape: state_shape.to_vec(),
            data: TensorData::F32(last),
        });
    }
    outs
}

fn dtype_of(d: &TensorData) -> Option<DType> {
    match d {
        TensorData::F32(_) => Some(DType::F32),
        TensorData::F16(_) => Some(DType::F16),
        TensorData::BF16(_) => Some(DType::BF16),
        _ => None,
    }
}

pub(crate) fn act_of(d: &TensorData) -> Option<Act<'_>> {
    match d {
        TensorData::F32(v) => Some(Act::F32(v)),
        TensorData::F16(v) => Some(Act::F16(v)),
        TensorData::BF16(v) => Some(Act::BF16(v)),
        _ => None,
    }
}

fn tensor_data(v: ActVec) -> TensorData {
    match v {
        ActVec::F32(v) => TensorData::F32(v),
        ActVec::F16(v) => TensorData::F16(v),
        ActVec::BF16(v) => TensorData::BF16(v),
    }
}

impl Backend for WgpuBackend {
    fn name(&self) -> &str {
        "wgpu"
    }

    fn try_run(
        &self,
        node: &NodeProto,
        inputs: &[Option<&Tensor>],
    ) -> Result<Option<Vec<Tensor>>, InterpError> {
        self.try_run_consts(node, inputs, &[])
    }

    /// MatMul operands that are constants stay on the device across calls (S6Scan's A and D
    /// are small and packed with the per-call state, so they are still uploaded).
    fn try_run_consts(
        &self,
        node: &NodeProto,
        inputs: &[Option<&Tensor>],
        consts: &[Option<ConstKey<'_>>],
    ) -> Result<Option<Vec<Tensor>>, InterpError> {
        let result = match (node.domain.as_str(), node.op_type.as_str()) {
            (ONNX_DOMAIN, OP_TYPE) => self.run_scan(node, inputs),
            (ONNX_DOMAIN, s6_contract::contract_heads::OP_TYPE) => {
                let r = crate::scan_heads::run_node(&self.ctx, node, inputs);
                if let Ok(Some(_)) = r {
                    self.scans.fetch_add(1, Ordering::Relaxed);
                }
                r
            }
            ("" | "ai.onnx", "MatMul") => self.run_matmul(node, inputs, consts),
            _ => Ok(None),
        };
        match result {
            Ok(r) => Ok(r),
            // Valid but past this device's limits: the CPU takes it.
            Err(WgpuError::Unsupported { reason, .. }) => {
                tracing::debug!(node = %node.name, %reason, "left to the CPU");
                Ok(None)
            }
            Err(e) => Err(InterpError::Backend {
                backend: "wgpu".into(),
                node: node.name.clone(),
                reason: e.to_string(),
            }),
        }
    }

    fn end_session(&self, session: u64) {
        self.ctx.forget_session(session);
    }
}
