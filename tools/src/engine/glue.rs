//! Rust side of `tools/cpp/trt_glue.cpp`: the TensorRT calls, each behind a safe wrapper.
//!
//! The bridge is compiled once per backend (`cfg(s6_glue_trt)`: TensorRT, `s6_glue_rtx`:
//! TensorRT-RTX), with the C names prefixed `s6_glue_trt_` / `s6_glue_rtx_`. Each compiled one is
//! a table of function pointers ([`Glue`]); the logic here is written once over that table. A
//! backend built without headers has no table, and [`Glue::get`] says how to get one.

use super::error::EngineError;
use super::version::{Backend, TrtVersion};
use std::ffi::{c_char, c_void, CStr, CString};

/// Builder progress as TensorRT (10 on) reports it.
#[derive(Debug)]
pub enum Progress<'a> {
    Start {
        phase: &'a str,
        parent: Option<&'a str>,
        steps: i32,
    },
    Step {
        phase: &'a str,
        step: i32,
    },
    Finish {
        phase: &'a str,
    },
}

/// Receives TensorRT's log and progress during a call.
pub trait Observer {
    fn log(&mut self, severity: i32, msg: &str);
    fn progress(&mut self, _p: Progress<'_>) {}
}

/// Logs to `tracing` at TensorRT's severity (errors and warnings show by default).
pub struct TracingObserver;

impl Observer for TracingObserver {
    fn log(&mut self, severity: i32, msg: &str) {
        match severity {
            0 | 1 => tracing::error!(target: "tensorrt", "{msg}"),
            2 => tracing::warn!(target: "tensorrt", "{msg}"),
            3 => tracing::info!(target: "tensorrt", "{msg}"),
            _ => tracing::debug!(target: "tensorrt", "{msg}"),
        }
    }
}

/// One input's profile as the glue takes it.
pub struct ProfileDims<'a> {
    pub name: &'a str,
    pub min: &'a [i64],
    pub opt: &'a [i64],
    pub max: &'a [i64],
}

/// What `build` needs; the function pointers come from [`super::libs::symbol`].
pub struct BuildCall<'a> {
    pub create_builder: *mut c_void,
    pub create_parser: *mut c_void,
    pub onnx_path: &'a std::path::Path,
    pub inputs: &'a [ProfileDims<'a>],
    /// 0 fp32, 1 fp16 flag, 2 bf16 flag, 3 strongly typed (trt_glue.h's S6_PRECISION_*).
    pub precision: i32,
    pub workspace_bytes: u64,
    pub timing_cache: Option<&'a [u8]>,
    /// TensorRT-RTX: the SM numbers to compile for (75, 80, 86, 89, 120, 121); empty: its default.
    pub compute_capabilities: &'a [i32],
}

/// What a layer of the parsed network is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// Any built-in layer.
    Builtin,
    /// An `IPluginV2` layer of the named plugin type.
    PluginV2(String),
    /// An `IPluginV3` layer of the named plugin.
    PluginV3(String),
}

/// A layer of the network the ONNX parser produced (before the builder fuses anything).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkLayer {
    pub name: String,
    pub kind: LayerKind,
    /// TensorRT `DataType` of its first output (see [`IoTensor::dtype`]); None without outputs.
    pub output_dtype: Option<i32>,
}

impl NetworkLayer {
    /// The plugin type for plugin layers.
    pub fn plugin(&self) -> Option<&str> {
        match &self.kind {
            LayerKind::Builtin => None,
            LayerKind::PluginV2(p) | LayerKind::PluginV3(p) => Some(p),
        }
    }
}

/// A TensorRT I/O tensor of an engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoTensor {
    pub name: String,
    pub is_input: bool,
    /// TensorRT `DataType` value (0 kFLOAT, 1 kHALF, 2 kINT8, 3 kINT32, 4 kBOOL, 5 kUINT8,
    /// 6 kFP8, 7 kBF16, 8 kINT64).
    pub dtype: i32,
    /// Engine shape; -1 marks a dynamic dimension.
    pub shape: Vec<i64>,
}

// ---- the C interface (trt_glue.h), shared by both backends ----

#[repr(C)]
struct S6Blob {
    handle: *mut c_void,
    data: *const c_void,
    size: usize,
}

#[repr(C)]
struct S6ProfileInput {
    name: *const c_char,
    rank: i32,
    min: *const i64,
    opt: *const i64,
    max: *const i64,
}

