//! The kernel module, loaded once per CUDA context and kept for the life of the process.
//!
//! Images, in order: the fatbin nvcc built at build time (`cfg(s6_fatbin)`), then the same
//! source compiled with NVRTC for the context's device (also when the fatbin does not load,
//! e.g. PTX newer than the driver). `S6PLUGIN_FORCE_NVRTC=1` skips the fatbin.

use std::ffi::{c_void, CStr, CString};
use std::sync::Mutex;

use cudarc::driver::sys;

use super::heads::{HEADS_CHUNK_NS, HEADS_REC_NPL};
use super::params::{
    dtype_tag, prefill_suffix, CHAN_VARIANTS, DECODE_CONFIGS, PREFILL_CONFIGS, WIDE_CONFIGS,
};
use super::CudaError;

/// The kernel source, for NVRTC: `S6Scan`'s kernels, then `S6ScanHeads`' (which use the first
/// file's element types). build/kernels.rs compiles the same concatenation with nvcc.
pub const SOURCE: &str = concat!(
    include_str!("../../kernels/s6scan.cu"),
    "\n",
    include_str!("../../kernels/s6scan_heads.cu")
);

#[cfg(s6_fatbin)]
static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/s6scan.fatbin"));

/// Function handles of one loaded module.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    /// [dtype][PREFILL_CONFIGS index]
    pub prefill: [[sys::CUfunction; PREFILL_CONFIGS.len()]; 3],
    /// The prefill with 64-bit offsets within a tile, [dtype][WIDE_CONFIGS index].
    pub prefill64: [[sys::CUfunction; WIDE_CONFIGS.len()]; 3],
    /// Warp-local prefill (N ≤ 16), [dtype]: output and summary pass.
    pub warp: [sys::CUfunction; 3],
    pub warpsum: [sys::CUfunction; 3],
    /// Pass 1 of the chunked prefill, [dtype][PREFILL_CONFIGS index]
    pub chunksum: [[sys::CUfunction; PREFILL_CONFIGS.len()]; 3],
    /// Channel-per-lane prefill, [dtype][CHAN_VARIANTS index]: output pass and summary pass.
    pub chan: [[sys::CUfunction; CHAN_VARIANTS.len()]; 3],
    pub chansum: [[sys::CUfunction; CHAN_VARIANTS.len()]; 3],
    /// Decode, 4 lanes × 4 states with 32-bit offsets, [dtype].
    pub decode32: [sys::CUfunction; 3],
    /// [dtype][DECODE_CONFIGS index]
    pub decode: [[sys::CUfunction; DECODE_CONFIGS.len()]; 3],
    /// `S6ScanHeads` recurrence, [dtype][HEADS_REC_NPL index].
    pub heads_rec: [[sys::CUfunction; HEADS_REC_NPL.len()]; 3],
    /// Its vector form (4 consecutive states per lane) for N = 128, 256: [dtype][0, 1].
    pub heads_recv: [[sys::CUfunction; 2]; 3],
    /// Its form over 4 channels per warp (P % 4 = 0): [dtype][N = 128, 256].
    pub heads_rec4: [[sys::CUfunction; 2]; 3],
    /// `S6ScanHeads` chunked prefill on tensor cores, [fp16, bf16][HEADS_CHUNK_NS index]: the
    /// fused kernel, and the split state and output passes; null before sm_80 (no mma.sync
    /// m16n8k16 / cp.async there).
    pub heads_fused: [[sys::CUfunction; HEADS_CHUNK_NS.len()]; 2],
    pub heads_chunkstate: [[sys::CUfunction; HEADS_CHUNK_NS.len()]; 2],
    /// The split kernels' state passing (fp32 only, any activation dtype).
    pub heads_passing: sys::CUfunction,
    pub heads_outputs: [[sys::CUfunction; HEADS_CHUNK_NS.len()]; 2],
    /// The chain form: state pass and its output pass (16-bit entering states).
    pub heads_states: [[sys::CUfunction; HEADS_CHUNK_NS.len()]; 2],
    pub heads_outputs16: [[sys::CUfunction; HEADS_CHUNK_NS.len()]; 2],
    /// Does nothing but launch (benchmarks measure the launch floor with it).
    pub noop: sys::CUfunction,
    /// True when launches may use programmatic dependent launch: sm_90+ and a driver with
    /// `cuLaunchKernelEx`.
    pub pdl: bool,
    pub sm_count: u32,
    /// Compute capability, major·10 + minor.
    pub cc: u32,
    /// Where the image came from ("fatbin sm_80,…" or "nvrtc sm_XY").
    pub origin: &'static str,
    /// The module the handles belong to (to revalidate a cache entry where the driver has no
    /// context ids).
    module: sys::CUmodule,
}

