//! Kernel parameters and kernel choice: a pure function of attributes, sizes and dtype.

use super::CudaError;
use crate::contract::{DType, S6Attrs, ScanDims};

/// Mirror of `struct S6Params` in `kernels/s6scan.cu`: every field 8 bytes, no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelParams {
    pub u: u64,
    pub delta: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub d: u64,
    pub z: u64,
    pub delta_bias: u64,
    pub initial_state: u64,
    pub y: u64,
    pub last_state: u64,
    pub batch: i64,
    pub dim: i64,
    pub seqlen: i64,
    pub dstate: i64,
    pub groups: i64,
    pub act_sb: i64,
    pub act_sc: i64,
    pub act_st: i64,
    pub bc_sb: i64,
    pub bc_sg: i64,
    pub bc_sn: i64,
    pub bc_st: i64,
    pub flags: i64,
    pub ws_h: u64,
    pub ws_s: u64,
    pub chunk_len: i64,
    pub nchunks: i64,
}

/// Prefill kernel shapes compiled into the module: (lanes per channel, states per lane,
/// channels per block). Must match `S6_PREFILL_ALL` in `kernels/s6scan.cu`. The last one is the
/// second of its shape, with half the channels per block (taken where it fills the SMs more
/// evenly: [`even_blocks`]).
pub const PREFILL_CONFIGS: [(u32, u32, u32); 8] = [
    (16, 1, 8),
    (8, 2, 16),
    (4, 4, 32),
    (16, 2, 8),
    (16, 4, 8),
    (16, 8, 8),
    (16, 16, 4),
    (8, 2, 8),
];
/// Indices of [`PREFILL_CONFIGS`] that are a smaller-block twin of another (never a first
/// choice; [`even_blocks`] may swap one in).
const TWINS: [(usize, usize); 1] = [(1, 7)];

/// Kernel name suffix of [`PREFILL_CONFIGS`]`[i]`: `l<LANES>_p<NPL>`, and `_c<CPB>` for a twin.
pub fn prefill_suffix(i: usize) -> String {
    let (lanes, npl, cpb) = PREFILL_CONFIGS[i];
    if TWINS.iter().any(|t| t.1 == i) {
        format!("l{lanes}_p{npl}_c{cpb}")
    } else {
        format!("l{lanes}_p{npl}")
    }
}
/// Prefill kernels with 64-bit offsets within a tile (`S6_PREFILL64`), one pass: indices into
/// [`PREFILL_CONFIGS`] — 1 state per lane for N ≤ 16, 16 per lane for N ≤ 256.
pub const WIDE_CONFIGS: [usize; 2] = [0, 6];
/// Decode kernels: (lanes per channel, states per lane). Must match `S6_DECODE_ALL`.
pub const DECODE_CONFIGS: [(u32, u32); 5] = [(4, 4), (8, 4), (16, 4), (2, 8), (1, 16)];
/// Channel-per-lane prefill kernels (a lane owns all N ≤ 16 states of one channel, or half of
/// them): (name tag of `S6_CHAN` in `kernels/s6scan.cu`, lanes per channel) — `chan` (6 blocks
/// per SM, no spills), `chanr` (128 registers, 8 blocks per SM), `chan2` (2 lanes per channel,
/// 8 states each, 8 blocks per SM).
pub const CHAN_VARIANTS: [(&str, u32); 3] = [("chan", 1), ("chanr", 1), ("chan2", 2)];
/// Threads (channels) per block of the channel-per-lane kernels (`S6_CH_CPB`).
pub const CHAN_BLOCK: u32 = 64;
/// Largest N of the channel-per-lane kernels.
pub const CHAN_MAX_DSTATE: usize = 16;
/// Channel-per-lane with forced kernel and no forced chunk count: chunks of L are added until
/// B·D·K reaches this many lanes per SM (the automatic choice never chunks it: the chunked
/// shared-channel path was faster wherever it applies, H200 run 14).
pub const CHAN_TARGET_LANES_PER_SM: u64 = 512;
/// Channel-per-lane (one pass) is chosen when B·D reaches this many lanes per SM.
pub const CHAN_MIN_LANES_PER_SM: u64 = 240;
/// 16-bit, L ≥ 512: the register-capped variant from this many lanes per SM.
pub const CHAN_R_LANES_PER_SM: u64 = 300;
/// Threads per block of the warp-local prefill (`S6_WARP_WPB` warps) and channels per block
/// (8 lanes per channel).
pub const WARP_BLOCK: u32 = 64;
pub const WARP_CHANNELS: u32 = 8;
/// Threads of the warp-local prefill resident per SM (10 blocks: its registers are capped for
/// that). Automatically it is taken only where its grid fits in one such wave: past that the
/// block-staged kernels were faster (H200: B8 D1536 L1024 f16 147.8 µs against 127.7).
pub const WARP_THREADS_PER_SM: u64 = 640;
/// Threads per block of the decode kernels.
pub const DECODE_BLOCK: u32 = 128;
/// Largest state size N the kernels handle (as mamba_ssm).
pub const MAX_DSTATE: usize = 256;
/// Most chunks L is split into (chunked prefill).
pub const MAX_CHUNKS: usize = 16;
/// Chunk lengths are multiples of this (the longest tile), so chunks start 4-step aligned.
pub const CHUNK_ALIGN: usize = 32;
/// Shortest chunk the automatic choice takes (shorter ones lost on an H200).
pub const MIN_CHUNK: usize = 128;
/// B·D·N above which the scan is never chunked: that many lanes fill any GPU without it.
pub const CHUNK_MAX_STATES: usize = 1 << 17;

