//! Rust side of `tools/cpp/trt_glue.cpp`: the TensorRT calls, each behind a safe wrapper. When
//! the crate was built without TensorRT headers (`cfg(s6_trt_glue)` off) every entry point says
//! so instead.

use super::error::EngineError;
use super::version::TrtVersion;

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
    pub create_builder: *mut std::ffi::c_void,
    pub create_parser: *mut std::ffi::c_void,
    pub onnx_path: &'a std::path::Path,
    pub inputs: &'a [ProfileDims<'a>],
    /// 0 fp32, 1 fp16 flag, 2 bf16 flag, 3 strongly typed (trt_glue.h's S6_PRECISION_*).
    pub precision: i32,
    pub workspace_bytes: u64,
    pub timing_cache: Option<&'a [u8]>,
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

#[cfg(s6_trt_glue)]
mod imp {
    use super::*;
    use std::ffi::{c_char, c_void, CStr, CString};

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
        log: LogFn,
        progress: ProgressFn,
        user: *mut c_void,
    }

    #[repr(C)]
    pub struct S6Runner {
        _private: [u8; 0],
    }

    extern "C" {
        fn s6_glue_header_version() -> i32;
        fn s6_glue_has_onnx_parser() -> i32;
        fn s6_glue_has_creator(
            reg: *mut c_void,
            name: *const c_char,
            version: *const c_char,
            ns: *const c_char,
        ) -> i32;
        fn s6_glue_load_plugin_library(
            reg: *mut c_void,
            path: *const c_char,
            err: *mut c_char,
            len: usize,
        ) -> i32;
        fn s6_glue_build(
            p: *const S6BuildParams,
            engine: *mut S6Blob,
            cache: *mut S6Blob,
            err: *mut c_char,
            len: usize,
        ) -> i32;
        fn s6_glue_blob_free(b: *mut S6Blob);
        fn s6_glue_runner_new(
            create_runtime: *mut c_void,
            data: *const c_void,
            size: usize,
            log: LogFn,
            user: *mut c_void,
            err: *mut c_char,
            len: usize,
        ) -> *mut S6Runner;
        fn s6_glue_runner_free(r: *mut S6Runner);
        fn s6_glue_runner_num_io(r: *const S6Runner) -> i32;
        fn s6_glue_runner_io(
            r: *const S6Runner,
            i: i32,
            name: *mut *const c_char,
            is_input: *mut i32,
            dtype: *mut i32,
            rank: *mut i32,
            dims: *mut i64,
        ) -> i32;
        fn s6_glue_runner_set_input_shape(
            r: *mut S6Runner,
            name: *const c_char,
            rank: i32,
            dims: *const i64,
        ) -> i32;
        fn s6_glue_runner_shape(
            r: *const S6Runner,
            name: *const c_char,
            rank: *mut i32,
            dims: *mut i64,
        ) -> i32;
        fn s6_glue_runner_set_address(
            r: *mut S6Runner,
            name: *const c_char,
            ptr: *mut c_void,
        ) -> i32;
        fn s6_glue_runner_enqueue(r: *mut S6Runner, stream: *mut c_void) -> i32;
    }

    const ERR_LEN: usize = 4096;

    fn err_string(buf: &[u8]) -> String {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    }

    fn cstr(s: &str) -> Result<CString, EngineError> {
        CString::new(s).map_err(|_| EngineError::Trt(format!("name {s:?} contains a NUL byte")))
    }

    /// `user` of the callbacks: the observer of the current call.
    type UserData<'a> = &'a mut dyn Observer;

    extern "C" fn log_cb(user: *mut c_void, severity: i32, msg: *const c_char) {
        if user.is_null() || msg.is_null() {
            return;
        }
        // Never unwind into C++.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: `user` is the `&mut UserData` passed for this call, alive until it returns;
            // `msg` is a NUL-terminated string from TensorRT, valid during the callback.
            let obs = unsafe { &mut *(user as *mut UserData) };
            let msg = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
            obs.log(severity, &msg);
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
            let obs = unsafe { &mut *(user as *mut UserData) };
            let phase = unsafe { CStr::from_ptr(phase) }.to_string_lossy();
            let parent =
                (!parent.is_null()).then(|| unsafe { CStr::from_ptr(parent) }.to_string_lossy());
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
            obs.progress(p);
        }));
    }

    pub fn header_version() -> Option<TrtVersion> {
        // SAFETY: returns a constant.
        TrtVersion::from_lib_int(unsafe { s6_glue_header_version() })
    }

    pub fn has_onnx_parser() -> bool {
        // SAFETY: returns a constant.
        unsafe { s6_glue_has_onnx_parser() == 1 }
    }

    /// # Safety
    /// `get_plugin_registry` must be `getPluginRegistry` of a loaded libnvinfer whose major
    /// equals the headers'.
    pub unsafe fn has_creator(
        get_plugin_registry: *mut c_void,
        name: &str,
        version: &str,
        ns: &str,
    ) -> Result<bool, EngineError> {
        let (n, v, s) = (cstr(name)?, cstr(version)?, cstr(ns)?);
        // SAFETY: per this function's contract; the strings live across the call.
        match unsafe {
            s6_glue_has_creator(get_plugin_registry, n.as_ptr(), v.as_ptr(), s.as_ptr())
        } {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(EngineError::Trt(
                "getPluginRegistry() returned no registry".into(),
            )),
        }
    }

    /// # Safety
    /// As [`has_creator`].
    pub unsafe fn load_plugin_library(
        get_plugin_registry: *mut c_void,
        path: &std::path::Path,
    ) -> Result<(), EngineError> {
        let p = cstr(&path.to_string_lossy())?;
        let mut err = vec![0u8; ERR_LEN];
        // SAFETY: per this function's contract; `err` has ERR_LEN bytes.
        let rc = unsafe {
            s6_glue_load_plugin_library(
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

    /// Serialized engine or timing cache, owned by TensorRT until dropped.
    pub struct Blob(S6Blob);

    impl Blob {
        pub fn bytes(&self) -> &[u8] {
            if self.0.data.is_null() {
                return &[];
            }
            // SAFETY: TensorRT's IHostMemory holds `size` bytes at `data` until freed in Drop.
            unsafe { std::slice::from_raw_parts(self.0.data.cast::<u8>(), self.0.size) }
        }
    }

    impl Drop for Blob {
        fn drop(&mut self) {
            // SAFETY: the blob came from s6_glue_build and is freed once.
            unsafe { s6_glue_blob_free(&mut self.0) }
        }
    }

    fn empty_blob() -> S6Blob {
        S6Blob {
            handle: std::ptr::null_mut(),
            data: std::ptr::null(),
            size: 0,
        }
    }

    /// # Safety
    /// The function pointers in `call` must be `createInferBuilder_INTERNAL` and
    /// `createNvOnnxParser_INTERNAL` of loaded libraries whose major equals the headers'.
    pub unsafe fn build(
        call: &BuildCall<'_>,
        observer: &mut dyn Observer,
    ) -> Result<(Blob, Option<Blob>), EngineError> {
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
        let mut user: UserData = observer;
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
            log: log_cb,
            progress: progress_cb,
            user: (&mut user as *mut UserData).cast(),
        };
        let (mut engine, mut cache) = (empty_blob(), empty_blob());
        let mut err = vec![0u8; ERR_LEN];
        // SAFETY: per this function's contract; every pointer in `params` outlives the call.
        let rc = unsafe {
            s6_glue_build(
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
        let cache = (!cache.handle.is_null()).then_some(Blob(cache));
        Ok((Blob(engine), cache))
    }

    /// A deserialized engine with one execution context.
    pub struct Runner {
        ptr: *mut S6Runner,
        // Boxed so that the address TensorRT keeps for logging stays put.
        _observer: Box<UserData<'static>>,
    }

    impl Runner {
        /// # Safety
        /// `create_runtime` must be `createInferRuntime_INTERNAL` of a loaded libnvinfer (or
        /// libnvinfer_lean) whose major equals the headers', loaded for as long as the runner.
        pub unsafe fn new(create_runtime: *mut c_void, engine: &[u8]) -> Result<Self, EngineError> {
            let mut observer: Box<UserData<'static>> =
                Box::new(Box::leak(Box::new(TracingObserver)));
            let user = (&mut *observer as *mut UserData).cast::<c_void>();
            let mut err = vec![0u8; ERR_LEN];
            // SAFETY: per this function's contract; the observer outlives the runner.
            let ptr = unsafe {
                s6_glue_runner_new(
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
                _observer: observer,
            })
        }

        pub fn io(&self) -> Vec<IoTensor> {
            // SAFETY: `ptr` is a live runner.
            let n = unsafe { s6_glue_runner_num_io(self.ptr) };
            (0..n)
                .filter_map(|i| {
                    let mut name = std::ptr::null();
                    let (mut is_input, mut dtype, mut rank) = (0, 0, 0);
                    let mut dims = [0i64; 8];
                    // SAFETY: out-pointers are valid; `dims` has the 8 slots the glue fills.
                    let rc = unsafe {
                        s6_glue_runner_io(
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
                s6_glue_runner_set_input_shape(
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
                unsafe { s6_glue_runner_shape(self.ptr, n.as_ptr(), &mut rank, dims.as_mut_ptr()) };
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
        pub unsafe fn set_address(
            &mut self,
            name: &str,
            ptr: *mut c_void,
        ) -> Result<(), EngineError> {
            let n = cstr(name)?;
            // SAFETY: live runner; the address is the caller's responsibility.
            if unsafe { s6_glue_runner_set_address(self.ptr, n.as_ptr(), ptr) } == 0 {
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
            if unsafe { s6_glue_runner_enqueue(self.ptr, stream) } == 0 {
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
            // SAFETY: created by s6_glue_runner_new, freed once.
            unsafe { s6_glue_runner_free(self.ptr) }
        }
    }
}

#[cfg(not(s6_trt_glue))]
mod imp {
    use super::*;
    use std::ffi::c_void;

    const fn no_glue(what: &'static str) -> EngineError {
        EngineError::NoGlue {
            what,
            parser: " and NvOnnxParser.h",
        }
    }

    pub fn header_version() -> Option<TrtVersion> {
        None
    }
    pub fn has_onnx_parser() -> bool {
        false
    }
    /// # Safety
    /// Never dereferences anything (built without TensorRT headers).
    pub unsafe fn has_creator(
        _: *mut c_void,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<bool, EngineError> {
        Err(no_glue("look up plugin creators"))
    }
    /// # Safety
    /// Never dereferences anything (built without TensorRT headers).
    pub unsafe fn load_plugin_library(
        _: *mut c_void,
        _: &std::path::Path,
    ) -> Result<(), EngineError> {
        Err(no_glue("load plugin libraries"))
    }
    pub struct Blob;
    impl Blob {
        pub fn bytes(&self) -> &[u8] {
            &[]
        }
    }
    /// # Safety
    /// Never dereferences anything (built without TensorRT headers).
    pub unsafe fn build(
        _: &BuildCall<'_>,
        _: &mut dyn Observer,
    ) -> Result<(Blob, Option<Blob>), EngineError> {
        Err(no_glue("build engines"))
    }
    pub struct Runner;
    impl Runner {
        /// # Safety
        /// Never dereferences anything (built without TensorRT headers).
        pub unsafe fn new(_: *mut c_void, _: &[u8]) -> Result<Self, EngineError> {
            Err(no_glue("run engines"))
        }
        pub fn io(&self) -> Vec<IoTensor> {
            vec![]
        }
        pub fn set_input_shape(&mut self, _: &str, _: &[i64]) -> Result<(), EngineError> {
            Err(no_glue("run engines"))
        }
        pub fn shape(&self, _: &str) -> Result<Vec<i64>, EngineError> {
            Err(no_glue("run engines"))
        }
        /// # Safety
        /// Never dereferences anything (built without TensorRT headers).
        pub unsafe fn set_address(&mut self, _: &str, _: *mut c_void) -> Result<(), EngineError> {
            Err(no_glue("run engines"))
        }
        /// # Safety
        /// Never dereferences anything (built without TensorRT headers).
        pub unsafe fn enqueue(&mut self, _: *mut c_void) -> Result<(), EngineError> {
            Err(no_glue("run engines"))
        }
    }
}

pub use imp::*;

/// Refuses a library whose major differs from the headers' (the C++ vtables differ), and says
/// when the glue is missing altogether.
pub fn check_abi(lib: &str, found: TrtVersion, what: &'static str) -> Result<(), EngineError> {
    let Some(headers) = header_version() else {
        return Err(EngineError::NoGlue {
            what,
            parser: " and NvOnnxParser.h",
        });
    };
    if headers.major != found.major {
        return Err(EngineError::MajorMismatch {
            lib: lib.to_string(),
            found: found.to_string(),
            found_major: found.major,
            headers: headers.to_string(),
        });
    }
    if headers != found {
        tracing::info!(
            "{lib} is TensorRT {found}; s6-engine was compiled against {headers} headers (same major: compatible)"
        );
    }
    Ok(())
}