type LogFn = extern "C" fn(*mut c_void, i32, *const c_char);
type ProgressFn = extern "C" fn(*mut c_void, i32, *const c_char, *const c_char, i32);
type LayerFn = extern "C" fn(*mut c_void, i32, i32, *const c_char, *const c_char, i32);

#[repr(C)]
struct S6BuildParams {
    create_builder: *mut c_void,
    create_parser: *mut c_void,
    onnx_path: *const c_char,
    inputs: *const S6ProfileInput,
    n_inputs: i32,
    precision: i32,
    workspace_bytes: u64,
    timing_cache: *const c_void,
    timing_cache_size: usize,
    compute_capabilities: *const i32,
    n_compute_capabilities: i32,
    log: LogFn,
    progress: ProgressFn,
    layer: LayerFn,
    user: *mut c_void,
}

#[repr(C)]
struct S6Runner {
    _private: [u8; 0],
}

/// One compiled bridge: its C functions.
struct Fns {
    header_version: unsafe extern "C" fn() -> i32,
    is_rtx: unsafe extern "C" fn() -> i32,
    has_onnx_parser: unsafe extern "C" fn() -> i32,
    has_creator:
        unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char, *const c_char) -> i32,
    load_plugin_library:
        unsafe extern "C" fn(*mut c_void, *const c_char, *mut c_char, usize) -> i32,
    build: unsafe extern "C" fn(
        *const S6BuildParams,
        *mut S6Blob,
        *mut S6Blob,
        *mut c_char,
        usize,
    ) -> i32,
    blob_free: unsafe extern "C" fn(*mut S6Blob),
    runner_new: unsafe extern "C" fn(
        *mut c_void,
        *const c_void,
        usize,
        LogFn,
        *mut c_void,
        *mut c_char,
        usize,
    ) -> *mut S6Runner,
    runner_free: unsafe extern "C" fn(*mut S6Runner),
    runner_num_io: unsafe extern "C" fn(*const S6Runner) -> i32,
    runner_io: unsafe extern "C" fn(
        *const S6Runner,
        i32,
        *mut *const c_char,
        *mut i32,
        *mut i32,
        *mut i32,
        *mut i64,
    ) -> i32,
    runner_set_input_shape:
        unsafe extern "C" fn(*mut S6Runner, *const c_char, i32, *const i64) -> i32,
    runner_shape: unsafe extern "C" fn(*const S6Runner, *const c_char, *mut i32, *mut i64) -> i32,
    runner_set_address: unsafe extern "C" fn(*mut S6Runner, *const c_char, *mut c_void) -> i32,
    runner_enqueue: unsafe extern "C" fn(*mut S6Runner, *mut c_void) -> i32,
}

/// Declares one backend's C functions (named `<prefix><function>`) and their table `FNS`.
macro_rules! glue_fns {
    ($cfg:meta, $module:ident, $prefix:literal) => {
        #[cfg($cfg)]
        mod $module {
            use super::*;
            extern "C" {
                #[link_name = concat!($prefix, "header_version")]
                fn header_version() -> i32;
                #[link_name = concat!($prefix, "is_rtx")]
                fn is_rtx() -> i32;
                #[link_name = concat!($prefix, "has_onnx_parser")]
                fn has_onnx_parser() -> i32;
                #[link_name = concat!($prefix, "has_creator")]
                fn has_creator(
                    reg: *mut c_void,
                    name: *const c_char,
                    version: *const c_char,
                    ns: *const c_char,
                ) -> i32;
                #[link_name = concat!($prefix, "load_plugin_library")]
                fn load_plugin_library(
                    reg: *mut c_void,
                    path: *const c_char,
                    err: *mut c_char,
                    len: usize,
                ) -> i32;
                #[link_name = concat!($prefix, "build")]
                fn build(
                    p: *const S6BuildParams,
                    engine: *mut S6Blob,
                    cache: *mut S6Blob,
                    err: *mut c_char,
                    len: usize,
                ) -> i32;
                #[link_name = concat!($prefix, "blob_free")]
                fn blob_free(b: *mut S6Blob);
                #[link_name = concat!($prefix, "runner_new")]
                fn runner_new(
                    create_runtime: *mut c_void,
                    data: *const c_void,
                    size: usize,
                    log: LogFn,
                    user: *mut c_void,
                    err: *mut c_char,
                    len: usize,
                ) -> *mut S6Runner;
                #[link_name = concat!($prefix, "runner_free")]
                fn runner_free(r: *mut S6Runner);
                #[link_name = concat!($prefix, "runner_num_io")]
                fn runner_num_io(r: *const S6Runner) -> i32;
                #[link_name = concat!($prefix, "runner_io")]
                fn runner_io(
                    r: *const S6Runner,
                    i: i32,
                    name: *mut *const c_char,
                    is_input: *mut i32,
                    dtype: *mut i32,
                    rank: *mut i32,
                    dims: *mut i64,
                ) -> i32;
                #[link_name = concat!($prefix, "runner_set_input_shape")]
                fn runner_set_input_shape(
                    r: *mut S6Runner,
                    name: *const c_char,
                    rank: i32,
                    dims: *const i64,
                ) -> i32;
                #[link_name = concat!($prefix, "runner_shape")]
                fn runner_shape(
                    r: *const S6Runner,
                    name: *const c_char,
                    rank: *mut i32,
                    dims: *mut i64,
                ) -> i32;
                #[link_name = concat!($prefix, "runner_set_address")]
                fn runner_set_address(
                    r: *mut S6Runner,
                    name: *const c_char,
                    ptr: *mut c_void,
                ) -> i32;
                #[link_name = concat!($prefix, "runner_enqueue")]
                fn runner_enqueue(r: *mut S6Runner, stream: *mut c_void) -> i32;
            }
            pub(super) static FNS: Fns = Fns {
                header_version,
                is_rtx,
                has_onnx_parser,
                has_creator,
                load_plugin_library,
                build,
                blob_free,
                runner_new,
                runner_free,
                runner_num_io,
                runner_io,
                runner_set_input_shape,
                runner_shape,
                runner_set_address,
                runner_enqueue,
            };
        }
    };
}