/// True when these sizes may take the chunked prefill (independent of the device, so that the
/// workspace size is a pure function of the sizes).
pub fn chunk_eligible(dims: &ScanDims) -> bool {
    dims.seqlen >= 2 * MIN_CHUNK
        && dims
            .batch
            .saturating_mul(dims.dim)
            .saturating_mul(dims.dstate)
            <= CHUNK_MAX_STATES
}

/// Workspace bytes: the chunk summaries of the most chunks any device may use — end states
/// [B][K-1][D][N] then sums of delta [B][K-1][D], fp32 — or 0 when L is too short to chunk.
///
/// TensorRT asks with the profile's largest sizes and hands that workspace to every smaller
/// launch, so the size is monotone in every dimension and covers any smaller sizes that may
/// chunk: B·D·(N+1) floats per chunk, capped at 2 × CHUNK_MAX_STATES (chunking needs
/// B·D·N ≤ CHUNK_MAX_STATES, so B·D·(N+1) ≤ twice that). Sizes that never chunk themselves
/// may still get a workspace (at most 15.7 MB) for the smaller launches of their profile.
pub fn workspace_bytes(dims: &ScanDims) -> usize {
    if dims.seqlen < 2 * MIN_CHUNK {
        return 0;
    }
    let per_chunk = dims
        .batch
        .saturating_mul(dims.dim)
        .saturating_mul(dims.dstate + 1)
        .min(2 * CHUNK_MAX_STATES);
    (MAX_CHUNKS - 1) * per_chunk * 4
}

/// Chunk length and count for `want` chunks of at least `min_len` steps (1: the whole of L).
fn chunking(seqlen: usize, want: usize, min_len: usize) -> (usize, usize) {
    let want = want.clamp(1, MAX_CHUNKS).min(seqlen / min_len).max(1);
    if want == 1 {
        return (seqlen, 1);
    }
    let len = seqlen.div_ceil(want).div_ceil(CHUNK_ALIGN) * CHUNK_ALIGN;
    (len, seqlen.div_ceil(len))
}

pub fn dtype_index(dt: DType) -> usize {
    match dt {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::BF16 => 2,
    }
}

pub fn dtype_tag(dt: DType) -> &'static str {
    ["f32", "f16", "bf16"][dtype_index(dt)]
}

/// Which kernel one launch runs and its grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Index into [`PREFILL_CONFIGS`].
    Prefill { config: usize },
    /// One pass with 64-bit offsets within a tile (D·L or N·L ≥ 2^31): index into
    /// [`WIDE_CONFIGS`].
    Prefill64 { wide: usize },
    /// Warp-local prefill (N ≤ 16, 2 states per lane); both passes when chunked.
    Warp,
    /// Index into [`DECODE_CONFIGS`].
    Decode { lanes: usize },
    /// Decode as `Decode { lanes: 0 }` with 32-bit offsets (B·D·N < 2^31).
    Decode32,
    /// Channel-per-lane prefill, index into [`CHAN_VARIANTS`].
    Chan { variant: usize },
}

/// Benchmark/test overrides of the automatic choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tune {
    /// States per lane (ignored when no compiled shape has it for this N).
    pub npl: Option<u32>,
    /// Chunks of L (ignored when the sizes are not chunk-eligible or there is no workspace).
    pub chunks: Option<u32>,
    /// States per lane of the chunked prefill's summary pass (default: as the output pass).
    pub sum_npl: Option<u32>,
    /// Prefill kernel family: 0 = lanes share a channel's states (`npl` applies), 1 + i =
    /// channel per lane, [`CHAN_VARIANTS`]`[i]` (N ≤ 16 only; ignored otherwise).
    pub chan: Option<u32>,
    /// Programmatic dependent launch where the device has it (default: yes).
    pub pdl: Option<bool>,
    /// For N ≤ 16: the warp-local kernel (`s6_warp_*`) forced (`Some(true)`, also chunked),
    /// never (`Some(false)`), or where the automatic choice takes it (`None`).
    pub warp: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub choice: Choice,
    /// Grid of the (last) kernel; the chunked prefill's summary pass runs `chunks - 1` in z.
    pub grid: (u32, u32, u32),
    pub block: u32,
    /// Chunks of L (1: one pass) and steps per chunk.
    pub chunks: u32,
    pub chunk_len: u32,
    /// Kernel shape of the summary pass (index into [`PREFILL_CONFIGS`]) and its grid x / block.
    pub sum_config: usize,
    pub sum_grid_x: u32,
    pub sum_block: u32,
}