// SAFETY: CUfunction handles are plain driver handles, valid in any thread for the life of
// their module (never unloaded here); the driver API is thread-safe.
unsafe impl Send for Kernels {}

struct Entry {
    ctx: usize,
    /// `None` on drivers before CUDA 12.0 (no `cuCtxGetId`).
    ctx_id: Option<u64>,
    kernels: Kernels,
}

static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

pub(crate) fn check(r: sys::CUresult, what: &str) -> Result<(), CudaError> {
    if r == sys::CUresult::CUDA_SUCCESS {
        return Ok(());
    }
    let mut msg: *const std::ffi::c_char = std::ptr::null();
    // SAFETY: cuGetErrorString writes a pointer to a static string (or leaves it null).
    unsafe { sys::cuGetErrorString(r, &mut msg) };
    let text = if msg.is_null() {
        String::new()
    } else {
        // SAFETY: non-null → a NUL-terminated static string owned by the driver.
        unsafe { CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    };
    Err(CudaError::Driver(format!("{what}: {r:?} {text}")))
}

/// True when libcuda can be loaded (cudarc panics on first use otherwise).
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library.
    unsafe { sys::is_culib_present() }
}

/// `cuCtxGetId`, which drivers have from CUDA 12.0 on: looked up, not called blindly, so that
/// the kernels also load on older drivers (JetPack 5 ships CUDA 11.4).
fn ctx_get_id() -> Option<unsafe extern "C" fn(sys::CUcontext, *mut u64) -> sys::CUresult> {
    type F = unsafe extern "C" fn(sys::CUcontext, *mut u64) -> sys::CUresult;
    static F_: std::sync::OnceLock<Option<F>> = std::sync::OnceLock::new();
    // SAFETY: the symbol, where present, has exactly this signature (cuda.h, CUDA >= 12.0).
    *F_.get_or_init(|| unsafe { sys::culib().get::<F>(b"cuCtxGetId\0").ok().map(|f| *f) })
}

type LaunchKernelEx = unsafe extern "C" fn(
    *const sys::CUlaunchConfig,
    sys::CUfunction,
    *mut *mut c_void,
    *mut *mut c_void,
) -> sys::CUresult;

/// `cuLaunchKernelEx` (drivers from CUDA 11.8), looked up rather than called blindly so that the
/// kernels also load on older drivers.
fn launch_kernel_ex() -> Option<LaunchKernelEx> {
    static F_: std::sync::OnceLock<Option<LaunchKernelEx>> = std::sync::OnceLock::new();
    // SAFETY: the symbol, where present, has exactly this signature (cuda.h, CUDA >= 11.8).
    *F_.get_or_init(|| unsafe {
        sys::culib()
            .get::<LaunchKernelEx>(b"cuLaunchKernelEx\0")
            .ok()
            .map(|f| *f)
    })
}

