//! `S6ScanHeads` (Mamba2's scan, `docs/s6scan_heads.md`) on the GPU: packs the contract's
//! inputs into two buffers, runs `shaders/s6scan_heads.wgsl`, reads back y and the last state.

use crate::act::{Act, ActVec};
use crate::context::{Kernel, WgpuContext};
use crate::error::WgpuError;
use crate::scan_host;
use s6_contract::contract_heads::{HeadsAttrs, HeadsDims};
use s6_contract::DType;

const OP: &str = "S6ScanHeads";
/// Workgroup size of the shader.
const WG: usize = 32;

/// The op's inputs in contract order; `None` where the attributes say absent.
#[derive(Clone, Copy, Debug)]
pub struct HeadsScanInputs<'a> {
    /// (batch, L, H, P)
    pub x: Act<'a>,
    /// (batch, L, H)
    pub dt: Act<'a>,
    /// (H)
    pub a: &'a [f32],
    /// (batch, L, G, N)
    pub b: Act<'a>,
    pub c: Act<'a>,
    /// (H)
    pub d: Option<&'a [f32]>,
    /// (batch, L, H, P)
    pub z: Option<Act<'a>>,
    /// (H)
    pub dt_bias: Option<&'a [f32]>,
    /// (2) = [lo, hi]
    pub dt_limit: Option<&'a [f32]>,
    /// (batch, H, P, N)
    pub initial_state: Option<&'a [f32]>,
}

/// y in x's dtype; `last_state` (batch, H, P, N) when `has_last_state`.
#[derive(Clone, Debug)]
pub struct HeadsScanOutputs {
    pub y: ActVec,
    pub last_state: Option<Vec<f32>>,
}

/// Uniform block of the shader (same field order).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    seqlen: u32,
    heads: u32,
    headdim: u32,
    dstate: u32,
    groups: u32,
    flags: u32,
    nwg_x: u32,
    nt: u32,
    off_x: u32,
    off_dt: u32,
    off_b: u32,
    off_c: u32,
    off_z: u32,
    off_a: u32,
    off_dskip: u32,
    off_dbias: u32,
    off_limit: u32,
    off_init: u32,
    pad0: u32,
}

fn input_err(input: &'static str, reason: String) -> WgpuError {
    scan_host::input_err(OP, input, reason)
}

fn check_len(input: &'static str, got: usize, want: usize) -> Result<(), WgpuError> {
    scan_host::check_len(OP, input, got, want)
}

fn check_opt(
    input: &'static str,
    v: Option<usize>,
    flag: bool,
    want: usize,
) -> Result<(), WgpuError> {
    scan_host::check_opt(OP, input, v, flag, want)
}

/// Checks presence, lengths and dtypes against `attrs` and `dims`; returns the activation dtype.
fn validate(attrs: &HeadsAttrs, dims: &HeadsDims, x: &HeadsScanInputs) -> Result<DType, WgpuError> {
    if dims.groups == 0 || dims.heads % dims.groups != 0 {
        return Err(input_err(
            "B",
            format!("{} groups do not divide H = {}", dims.groups, dims.heads),
        ));
    }
    let act = x.x.dtype();
    let mut acts = vec![("x", x.x, dims.x_len()), ("dt", x.dt, dims.dt_len())];
    acts.push(("B", x.b, dims.bc_len()));
    acts.push(("C", x.c, dims.bc_len()));
    check_opt("z", x.z.map(|v| v.len()), attrs.has_z, dims.x_len())?;
    if let Some(z) = x.z {
        acts.push(("z", z, dims.x_len()));
    }
    for (name, t, want) in &acts {
        if t.dtype() != act {
            return Err(input_err(
                name,
                format!("is {}, x is {act}: activations share one dtype", t.dtype()),
            ));
        }
        check_len(name, t.len(), *want)?;
    }
    check_len("A", x.a.len(), dims.heads)?;
    check_opt("D", x.d.map(<[f32]>::len), attrs.has_d, dims.heads)?;
    check_opt(
        "dt_bias",
        x.dt_bias.map(<[f32]>::len),
        attrs.has_dt_bias,
        dims.heads,
    )?;
    check_opt(
        "dt_limit",
        x.dt_limit.map(<[f32]>::len),
        attrs.has_dt_limit,
        2,
    )?;
    check_opt(
        "initial_state",
        x.initial_state.map(<[f32]>::len),
        attrs.has_initial_state,
        dims.state_len(),
    )?;
    Ok(act)
}

fn to_u32(what: &str, v: usize) -> Result<u32, WgpuError> {
    scan_host::to_u32(OP, what, v)
}