/// Blocks along x of a prefill launch with kernel shape `config`: groups × ⌈(D/G) / CPB⌉.
fn prefill_grid_x(dims: &ScanDims, config: usize) -> Result<u32, CudaError> {
    let cpb = PREFILL_CONFIGS[config].2 as u64;
    let per_group = (dims.dim / dims.groups.max(1)) as u64;
    u32::try_from(dims.groups as u64 * per_group.div_ceil(cpb))
        .map_err(|_| CudaError::Unsupported("D too large".into()))
}

/// Picks the kernel. `sm_count` steers the trade between parallelism (fewer states per lane,
/// chunks of L) and per-lane efficiency (more states per lane, one pass); `has_workspace` says
/// whether the caller passed the workspace that [`workspace_bytes`] sized (no chunks without).
pub fn plan(
    dims: &ScanDims,
    dtype: DType,
    sm_count: u32,
    has_workspace: bool,
    tune: Tune,
) -> Result<Plan, CudaError> {
    let force_npl = tune.npl;
    let n = dims.dstate;
    if n == 0 || n > MAX_DSTATE {
        return Err(CudaError::Unsupported(format!(
            "state size N = {n}: the kernels handle 1..={MAX_DSTATE}"
        )));
    }
    if dims.batch > 65_535 {
        return Err(CudaError::Unsupported(format!(
            "batch {} exceeds 65535",
            dims.batch
        )));
    }
    let bd = dims.batch as u64 * dims.dim as u64;
    // Channels are indexed in 32 bits (decode: B·D·LANES threads), sizes are 32-bit in the
    // kernels.
    if bd * 32 >= 1 << 31 || dims.seqlen >= 1 << 31 {
        return Err(CudaError::Unsupported(format!(
            "B·D = {bd} or L = {} too large for the kernels (B·D·32 and L must stay below 2^31)",
            dims.seqlen
        )));
    }
    // Within a tile the prefill's offsets are 32-bit while a channel's row (D·L) and a state's
    // row of channel-first B/C (N·L) fit; past that the 64-bit instantiation runs (64-bit tile
    // offsets cost up to 14 % at B1 D1536 L1024 fp16 on an H200, so only where needed).
    let dl = dims.dim as u64 * dims.seqlen as u64;
    let nl = n as u64 * dims.seqlen as u64;
    if dims.seqlen > 1 && (dl >= 1 << 31 || nl >= 1 << 31) {
        let wide = if n <= 16 { 0 } else { 1 };
        let config = WIDE_CONFIGS[wide];
        let (lanes, _, cpb) = PREFILL_CONFIGS[config];
        let grid_x = prefill_grid_x(dims, config)?;
        return Ok(Plan {
            choice: Choice::Prefill64 { wide },
            grid: (grid_x, dims.batch as u32, 1),
            block: lanes * cpb,
            chunks: 1,
            chunk_len: dims.seqlen as u32,
            sum_config: config,
            sum_grid_x: grid_x,
            sum_block: lanes * cpb,
        });
    }
    if dims.seqlen == 1 {
        // 4 states per lane: 4, 8 or 16 lanes per channel (N > 64 loops).
        let lanes = if n <= 16 {
            0
        } else if n <= 32 {
            1
        } else {
            2
        };
        // Benchmarks may pin 8 or 16 states per lane (2 or 1 lanes per channel) for N <= 16.
        let lanes = match (tune.npl, n <= 16) {
            (Some(8), true) => 3,
            (Some(16), true) => 4,
            _ => lanes,
        };
        let threads = dims.dim as u64 * DECODE_CONFIGS[lanes].0 as u64;
        // The common shape (N <= 16, not pinned) with 32-bit offsets when they fit.
        let choice = if lanes == 0 && tune.npl.is_none() && bd * (n as u64) < 1 << 31 {
            Choice::Decode32
        } else {
            Choice::Decode { lanes }
        };
        let blocks = threads.div_ceil(DECODE_BLOCK as u64);
        let grid_x = u32::try_from(blocks)
            .map_err(|_| CudaError::Unsupported(format!("{bd} channels in one launch")))?;
        return Ok(Plan {
            choice,
            grid: (grid_x, dims.batch as u32, 1),
            block: DECODE_BLOCK,
            chunks: 1,
            chunk_len: 1,
            sum_config: 0,
            sum_grid_x: 0,
            sum_block: 0,
        });
    }
    let sm = sm_count.max(1) as u64;
    let chunkable = has_workspace && chunk_eligible(dims);
    if n <= CHAN_MAX_DSTATE {
        // Channel per lane: one pass when chosen automatically; forced, chunks of L until
        // B·D·K lanes fill the device (when allowed).
        let (len, k) = match tune.chunks {
            Some(k) if chunkable => chunking(dims.seqlen, k as usize, CHUNK_ALIGN),
            Some(_) => (dims.seqlen, 1),
            None if chunkable && tune.chan.is_some() => chunking(
                dims.seqlen,
                (sm * CHAN_TARGET_LANES_PER_SM).div_ceil(bd) as usize,
                MIN_CHUNK,
            ),
            None => (dims.seqlen, 1),
        };
        let variant = match tune.chan {
            Some(0) => None,
            Some(v) => Some((v as usize - 1).min(CHAN_VARIANTS.len() - 1)),
            None if bd >= sm * CHAN_MIN_LANES_PER_SM => Some(
                if dtype != DType::F32 && bd >= sm * CHAN_R_LANES_PER_SM && dims.seqlen >= 512 {
                    1
                } else {
                    0
                },
            ),
            None => None,
        };
        if let Some(variant) = variant {
            let per_group = (dims.dim / dims.groups.max(1)) as u64;
            let cpb = (CHAN_BLOCK / CHAN_VARIANTS[variant].1) as u64;
            let grid_x = u32::try_from(dims.groups as u64 * per_group.div_ceil(cpb))
                .map_err(|_| CudaError::Unsupported("D too large".into()))?;
            return Ok(Plan {
                choice: Choice::Chan { variant },
                grid: (grid_x, dims.batch as u32, k as u32),
                block: CHAN_BLOCK,
                chunks: k as u32,
                chunk_len: len as u32,
                sum_config: 0,
                sum_grid_x: grid_x,
                sum_block: CHAN_BLOCK,
            });
        }
    }
    // Candidates: the shapes with the fewest states per channel (LANES·NPL) that cover N, in
    // table order, which lists fewer states per lane first. No allocation: this runs per launch.
    let nt_of = |i: usize| (PREFILL_CONFIGS[i].0 * PREFILL_CONFIGS[i].1) as usize;
    let min_nt = (0..PREFILL_CONFIGS.len())
        .map(nt_of)
        .filter(|&nt| nt >= n)
        .min()
        .expect("MAX_DSTATE is covered");
    let cands = (0..PREFILL_CONFIGS.len())
        .filter(|&i| nt_of(i) == min_nt && !TWINS.iter().any(|t| t.1 == i));
    let forced = force_npl.and_then(|p| cands.clone().find(|&i| PREFILL_CONFIGS[i].1 == p));
    // Chunked when one lane per state (B·D·N lanes) cannot fill the device and the sizes allow
    // it: the preferred states per lane (fp32: 4, 16-bit: 2, the fastest there), chunks of at
    // least MIN_CHUNK steps, about CHUNK_TARGET_STATES_PER_SM (b, d, n, chunk) per SM; fewer
    // than 3 chunks never paid, so then one pass. Measured on an H200: docs/benchmarks.md.
    let forced_chunks = tune.chunks.filter(|&k| k > 1 && chunkable);
    let auto_chunks =
        tune.chunks.is_none() && chunkable && bd * (n as u64) < sm * CHUNK_BELOW_STATES_PER_SM;
    let preferred = if dtype == DType::F32 { 4 } else { 2 };
    let config = match forced {
        Some(i) => i,
        None if forced_chunks.is_some() || auto_chunks => cands
            .clone()
            .find(|&i| PREFILL_CONFIGS[i].1 == preferred)
            .unwrap_or_else(|| cands.clone().next_back().expect("a candidate")),
        None => {
            // One pass: the preferred states per lane when that still gives
            // ONE_PASS_LANES_PER_SM lanes per SM, else the most lanes.
            let target = sm * ONE_PASS_LANES_PER_SM;
            let mut pick = cands.clone().next().expect("a candidate");
            for i in cands.clone() {
                let (lanes, npl, _) = PREFILL_CONFIGS[i];
                if npl == preferred && bd * lanes as u64 >= target {
                    pick = i;
                }
            }
            pick
        }
    };
    // Automatic one pass: the twin with smaller blocks where that spreads the blocks more
    // evenly.
    let config = if forced.is_some() || forced_chunks.is_some() || auto_chunks {
        config
    } else {
        even_blocks(dims, config, sm)
    };
    let sum_config = tune
        .sum_npl
        .and_then(|p| cands.clone().find(|&i| PREFILL_CONFIGS[i].1 == p))
        .unwrap_or(config);
    let (lanes, _, cpb) = PREFILL_CONFIGS[config];
    let (chunk_len, chunks) = match forced_chunks {
        Some(k) => chunking(dims.seqlen, k as usize, CHUNK_ALIGN),
        None if auto_chunks => {
            let (len, k) = chunking(
                dims.seqlen,
                (sm * CHUNK_TARGET_STATES_PER_SM).div_ceil(bd * n as u64) as usize,
                MIN_CHUNK,
            );
            if k >= 3 {
                (len, k)
            } else {
                (dims.seqlen, 1)
            }
        }
        None => (dims.seqlen, 1),
    };
    // The warp-local kernel: forced, or automatically for one pass where the block-staged
    // choice has at most 2 states per lane and its B·D·8 lanes fit the SMs in one wave.
    let warp = n <= 16
        && match tune.warp {
            Some(w) => w,
            None => {
                chunks == 1
                    && PREFILL_CONFIGS[config].1 <= 2
                    && tune.npl.is_none()
                    && bd * 8 <= sm * WARP_THREADS_PER_SM
            }
        };
    if warp {
        let per_group = (dims.dim / dims.groups.max(1)) as u64;
        let grid_x = u32::try_from(dims.groups as u64 * per_group.div_ceil(WARP_CHANNELS as u64))
            .map_err(|_| CudaError::Unsupported("D too large".into()))?;
        return Ok(Plan {
            choice: Choice::Warp,
            grid: (grid_x, dims.batch as u32, chunks as u32),
            block: WARP_BLOCK,
            chunks: chunks as u32,
            chunk_len: chunk_len as u32,
            sum_config,
            sum_grid_x: grid_x,
            sum_block: WARP_BLOCK,
        });
    }
    let grid_x = prefill_grid_x(dims, config)?;
    Ok(Plan {
        choice: Choice::Prefill { config },
        grid: (grid_x, dims.batch as u32, chunks as u32),
        block: lanes * cpb,
        chunks: chunks as u32,
        chunk_len: chunk_len as u32,
        sum_config,
        sum_grid_x: prefill_grid_x(dims, sum_config)?,
        sum_block: PREFILL_CONFIGS[sum_config].0 * PREFILL_CONFIGS[sum_config].2,
    })
}

