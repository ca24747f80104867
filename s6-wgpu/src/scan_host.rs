//! Host steps both scan ops (`scan.rs`, `scan_heads.rs`) take in the same way: input checks,
//! packing the activations and the fp32 inputs into one buffer each, the workgroup grid, and
//! the dispatch with its readback. Each op keeps its own validation order, uniform block and
//! shader.

use crate::act::{device_bytes, Act, ActVec};
use crate::context::{Binding, Kernel, Storage, WgpuContext};
use crate::error::WgpuError;
use crate::scan::MAX_DSTATE;
use s6_contract::DType;

pub(crate) fn input_err(op: &'static str, input: &'static str, reason: String) -> WgpuError {
    WgpuError::Input { op, input, reason }
}

pub(crate) fn check_len(
    op: &'static str,
    input: &'static str,
    got: usize,
    want: usize,
) -> Result<(), WgpuError> {
    if got != want {
        return Err(input_err(
            op,
            input,
            format!("has {got} elements, the dims need {want}"),
        ));
    }
    Ok(())
}

/// An optional input is given exactly when its flag says so.
pub(crate) fn check_present(
    op: &'static str,
    input: &'static str,
    present: bool,
    flag: bool,
) -> Result<(), WgpuError> {
    if present != flag {
        let reason = if flag {
            "the attributes say present, but it is missing"
        } else {
            "given, but the attributes say absent"
        };
        return Err(input_err(op, input, reason.to_string()));
    }
    Ok(())
}

/// [`check_present`], then the length `want` of an input of length `len` (if given).
pub(crate) fn check_opt(
    op: &'static str,
    input: &'static str,
    len: Option<usize>,
    flag: bool,
    want: usize,
) -> Result<(), WgpuError> {
    check_present(op, input, len.is_some(), flag)?;
    match len {
        Some(n) => check_len(op, input, n, want),
        None => Ok(()),
    }
}

pub(crate) fn to_u32(op: &'static str, what: &str, v: usize) -> Result<u32, WgpuError> {
    u32::try_from(v).map_err(|_| WgpuError::Unsupported {
        op,
        reason: format!("{what} = {v} does not fit 32-bit indexing"),
    })
}

/// The shaders keep at most [`MAX_DSTATE`] state entries per row.
pub(crate) fn check_dstate(op: &'static str, dstate: usize) -> Result<(), WgpuError> {
    if dstate > MAX_DSTATE {
        return Err(WgpuError::Unsupported {
            op,
            reason: format!("N = {dstate} > {MAX_DSTATE}"),
        });
    }
    Ok(())
}

/// The activations of one call, back to back in one buffer.
pub(crate) struct PackedActs {
    pub bytes: Vec<u8>,
    /// Element offset of each part.
    pub offsets: Vec<usize>,
    /// Elements in all.
    pub total: usize,
}

/// Packs `parts` in `storage`, after checking that the device can bind them.
pub(crate) fn pack_acts(
    ctx: &WgpuContext,
    op: &'static str,
    storage: Storage,
    parts: &[Act],
) -> Result<PackedActs, WgpuError> {
    let mut offsets = Vec::with_capacity(parts.len());
    let mut total = 0usize;
    for p in parts {
        offsets.push(total);
        total += p.len();
    }
    ctx.check_binding(op, "the activations", total as u64 * storage.elem_bytes())?;
    Ok(PackedActs {
        bytes: device_bytes(parts, storage),
        offsets,
        total,
    })
}

/// `a`, then each of `rest` (an absent one takes no room) back to back, with the offset of each
/// of `rest`; checked against the device's binding size under the name `what`.
pub(crate) fn pack_fp<const K: usize>(
    ctx: &WgpuContext,
    op: &'static str,
    what: &str,
    a: &[f32],
    rest: [Option<&[f32]>; K],
) -> Result<(Vec<f32>, [usize; K]), WgpuError> {
    let mut fp = a.to_vec();
    let mut offsets = [0; K];
    for (off, v) in offsets.iter_mut().zip(rest) {
        *off = fp.len();
        fp.extend_from_slice(v.unwrap_or(&[]));
    }
    ctx.check_binding(op, what, fp.len() as u64 * 4)?;
    Ok((fp, offsets))
}

/// Bytes of y (`y_len` activations) and of last_state (`state_len` fp32, none unless
/// `has_last_state`), after checking that the device can bind them.
pub(crate) fn output_bytes(
    ctx: &WgpuContext,
    op: &'static str,
    storage: Storage,
    y_len: usize,
    state_len: usize,
    has_last_state: bool,
) -> Result<(u64, u64), WgpuError> {
    let y_bytes = y_len as u64 * storage.elem_bytes();
    let last_bytes = if has_last_state {
        state_len as u64 * 4
    } else {
        0
    };
    ctx.check_binding(op, "y", y_bytes)?;
    ctx.check_binding(op, "last_state", last_bytes)?;
    Ok((y_bytes, last_bytes))
}

/// Invocations per row and the workgroups over all rows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    /// Invocations per row: enough to cover N once, up to the workgroup.
    pub nt: usize,
    pub nwg_x: usize,
    pub nwg_y: usize,
}

/// The grid of `rows` rows of N = `dstate` for a shader of workgroup size `wg`; `noun` names
/// the rows in the error when they do not fit.
pub(crate) fn grid(
    ctx: &WgpuContext,
    op: &'static str,
    wg: usize,
    dstate: usize,
    rows: usize,
    noun: &str,
) -> Result<Grid, WgpuError> {
    let nt = dstate.clamp(1, wg).next_power_of_two();
    let wgs = rows.div_ceil(wg / nt);
    let max = ctx.max_workgroups_per_dim() as usize;
    let nwg_x = wgs.clamp(1, max);
    let nwg_y = wgs.div_ceil(nwg_x);
    if nwg_y > max {
        return Err(WgpuError::Unsupported {
            op,
            reason: format!("{rows} {noun} need more than {max}x{max} workgroups"),
        });
    }
    Ok(Grid { nt, nwg_x, nwg_y })
}

/// The buffers of one scan dispatch, in binding order.
pub(crate) struct ScanBuffers<'a> {
    pub params: &'a [u8],
    pub acts: &'a [u8],
    pub fp: &'a [f32],
    pub y_bytes: u64,
    pub last_bytes: u64,
    pub has_last_state: bool,
}

/// Runs `kernel` over `grid` and reads back y (as `act`) and, when flagged, the last state.
pub(crate) fn dispatch(
    ctx: &WgpuContext,
    op: &'static str,
    kernel: Kernel,
    storage: Storage,
    act: DType,
    buffers: &ScanBuffers,
    grid: Grid,
) -> Result<(ActVec, Option<Vec<f32>>), WgpuError> {
    let pipeline = ctx.pipeline(kernel, storage)?;
    let mut out = ctx
        .run(
            op,
            &pipeline,
            &[
                Binding::Uniform(buffers.params),
                Binding::Input(buffers.acts),
                Binding::Input(bytemuck::cast_slice(buffers.fp)),
                Binding::Output {
                    bytes: buffers.y_bytes,
                    read: true,
                },
                Binding::Output {
                    bytes: buffers.last_bytes,
                    read: buffers.has_last_state,
                },
            ],
            [grid.nwg_x as u32, grid.nwg_y as u32, 1],
        )?
        .into_iter();
    let y_raw = out.next().unwrap_or_default();
    let y = ActVec::from_device(storage, act, &y_raw);
    let last_state = out.next().map(|raw| bytemuck::pod_collect_to_vec(&raw));
    Ok((y, last_state))
}
