//! CUDA side of `S6ScanHeads` (Mamba2's SSD, `docs/s6scan_heads.md`): kernel choice and launch
//! on a raw stream, the same interface as `S6Scan`'s [`super::launch`].
//!
//! Kernels (`kernels/s6scan_heads.cu`, in the same module as `S6Scan`'s):
//! - chunked prefill on tensor cores (fp16/bf16, P a multiple of 16, N of 64 or 128, sm_80+,
//!   16-byte aligned x/B/C), in two forms:
//!   - split (P a multiple of 64, with the workspace [`heads_workspace_size`] asks for), a state
//!     pass then y of all chunks in parallel; the state pass takes one of two forms:
//!     - chain, where batch · H · P / 16 chains fill the GPU (≥ 2 per SM): each (16 channels,
//!       head, batch row) walks its chunks with only the state update and stores each chunk's
//!       entering state (16 bits);
//!     - parallel, with fewer chains: each chunk's own contribution and decay, all chunks in
//!       parallel (fp32), then an elementwise pass over the chunks turns them into entering
//!       states in place;
//!   - fused (no workspace): one pass per (16 channels, head, batch row) walking the chunks with
//!     both y and the state;
//! - the recurrence: every dtype and shape with N ≤ 256 (decode steps, fp32, short L), one warp
//!   per (batch row, head, channel).
//!
//! Offsets are 64-bit in all of them.

use std::ffi::c_void;

use cudarc::driver::sys;

use crate::contract::DType;
use crate::contract_heads::{HeadsAttrs, HeadsDims};

use super::params::dtype_index;
use super::{module, CudaError};

/// Raw device pointers of one launch (0 for absent optional tensors), in TensorRT's order.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadsPtrs {
    pub x: u64,
    pub dt: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub d: u64,
    pub z: u64,
    pub dt_bias: u64,
    pub dt_limit: u64,
    pub initial_state: u64,
    pub y: u64,
    pub last_state: u64,
    pub workspace: u64,
}

/// Everything one launch needs.
#[derive(Clone, Copy, Debug)]
pub struct HeadsLaunch {
    pub attrs: HeadsAttrs,
    pub dims: HeadsDims,
    pub dtype: DType,
    pub ptrs: HeadsPtrs,
}

/// Which kernel a launch takes (benchmarks and tests force one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeadsKernel {
    /// The split chunked kernels where they apply (workspace given), else the fused one, for
    /// L ≥ [`CHUNK_MIN_L`]; else the recurrence.
    #[default]
    Auto,
    Split,
    Fused,
    Recurrence,
}

/// States per lane of the recurrence kernels (`s6h_rec{NPL}_*`): N ≤ 32·NPL.
pub const HEADS_REC_NPL: [usize; 4] = [1, 2, 4, 8];
/// N / 16 of the chunked kernels (`s6h_chunk{NS}_*`).
pub const HEADS_CHUNK_NS: [usize; 2] = [4, 8];
/// Steps per chunk and channels per block of the chunked kernel (`S6H_Q`, `S6H_PT`).
const CHUNK_Q: usize = 64;
const CHUNK_PT: usize = 16;
const WARPS: u32 = 4;
/// Shorter sequences take the recurrence: below this a chunk is mostly padding.
pub const CHUNK_MIN_L: usize = 32;
/// Up to this many chunks the automatic choice prefers the fused kernel unless the split
/// kernels' chain form applies.
const FUSED_MAX_CHUNKS: usize = 2;

/// Channels per block of the split output pass (`S6H_YPT`).
const OUTPUT_PT: usize = 64;

/// Dynamic shared memory (bytes) of the chunked kernels for one state size (`S6H_SMEM_*` in the
/// .cu file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSmem {
    pub fused: usize,
    pub chunkstate: usize,
    pub states: usize,
    /// Both output passes.
    pub outputs: usize,
}

/// Stages of the chain state kernel's load ring (`S6H_STAGES`).
const STAGES: usize = 3;

