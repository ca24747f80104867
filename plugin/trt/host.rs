//! Which TensorRT is in the process (or is calling us), and whether it is the one this library
//! was built for.
//!
//! A plugin library is C++ vtables compiled against one TensorRT's headers, and those differ
//! between products and major versions (TensorRT 10.x, 11.x, TensorRT-RTX 1.x): a call through a
//! registry, logger or creator of another ABI lands on the wrong method. So every export looks
//! at the TensorRT it would talk to before calling anything of it, and refuses a mismatch.
//!
//! A TensorRT library is recognised by what it defines, not by its file name: a loaded module
//! that itself defines `getInferLibVersion` (libnvinfer, libnvinfer_lean, libtensorrt_rtx, ...).

use std::ffi::{c_char, c_void, CStr, CString};
use std::fmt;

/// TensorRT product: the two have different vtables even at the same version numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Enterprise,
    Rtx,
}

/// A TensorRT version as a library reports it or as headers declare it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrtVersion {
    pub flavour: Flavour,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl TrtVersion {
    /// The TensorRT whose headers this library was compiled against (build/shim.rs).
    pub fn built() -> Self {
        let num = |s: &str| s.parse().unwrap_or(0);
        Self {
            flavour: if env!("S6_TRT_FLAVOUR") == "rtx" {
                Flavour::Rtx
            } else {
                Flavour::Enterprise
            },
            major: num(env!("S6_TRT_MAJOR")),
            minor: num(env!("S6_TRT_MINOR")),
            patch: num(env!("S6_TRT_PATCH")),
        }
    }

    /// Decodes `getInferLibVersion()`: `major·10000 + minor·100 + patch` from 10.0 on (and in
    /// TensorRT-RTX, whose majors are 1.x), `major·1000 + minor·100 + patch` before. `rtx_name`:
    /// the library's file name says TensorRT-RTX.
    pub fn from_lib_int(v: i32, rtx_name: bool) -> Option<Self> {
        if v <= 0 {
            return None;
        }
        let v = v as u32;
        let (major, minor, patch) = if v >= 10_000 {
            (v / 10_000, (v / 100) % 100, v % 100)
        } else {
            (v / 1000, (v / 100) % 10, v % 100)
        };
        // Enterprise TensorRT reported 5-digit versions only from 10.0 on; a 5-digit major
        // below that is TensorRT-RTX.
        let flavour = if rtx_name || (v >= 10_000 && major < 10) {
            Flavour::Rtx
        } else {
            Flavour::Enterprise
        };
        Some(Self {
            flavour,
            major,
            minor,
            patch,
        })
    }

    /// Same product and major version: TensorRT keeps its plugin ABI within a major version.
    pub fn abi_compatible(&self, other: &Self) -> bool {
        self.flavour == other.flavour && self.major == other.major
    }
}

impl fmt::Display for TrtVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.flavour {
            Flavour::Enterprise => "TensorRT",
            Flavour::Rtx => "TensorRT-RTX",
        };
        write!(f, "{name} {}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A TensorRT library loaded in this process.
#[derive(Debug)]
pub struct HostTrt {
    pub path: String,
    pub version: TrtVersion,
    /// `getPluginRegistry`, `getLogger` of that library (null if it lacks them).
    pub get_plugin_registry: *mut c_void,
    pub get_logger: *mut c_void,
}

/// The file of the module holding `addr` and its load address.
fn module_of(addr: *const c_void) -> Option<(CString, usize)> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's tables; info is a valid out-parameter.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader.
    let name = unsafe { CStr::from_ptr(info.dli_fname) }.to_owned();
    Some((name, info.dli_fbase as usize))
}

/// `name` as defined by the module loaded at `base` itself (not by one of its dependencies).
fn own_symbol(handle: *mut c_void, name: &CStr, base: usize) -> *mut c_void {
    // SAFETY: a valid handle and a NUL-terminated name.
    let sym = unsafe { libc::dlsym(handle, name.as_ptr() as *const c_char) };
    match module_of(sym) {
        Some((_, b)) if !sym.is_null() && b == base => sym,
        _ => std::ptr::null_mut(),
    }
}