/// `config`, or its smaller-block twin when the grid fits the SMs in one wave with 2 to 3
/// blocks on the busiest SM — there the last block of an unevenly filled SM costs a whole
/// block's time (B1 D5120: 320 blocks of 16 channels are 2.4 per SM, 3 on the busiest; 640 of
/// 8 are 4.85, 5 on the busiest).
pub fn even_blocks(dims: &ScanDims, config: usize, sm: u64) -> usize {
    let Some(&(_, twin)) = TWINS.iter().find(|t| t.0 == config) else {
        return config;
    };
    let blocks = |c: usize| match prefill_grid_x(dims, c) {
        Ok(x) => x as u64 * dims.batch as u64,
        Err(_) => u64::MAX,
    };
    // Fraction of the busiest SM's block slots that carry work.
    let fill = |c: usize| {
        let b = blocks(c);
        let per_sm = b.div_ceil(sm).max(1);
        b as f64 / (per_sm * sm) as f64
    };
    let per_sm = blocks(config).div_ceil(sm);
    if (2..=3).contains(&per_sm) && fill(twin) > fill(config) + 0.05 {
        twin
    } else {
        config
    }
}

/// (b, d, n, chunk) per SM the chunked prefill aims at: chunks = this × SMs / (B·D·N).
pub const CHUNK_TARGET_STATES_PER_SM: u64 = 1440;
/// The chunked prefill is chosen when B·D·N is below this × SMs.
pub const CHUNK_BELOW_STATES_PER_SM: u64 = 256;
/// One pass: lanes per SM needed before more states per lane are taken.
pub const ONE_PASS_LANES_PER_SM: u64 = 240;

