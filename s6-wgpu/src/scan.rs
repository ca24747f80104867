//! `S6Scan` on the GPU: packs the contract's inputs into two buffers, runs
//! `shaders/s6scan.wgsl`, reads back y and the last state.

use crate::act::{Act, ActVec};
use crate::context::{Kernel, WgpuContext};
use crate::error::WgpuError;
use crate::scan_host;
use s6_contract::{DType, S6Attrs, ScanDims};

const OP: &str = "S6Scan";
/// Workgroup size of the shader.
const WG: usize = 32;
/// The shader keeps at most this many state entries per invocation (`MAXS`), 32 invocations
/// per channel: N <= 256.
pub const MAX_DSTATE: usize = 8 * WG;

/// The op's inputs in contract order; `None` where the attribute says absent.
#[derive(Clone, Copy, Debug)]
pub struct ScanInputs<'a> {
    pub u: Act<'a>,
    pub delta: Act<'a>,
    /// (D, N)
    pub a: &'a [f32],
    pub b: Act<'a>,
    pub c: Act<'a>,
    /// (D)
    pub d: Option<&'a [f32]>,
    pub z: Option<Act<'a>>,
    /// (D)
    pub delta_bias: Option<&'a [f32]>,
    /// (B, D, N)
    pub initial_state: Option<&'a [f32]>,
}

/// y in the dtype and layout of u; `last_state` (B, D, N) when `has_last_state`.
#[derive(Clone, Debug)]
pub struct ScanOutputs {
    pub y: ActVec,
    pub last_state: Option<Vec<f32>>,
}

/// Uniform block of the shader (same field order).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    dim: u32,
    seqlen: u32,
    dstate: u32,
    groups: u32,
    flags: u32,
    nwg_x: u32,
    nt: u32,
    act_sb: u32,
    act_sd: u32,
    act_sl: u32,
    pad0: u32,
    bc_sb: u32,
    bc_sg: u32,
    bc_sn: u32,
    bc_sl: u32,
    off_u: u32,
    off_delta: u32,
    off_b: u32,
    off_c: u32,
    off_z: u32,
    off_a: u32,
    off_dskip: u32,
    off_dbias: u32,
    off_init: u32,
    pad1: u32,
    pad2: u32,
    pad3: u32,
}

fn input_err(input: &'static str, reason: String) -> WgpuError {
    scan_host::input_err(OP, input, reason)
}

fn check_len(input: &'static str, got: usize, want: usize) -> Result<(), WgpuError> {
    scan_host::check_len(OP, input, got, want)
}

fn check_present(input: &'static str, present: bool, flag: bool) -> Result<(), WgpuError> {
    scan_host::check_present(OP, input, present, flag)
}

/// Checks presence, lengths and dtypes against `attrs` and `dims`; returns the activation dtype.
fn validate(attrs: &S6Attrs, dims: &ScanDims, x: &ScanInputs) -> Result<DType, WgpuError> {
    check_present("D", x.d.is_some(), attrs.has_d)?;
    check_present("z", x.z.is_some(), attrs.has_z)?;
    check_present("delta_bias", x.delta_bias.is_some(), attrs.has_delta_bias)?;
    check_present(
        "initial_state",
        x.initial_state.is_some(),
        attrs.has_initial_state,
    )?;
    if dims.groups == 0 || dims.dim % dims.groups != 0 {
        return Err(input_err(
            "B",
            format!("{} groups do not divide D = {}", dims.groups, dims.dim),
        ));
    }
    let act = x.u.dtype();
    let mut acts = vec![("u", x.u), ("delta", x.delta), ("B", x.b), ("C", x.c)];
    if let Some(z) = x.z {
        acts.push(("z", z));
    }
    for (name, t) in &acts {
        if t.dtype() != act {
            return Err(input_err(
                name,
                format!("is {}, u is {act}: activations share one dtype", t.dtype()),
            ));
        }
        let want = if *name == "B" || *name == "C" {
            dims.bc_len()
        } else {
            dims.act_len()
        };
        check_len(name, t.len(), want)?;
    }
    check_len("A", x.a.len(), dims.dim * dims.dstate)?;
    if let Some(v) = x.d {
        check_len("D", v.len(), dims.dim)?;
    }
    if let Some(v) = x.delta_bias {
        check_len("delta_bias", v.len(), dims.dim)?;
    }
    if let Some(v) = x.initial_state {
        check_len("initial_state", v.len(), dims.state_len())?;
    }
    Ok(act)
}

