//! How TensorRT finds the `S6Scan` creator in `libs6plugin.so`.
//!
//! Rust defines the exported C symbols: a cdylib exports only Rust's own `#[no_mangle]` items
//! (rustc's version script hides `extern "C"` functions of the linked C++ objects), so these
//! forward to the shim's internal functions.
//!
//! - Dynamic loading (`IPluginRegistry::loadLibrary`, `trtexec --dynamicPlugins`,
//!   `--setPluginsToSerialize`): TensorRT calls `setLoggerFinder` then `getCreators`
//!   (10.x) or `getPluginCreators` (8.6/9.x) and registers what they return.
//! - Static loading (`trtexec --plugins`/`--staticPlugins`, polygraphy `--plugins`,
//!   `dlopen`/`ctypes.CDLL` by an application): a load-time constructor looks up
//!   `getPluginRegistry` in the TensorRT already in the process — among the global symbols, else
//!   in a privately loaded `libnvinfer*.so` found with RTLD_NOLOAD (no link-time dependency on
//!   libnvinfer) — and registers the creator. It does nothing if TensorRT is not in the process,
//!   nothing with `S6PLUGIN_NO_STATIC_REGISTRATION` set, and nothing when TensorRT itself is
//!   loading the library (a TensorRT library on the call stack), since `loadLibrary` refuses
//!   creators that are already registered.

use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicI32, Ordering};

extern "C" {
    fn s6_shim_creators(v3_interface: i32, nb_creators: *mut i32) -> *const *mut c_void;
    fn s6_shim_set_logger_finder(finder: *mut c_void);
    fn s6_shim_register_static(get_plugin_registry: *mut c_void, get_logger: *mut c_void) -> i32;
}

/// Outcome of the load-time registration, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaticRegistration {
    /// The constructor has not run (not Linux, or not yet).
    NotRun,
    /// No `getPluginRegistry` in the process.
    NoTensorRt,
    /// TensorRT is loading the library itself (it will call `getCreators`).
    LoadedByTensorRt,
    Registered,
    /// `registerCreator` refused (already registered, say); TensorRT logged why.
    Refused,
}

static STATIC_STATE: AtomicI32 = AtomicI32::new(0);

/// What the load-time constructor did.
pub fn static_registration() -> StaticRegistration {
    match STATIC_STATE.load(Ordering::Acquire) {
        1 => StaticRegistration::NoTensorRt,
        2 => StaticRegistration::LoadedByTensorRt,
        3 => StaticRegistration::Registered,
        4 => StaticRegistration::Refused,
        _ => StaticRegistration::NotRun,
    }
}

/// TensorRT 10.x+: the plugin creators of this library (`IPluginCreatorInterface*` array).
///
/// # Safety
/// `nb_creators` is null or a valid pointer to write to.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "C" fn getCreators(nb_creators: *mut i32) -> *const *mut c_void {
    // SAFETY: the shim accepts a null or valid pointer; it never unwinds (noexcept).
    unsafe { s6_shim_creators(1, nb_creators) }
}

/// TensorRT 8.6/9.x: the plugin creators of this library (`IPluginCreator*` array).
///
/// # Safety
/// As [`getCreators`].
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "C" fn getPluginCreators(nb_creators: *mut i32) -> *const *mut c_void {
    // SAFETY: as in getCreators.
    unsafe { s6_shim_creators(0, nb_creators) }
}

/// TensorRT hands over its `ILoggerFinder*`; the shim logs through `findLogger()`.
///
/// # Safety
/// `finder` is null or an `nvinfer1::ILoggerFinder*` that outlives the library's use.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "C" fn setLoggerFinder(finder: *mut c_void) {
    // SAFETY: stored by the shim, dereferenced only as an ILoggerFinder.
    unsafe { s6_shim_set_logger_finder(finder) }
}

#[cfg(target_os = "linux")]
mod load_time {
    use super::*;

    extern "C" {
        fn _Unwind_Backtrace(
            trace: extern "C" fn(ctx: *mut c_void, arg: *mut c_void) -> i32,
            arg: *mut c_void,
        ) -> i32;
        fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
    }

    const URC_NO_REASON: i32 = 0;
    const URC_END_OF_STACK: i32 = 5;