/// [`ChunkSmem`] for N = 16·ns.
pub fn chunk_smem_bytes(ns: usize) -> ChunkSmem {
    let bp = ns * 16 + 8;
    let ws = WARPS as usize * 3 * CHUNK_Q * 4;
    ChunkSmem {
        fused: 2 * (2 * CHUNK_Q * bp + CHUNK_PT * bp + CHUNK_Q * (CHUNK_PT + 8)) * 2 + ws,
        chunkstate: (CHUNK_Q * bp + CHUNK_Q * (CHUNK_PT + 8)) * 2 + ws,
        states: STAGES * (CHUNK_Q * bp + CHUNK_Q * (CHUNK_PT + 8)) * 2 + ws,
        outputs: (2 * CHUNK_Q * bp + OUTPUT_PT * bp + CHUNK_Q * (OUTPUT_PT + 8)) * 2 + ws,
    }
}

/// True when the split kernels can take these sizes and dtype (device and pointers aside).
fn split_shape(dims: &HeadsDims, dtype: DType) -> bool {
    dtype != DType::F32
        && dims.headdim % OUTPUT_PT == 0
        && HEADS_CHUNK_NS.iter().any(|&ns| ns * 16 == dims.dstate)
}

/// Kernel parameters, passed by value; mirrors `S6HeadsParams` (all fields 8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct HeadsParams {
    x: u64,
    dt: u64,
    a: u64,
    b: u64,
    c: u64,
    d: u64,
    z: u64,
    dt_bias: u64,
    dt_limit: u64,
    initial_state: u64,
    y: u64,
    last_state: u64,
    batch: i64,
    seqlen: i64,
    heads: i64,
    headdim: i64,
    dstate: i64,
    groups: i64,
    flags: i64,
}

/// Bytes of scratch memory a launch with these sizes needs: the split kernels' state of every
/// chunk and its decay, fp32, `batch · H · ceil(L / 64) · (P · N + 1) · 4`; 0 where they do not apply
/// (a launch without workspace takes the fused kernel). A pure function of the sizes and dtype,
/// monotone in each, so the size asked at a profile's largest shapes covers every smaller one.
/// Saturates instead of wrapping (such a size is refused by any allocator).
pub fn heads_workspace_size(_attrs: &HeadsAttrs, dims: &HeadsDims, dtype: DType) -> usize {
    if !split_shape(dims, dtype) {
        return 0;
    }
    [
        dims.batch,
        dims.heads,
        dims.seqlen.div_ceil(CHUNK_Q),
        dims.headdim.saturating_mul(dims.dstate).saturating_add(1),
        4,
    ]
    .iter()
    .fold(1usize, |acc, &v| acc.saturating_mul(v))
}

/// The chunked kernel's variant index for `l` on a device of compute capability `cc`, or why
/// it does not apply.
pub fn chunk_applies(l: &HeadsLaunch, cc: u32) -> Result<usize, CudaError> {
    let (d, p) = (&l.dims, &l.ptrs);
    let ns = HEADS_CHUNK_NS.iter().position(|&ns| ns * 16 == d.dstate);
    let aligned =
        [p.x, p.b, p.c].iter().all(|v| v % 16 == 0) && [p.y, p.z].iter().all(|v| v % 4 == 0);
    match ns {
        Some(i)
            if l.dtype != DType::F32
                && cc >= 80
                && d.headdim % CHUNK_PT == 0
                && aligned
                && d.heads <= 65_535
                && d.batch <= 65_535 =>
        {
            Ok(i)
        }
        _ => Err(CudaError::Unsupported(format!(
            "the chunked kernel needs fp16/bf16, P % {CHUNK_PT} = 0, N of 64 or 128, sm_80+ \
             and 16-byte aligned x/B/C (dtype {:?}, P {}, N {}, sm_{cc})",
            l.dtype, d.headdim, d.dstate
        ))),
    }
}

/// The split kernels' variant index, or why they do not apply.
pub fn split_applies(l: &HeadsLaunch, cc: u32) -> Result<usize, CudaError> {
    let i = chunk_applies(l, cc)?;
    if !split_shape(&l.dims, l.dtype) || l.ptrs.workspace == 0 {
        return Err(CudaError::Unsupported(format!(
            "the split kernels need P % {OUTPUT_PT} = 0 and a workspace (P {}, workspace {})",
            l.dims.headdim,
            if l.ptrs.workspace == 0 {
                "none"
            } else {
                "given"
            }
        )));
    }
    let blocks_x = l.dims.seqlen.div_ceil(CHUNK_Q) * (l.dims.headdim / OUTPUT_PT);
    if blocks_x > i32::MAX as usize {
        return Err(CudaError::Unsupported(format!(
            "L = {} is too long for one launch",
            l.dims.seqlen
        )));
    }
    Ok(i)
}

