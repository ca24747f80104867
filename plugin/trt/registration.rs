//! How TensorRT finds the creators in `libs6plugin.so` (one per op: `S6Scan`, `S6ScanHeads`),
//! and how the library refuses a TensorRT it was not built for.
//!
//! Rust defines the exported C symbols: a cdylib exports only Rust's own `#[no_mangle]` items
//! (rustc's version script hides `extern "C"` functions of the linked C++ objects), so these
//! forward to the shim's internal functions — after [`host`](super::host) has checked that the
//! TensorRT calling (or, at load time, the one in the process) has the ABI of the headers this
//! library was compiled against. On a mismatch nothing is registered, no TensorRT function is
//! called, and one line on stderr says which TensorRT was found and what to rebuild with.
//!
//! - Dynamic loading (`IPluginRegistry::loadLibrary`, `trtexec --dynamicPlugins`,
//!   `--setPluginsToSerialize`): TensorRT calls `setLoggerFinder` then `getCreators`
//!   (10.x, 11.x, TensorRT-RTX: the IPluginV3 creators) or `getPluginCreators` (8.6/9.x: the
//!   IPluginV2DynamicExt creators) and registers what they return.
//! - Static loading (`trtexec --plugins`/`--staticPlugins`, polygraphy `--plugins`,
//!   `dlopen`/`ctypes.CDLL` by an application): a load-time constructor finds the TensorRT already
//!   in the process ([`host::in_process`]) and registers both creators with its registry. It does
//!   nothing if TensorRT is not in the process, nothing with `S6PLUGIN_NO_STATIC_REGISTRATION`
//!   set, and nothing when a TensorRT library is on the call stack ([`host::caller`]: its
//!   `loadLibrary` is loading us and will call `getCreators`; a creator registered twice would
//!   make it fail).

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;

use super::host::{self, HostTrt, TrtVersion};

extern "C" {
    fn s6_shim_creators(v3_list: i32, nb_creators: *mut i32) -> *const *mut c_void;
    fn s6_shim_set_logger_finder(finder: *mut c_void);
    fn s6_shim_register_static(get_plugin_registry: *mut c_void, get_logger: *mut c_void) -> i32;
    fn s6_shim_interfaces() -> i32;
}

/// Outcome of the load-time registration, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaticRegistration {
    /// The constructor has not run (not Linux, or not yet).
    NotRun,
    /// No TensorRT in the process (or `S6PLUGIN_NO_STATIC_REGISTRATION`).
    NoTensorRt,
    /// TensorRT is loading the library itself (it will call `getCreators`).
    LoadedByTensorRt,
    Registered,
    /// `registerCreator` refused (already registered, say); TensorRT logged why.
    Refused,
    /// The TensorRT in the process has another ABI: nothing was called.
    AbiMismatch,
}

static STATIC_STATE: AtomicI32 = AtomicI32::new(0);

/// What the load-time constructor did.
pub fn static_registration() -> StaticRegistration {
    match STATIC_STATE.load(Ordering::Acquire) {
        1 => StaticRegistration::NoTensorRt,
        2 => StaticRegistration::LoadedByTensorRt,
        3 => StaticRegistration::Registered,
        4 => StaticRegistration::Refused,
        5 => StaticRegistration::AbiMismatch,
        _ => StaticRegistration::NotRun,
    }
}

/// The one-line description of this build (also exported as `s6pluginBuildInfo`).
pub const BUILD_INFO: &str = env!("S6_TRT_BUILD_INFO");

/// The refusal, for a TensorRT of another ABI.
pub fn mismatch_message(built: &TrtVersion, host: &HostTrt) -> String {
    format!(
        "s6plugin: this libs6plugin.so was built for {built} but the TensorRT in this process is \
         {} ({}): their plugin ABIs differ, so nothing was registered and no TensorRT function \
         was called. Rebuild libs6plugin.so against {}'s headers (TENSORRT_INCLUDE_DIR=<its \
         include folder> cargo build --release --features trt), or load the variant built for it \
         (docs/plugin.md, \"One library per TensorRT\").",
        host.version, host.path, host.version
    )
}

static SAID: Once = Once::new();

/// True if we may talk to the TensorRT that is calling (or is in the process); on a mismatch
/// says so once on stderr. No TensorRT at all: nothing to protect, true.
fn host_ok() -> bool {
    std::panic::catch_unwind(|| match host::current() {
        None => true,
        Some(h) => {
            let built = TrtVersion::built();
            let ok = built.abi_compatible(&h.version);
            if !ok {
                SAID.call_once(|| eprintln!("{}", mismatch_message(&built, &h)));
            }
            ok
        }
    })
    .unwrap_or(false)
}

/// A creator list the caller may use, or none (`*nb_creators = 0`) for a TensorRT of another ABI.
///
/// # Safety
/// `nb_creators` is null or a valid pointer to write to.
unsafe fn creators(v3_list: i32, nb_creators: *mut i32) -> *const *mut c_void {
    if !host_ok() {
        if !nb_creators.is_null() {
            // SAFETY: the caller's contract.
            unsafe { *nb_creators = 0 };
        }
        return std::ptr::null();
    }
    // SAFETY: the shim accepts a null or valid pointer; it never unwinds (noexcept).
    unsafe { s6_shim_creators(v3_list, nb_creators) }
}