/// Launches `f` on `stream` with one by-value parameter block; with `pdl`, as a programmatic
/// dependent launch (the kernel may start before the stream's previous kernel ends and waits
/// for it with `griddepcontrol.wait` before touching memory: every S6Scan kernel does).
///
/// # Safety
/// `f` must be a kernel of a module loaded in the current context whose parameters `args`
/// matches, with every pointer it carries valid for the kernel; `stream` a stream of that
/// context.
pub(crate) unsafe fn launch(
    f: sys::CUfunction,
    grid: (u32, u32, u32),
    block: u32,
    stream: sys::CUstream,
    args: &mut [*mut c_void],
    pdl: bool,
) -> Result<(), CudaError> {
    if let (true, Some(ex)) = (pdl, launch_kernel_ex()) {
        // SAFETY: a zeroed attribute is a valid C value (plain data); the id and the one union
        // member set match.
        let mut attr: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
        attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
        attr.value.programmaticStreamSerializationAllowed = 1;
        let cfg = sys::CUlaunchConfig {
            gridDimX: grid.0,
            gridDimY: grid.1,
            gridDimZ: grid.2,
            blockDimX: block,
            blockDimY: 1,
            blockDimZ: 1,
            sharedMemBytes: 0,
            hStream: stream,
            attrs: &mut attr,
            numAttrs: 1,
        };
        // SAFETY: cfg and attr live across the call; the rest is the caller's contract.
        return check(
            unsafe { ex(&cfg, f, args.as_mut_ptr(), std::ptr::null_mut()) },
            "cuLaunchKernelEx(s6scan)",
        );
    }
    // SAFETY: the caller's contract.
    check(
        unsafe {
            sys::cuLaunchKernel(
                f,
                grid.0,
                grid.1,
                grid.2,
                block,
                1,
                1,
                0,
                stream,
                args.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        },
        "cuLaunchKernel(s6scan)",
    )
}

/// Current context and its unique id where the driver has one (the id tells a new context at a
/// reused address apart).
fn current_context() -> Result<(sys::CUcontext, Option<u64>), CudaError> {
    if !driver_present() {
        return Err(CudaError::Driver("libcuda could not be loaded".into()));
    }
    let mut ctx: sys::CUcontext = std::ptr::null_mut();
    // SAFETY: out-pointer to a local.
    check(unsafe { sys::cuCtxGetCurrent(&mut ctx) }, "cuCtxGetCurrent")?;
    if ctx.is_null() {
        return Err(CudaError::NoContext);
    }
    let Some(get_id) = ctx_get_id() else {
        return Ok((ctx, None));
    };
    let mut id = 0u64;
    // SAFETY: ctx is the current, live context; out-pointer to a local.
    check(unsafe { get_id(ctx, &mut id) }, "cuCtxGetId")?;
    Ok((ctx, Some(id)))
}

/// Without context ids, a cached module is only trusted while the driver still resolves a
/// kernel in it (a context destroyed and recreated at the same address loses its modules).
fn still_loaded(k: &Kernels) -> bool {
    let mut f: sys::CUfunction = std::ptr::null_mut();
    // SAFETY: NUL-terminated name, out-pointer to a local; the driver validates the handle.
    let r = unsafe { sys::cuModuleGetFunction(&mut f, k.module, c"s6_decode32_f32".as_ptr()) };
    r == sys::CUresult::CUDA_SUCCESS && f == k.decode32[0]
}

/// Kernels of the current context, loading the module on first use in that context.
pub fn kernels() -> Result<Kernels, CudaError> {
    let (ctx, ctx_id) = current_context()?;
    let mut cache = CACHE
        .lock()
        .map_err(|_| CudaError::Module("cache poisoned".into()))?;
    if let Some(e) = cache
        .iter()
        .find(|e| e.ctx == ctx as usize && e.ctx_id == ctx_id)
    {
        if ctx_id.is_some() || still_loaded(&e.kernels) {
            return Ok(e.kernels);
        }
    }
    let kernels = load()?;
    // A destroyed context's entry at the same address is stale: drop it.
    cache.retain(|e| e.ctx != ctx as usize);
    cache.push(Entry {
        ctx: ctx as usize,
        ctx_id,
        kernels,
    });
    Ok(kernels)
}

fn device_attr(attr: sys::CUdevice_attribute) -> Result<i32, CudaError> {
    let mut dev: sys::CUdevice = 0;
    // SAFETY: a context is current (checked by the caller); out-pointer to a local.
    check(unsafe { sys::cuCtxGetDevice(&mut dev) }, "cuCtxGetDevice")?;
    let mut v = 0;
    // SAFETY: dev is a valid device ordinal from the driver; out-pointer to a local.
    check(
        unsafe { sys::cuDeviceGetAttribute(&mut v, attr, dev) },
        "cuDeviceGetAttribute",
    )?;
    Ok(v)
}

fn load() -> Result<Kernels, CudaError> {
    use sys::CUdevice_attribute as A;
    let sm_count = device_attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32;
    let major = device_attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
    let minor = device_attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
    let cc = (major * 10 + minor) as u32;
    let force_nvrtc = std::env::var("S6PLUGIN_FORCE_NVRTC").is_ok_and(|v| v == "1");
    let mut errors = Vec::new();

    #[cfg(s6_fatbin)]
    if !force_nvrtc {
        match load_image(FATBIN.as_ptr() as *const c_void) {
            Ok(m) => {
                let origin = concat!("fatbin ", env!("S6_FATBIN_ARCHS"));
                return resolve(m, sm_count, cc, origin);
            }
            Err(e) => errors.push(format!("fatbin: {e}")),
        }
    }
    #[cfg(not(s6_fatbin))]
    let _ = force_nvrtc;

    match nvrtc_cubin(major, minor) {
        Ok(cubin) => match load_image(cubin.as_ptr() as *const c_void) {
            Ok(m) => {
                let origin: &'static str =
                    Box::leak(format!("nvrtc sm_{major}{minor}").into_boxed_str());
                return resolve(m, sm_count, cc, origin);
            }
            Err(e) => errors.push(format!("nvrtc image: {e}")),
        },
        Err(e) => errors.push(format!("nvrtc: {e}")),
    }
    Err(CudaError::Module(errors.join("; ")))
}

fn load_image(image: *const c_void) -> Result<sys::CUmodule, CudaError> {
    let mut m: sys::CUmodule = std::ptr::null_mut();
    // SAFETY: image points at a complete fatbin/cubin that outlives the call (the driver copies
    // it); a context is current.
    check(
        unsafe { sys::cuModuleLoadData(&mut m, image) },
        "cuModuleLoadData",
    )?;
    Ok(m)
}

fn resolve(
    m: sys::CUmodule,
    sm_count: u32,
    cc: u32,
    origin: &'static str,
) -> Result<Kernels, CudaError> {
    let get = |name: String| -> Result<sys::CUfunction, CudaError> {
        let c = CString::new(name.clone()).expect("kernel names have no NUL");
        let mut f: sys::CUfunction = std::ptr::null_mut();
        // SAFETY: m is a loaded module; c is NUL-terminated; out-pointer to a local.
        check(
            unsafe { sys::cuModuleGetFunction(&mut f, m, c.as_ptr()) },
            &format!("kernel {name}"),
        )?;
        Ok(f)
    };
    let null = std::ptr::null_mut();
    let mut k = Kernels {
        prefill: [[null; PREFILL_CONFIGS.len()]; 3],
        prefill64: [[null; WIDE_CONFIGS.len()]; 3],
        warp: [null; 3],
        warpsum: [null; 3],
        chunksum: [[null; PREFILL_CONFIGS.len()]; 3],
        chan: [[null; CHAN_VARIANTS.len()]; 3],
        chansum: [[null; CHAN_VARIANTS.len()]; 3],
        decode32: [null; 3],
        decode: [[null; DECODE_CONFIGS.len()]; 3],
        heads_rec: [[null; HEADS_REC_NPL.len()]; 3],
        heads_recv: [[null; 2]; 3],
        heads_rec4: [[null; 2]; 3],
        heads_fused: [[null; HEADS_CHUNK_NS.len()]; 2],
        heads_chunkstate: [[null; HEADS_CHUNK_NS.len()]; 2],
        heads_passing: null,
        heads_outputs: [[null; HEADS_CHUNK_NS.len()]; 2],
        heads_states: [[null; HEADS_CHUNK_NS.len()]; 2],
        heads_outputs16: [[null; HEADS_CHUNK_NS.len()]; 2],
        noop: null,
        pdl: cc >= 90 && launch_kernel_ex().is_some(),
        sm_count,
        cc,
        origin,
        module: m,
    };
    for (di, dt) in ["f32", "f16", "bf16"].into_iter().enumerate() {
        for ci in 0..PREFILL_CONFIGS.len() {
            let sfx = prefill_suffix(ci);
            k.prefill[di][ci] = get(format!("s6_prefill_{dt}_{sfx}"))?;
            k.chunksum[di][ci] = get(format!("s6_chunksum_{dt}_{sfx}"))?;
        }
        for (wi, &ci) in WIDE_CONFIGS.iter().enumerate() {
            let (lanes, npl, _) = PREFILL_CONFIGS[ci];
            k.prefill64[di][wi] = get(format!("s6_prefill64_{dt}_l{lanes}_p{npl}"))?;
        }
        k.warp[di] = get(format!("s6_warp_{dt}_p2"))?;
        k.warpsum[di] = get(format!("s6_warpsum_{dt}_p2"))?;
        k.decode32[di] = get(format!("s6_decode32_{dt}"))?;
        for (vi, (tag, _)) in CHAN_VARIANTS.iter().enumerate() {
            k.chan[di][vi] = get(format!("s6_{tag}_{dt}"))?;
            k.chansum[di][vi] = get(format!("s6_{tag}sum_{dt}"))?;
        }
        for (li, (lanes, npl)) in DECODE_CONFIGS.iter().enumerate() {
            k.decode[di][li] = get(format!("s6_decode_{dt}_l{lanes}_p{npl}"))?;
        }
        for (ni, npl) in HEADS_REC_NPL.iter().enumerate() {
            k.heads_rec[di][ni] = get(format!("s6h_rec{npl}_{dt}"))?;
        }
        for (vi, npl) in [4, 8].iter().enumerate() {
            k.heads_recv[di][vi] = get(format!("s6h_recv{npl}_{dt}"))?;
            k.heads_rec4[di][vi] = get(format!("s6h_rec4x{npl}_{dt}"))?;
        }
    }
    k.heads_passing = get("s6h_passing".to_string())?;
    k.noop = get("s6_noop".to_string())?;
    if cc >= 80 {
        for (di, dt) in ["f16", "bf16"].into_iter().enumerate() {
            for (ni, ns) in HEADS_CHUNK_NS.iter().enumerate() {
                let sm = super::heads::chunk_smem_bytes(*ns);
                for (slot, name, bytes) in [
                    (&mut k.heads_fused[di][ni], "fused", sm.fused),
                    (&mut k.heads_chunkstate[di][ni], "chunkstate", sm.chunkstate),
                    (&mut k.heads_outputs[di][ni], "outputs", sm.outputs),
                    (&mut k.heads_states[di][ni], "states", sm.states),
                    (&mut k.heads_outputs16[di][ni], "outputs16_", sm.outputs),
                ] {
                    let f = get(format!("s6h_{name}{ns}_{dt}"))?;
                    // More than the default 48 KB of dynamic shared memory (sm_80+ allow it).
                    // SAFETY: f was just resolved from the loaded module.
                    check(
                        unsafe {
                            sys::cuFuncSetAttribute(
                                f,
                                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                bytes as i32,
                            )
                        },
                        "cuFuncSetAttribute(s6h)",
                    )?;
                    *slot = f;
                }
            }
        }
    }
    debug_assert_eq!(dtype_tag(crate::contract::DType::BF16), "bf16");
    tracing::debug!(origin, sm_count, "s6plugin: CUDA kernels loaded");
    Ok(k)
}

/// Compiles [`SOURCE`] to a cubin for sm_{major}{minor} with the NVRTC found at run time.
fn nvrtc_cubin(major: i32, minor: i32) -> Result<Vec<u8>, String> {
    use cudarc::nvrtc::{result, sys as nsys};
    // SAFETY: only tries to dlopen the library.
    if !unsafe { nsys::is_culib_present() } {
        return Err("libnvrtc could not be loaded".into());
    }
    let src = CString::new(SOURCE).map_err(|e| e.to_string())?;
    let prog = result::create_program(&src, Some(c"s6scan.cu")).map_err(|e| format!("{e:?}"))?;
    let opts = [
        format!("--gpu-architecture=sm_{major}{minor}"),
        "-default-device".to_string(),
        "--std=c++17".to_string(),
    ];
    // SAFETY: prog was created above and is destroyed once below.
    let compiled = unsafe { result::compile_program(prog, &opts) };
    let out = match compiled {
        Ok(()) => {
            let mut size = 0usize;
            // SAFETY: prog compiled; out-pointer to a local.
            let r = unsafe { nsys::nvrtcGetCUBINSize(prog, &mut size) };
            if r != nsys::nvrtcResult::NVRTC_SUCCESS {
                Err(format!("nvrtcGetCUBINSize: {r:?}"))
            } else {
                let mut buf = vec![0u8; size];
                // SAFETY: buf has the size NVRTC reported.
                let r = unsafe { nsys::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut _) };
                if r == nsys::nvrtcResult::NVRTC_SUCCESS {
                    Ok(buf)
                } else {
                    Err(format!("nvrtcGetCUBIN: {r:?}"))
                }
            }
        }
        Err(e) => {
            // SAFETY: prog is live.
            let log = unsafe { result::get_program_log(prog) }
                .map(|l| {
                    let bytes: Vec<u8> =
                        l.iter().map(|&c| c as u8).take_while(|&c| c != 0).collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                })
                .unwrap_or_default();
            Err(format!("compile for sm_{major}{minor}: {e:?}\n{log}"))
        }
    };
    // SAFETY: prog is live and not used after this.
    let _ = unsafe { result::destroy_program(prog) };
    out
}