glue_fns!(s6_glue_trt, trt_fns, "s6_glue_trt_");
glue_fns!(s6_glue_rtx, rtx_fns, "s6_glue_rtx_");

fn table(backend: Backend) -> Option<&'static Fns> {
    match backend {
        #[cfg(s6_glue_trt)]
        Backend::Trt => Some(&trt_fns::FNS),
        #[cfg(s6_glue_rtx)]
        Backend::Rtx => Some(&rtx_fns::FNS),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

const ERR_LEN: usize = 4096;

fn err_string(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn cstr(s: &str) -> Result<CString, EngineError> {
    CString::new(s).map_err(|_| EngineError::Trt(format!("name {s:?} contains a NUL byte")))
}

/// `user` of the callbacks: the observer of the current call and what the call collects.
struct CallState<'a> {
    observer: &'a mut dyn Observer,
    layers: Vec<NetworkLayer>,
}

/// # Safety
/// `p` must be null or a NUL-terminated string valid for the call.
unsafe fn opt_str<'a>(p: *const c_char) -> Option<std::borrow::Cow<'a, str>> {
    // SAFETY: per this function's contract.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy())
}

extern "C" fn log_cb(user: *mut c_void, severity: i32, msg: *const c_char) {
    if user.is_null() || msg.is_null() {
        return;
    }
    // Never unwind into C++.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `user` is the `CallState` passed for this call (or runner), alive until it
        // ends; `msg` is a NUL-terminated string from TensorRT, valid during the callback.
        let st = unsafe { &mut *(user as *mut CallState) };
        let msg = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
        st.observer.log(severity, &msg);
    }));
}

extern "C" fn progress_cb(
    user: *mut c_void,
    kind: i32,
    phase: *const c_char,
    parent: *const c_char,
    n: i32,
) {
    if user.is_null() || phase.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: as in `log_cb`; `parent` may be null.
        let st = unsafe { &mut *(user as *mut CallState) };
        let phase = unsafe { CStr::from_ptr(phase) }.to_string_lossy();
        let parent = unsafe { opt_str(parent) };
        let p = match kind {
            0 => Progress::Start {
                phase: &phase,
                parent: parent.as_deref(),
                steps: n,
            },
            1 => Progress::Step {
                phase: &phase,
                step: n,
            },
            _ => Progress::Finish { phase: &phase },
        };
        st.observer.progress(p);
    }));
}