/// The recurrence kernel's variant index (states per lane) for state size `n`.
fn rec_variant(n: usize) -> Result<usize, CudaError> {
    HEADS_REC_NPL
        .iter()
        .position(|&npl| 32 * npl >= n)
        .ok_or_else(|| CudaError::Unsupported(format!("state size N = {n} > 256")))
}

/// True when the split kernels' state pass takes its chain form on a GPU of `sm_count` SMs:
/// batch · H · P / 16 chains, at least 2 per SM.
pub fn chain_form(dims: &HeadsDims, sm_count: u32) -> bool {
    dims.batch
        .saturating_mul(dims.heads)
        .saturating_mul(dims.headdim / CHUNK_PT)
        >= 2 * sm_count as usize
}

/// The launch a choice makes, as `(kernel, variant index)`.
fn choose(
    l: &HeadsLaunch,
    cc: u32,
    sm_count: u32,
    force: HeadsKernel,
) -> Result<(HeadsKernel, usize), CudaError> {
    match force {
        HeadsKernel::Fused => chunk_applies(l, cc).map(|i| (HeadsKernel::Fused, i)),
        HeadsKernel::Split => split_applies(l, cc).map(|i| (HeadsKernel::Split, i)),
        HeadsKernel::Recurrence => rec_variant(l.dims.dstate).map(|i| (HeadsKernel::Recurrence, i)),
        HeadsKernel::Auto => {
            if l.dims.seqlen >= CHUNK_MIN_L {
                // With few chains and one or two chunks, the fused kernel's single launch beats
                // the split passes (H200, 2026-12-01: 10.2 against 14.3 µs at 24 heads, L 128).
                let short = l.dims.seqlen.div_ceil(CHUNK_Q) <= FUSED_MAX_CHUNKS
                    && !chain_form(&l.dims, sm_count);
                if let (false, Ok(i)) = (short, split_applies(l, cc)) {
                    return Ok((HeadsKernel::Split, i));
                }
                if let Ok(i) = chunk_applies(l, cc) {
                    return Ok((HeadsKernel::Fused, i));
                }
            }
            rec_variant(l.dims.dstate).map(|i| (HeadsKernel::Recurrence, i))
        }
    }
}

/// Enqueues the heads scan on `stream`.
///
/// # Safety
/// Every non-zero pointer in `l.ptrs` must be a device allocation of the size the contract
/// gives for `l.dims` in the current context (`workspace`: [`heads_workspace_size`] bytes), and
/// `stream` a valid stream of that context.
pub unsafe fn launch_heads(l: &HeadsLaunch, stream: *mut c_void) -> Result<(), CudaError> {
    // SAFETY: forwarded; same contract.
    unsafe { launch_heads_with(l, stream, HeadsKernel::Auto) }
}