    /// Unwinder callback: sets `*arg` when a frame lies in a TensorRT library (libnvinfer*).
    extern "C" fn frame(ctx: *mut c_void, arg: *mut c_void) -> i32 {
        // SAFETY: ctx is the unwinder's live context; arg is the &mut bool passed below.
        let ip = unsafe { _Unwind_GetIP(ctx) };
        if ip == 0 {
            return URC_END_OF_STACK;
        }
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr only reads the loader's tables; info is a valid out-parameter.
        let found = unsafe { libc::dladdr(ip as *const c_void, &mut info) } != 0;
        if found && !info.dli_fname.is_null() {
            // SAFETY: dli_fname is a NUL-terminated path owned by the loader.
            let path = unsafe { CStr::from_ptr(info.dli_fname) }.to_bytes();
            let base = path.rsplit(|&c| c == b'/').next().unwrap_or(path);
            if base.starts_with(b"libnvinfer") {
                // SAFETY: arg points to the caller's bool for the duration of the walk.
                unsafe { *(arg as *mut bool) = true };
                return URC_END_OF_STACK;
            }
        }
        URC_NO_REASON
    }

    fn tensorrt_on_stack() -> bool {
        let mut hit = false;
        // SAFETY: the callback only writes through the pointer to `hit`, which outlives the walk.
        unsafe { _Unwind_Backtrace(frame, &mut hit as *mut bool as *mut c_void) };
        hit
    }

    /// TensorRT libraries that may already be in the process, loaded privately (Python's
    /// `tensorrt` module, an app's own dlopen): found with RTLD_NOLOAD, never loaded by us.
    const TENSORRT_SONAMES: [&CStr; 8] = [
        c"libnvinfer.so.11",
        c"libnvinfer.so.10",
        c"libnvinfer.so.9",
        c"libnvinfer.so.8",
        c"libnvinfer.so",
        c"libnvinfer_lean.so.11",
        c"libnvinfer_lean.so.10",
        c"libnvinfer_lean.so.9",
    ];

    /// (`getPluginRegistry`, `getLogger`) of the TensorRT in this process, if any: first among
    /// the global symbols (an app linked against TensorRT), then in a privately loaded library.
    fn find_tensorrt() -> Option<(*mut c_void, *mut c_void)> {
        let lookup = |handle: *mut c_void| {
            // SAFETY: dlsym with a valid handle (or RTLD_DEFAULT) and NUL-terminated names.
            let reg =
                unsafe { libc::dlsym(handle, c"getPluginRegistry".as_ptr() as *const c_char) };
            let log = unsafe { libc::dlsym(handle, c"getLogger".as_ptr() as *const c_char) };
            (!reg.is_null()).then_some((reg, log))
        };
        if let Some(found) = lookup(libc::RTLD_DEFAULT) {
            return Some(found);
        }
        TENSORRT_SONAMES.iter().find_map(|name| {
            // SAFETY: RTLD_NOLOAD only returns a handle to an already loaded library; the
            // reference it takes is kept on purpose (we keep its function pointers).
            let h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
            if h.is_null() {
                None
            } else {
                lookup(h)
            }
        })
    }

    extern "C" fn register_at_load() {
        let state = std::panic::catch_unwind(|| {
            if std::env::var_os("S6PLUGIN_NO_STATIC_REGISTRATION").is_some() {
                return 1;
            }
            let Some((get_registry, get_logger)) = find_tensorrt() else {
                return 1;
            };
            if tensorrt_on_stack() {
                return 2;
            }
            // SAFETY: both are TensorRT's exported C functions of the documented signatures
            // (`IPluginRegistry* getPluginRegistry()`, `ILogger* getLogger()`), or null.
            if unsafe { s6_shim_register_static(get_registry, get_logger) } != 0 {
                3
            } else {
                4
            }
        })
        .unwrap_or(4);
        STATIC_STATE.store(state, Ordering::Release);
    }

    /// Runs when the library is loaded. A Rust `.init_array` entry rather than a C++ static
    /// initialiser: the latter runs only if its object file happens to be linked in.
    #[used]
    #[link_section = ".init_array"]
    static REGISTER_AT_LOAD: extern "C" fn() = register_at_load;
}