extern "C" fn layer_cb(
    user: *mut c_void,
    _index: i32,
    kind: i32,
    name: *const c_char,
    plugin: *const c_char,
    dtype: i32,
) {
    if user.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: as in `log_cb`; both strings may be null.
        let st = unsafe { &mut *(user as *mut CallState) };
        let name = unsafe { opt_str(name) }.unwrap_or_default().into_owned();
        let plugin = unsafe { opt_str(plugin) }.unwrap_or_default().into_owned();
        let kind = match kind {
            1 => LayerKind::PluginV2(plugin),
            2 => LayerKind::PluginV3(plugin),
            _ => LayerKind::Builtin,
        };
        st.layers.push(NetworkLayer {
            name,
            kind,
            output_dtype: (dtype >= 0).then_some(dtype),
        });
    }));
}

/// Serialized engine or timing cache, owned by TensorRT until dropped.
pub struct Blob {
    blob: S6Blob,
    free: unsafe extern "C" fn(*mut S6Blob),
}

impl Blob {
    pub fn bytes(&self) -> &[u8] {
        if self.blob.data.is_null() {
            return &[];
        }
        // SAFETY: TensorRT's IHostMemory holds `size` bytes at `data` until freed in Drop.
        unsafe { std::slice::from_raw_parts(self.blob.data.cast::<u8>(), self.blob.size) }
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        // SAFETY: the blob came from this backend's build and is freed once.
        unsafe { (self.free)(&mut self.blob) }
    }
}

fn empty_blob() -> S6Blob {
    S6Blob {
        handle: std::ptr::null_mut(),
        data: std::ptr::null(),
        size: 0,
    }
}

/// What a successful build hands back.
pub struct Built {
    pub engine: Blob,
    pub timing_cache: Option<Blob>,
    /// Every layer of the parsed network, in order.
    pub layers: Vec<NetworkLayer>,
}

/// The C++ bridge of one backend.
#[derive(Clone, Copy)]
pub struct Glue {
    backend: Backend,
    fns: &'static Fns,
}

impl std::fmt::Debug for Glue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Glue({})", self.backend)
    }
}

impl Glue {
    /// The bridge of `backend`, or the error saying it was not compiled and how to get it;
    /// `what` is what the caller wanted to do ("build engines").
    pub fn get(backend: Backend, what: &'static str) -> Result<Glue, EngineError> {
        let fns = table(backend).ok_or(EngineError::NoGlue {
            backend: backend.product(),
            what,
            hint: match backend {
                Backend::Trt => "TENSORRT_INCLUDE_DIR=DIR (holding NvInfer.h and NvOnnxParser.h)",
                Backend::Rtx => "S6_TRT_RTX_INCLUDE_DIR=DIR (TensorRT-RTX's headers, holding NvInfer.h and NvOnnxParser.h)",
            },
        })?;
        // SAFETY: returns a constant.
        debug_assert_eq!(unsafe { (fns.is_rtx)() } == 1, backend == Backend::Rtx);
        Ok(Glue { backend, fns })
    }