impl WgpuContext {
    /// Runs `S6ScanHeads` on the GPU, with the dtype handling of [`WgpuContext::s6scan`]: f16
    /// stays f16 with `SHADER_F16`, otherwise f16/bf16 are widened on upload and y rounded back.
    pub fn s6scan_heads(
        &self,
        attrs: &HeadsAttrs,
        dims: &HeadsDims,
        inputs: &HeadsScanInputs,
    ) -> Result<HeadsScanOutputs, WgpuError> {
        let act = validate(attrs, dims, inputs)?;
        scan_host::check_dstate(OP, dims.dstate)?;
        let last_of = |v: Option<&[f32]>| {
            attrs
                .has_last_state
                .then(|| v.map_or_else(|| vec![0.0; dims.state_len()], <[f32]>::to_vec))
        };
        if dims.x_len() == 0 || dims.seqlen == 0 {
            // Nothing to scan: y is empty, the last state is the initial one (contract rule 7).
            return Ok(HeadsScanOutputs {
                y: ActVec::from_f32(act, vec![0.0; dims.x_len()]),
                last_state: last_of(inputs.initial_state),
            });
        }
        let storage = self.storage_for(act);

        // Activations: x, dt, B, C, z back to back.
        let mut parts = vec![inputs.x, inputs.dt, inputs.b, inputs.c];
        parts.extend(inputs.z);
        let acts = scan_host::pack_acts(self, OP, storage, &parts)?;
        let (offsets, total) = (&acts.offsets, acts.total);

        // fp32 parameters: A, D, dt_bias, dt_limit, initial_state back to back.
        let (fp, [off_dskip, off_dbias, off_limit, off_init]) = scan_host::pack_fp(
            self,
            OP,
            "A, D, dt_bias, dt_limit and initial_state",
            inputs.a,
            [
                inputs.d,
                inputs.dt_bias,
                inputs.dt_limit,
                inputs.initial_state,
            ],
        )?;

        let (y_bytes, last_bytes) = scan_host::output_bytes(
            self,
            OP,
            storage,
            dims.x_len(),
            dims.state_len(),
            attrs.has_last_state,
        )?;
        let rows = dims.batch * dims.heads * dims.headdim;
        let grid = scan_host::grid(self, OP, WG, dims.dstate, rows, "rows")?;
        // Largest index the shader forms: into acts (total) and into the state tensors.
        to_u32("activation elements", total)?;
        to_u32("state elements", dims.state_len())?;
        let flags = u32::from(attrs.dt_softplus)
            | u32::from(attrs.has_d) << 1
            | u32::from(attrs.has_z) << 2
            | u32::from(attrs.has_dt_bias) << 3
            | u32::from(attrs.has_dt_limit) << 4
            | u32::from(attrs.has_initial_state) << 5
            | u32::from(attrs.has_last_state) << 6;
        let params = Params {
            batch: to_u32("batch", dims.batch)?,
            seqlen: to_u32("L", dims.seqlen)?,
            heads: to_u32("H", dims.heads)?,
            headdim: to_u32("P", dims.headdim)?,
            dstate: to_u32("N", dims.dstate)?,
            groups: to_u32("groups", dims.groups)?,
            flags,
            nwg_x: grid.nwg_x as u32,
            nt: grid.nt as u32,
            off_x: offsets[0] as u32,
            off_dt: offsets[1] as u32,
            off_b: offsets[2] as u32,
            off_c: offsets[3] as u32,
            off_z: offsets.get(4).copied().unwrap_or(0) as u32,
            off_a: 0,
            off_dskip: off_dskip as u32,
            off_dbias: off_dbias as u32,
            off_limit: off_limit as u32,
            off_init: off_init as u32,
            pad0: 0,
        };

        let (y, last_state) = scan_host::dispatch(
            self,
            OP,
            Kernel::ScanHeads,
            storage,
            act,
            &scan_host::ScanBuffers {
                params: bytemuck::bytes_of(&params),
                acts: &acts.bytes,
                fp: &fp,
                y_bytes,
                last_bytes,
                has_last_state: attrs.has_last_state,
            },
            grid,
        )?;
        Ok(HeadsScanOutputs { y, last_state })
    }
}

/// An `S6ScanHeads` node for the interpreter's backend: `Ok(None)` (the CPU takes it and
/// reports any error) unless the node is valid and its tensors are of the contract's dtypes.
pub(crate) fn run_node(
    ctx: &WgpuContext,
    node: &s6_onnx::proto::NodeProto,
    inputs: &[Option<&s6_onnx::interp::Tensor>],
) -> Result<Option<Vec<s6_onnx::interp::Tensor>>, WgpuError> {
    use crate::backend::{act_of, dtypes_of, present, scan_outputs, shapes_of};
    use s6_contract::contract_heads::{check_heads_dtypes, infer_heads_dims, HeadsInputRole as R};
    use s6_onnx::interp::TensorData;
    use s6_onnx::proto::attribute_proto::AttributeType;

    let mut fields = Vec::new();
    for a in &node.attribute {
        if a.name == "plugin_version" || a.name == "plugin_namespace" {
            continue;
        }
        if a.type_.enum_value() != Ok(AttributeType::INT) {
            return Ok(None);
        }
        fields.push((a.name.as_str(), a.i));
    }
    let Ok(attrs) = HeadsAttrs::from_fields(fields) else {
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
    let Ok(dims) = infer_heads_dims(&attrs, &shape_refs) else {
        return Ok(None);
    };
    let Some(dtypes) = dtypes_of(&tensors) else {
        return Ok(None);
    };
    if check_heads_dtypes(&attrs, &dtypes).is_err() {
        return Ok(None);
    }
    let get = |role: R| attrs.input_index(role).map(|i| tensors[i]);
    let act = |role: R| get(role).and_then(|t| act_of(&t.data));
    let fp = |role: R| match get(role).map(|t| &t.data) {
        Some(TensorData::F32(v)) => Some(&v[..]),
        _ => None,
    };
    let (Some(x), Some(dt), Some(a), Some(b), Some(c)) =
        (act(R::X), act(R::Dt), fp(R::A), act(R::B), act(R::C))
    else {
        return Ok(None);
    };
    let v = HeadsScanInputs {
        x,
        dt,
        a,
        b,
        c,
        d: fp(R::D),
        z: act(R::Z),
        dt_bias: fp(R::DtBias),
        dt_limit: fp(R::DtLimit),
        initial_state: fp(R::InitialState),
    };
    let out = ctx.s6scan_heads(&attrs, &dims, &v)?;
    let outs = scan_outputs(tensors[0], out.y, out.last_state, &dims.state_shape());
    Ok(Some(outs))
}