/// TensorRT 10.x, 11.x and TensorRT-RTX: the plugin creators of this library
/// (`IPluginCreatorInterface*` array: the `IPluginCreatorV3One` of `S6Scan`, then of
/// `S6ScanHeads`).
///
/// # Safety
/// `nb_creators` is null or a valid pointer to write to.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "C" fn getCreators(nb_creators: *mut i32) -> *const *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { creators(1, nb_creators) }
}

/// TensorRT 8.6/9.x: the plugin creators of this library (`IPluginCreator*` array; the
/// `IPluginV2DynamicExt` creators of `S6Scan` and `S6ScanHeads`, in the 8.x and 10.x builds).
///
/// # Safety
/// As [`getCreators`].
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "C" fn getPluginCreators(nb_creators: *mut i32) -> *const *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { creators(0, nb_creators) }
}

/// TensorRT hands over its `ILoggerFinder*`; the shim logs through `findLogger()` after checking
/// the objects can be called (cpp_shim/s6_common.cpp). Ignored from a TensorRT of another ABI.
///
/// # Safety
/// `finder` is null or an `nvinfer1::ILoggerFinder*` of this library's TensorRT ABI.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "C" fn setLoggerFinder(finder: *mut c_void) {
    if finder.is_null() || host_ok() {
        // SAFETY: stored by the shim, dereferenced only as an ILoggerFinder after its checks.
        unsafe { s6_shim_set_logger_finder(finder) }
    }
}

/// A one-line description of this build: version, the TensorRT it was built for, the plugin
/// interfaces it hands out (`s6-engine info --plugin` prints it). Static, NUL-terminated.
#[no_mangle]
#[allow(non_snake_case)]
pub extern "C" fn s6pluginBuildInfo() -> *const c_char {
    concat!(env!("S6_TRT_BUILD_INFO"), "\0").as_ptr() as *const c_char
}

/// Which plugin interfaces the shim implements: bit 0 IPluginV2DynamicExt, bit 1 IPluginV3.
pub fn interfaces() -> i32 {
    // SAFETY: a noexcept C function without arguments.
    unsafe { s6_shim_interfaces() }
}

#[cfg(target_os = "linux")]
mod load_time {
    use super::*;

    fn register() -> i32 {
        if std::env::var_os("S6PLUGIN_NO_STATIC_REGISTRATION").is_some() {
            return 1;
        }
        let built = TrtVersion::built();
        if let Some(loader) = host::caller() {
            // TensorRT's loadLibrary: it calls getCreators next, which refuses a mismatch too;
            // say it here, where the load happens.
            if !built.abi_compatible(&loader.version) {
                SAID.call_once(|| eprintln!("{}", mismatch_message(&built, &loader)));
                return 5;
            }
            return 2;
        }
        let Some(trt) = host::in_process() else {
            return 1;
        };
        if !built.abi_compatible(&trt.version) {
            SAID.call_once(|| eprintln!("{}", mismatch_message(&built, &trt)));
            return 5;
        }
        // SAFETY: both are that TensorRT's exported C functions of the documented signatures
        // (`IPluginRegistry* getPluginRegistry()`, `ILogger* getLogger()`), or null, and its ABI
        // is the one the shim was compiled for.
        if unsafe { s6_shim_register_static(trt.get_plugin_registry, trt.get_logger) } != 0 {
            3
        } else {
            4
        }
    }

    extern "C" fn register_at_load() {
        let state = std::panic::catch_unwind(register).unwrap_or(4);
        STATIC_STATE.store(state, Ordering::Release);
    }

    /// Runs when the library is loaded. A Rust `.init_array` entry rather than a C++ static
    /// initialiser: the latter runs only if its object file happens to be linked in.
    #[used]
    #[link_section = ".init_array"]
    static REGISTER_AT_LOAD: extern "C" fn() = register_at_load;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_message_names_both_and_the_fix() {
        let built = TrtVersion::from_lib_int(101400, false).unwrap();
        let host = HostTrt {
            path: "/opt/x/libtensorrt_rtx.so.1".into(),
            version: TrtVersion::from_lib_int(10701, true).unwrap(),
            get_plugin_registry: std::ptr::null_mut(),
            get_logger: std::ptr::null_mut(),
        };
        let m = mismatch_message(&built, &host);
        assert!(m.contains("built for TensorRT 10.14.0"), "{m}");
        assert!(
            m.contains("TensorRT-RTX 1.7.1 (/opt/x/libtensorrt_rtx.so.1)"),
            "{m}"
        );
        assert!(
            m.contains("Rebuild libs6plugin.so against TensorRT-RTX 1.7.1's headers"),
            "{m}"
        );
        assert!(!m.contains('\n'));
    }

    #[test]
    fn build_info_names_the_abi() {
        assert!(BUILD_INFO.starts_with("s6plugin "), "{BUILD_INFO}");
        assert!(
            BUILD_INFO.contains(&TrtVersion::built().to_string()),
            "{BUILD_INFO}"
        );
        assert!(BUILD_INFO.contains("IPluginV"), "{BUILD_INFO}");
        // SAFETY: a static NUL-terminated string.
        let c = unsafe { std::ffi::CStr::from_ptr(s6pluginBuildInfo()) };
        assert_eq!(c.to_str().unwrap(), BUILD_INFO);
    }
}