    /// True when s6-engine was compiled with this backend's bridge.
    pub fn compiled(backend: Backend) -> bool {
        table(backend).is_some()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The version of the headers the bridge was compiled against.
    pub fn header_version(&self) -> TrtVersion {
        // SAFETY: returns a constant.
        let v = unsafe { (self.fns.header_version)() };
        TrtVersion::from_lib_int(v).unwrap_or(TrtVersion::new(0, 0, 0))
    }

    /// True when NvOnnxParser.h was found (engine building possible).
    pub fn has_onnx_parser(&self) -> bool {
        // SAFETY: returns a constant.
        unsafe { (self.fns.has_onnx_parser)() == 1 }
    }

    /// Refuses a library whose major differs from the headers' (the C++ vtables differ).
    pub fn check_abi(&self, lib: &str, found: TrtVersion) -> Result<(), EngineError> {
        let headers = self.header_version();
        if headers.major != found.major {
            return Err(EngineError::MajorMismatch {
                lib: lib.to_string(),
                product: self.backend.product(),
                found: found.to_string(),
                found_major: found.major,
                headers: headers.to_string(),
            });
        }
        if headers != found {
            tracing::info!(
                "{lib} is {} {found}; s6-engine was compiled against {headers} headers (same major: compatible)",
                self.backend
            );
        }
        Ok(())
    }

    /// # Safety
    /// `get_plugin_registry` must be `getPluginRegistry` of a loaded library of this backend
    /// whose major equals the headers' ([`Glue::check_abi`]).
    pub unsafe fn has_creator(
        &self,
        get_plugin_registry: *mut c_void,
        name: &str,
        version: &str,
        ns: &str,
    ) -> Result<bool, EngineError> {
        let (n, v, s) = (cstr(name)?, cstr(version)?, cstr(ns)?);
        // SAFETY: per this function's contract; the strings live across the call.
        match unsafe {
            (self.fns.has_creator)(get_plugin_registry, n.as_ptr(), v.as_ptr(), s.as_ptr())
        } {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(EngineError::Trt(
                "getPluginRegistry() returned no registry".into(),
            )),
        }
    }

    /// # Safety
    /// As [`Glue::has_creator`].
    pub unsafe fn load_plugin_library(
        &self,
        get_plugin_registry: *mut c_void,
        path: &std::path::Path,
    ) -> Result<(), EngineError> {
        let p = cstr(&path.to_string_lossy())?;
        let mut err = vec![0u8; ERR_LEN];
        // SAFETY: per this function's contract; `err` has ERR_LEN bytes.
        let rc = unsafe {
            (self.fns.load_plugin_library)(
                get_plugin_registry,
                p.as_ptr(),
                err.as_mut_ptr().cast(),
                ERR_LEN,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(EngineError::Trt(err_string(&err)))
        }
    }

    /// Parses, builds and serializes.
    ///
    /// # Safety
    /// The function pointers in `call` must be `createInferBuilder_INTERNAL` and
    /// `createNvOnnxParser_INTERNAL` of loaded libraries of this backend whose major equals the
    /// headers'.
    pub unsafe fn build(
        &self,
        call: &BuildCall<'_>,
        observer: &mut dyn Observer,
    ) -> Result<Built, EngineError> {
        let onnx = cstr(&call.onnx_path.to_string_lossy())?;
        let names = call
            .inputs
            .iter()
            .map(|i| cstr(i.name))
            .collect::<Result<Vec<_>, _>>()?;
        let inputs: Vec<S6ProfileInput> = call
            .inputs
            .iter()
            .zip(&names)
            .map(|(i, n)| S6ProfileInput {
                name: n.as_ptr(),
                rank: i.min.len() as i32,
                min: i.min.as_ptr(),
                opt: i.opt.as_ptr(),
                max: i.max.as_ptr(),
            })
            .collect();
        let mut state = CallState {
            observer,
            layers: Vec::new(),
        };
        let (cache_ptr, cache_len) = match call.timing_cache {
            Some(c) => (c.as_ptr().cast::<c_void>(), c.len()),
            None => (std::ptr::null(), 0),
        };
        let params = S6BuildParams {
            create_builder: call.create_builder,
            create_parser: call.create_parser,
            onnx_path: onnx.as_ptr(),
            inputs: inputs.as_ptr(),
            n_inputs: inputs.len() as i32,
            precision: call.precision,
            workspace_bytes: call.workspace_bytes,
            timing_cache: cache_ptr,
            timing_cache_size: cache_len,
            compute_capabilities: call.compute_capabilities.as_ptr(),
            n_compute_capabilities: call.compute_capabilities.len() as i32,
            log: log_cb,
            progress: progress_cb,
            layer: layer_cb,
            user: (&mut state as *mut CallState).cast(),
        };
        let (mut engine, mut cache) = (empty_blob(), empty_blob());
        let mut err = vec![0u8; ERR_LEN];
        // SAFETY: per this function's contract; every pointer in `params` outlives the call.
        let rc = unsafe {
            (self.fns.build)(
                &params,
                &mut engine,
                &mut cache,
                err.as_mut_ptr().cast(),
                ERR_LEN,
            )
        };
        if rc != 0 {
            return Err(EngineError::Trt(err_string(&err)));
        }
        let free = self.fns.blob_free;
        Ok(Built {
            engine: Blob { blob: engine, free },
            timing_cache: (!cache.handle.is_null()).then_some(Blob { blob: cache, free }),
            layers: state.layers,
        })
    }
}

/// A deserialized engine with one execution context.
pub struct Runner {
    ptr: *mut S6Runner,
    fns: &'static Fns,
    // Boxed so that the address TensorRT keeps for logging stays put.
    _state: Box<CallState<'static>>,
}

impl Runner {
    /// # Safety
    /// `create_runtime` must be `createInferRuntime_INTERNAL` of a loaded library of `glue`'s
    /// backend (libnvinfer, libnvinfer_lean, libtensorrt_rtx) whose major equals the headers',
    /// loaded for as long as the runner.
    pub unsafe fn new(
        glue: Glue,
        create_runtime: *mut c_void,
        engine: &[u8],
    ) -> Result<Self, EngineError> {
        // TracingObserver has no state: leaking one allocates nothing.
        let mut state = Box::new(CallState {
            observer: Box::leak(Box::new(TracingObserver)),
            layers: Vec::new(),
        });
        let user = (&mut *state as *mut CallState).cast::<c_void>();
        let mut err = vec![0u8; ERR_LEN];
        // SAFETY: per this function's contract; the state outlives the runner.
        let ptr = unsafe {
            (glue.fns.runner_new)(
                create_runtime,
                engine.as_ptr().cast(),
                engine.len(),
                log_cb,
                user,
                err.as_mut_ptr().cast(),
                ERR_LEN,
            )
        };
        if ptr.is_null() {
            return Err(EngineError::Trt(err_string(&err)));
        }
        Ok(Self {
            ptr,
            fns: glue.fns,
            _state: state,
        })
    }

    pub fn io(&self) -> Vec<IoTensor> {
        // SAFETY: `ptr` is a live runner.
        let n = unsafe { (self.fns.runner_num_io)(self.ptr) };
        (0..n)
            .filter_map(|i| {
                let mut name = std::ptr::null();
                let (mut is_input, mut dtype, mut rank) = (0, 0, 0);
                let mut dims = [0i64; 8];
                // SAFETY: out-pointers are valid; `dims` has the 8 slots the glue fills.
                let rc = unsafe {
                    (self.fns.runner_io)(
                        self.ptr,
                        i,
                        &mut name,
                        &mut is_input,
                        &mut dtype,
                        &mut rank,
                        dims.as_mut_ptr(),
                    )
                };
                if rc != 0 || name.is_null() {
                    return None;
                }
                // SAFETY: the engine owns the name string while the runner lives.
                let name = unsafe { CStr::from_ptr(name) }
                    .to_string_lossy()
                    .into_owned();
                Some(IoTensor {
                    name,
                    is_input: is_input == 1,
                    dtype,
                    shape: dims[..rank.clamp(0, 8) as usize].to_vec(),
                })
            })
            .collect()
    }

    pub fn set_input_shape(&mut self, name: &str, dims: &[i64]) -> Result<(), EngineError> {
        let n = cstr(name)?;
        // SAFETY: live runner; `dims` has `len` entries.
        let rc = unsafe {
            (self.fns.runner_set_input_shape)(
                self.ptr,
                n.as_ptr(),
                dims.len() as i32,
                dims.as_ptr(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(EngineError::Tensor {
                tensor: name.into(),
                reason: format!("shape {dims:?} is outside the engine's optimisation profile"),
            })
        }
    }

    pub fn shape(&self, name: &str) -> Result<Vec<i64>, EngineError> {
        let n = cstr(name)?;
        let mut rank = 0;
        let mut dims = [0i64; 8];
        // SAFETY: live runner; `dims` has 8 slots.
        let rc =
            unsafe { (self.fns.runner_shape)(self.ptr, n.as_ptr(), &mut rank, dims.as_mut_ptr()) };
        if rc != 0 {
            return Err(EngineError::Tensor {
                tensor: name.into(),
                reason: "shape unknown (are all input shapes set?)".into(),
            });
        }
        Ok(dims[..rank.clamp(0, 8) as usize].to_vec())
    }

    /// # Safety
    /// `ptr` must be device memory large enough for the tensor, alive until the enqueued
    /// work completes.
    pub unsafe fn set_address(&mut self, name: &str, ptr: *mut c_void) -> Result<(), EngineError> {
        let n = cstr(name)?;
        // SAFETY: live runner; the address is the caller's responsibility.
        if unsafe { (self.fns.runner_set_address)(self.ptr, n.as_ptr(), ptr) } == 0 {
            Ok(())
        } else {
            Err(EngineError::Tensor {
                tensor: name.into(),
                reason: "setTensorAddress refused the buffer".into(),
            })
        }
    }

    /// # Safety
    /// `stream` must be a CUDA stream of the current context; every tensor address set.
    pub unsafe fn enqueue(&mut self, stream: *mut c_void) -> Result<(), EngineError> {
        // SAFETY: per this function's contract.
        if unsafe { (self.fns.runner_enqueue)(self.ptr, stream) } == 0 {
            Ok(())
        } else {
            Err(EngineError::Trt(
                "enqueueV3 failed (see the TensorRT log above)".into(),
            ))
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // SAFETY: created by this backend's runner_new, freed once.
        unsafe { (self.fns.runner_free)(self.ptr) }
    }
}
