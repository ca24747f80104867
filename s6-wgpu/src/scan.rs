//! `S6Scan` on the GPU: packs the contract's inputs into two buffers, runs
//! `shaders/s6scan.wgsl`, reads back y and the last state.

use crate::act::{Act, ActVec};
use crate::context::{Binding, Kernel, Storage, WgpuContext};
use crate::error::WgpuError;
use half::f16;
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
    WgpuError::Input {
        op: OP,
        input,
        reason,
    }
}

fn check_len(input: &'static str, got: usize, want: usize) -> Result<(), WgpuError> {
    if got != want {
        return Err(input_err(
            input,
            format!("has {got} elements, the dims need {want}"),
        ));
    }
    Ok(())
}

fn check_present(input: &'static str, present: bool, flag: bool) -> Result<(), WgpuError> {
    if present != flag {
        let reason = if flag {
            "the attributes say present, but it is missing"
        } else {
            "given, but the attributes say absent"
        };
        return Err(input_err(input, reason.to_string()));
    }
    Ok(())
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
    u32::try_from(v).map_err(|_| WgpuError::Unsupported {
        op: OP,
        reason: format!("{what} = {v} does not fit 32-bit indexing"),
    })
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
        if dims.dstate > MAX_DSTATE {
            return Err(WgpuError::Unsupported {
                op: OP,
                reason: format!("N = {} > {MAX_DSTATE}", dims.dstate),
            });
        }
        let storage = if act == DType::F16 && self.native_f16() {
            Storage::F16
        } else {
            Storage::F32
        };
        let elem = match storage {
            Storage::F32 => 4u64,
            Storage::F16 => 2,
        };

        // Activations: u, delta, B, C, z back to back.
        let mut act_parts = vec![inputs.u, inputs.delta, inputs.b, inputs.c];
        act_parts.extend(inputs.z);
        let mut offsets = Vec::with_capacity(act_parts.len());
        let mut total = 0usize;
        for p in &act_parts {
            offsets.push(total);
            total += p.len();
        }
        self.check_binding(OP, "the activations", total as u64 * elem)?;
        let act_bytes: Vec<u8> = match storage {
            Storage::F32 => {
                let mut v = Vec::with_capacity(total);
                for p in &act_parts {
                    p.extend_f32(&mut v);
                }
                bytemuck::cast_slice(&v).to_vec()
            }
            Storage::F16 => {
                let mut v: Vec<f16> = Vec::with_capacity(total);
                for p in &act_parts {
                    v.extend_from_slice(p.as_f16().expect("f16 storage only for f16 inputs"));
                }
                bytemuck::cast_slice(&v).to_vec()
            }
        };

        // fp32 parameters: A, D, delta_bias, initial_state back to back.
        let mut fp: Vec<f32> = inputs.a.to_vec();
        let off_dskip = fp.len();
        fp.extend_from_slice(inputs.d.unwrap_or(&[]));
        let off_dbias = fp.len();
        fp.extend_from_slice(inputs.delta_bias.unwrap_or(&[]));
        let off_init = fp.len();
        fp.extend_from_slice(inputs.initial_state.unwrap_or(&[]));
        self.check_binding(
            OP,
            "A, D, delta_bias and initial_state",
            fp.len() as u64 * 4,
        )?;

        let y_bytes = dims.act_len() as u64 * elem;
        let last_bytes = if attrs.has_last_state {
            dims.state_len() as u64 * 4
        } else {
            0
        };
        self.check_binding(OP, "y", y_bytes)?;
        self.check_binding(OP, "last_state", last_bytes)?;

        // Invocations per channel: enough to cover N once, up to the workgroup.
        let nt = dims.dstate.clamp(1, WG).next_power_of_two();
        let chans = dims.batch * dims.dim;
        let wgs = chans.div_ceil(WG / nt);
        let max = self.max_workgroups_per_dim() as usize;
        let nwg_x = wgs.clamp(1, max);
        let nwg_y = wgs.div_ceil(nwg_x);
        if nwg_y > max {
            return Err(WgpuError::Unsupported {
                op: OP,
                reason: format!("{chans} channels need more than {max}x{max} workgroups"),
            });
        }

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
            nwg_x: nwg_x as u32,
            nt: nt as u32,
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

        let pipeline = self.pipeline(Kernel::Scan, storage)?;
        let mut out = self
            .run(
                OP,
                &pipeline,
                &[
                    Binding::Uniform(bytemuck::bytes_of(&params)),
                    Binding::Input(&act_bytes),
                    Binding::Input(bytemuck::cast_slice(&fp)),
                    Binding::Output {
                        bytes: y_bytes,
                        read: true,
                    },
                    Binding::Output {
                        bytes: last_bytes,
                        read: attrs.has_last_state,
                    },
                ],
                [nwg_x as u32, nwg_y as u32, 1],
            )?
            .into_iter();
        let y_raw = out.next().unwrap_or_default();
        let y = match storage {
            Storage::F16 => ActVec::F16(bytemuck::pod_collect_to_vec(&y_raw)),
            Storage::F32 => ActVec::from_f32(act, bytemuck::pod_collect_to_vec(&y_raw)),
        };
        let last_state = out.next().map(|raw| bytemuck::pod_collect_to_vec(&raw));
        Ok(ScanOutputs { y, last_state })
    }
}