/// As [`launch_heads`], with the kernel forced (tests cover each, benchmarks compare them).
///
/// # Safety
/// As [`launch_heads`].
pub unsafe fn launch_heads_with(
    l: &HeadsLaunch,
    stream: *mut c_void,
    kernel: HeadsKernel,
) -> Result<(), CudaError> {
    let (a, p, d) = (&l.attrs, &l.ptrs, &l.dims);
    for (ok, name) in [
        (p.x != 0, "x"),
        (p.dt != 0, "dt"),
        (p.a != 0, "A"),
        (p.b != 0, "B"),
        (p.c != 0, "C"),
        (p.y != 0, "y"),
        (!a.has_d || p.d != 0, "D"),
        (!a.has_z || p.z != 0, "z"),
        (!a.has_dt_bias || p.dt_bias != 0, "dt_bias"),
        (!a.has_dt_limit || p.dt_limit != 0, "dt_limit"),
        (
            !a.has_initial_state || p.initial_state != 0,
            "initial_state",
        ),
        (!a.has_last_state || p.last_state != 0, "last_state"),
    ] {
        if !ok {
            return Err(CudaError::NullPointer(name));
        }
    }
    if d.groups == 0 || d.heads % d.groups != 0 {
        return Err(CudaError::Unsupported(format!(
            "groups {} must divide H = {}",
            d.groups, d.heads
        )));
    }
    if d.batch == 0 || d.heads == 0 || d.headdim == 0 {
        return Ok(()); // nothing to compute, nothing to write
    }
    let k = module::kernels()?;
    let (kind, vi) = choose(l, k.cc, k.sm_count, kernel)?;
    let on = |present: bool, ptr: u64| if present { ptr } else { 0 };
    let kp = HeadsParams {
        x: p.x,
        dt: p.dt,
        a: p.a,
        b: p.b,
        c: p.c,
        d: on(a.has_d, p.d),
        z: on(a.has_z, p.z),
        dt_bias: on(a.has_dt_bias, p.dt_bias),
        dt_limit: on(a.has_dt_limit, p.dt_limit),
        initial_state: on(a.has_initial_state, p.initial_state),
        y: p.y,
        last_state: on(a.has_last_state, p.last_state),
        batch: d.batch as i64,
        seqlen: d.seqlen as i64,
        heads: d.heads as i64,
        headdim: d.headdim as i64,
        dstate: d.dstate as i64,
        groups: d.groups as i64,
        flags: a.dt_softplus as i64,
    };
    let launch = |f: sys::CUfunction,
                  grid: (u32, u32, u32),
                  block: u32,
                  smem: usize,
                  ws: Option<u64>|
     -> Result<(), CudaError> {
        if f.is_null() {
            return Err(CudaError::Unsupported(format!(
                "no {kind:?} kernel for sm_{}",
                k.cc
            )));
        }
        let mut ws = ws.unwrap_or(0);
        let mut args = [
            &kp as *const HeadsParams as *mut c_void,
            &mut ws as *mut u64 as *mut c_void,
        ];
        // SAFETY: f belongs to the module loaded in the current context; args holds pointers
        // to a HeadsParams matching the kernel's by-value S6HeadsParams (and, for the split
        // kernels, to the workspace pointer), alive across the call (the driver copies
        // parameters at launch); a kernel ignores arguments it does not declare; smem is
        // within the limit set at module load; the caller guarantees pointers and stream.
        module::check(
            unsafe {
                sys::cuLaunchKernel(
                    f,
                    grid.0,
                    grid.1,
                    grid.2,
                    block,
                    1,
                    1,
                    smem as u32,
                    stream as sys::CUstream,
                    args.as_mut_ptr(),
                    std::ptr::null_mut(),
                )
            },
            "cuLaunchKernel(s6h)",
        )
    };
    let run = |f, grid, smem, ws| launch(f, grid, 32 * WARPS, smem, ws);
    let run_block = |f, grid, block, ws| launch(f, grid, block, 0, ws);
    let (hy, bz) = (d.heads as u32, d.batch as u32);
    match kind {
        HeadsKernel::Recurrence => {
            let rows = d
                .heads
                .checked_mul(d.headdim)
                .filter(|r| r.div_ceil(WARPS as usize) <= i32::MAX as usize)
                .ok_or_else(|| CudaError::Unsupported("H·P exceeds a grid dimension".into()))?;
            if d.batch > 65_535 {
                return Err(CudaError::Unsupported(format!(
                    "batch = {} exceeds a grid dimension",
                    d.batch
                )));
            }
            let di = dtype_index(l.dtype);
            // The vector forms: N = 128 or 256, states 16-byte and B/C 8-byte aligned; four
            // channels per warp where P % 4 = 0 (x then 4-element aligned too).
            let vector = (d.dstate == 128 || d.dstate == 256)
                && [p.initial_state, p.last_state].iter().all(|v| v % 16 == 0)
                && [p.b, p.c].iter().all(|v| v % 8 == 0);
            let four = vector && d.headdim % 4 == 0 && p.x % 16 == 0;
            let wide = usize::from(d.dstate == 256);
            let (f, per_warp) = if four {
                (k.heads_rec4[di][wide], 4)
            } else if vector {
                (k.heads_recv[di][wide], 1)
            } else {
                (k.heads_rec[di][vi], 1)
            };
            let gx = rows.div_ceil(per_warp * WARPS as usize) as u32;
            run(f, (gx, bz, 1), 0, None)
        }
        HeadsKernel::Fused => {
            let di = dtype_index(l.dtype) - 1; // fp16 → 0, bf16 → 1
            let smem = chunk_smem_bytes(HEADS_CHUNK_NS[vi]).fused;
            let gx = (d.headdim / CHUNK_PT) as u32;
            run(k.heads_fused[di][vi], (gx, hy, bz), smem, None)
        }
        HeadsKernel::Split | HeadsKernel::Auto => {
            let di = dtype_index(l.dtype) - 1;
            let sm = chunk_smem_bytes(HEADS_CHUNK_NS[vi]);
            let nchunks = d.seqlen.div_ceil(CHUNK_Q);
            let ws = Some(p.workspace);
            // The passes run on one stream, so each runs after the one before.
            if chain_form(d, k.sm_count) {
                let gx = (d.headdim / CHUNK_PT) as u32;
                run(k.heads_states[di][vi], (gx, hy, bz), sm.states, ws)?;
                if nchunks == 0 {
                    return Ok(()); // y is empty; the state pass wrote last_state
                }
                let gx = (nchunks * (d.headdim / OUTPUT_PT)) as u32;
                return run(k.heads_outputs16[di][vi], (gx, hy, bz), sm.outputs, ws);
            }
            if nchunks > 0 {
                let gx = (nchunks * (d.headdim / CHUNK_PT)) as u32;
                run(k.heads_chunkstate[di][vi], (gx, hy, bz), sm.chunkstate, ws)?;
            }
            let quads = (d.heads * d.headdim * d.dstate / 4).div_ceil(256);
            if quads > i32::MAX as usize {
                return Err(CudaError::Unsupported(
                    "H·P·N exceeds a grid dimension".into(),
                ));
            }
            run_block(k.heads_passing, (quads as u32, bz, 1), 256, ws)?;
            if nchunks == 0 {
                return Ok(()); // y is empty; the passing wrote last_state
            }
            let gx = (nchunks * (d.headdim / OUTPUT_PT)) as u32;
            run(k.heads_outputs[di][vi], (gx, hy, bz), sm.outputs, ws)
        }
    }
}

