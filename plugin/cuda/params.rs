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
}

/// Prefill kernel shapes compiled into the module: (lanes per channel, states per lane,
/// channels per block). Must match `S6_PREFILL_ALL` in `kernels/s6scan.cu`.
pub const PREFILL_CONFIGS: [(u32, u32, u32); 7] = [
    (16, 1, 8),
    (8, 2, 16),
    (4, 4, 32),
    (16, 2, 8),
    (16, 4, 8),
    (16, 8, 8),
    (16, 16, 4),
];
/// Decode kernels: lanes per channel. Must match `S6_DECODE_ALL`.
pub const DECODE_LANES: [u32; 3] = [4, 8, 16];
/// Threads per block of the decode kernels.
pub const DECODE_BLOCK: u32 = 128;
/// Largest state size N the kernels handle (as mamba_ssm).
pub const MAX_DSTATE: usize = 256;

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
    /// Index into [`DECODE_LANES`].
    Decode { lanes: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub choice: Choice,
    pub grid: (u32, u32, u32),
    pub block: u32,
}

/// Picks the kernel. `sm_count` steers the trade between parallelism (fewer states per lane)
/// and per-lane efficiency (more states per lane, fewer shuffles); `force_npl` pins states per
/// lane for benchmarking (ignored when no compiled shape has it for this N).
pub fn plan(dims: &ScanDims, sm_count: u32, force_npl: Option<u32>) -> Result<Plan, CudaError> {
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
    // The decode kernel indexes channels in 32 bits; a tile's offsets in the prefill too.
    if bd * 32 >= 1 << 31 || (dims.dim as u64) * (dims.seqlen as u64) >= 1 << 31 {
        return Err(CudaError::Unsupported(format!(
            "B·D = {bd} or D·L = {} too large for 32-bit indexing",
            dims.dim as u64 * dims.seqlen as u64
        )));
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
        let threads = bd * DECODE_LANES[lanes] as u64;
        let blocks = threads.div_ceil(DECODE_BLOCK as u64);
        let grid_x = u32::try_from(blocks)
            .map_err(|_| CudaError::Unsupported(format!("{bd} channels in one launch")))?;
        return Ok(Plan {
            choice: Choice::Decode { lanes },
            grid: (grid_x, 1, 1),
            block: DECODE_BLOCK,
        });
    }
    // Candidates: the shapes with the fewest states per channel (LANES·NPL) that cover N, in
    // table order, which lists fewer states per lane first. No allocation: this runs per launch.
    let nt_of = |i: usize| (PREFILL_CONFIGS[i].0 * PREFILL_CONFIGS[i].1) as usize;
    let min_nt = (0..PREFILL_CONFIGS.len())
        .map(nt_of)
        .filter(|&nt| nt >= n)
        .min()
        .expect("MAX_DSTATE is covered");
    let cands = (0..PREFILL_CONFIGS.len()).filter(|&i| nt_of(i) == min_nt);
    let forced = force_npl.and_then(|p| cands.clone().find(|&i| PREFILL_CONFIGS[i].1 == p));
    let config = match forced {
        Some(i) => i,
        None => {
            // Enough lanes for ~16 resident warps per SM; past that, more states per lane
            // (fewer shared-memory accesses per element). Measured on an H200: see
            // docs/benchmarks.md.
            let target = sm_count.max(1) as u64 * 512;
            let mut pick = None;
            for i in cands {
                if pick.is_none() || bd * PREFILL_CONFIGS[i].0 as u64 >= target {
                    pick = Some(i);
                }
            }
            pick.expect("at least one candidate")
        }
    };
    let (lanes, _, cpb) = PREFILL_CONFIGS[config];
    let per_group = dims.dim / dims.groups.max(1);
    let blocks_x = dims.groups as u64 * (per_group as u64).div_ceil(cpb as u64);
    let grid_x =
        u32::try_from(blocks_x).map_err(|_| CudaError::Unsupported("D too large".into()))?;
    Ok(Plan {
        choice: Choice::Prefill { config },
        grid: (grid_x, dims.batch as u32, 1),
        block: lanes * cpb,
    })
}

/// Kernel parameters for one launch (contiguous tensors in the layouts `attrs` selects).
pub fn kernel_params(attrs: &S6Attrs, dims: &ScanDims, p: &super::ScanPtrs) -> KernelParams {
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
    fn params_struct_has_no_padding() {
        assert_eq!(std::mem::size_of::<KernelParams>(), 24 * 8);
    }

    #[test]
    fn decode_for_one_step() {
        let p = plan(&dims(1, 5120, 1, 16, 1), 132, None).unwrap();
        assert_eq!(p.choice, Choice::Decode { lanes: 0 });
        assert_eq!(p.grid.0, 5120 * 4 / 128);
    }

    #[test]
    fn prefill_picks_by_parallelism_and_n() {
        let p = plan(&dims(1, 1536, 1024, 16, 1), 132, None).unwrap();
        assert_eq!(p.choice, Choice::Prefill { config: 0 });
        assert_eq!(p.grid, (192, 1, 1));
        let p = plan(&dims(8, 1536, 1024, 16, 1), 132, None).unwrap();
        assert_eq!(p.choice, Choice::Prefill { config: 1 });
        let p = plan(&dims(8, 4096, 1024, 16, 1), 132, None).unwrap();
        assert_eq!(p.choice, Choice::Prefill { config: 2 });
        let p = plan(&dims(8, 5120, 1024, 16, 1), 132, Some(2)).unwrap();
        assert_eq!(p.choice, Choice::Prefill { config: 1 });
        let p = plan(&dims(2, 64, 7, 40, 4), 132, None).unwrap();
        assert_eq!(p.choice, Choice::Prefill { config: 4 });
        // 4 groups of 16 channels, 8 channels per block.
        assert_eq!(p.grid, (8, 2, 1));
        assert!(plan(&dims(1, 8, 4, 257, 1), 132, None).is_err());
    }
}