/// Kernel parameters for one launch (contiguous tensors in the layouts `attrs` selects).
pub fn kernel_params(
    attrs: &S6Attrs,
    dims: &ScanDims,
    p: &super::ScanPtrs,
    plan: &Plan,
) -> KernelParams {
    // Workspace: end states of chunks 0..K-2, then their sums of delta.
    let k1 = plan.chunks.saturating_sub(1) as u64;
    let (ws_h, ws_s) = if k1 > 0 {
        let h_bytes = dims.batch as u64 * k1 * dims.dim as u64 * dims.dstate as u64 * 4;
        (p.workspace, p.workspace + h_bytes)
    } else {
        (0, 0)
    };
    let act = dims.act_strides(attrs);
    let bc = dims.bc_strides(attrs);
    let opt = |flag: bool, ptr: u64| if flag { ptr } else { 0 };
    KernelParams {
        u: p.u,
        delta: p.delta,
        a: p.a,
        b: p.b,
        c: p.c,
        d: opt(attrs.has_d, p.d),
        z: opt(attrs.has_z, p.z),
        delta_bias: opt(attrs.has_delta_bias, p.delta_bias),
        initial_state: opt(attrs.has_initial_state, p.initial_state),
        y: p.y,
        last_state: opt(attrs.has_last_state, p.last_state),
        batch: dims.batch as i64,
        dim: dims.dim as i64,
        seqlen: dims.seqlen as i64,
        dstate: dims.dstate as i64,
        groups: dims.groups as i64,
        act_sb: act.batch as i64,
        act_sc: act.chan as i64,
        act_st: act.time as i64,
        bc_sb: bc.batch as i64,
        bc_sg: bc.group as i64,
        bc_sn: bc.state as i64,
        bc_st: bc.time as i64,
        flags: attrs.delta_softplus as i64,
        ws_h,
        ws_s,
        chunk_len: plan.chunk_len as i64,
        nchunks: plan.chunks as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(batch: usize, dim: usize, seqlen: usize, dstate: usize, groups: usize) -> ScanDims {
        ScanDims {
            batch,
            dim,
            seqlen,
            dstate,
            groups,
        }
    }

    #[test]
    fn offsets_past_32_bits_take_the_64_bit_prefill() {
        let t = Tune::default();
        let wide = |d: &ScanDims| plan(d, DType::F16, 132, true, t).unwrap();
        // Row 255 of channel-first B/C at L = 8.42 M starts past 2^31 elements: 16 states
        // per lane, one pass, even with a workspace and a forced chunk count.
        let nl = ScanDims::new(1, 1, 8_421_600, 256, 1);
        let p = wide(&nl);
        assert_eq!(
            (p.choice, p.chunks, p.grid, p.block),
            (Choice::Prefill64 { wide: 1 }, 1, (1, 1, 1), 64)
        );
        let forced = Tune {
            chunks: Some(8),
            chan: Some(1),
            ..t
        };
        assert_eq!(
            plan(&nl, DType::F16, 132, true, forced).unwrap().choice,
            Choice::Prefill64 { wide: 1 }
        );
        // D·L past 2^31 with N = 16: 1 state per lane, 8 channels per block.
        let p = wide(&ScanDims::new(2, 300, 8_000_000, 16, 1));
        assert_eq!(
            (p.choice, p.grid, p.block),
            (Choice::Prefill64 { wide: 0 }, (38, 2, 1), 128)
        );
        // Just below both limits: the 32-bit kernels; a decode step (L = 1) never has an N·L
        // row.
        let p = wide(&ScanDims::new(1, 1, 8_388_607, 256, 1));
        assert!(matches!(p.choice, Choice::Prefill { .. }), "{p:?}");
        assert_eq!(
            plan(&ScanDims::new(4, 64, 1, 256, 1), DType::F32, 132, false, t)
                .unwrap()
                .choice,
            Choice::Decode { lanes: 2 }
        );
        // What no kernel indexes: L or B·D·32 from 2^31.
        let e = plan(
            &ScanDims::new(1, 1, 1 << 31, 16, 1),
            DType::F16,
            132,
            true,
            t,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("L = 2147483648") && e.contains("2^31"), "{e}");
        let e = plan(
            &ScanDims::new(64, 1 << 20, 2, 16, 1),
            DType::F16,
            132,
            true,
            t,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("B·D = 67108864"), "{e}");
    }
    #[test]
    fn params_struct_has_no_padding() {
        assert_eq!(std::mem::size_of::<KernelParams>(), 28 * 8);
    }

    const H: DType = DType::F16;
    const F: DType = DType::F32;

    /// The automatic choice among the lanes-share-a-channel kernels.
    fn auto(d: ScanDims, dt: DType, ws: bool) -> Plan {
        plan(&d, dt, 132, ws, OLD).unwrap()
    }
    const OLD: Tune = Tune {
        npl: None,
        chunks: None,
        sum_npl: None,
        chan: Some(0),
        pdl: None,
        warp: Some(false),
    };

    #[test]
    fn warp_local_kernel_for_one_pass_in_one_wave() {
        let t = Tune {
            chan: Some(0),
            ..Default::default()
        };
        // B1 D5120, f16 and fp32: 8 channels per 64-thread block → 640 blocks.
        for dt in [H, F] {
            let p = plan(&dims(1, 5120, 1024, 16, 1), dt, 132, true, t).unwrap();
            assert_eq!(
                (p.choice, p.grid, p.block, p.chunks),
                (Choice::Warp, (640, 1, 1), 64, 1)
            );
        }
        // B8 D1536: 98 304 lanes > 640 × 132, two waves → block-staged.
        let p = plan(&dims(8, 1536, 1024, 16, 1), H, 132, false, t).unwrap();
        assert_eq!(p.choice, Choice::Prefill { config: 1 });
        // Chunked (B1 D1536 L1024) → block-staged; forced, both passes warp-local.
        let p = plan(&dims(1, 1536, 1024, 16, 1), H, 132, true, t).unwrap();
        assert!(matches!(p.choice, Choice::Prefill { .. }) && p.chunks == 8);
        let on = Tune {
            warp: Some(true),
            ..t
        };
        let p = plan(&dims(1, 1536, 1024, 16, 1), H, 132, true, on).unwrap();
        assert_eq!(
            (p.choice, p.chunks, p.grid, p.sum_grid_x, p.sum_block),
            (Choice::Warp, 8, (192, 1, 8), 192, 64)
        );
        // Groups: blocks never straddle one (4 groups of 100 channels → 13 blocks each).
        let p = plan(&dims(2, 400, 50, 16, 4), H, 132, false, t).unwrap();
        assert_eq!((p.choice, p.grid), (Choice::Warp, (52, 2, 1)));
        // Not for N > 16 (even forced), a forced states-per-lane, or when refused.
        let p = plan(&dims(1, 64, 300, 17, 1), H, 132, true, on).unwrap();
        assert!(matches!(p.choice, Choice::Prefill { .. }));
        let four = Tune { npl: Some(4), ..t };
        let p = plan(&dims(1, 5120, 1024, 16, 1), H, 132, true, four).unwrap();
        assert!(matches!(p.choice, Choice::Prefill { .. }));
        let off = Tune {
            warp: Some(false),
            ..t
        };
        let p = plan(&dims(1, 5120, 1024, 16, 1), H, 132, true, off).unwrap();
        assert_eq!(p.choice, Choice::Prefill { config: 7 });
    }

    #[test]
    fn channel_per_lane_for_n_up_to_16_with_enough_lanes() {
        // Forced, B1 D5120 L4096 (chunkable): 132 × 512 / 5120 → 14 chunks wanted → 320 steps.
        let t = Tune {
            chan: Some(1),
            ..Default::default()
        };
        let p = plan(&dims(1, 5120, 4096, 16, 1), H, 132, true, t).unwrap();
        assert_eq!(p.choice, Choice::Chan { variant: 0 });
        assert_eq!(
            (p.chunks, p.chunk_len, p.grid, p.block),
            (13, 320, (80, 1, 13), 64)
        );
        // Automatic: 5120 lanes < 240 per SM → the shared-channel kernels (warp-local).
        let p = plan(&dims(1, 5120, 4096, 16, 1), H, 132, true, Tune::default()).unwrap();
        assert_eq!(p.choice, Choice::Warp);
        // B8 D5120: one pass, 40 960 lanes; fp32 `chan`, 16-bit `chanr` from L = 512.
        let p = plan(&dims(8, 5120, 1024, 16, 1), F, 132, true, Tune::default()).unwrap();
        assert_eq!(
            (p.choice, p.chunks, p.grid),
            (Choice::Chan { variant: 0 }, 1, (80, 8, 1))
        );
        let p = plan(&dims(8, 5120, 1024, 16, 1), H, 132, true, Tune::default()).unwrap();
        assert_eq!(p.choice, Choice::Chan { variant: 1 });
        let p = plan(&dims(8, 5120, 128, 16, 1), H, 132, true, Tune::default()).unwrap();
        assert_eq!(p.choice, Choice::Chan { variant: 0 });
        let p = plan(&dims(8, 4096, 1024, 16, 1), H, 132, true, Tune::default()).unwrap();
        assert_eq!(p.choice, Choice::Chan { variant: 0 });
        // 2 lanes per channel: 32 channels per block.
        let t = Tune {
            chan: Some(3),
            chunks: Some(1),
            ..Default::default()
        };
        let p = plan(&dims(8, 1536, 1024, 16, 1), H, 132, true, t).unwrap();
        assert_eq!(
            (p.choice, p.grid),
            (Choice::Chan { variant: 2 }, (48, 8, 1))
        );
        // Groups: blocks never straddle a group (4 groups of 100 channels → 2 blocks each).
        let t = Tune {
            chan: Some(2),
            chunks: Some(1),
            ..Default::default()
        };
        let p = plan(&dims(2, 400, 50, 16, 4), H, 132, true, t).unwrap();
        assert_eq!((p.choice, p.grid), (Choice::Chan { variant: 1 }, (8, 2, 1)));
        // N > 16: never.
        let t = Tune {
            chan: Some(1),
            ..Default::default()
        };
        let p = plan(&dims(8, 5120, 1024, 17, 1), H, 132, true, t).unwrap();
        assert!(matches!(p.choice, Choice::Prefill { .. }));
    }

    #[test]
    fn decode_for_one_step() {
        let p = auto(dims(1, 5120, 1, 16, 1), H, false);
        assert_eq!(p.choice, Choice::Decode32);
        assert_eq!(p.grid, (5120 * 4 / 128, 1, 1));
        let p = auto(dims(3, 100, 1, 16, 1), H, true);
        assert_eq!(p.grid, (4, 3, 1));
        let t = Tune {
            npl: Some(16),
            ..Default::default()
        };
        let p = plan(&dims(1, 5120, 1, 16, 1), H, 132, false, t).unwrap();
        assert_eq!(p.choice, Choice::Decode { lanes: 4 });
        assert_eq!(p.grid.0, 5120 / 128);
        let t = Tune {
            npl: Some(4),
            ..Default::default()
        };
        let p = plan(&dims(1, 5120, 1, 16, 1), H, 132, false, t).unwrap();
        assert_eq!(p.choice, Choice::Decode { lanes: 0 });
        // N = 32: 8 lanes, 64-bit offsets.
        let p = auto(dims(1, 64, 1, 32, 1), H, false);
        assert_eq!(p.choice, Choice::Decode { lanes: 1 });
    }

    #[test]
    fn one_pass_picks_by_parallelism_dtype_and_n() {
        // Few lanes: 1 state per lane (16 lanes per channel).
        let p = auto(dims(1, 1536, 128, 16, 1), H, true);
        assert_eq!(
            (p.choice, p.grid, p.chunks),
            (Choice::Prefill { config: 0 }, (192, 1, 1), 1)
        );
        // Enough lanes: 2 states per lane in 16-bit, 4 in fp32.
        assert_eq!(
            auto(dims(1, 4096, 1024, 16, 1), H, true).choice,
            Choice::Prefill { config: 1 }
        );
        assert_eq!(
            auto(dims(1, 4096, 1024, 16, 1), F, true).choice,
            Choice::Prefill { config: 0 }
        );
        assert_eq!(
            auto(dims(8, 1536, 1024, 16, 1), H, false).choice,
            Choice::Prefill { config: 1 }
        );
        assert_eq!(
            auto(dims(8, 1536, 1024, 16, 1), F, false).choice,
            Choice::Prefill { config: 2 }
        );
        let t = Tune {
            npl: Some(2),
            ..OLD
        };
        let p = plan(&dims(8, 5120, 1024, 16, 1), F, 132, false, t).unwrap();
        assert_eq!(p.choice, Choice::Prefill { config: 1 });
        let p = auto(dims(2, 64, 7, 40, 4), H, false);
        assert_eq!(p.choice, Choice::Prefill { config: 4 });
        // 4 groups of 16 channels, 8 channels per block.
        assert_eq!(p.grid, (8, 2, 1));
        assert!(plan(&dims(1, 8, 4, 257, 1), H, 132, false, OLD).is_err());
    }

    #[test]
    fn chunks_only_with_workspace_and_few_lanes() {
        let small = dims(1, 1536, 1024, 16, 1);
        assert!(workspace_bytes(&small) > 0);
        assert_eq!(auto(small, H, false).chunks, 1);
        // B·D·N = 24 576 < 256 × 132: 132 × 1440 / 24 576 → 8 chunks of 128 steps, 2 states
        // per lane in 16-bit (4 in fp32); the summary pass takes the same shape.
        let p = auto(small, H, true);
        assert_eq!(p.choice, Choice::Prefill { config: 1 });
        assert_eq!((p.chunks, p.chunk_len, p.grid), (8, 128, (96, 1, 8)));
        assert_eq!((p.sum_config, p.sum_grid_x, p.sum_block), (1, 96, 128));
        // L = 4096: still 8 chunks; L = 300: 2 wanted, one pass.
        let p = auto(dims(1, 1536, 4096, 16, 1), F, true);
        assert_eq!((p.choice, p.chunks), (Choice::Prefill { config: 2 }, 8));
        assert_eq!(auto(dims(1, 1536, 300, 16, 1), H, true).chunks, 1);
        // 65 536 states: one pass.
        assert_eq!(auto(dims(1, 4096, 1024, 16, 1), H, true).chunks, 1);
        // Forced: 7 chunks of 1001 steps → 160-step chunks, the last one short; another
        // summary shape.
        let odd = dims(1, 64, 1001, 16, 1);
        let t = Tune {
            chunks: Some(7),
            sum_npl: Some(1),
            ..OLD
        };
        let p = plan(&odd, H, 132, true, t).unwrap();
        assert_eq!((p.chunks, p.chunk_len), (7, 160));
        assert_eq!((p.sum_config, p.sum_grid_x, p.sum_block), (0, 8, 128));
        // Never more than MAX_CHUNKS.
        assert_eq!(
            auto(dims(1, 64, 1 << 14, 16, 1), H, true).chunks as usize,
            MAX_CHUNKS
        );
        // Many lanes, short L or decode: no workspace, one pass.
        let big = dims(8, 5120, 1024, 16, 1);
        assert_eq!(auto(big, H, true).chunks, 1);
        assert_eq!(
            workspace_bytes(&big),
            (MAX_CHUNKS - 1) * 2 * CHUNK_MAX_STATES * 4
        );
        assert_eq!(workspace_bytes(&dims(1, 64, 200, 16, 1)), 0);
        assert_eq!(workspace_bytes(&dims(1, 64, 1, 16, 1)), 0);
        // The chunk summaries of any chunking fit the workspace.
        assert_eq!(workspace_bytes(&odd), (MAX_CHUNKS - 1) * 64 * 17 * 4);
    }

    #[test]
    fn workspace_of_the_largest_sizes_covers_every_smaller_chunked_launch() {
        // What a chunked launch writes: (K-1)·B·D·(N+1) floats.
        let need = |d: &ScanDims, k: u32| (k as usize - 1) * d.batch * d.dim * (d.dstate + 1) * 4;
        for max in [
            dims(16, 1536, 4096, 16, 1),
            dims(8, 5120, 2048, 16, 1),
            dims(4, 1536, 300, 16, 1),
            dims(2, 64, 1000, 40, 4),
        ] {
            let ws = workspace_bytes(&max);
            for b in 1..=max.batch {
                for l in [1, 200, 256, 700, max.seqlen] {
                    if l > max.seqlen {
                        continue;
                    }
                    let d = dims(b, max.dim, l, max.dstate, max.groups);
                    for tune in [
                        Tune::default(),
                        Tune {
                            chunks: Some(16),
                            ..Default::default()
                        },
                    ] {
                        let p = plan(&d, H, 132, ws > 0, tune).unwrap();
                        if p.chunks > 1 {
                            assert!(need(&d, p.chunks) <= ws, "{d:?} in {max:?}");
                        }
                    }
                }
            }
        }
    }
}