/// The kernel the automatic choice takes for `l` on a device of compute capability `cc` with
/// `sm_count` SMs.
pub fn chosen_kernel(l: &HeadsLaunch, cc: u32, sm_count: u32) -> Result<HeadsKernel, CudaError> {
    choose(l, cc, sm_count, HeadsKernel::Auto).map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(dtype: DType, p: usize, n: usize, l: usize) -> HeadsLaunch {
        HeadsLaunch {
            attrs: HeadsAttrs::default(),
            dims: HeadsDims {
                batch: 1,
                seqlen: l,
                heads: 4,
                headdim: p,
                dstate: n,
                groups: 1,
            },
            dtype,
            ptrs: HeadsPtrs {
                x: 256,
                b: 512,
                c: 768,
                y: 1024,
                ..Default::default()
            },
        }
    }

    #[test]
    fn choice_follows_dtype_shape_arch_and_length() {
        use HeadsKernel::*;
        let k = |l: &HeadsLaunch, cc| chosen_kernel(l, cc, 132).unwrap();
        let mut ws = launch(DType::F16, 64, 128, 1024);
        ws.ptrs.workspace = 4096;
        assert_eq!(k(&ws, 90), Split);
        // Two chunks or fewer and few chains: fused, also with a workspace.
        let mut short = launch(DType::F16, 64, 128, 128);
        short.ptrs.workspace = 4096;
        assert_eq!(k(&short, 90), Fused);
        short.dims.heads = 80;
        short.dims.batch = 2; // 640 chains: the chain form
        assert_eq!(k(&short, 90), Split);
        assert_eq!(k(&launch(DType::F16, 64, 128, 1024), 90), Fused);
        assert_eq!(k(&launch(DType::BF16, 64, 64, 64), 87), Fused);
        let mut p48 = launch(DType::F16, 48, 128, 1024);
        p48.ptrs.workspace = 4096;
        assert_eq!(k(&p48, 90), Fused);
        assert_eq!(k(&launch(DType::F32, 64, 128, 1024), 90), Recurrence);
        assert_eq!(k(&launch(DType::F16, 64, 128, 1), 90), Recurrence);
        assert_eq!(k(&launch(DType::F16, 24, 128, 1024), 90), Recurrence);
        assert_eq!(k(&launch(DType::F16, 64, 96, 1024), 90), Recurrence);
        assert_eq!(k(&launch(DType::F16, 64, 128, 1024), 72), Recurrence);
        let mut odd = launch(DType::F16, 64, 128, 1024);
        odd.ptrs.x += 2;
        assert_eq!(k(&odd, 90), Recurrence);
        assert!(matches!(
            chosen_kernel(&launch(DType::F16, 64, 300, 8), 90, 132),
            Err(CudaError::Unsupported(_))
        ));
        assert!(choose(&launch(DType::F32, 64, 128, 8), 90, 132, Fused).is_err());
        assert!(choose(&launch(DType::F16, 64, 128, 8), 90, 132, Split).is_err());
        // no workspace
    }

    #[test]
    fn shared_memory_fits_every_sm_80_plus() {
        // Each block within sm_86/sm_89's 99 KB per block; on sm_90 (227 KB per SM) as many
        // blocks per SM as the launch bounds aim at (2 fused, 4 chunk-state, 3 chain-state,
        // 2 output).
        let sm = chunk_smem_bytes(8);
        assert_eq!(
            (sm.fused, sm.chunkstate, sm.states, sm.outputs),
            (87_552, 23_552, 64_512, 64_512)
        );
        assert!(sm.fused.max(sm.chunkstate).max(sm.states).max(sm.outputs) <= 99 * 1024);
        let kb = 227 * 1024;
        assert!(2 * sm.fused <= kb && 4 * sm.chunkstate <= kb && 3 * sm.states <= kb);
        assert!(2 * sm.outputs <= kb);
    }

    #[test]
    fn chain_form_needs_two_chains_per_sm() {
        let dims = |batch, heads| HeadsDims {
            batch,
            seqlen: 1024,
            heads,
            headdim: 64,
            dstate: 128,
            groups: 1,
        };
        assert!(!chain_form(&dims(1, 24), 132)); // mamba2-130m, B 1: 96 chains
        assert!(chain_form(&dims(1, 80), 132)); // mamba2-2.7b, B 1: 320 chains
        assert!(chain_form(&dims(8, 24), 132));
        assert!(!chain_form(&dims(1, 80), 200));
    }

    #[test]
    fn workspace_is_the_split_kernels_states_and_monotone() {
        let a = HeadsAttrs::default();
        let dims = |l, p| HeadsDims {
            batch: 2,
            seqlen: l,
            heads: 3,
            headdim: p,
            dstate: 128,
            groups: 1,
        };
        assert_eq!(
            heads_workspace_size(&a, &dims(65, 64), DType::F16),
            2 * 3 * 2 * (64 * 128 + 1) * 4
        );
        assert_eq!(
            heads_workspace_size(&a, &dims(64, 64), DType::BF16),
            2 * 3 * (64 * 128 + 1) * 4
        );
        assert_eq!(heads_workspace_size(&a, &dims(0, 64), DType::F16), 0);
        assert_eq!(heads_workspace_size(&a, &dims(100, 64), DType::F32), 0);
        assert_eq!(heads_workspace_size(&a, &dims(100, 48), DType::F16), 0);
        let mut last = 0;
        for l in 0..300 {
            let w = heads_workspace_size(&a, &dims(l, 128), DType::F16);
            assert!(w >= last);
            last = w;
        }
        let huge = HeadsDims {
            batch: usize::MAX / 2,
            ..dims(1 << 20, 64)
        };
        assert_eq!(heads_workspace_size(&a, &huge, DType::F16), usize::MAX);
    }
}