fn to_u32(what: &str, v: usize) -> Result<u32, WgpuError> {
    scan_host::to_u32(OP, what, v)
}

impl WgpuContext {
    /// Runs `S6Scan` (docs/s6scan.md) on the GPU. Activations may be f32, f16 or bf16: f16
    /// stays f16 on an adapter with `SHADER_F16`, otherwise f16/bf16 are widened to f32 on
    /// upload and y is rounded back to the input dtype. All arithmetic is f32.
    pub fn s6scan(
        &self,
        attrs: &S6Attrs,
        dims: &ScanDims,
        inputs: &ScanInputs,
    ) -> Result<ScanOutputs, WgpuError> {
        let act = validate(attrs, dims, inputs)?;
        scan_host::check_dstate(OP, dims.dstate)?;
        let storage = self.storage_for(act);

        // Activations: u, delta, B, C, z back to back.
        let mut act_parts = vec![inputs.u, inputs.delta, inputs.b, inputs.c];
        act_parts.extend(inputs.z);
        let acts = scan_host::pack_acts(self, OP, storage, &act_parts)?;
        let offsets = &acts.offsets;

        // fp32 parameters: A, D, delta_bias, initial_state back to back.
        let (fp, [off_dskip, off_dbias, off_init]) = scan_host::pack_fp(
            self,
            OP,
            "A, D, delta_bias and initial_state",
            inputs.a,
            [inputs.d, inputs.delta_bias, inputs.initial_state],
        )?;

        let (y_bytes, last_bytes) = scan_host::output_bytes(
            self,
            OP,
            storage,
            dims.act_len(),
            dims.state_len(),
            attrs.has_last_state,
        )?;
        let grid = scan_host::grid(self, OP, WG, dims.dstate, dims.batch * dims.dim, "channels")?;

        let s = dims.act_strides(attrs);
        let bs = dims.bc_strides(attrs);
        let flags = u32::from(attrs.delta_softplus)
            | u32::from(attrs.has_d) << 1
            | u32::from(attrs.has_z) << 2
            | u32::from(attrs.has_delta_bias) << 3
            | u32::from(attrs.has_initial_state) << 4
            | u32::from(attrs.has_last_state) << 5;
        let params = Params {
            batch: to_u32("batch", dims.batch)?,
            dim: to_u32("D", dims.dim)?,
            seqlen: to_u32("L", dims.seqlen)?,
            dstate: to_u32("N", dims.dstate)?,
            groups: to_u32("groups", dims.groups)?,
            flags,
            nwg_x: grid.nwg_x as u32,
            nt: grid.nt as u32,
            act_sb: to_u32("stride", s.batch)?,
            act_sd: to_u32("stride", s.chan)?,
            act_sl: to_u32("stride", s.time)?,
            pad0: 0,
            bc_sb: to_u32("stride", bs.batch)?,
            bc_sg: to_u32("stride", bs.group)?,
            bc_sn: to_u32("stride", bs.state)?,
            bc_sl: to_u32("stride", bs.time)?,
            off_u: offsets[0] as u32,
            off_delta: offsets[1] as u32,
            off_b: offsets[2] as u32,
            off_c: offsets[3] as u32,
            off_z: offsets.get(4).copied().unwrap_or(0) as u32,
            off_a: 0,
            off_dskip: off_dskip as u32,
            off_dbias: off_dbias as u32,
            off_init: off_init as u32,
            pad1: 0,
            pad2: 0,
            pad3: 0,
        };

        let (y, last_state) = scan_host::dispatch(
            self,
            OP,
            Kernel::Scan,
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
        Ok(ScanOutputs { y, last_state })
    }
}