/// The TensorRT library at `path` (already loaded, loaded at `base`), if it is one.
fn tensorrt_module(path: &CStr, base: usize) -> Option<HostTrt> {
    if path.to_bytes().is_empty() {
        return None;
    }
    // SAFETY: RTLD_NOLOAD never loads anything; it only returns a handle to a loaded library.
    // The reference it takes is kept on purpose: we keep its function pointers.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
    if handle.is_null() {
        return None;
    }
    let version_fn = own_symbol(handle, c"getInferLibVersion", base);
    if version_fn.is_null() {
        // SAFETY: the handle came from dlopen above.
        unsafe { libc::dlclose(handle) };
        return None;
    }
    // SAFETY: `int32_t getInferLibVersion() noexcept`, exported by every TensorRT since 5 and by
    // TensorRT-RTX; it only returns a constant.
    let v = unsafe {
        let f: extern "C" fn() -> i32 = std::mem::transmute(version_fn);
        f()
    };
    let path_text = path.to_string_lossy().into_owned();
    let file = path_text.rsplit('/').next().unwrap_or_default();
    let version = TrtVersion::from_lib_int(v, file.contains("tensorrt_rtx"))?;
    Some(HostTrt {
        path: path_text,
        version,
        get_plugin_registry: own_symbol(handle, c"getPluginRegistry", base),
        get_logger: own_symbol(handle, c"getLogger", base),
    })
}

/// Load address of this library (to skip our own frames).
fn own_base() -> usize {
    module_of(own_base as *const c_void)
        .map(|(_, b)| b)
        .unwrap_or(0)
}

mod unwind {
    use std::ffi::c_void;

    extern "C" {
        pub fn _Unwind_Backtrace(
            trace: extern "C" fn(ctx: *mut c_void, arg: *mut c_void) -> i32,
            arg: *mut c_void,
        ) -> i32;
        pub fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
    }

    const URC_NO_REASON: i32 = 0;
    const URC_END_OF_STACK: i32 = 5;
    pub const MAX_FRAMES: usize = 128;

    pub struct Frames {
        pub ips: [usize; MAX_FRAMES],
        pub len: usize,
    }

    extern "C" fn frame(ctx: *mut c_void, arg: *mut c_void) -> i32 {
        // SAFETY: ctx is the unwinder's live context; arg is the &mut Frames passed below.
        let (ip, frames) = unsafe { (_Unwind_GetIP(ctx), &mut *(arg as *mut Frames)) };
        if ip == 0 || frames.len == MAX_FRAMES {
            return URC_END_OF_STACK;
        }
        frames.ips[frames.len] = ip;
        frames.len += 1;
        URC_NO_REASON
    }

    /// The return addresses on this thread's stack, innermost first.
    pub fn frames() -> Frames {
        let mut f = Frames {
            ips: [0; MAX_FRAMES],
            len: 0,
        };
        // SAFETY: the callback only writes into `f`, which outlives the walk.
        unsafe { _Unwind_Backtrace(frame, &mut f as *mut Frames as *mut c_void) };
        f
    }
}

/// The TensorRT library that is calling into us right now, if any: the innermost frame on this
/// thread's stack that lies inside a TensorRT library (its `loadLibrary` loading us, or handing
/// over its logger finder, or asking for our creators).
pub fn caller() -> Option<HostTrt> {
    let ours = own_base();
    let frames = unwind::frames();
    let mut seen: Vec<usize> = Vec::new();
    for &ip in &frames.ips[..frames.len] {
        let Some((name, base)) = module_of((ip - 1) as *const c_void) else {
            continue;
        };
        if base == ours || seen.contains(&base) {
            continue;
        }
        seen.push(base);
        if let Some(h) = tensorrt_module(&name, base) {
            return Some(h);
        }
    }
    None
}

/// A TensorRT library loaded in this process: the one whose `getPluginRegistry` is among the
/// global symbols (an application linked against it), else any loaded privately (Python's
/// `tensorrt` module, an application's own `dlopen`).
pub fn in_process() -> Option<HostTrt> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name.
    let global = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"getPluginRegistry".as_ptr()) };
    if !global.is_null() {
        if let Some(h) = module_of(global).and_then(|(n, b)| tensorrt_module(&n, b)) {
            return Some(h);
        }
    }
    let ours = own_base();
    let mut modules: Vec<(CString, usize)> = Vec::new();
    extern "C" fn each(info: *mut libc::dl_phdr_info, _size: usize, arg: *mut c_void) -> i32 {
        // SAFETY: the loader passes a valid info; arg is the Vec below.
        let (info, out) = unsafe { (&*info, &mut *(arg as *mut Vec<(CString, usize)>)) };
        if !info.dlpi_name.is_null() {
            // SAFETY: dlpi_name is NUL-terminated and owned by the loader.
            let name = unsafe { CStr::from_ptr(info.dlpi_name) }.to_owned();
            out.push((name, info.dlpi_addr as usize));
        }
        0
    }
    // SAFETY: the callback only pushes into `modules`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut modules as *mut _ as *mut c_void) };
    modules.into_iter().find_map(|(name, _)| {
        if name.to_bytes().is_empty() {
            return None;
        }
        // The base dladdr reports (the mapping's start) is what own_symbol compares against.
        // SAFETY: RTLD_NOLOAD only looks the library up.
        let h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
        if h.is_null() {
            return None;
        }
        // SAFETY: valid handle, NUL-terminated name.
        let v = unsafe { libc::dlsym(h, c"getInferLibVersion".as_ptr()) };
        // SAFETY: the handle came from dlopen above.
        unsafe { libc::dlclose(h) };
        let (n, base) = module_of(v)?;
        (n == name && base != ours)
            .then(|| tensorrt_module(&name, base))
            .flatten()
            .filter(|t| !t.get_plugin_registry.is_null())
    })
}

/// The TensorRT this library would talk to: the one calling, else the one in the process.
pub fn current() -> Option<HostTrt> {
    caller().or_else(in_process)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_versions_decode() {
        let lean = TrtVersion::from_lib_int(101601, false).unwrap();
        assert_eq!(
            (lean.flavour, lean.major, lean.minor, lean.patch),
            (Flavour::Enterprise, 10, 16, 1)
        );
        let jp5 = TrtVersion::from_lib_int(8502, false).unwrap();
        assert_eq!((jp5.major, jp5.minor, jp5.patch), (8, 5, 2));
        let rtx = TrtVersion::from_lib_int(10701, false).unwrap();
        assert_eq!(
            (rtx.flavour, rtx.major, rtx.minor, rtx.patch),
            (Flavour::Rtx, 1, 7, 1)
        );
        assert_eq!(rtx.to_string(), "TensorRT-RTX 1.7.1");
        assert_eq!(
            TrtVersion::from_lib_int(110400, false).unwrap().to_string(),
            "TensorRT 11.4.0"
        );
        assert!(TrtVersion::from_lib_int(0, false).is_none());
        assert!(TrtVersion::from_lib_int(-3, false).is_none());
    }

    #[test]
    fn compatibility_is_product_and_major() {
        let v = |x, rtx| TrtVersion::from_lib_int(x, rtx).unwrap();
        assert!(v(101601, false).abi_compatible(&v(100300, false)));
        assert!(!v(101601, false).abi_compatible(&v(110400, false)));
        assert!(!v(10701, false).abi_compatible(&v(101601, false)));
        assert!(v(10701, false).abi_compatible(&v(10301, true)));
        assert!(!v(8601, false).abi_compatible(&v(100300, false)));
    }

    #[test]
    fn no_tensorrt_in_the_test_process() {
        // The unit-test binary links no TensorRT: nothing may be found (the walk must not
        // mistake an ordinary library for one).
        assert!(caller().is_none());
        assert!(in_process().is_none());
    }
}
