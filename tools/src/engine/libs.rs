//! Finding and loading TensorRT's libraries at run time (nothing is linked at build time), and
//! reading their version.

use super::error::EngineError;
use super::version::TrtVersion;
use libloading::Library;
use std::ffi::c_void;
use std::path::{Path, PathBuf};

/// Sonames of the builder/runtime library, newest major first.
pub const NVINFER_NAMES: [&str; 3] = ["libnvinfer.so.11", "libnvinfer.so.10", "libnvinfer.so.8"];
/// Sonames of the ONNX parser, newest major first.
pub const PARSER_NAMES: [&str; 3] = [
    "libnvonnxparser.so.11",
    "libnvonnxparser.so.10",
    "libnvonnxparser.so.8",
];

/// Where to look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// A folder: the file is opened by full path.
    Dir(PathBuf, &'static str),
    /// The dynamic loader's own search (LD_LIBRARY_PATH, ldconfig's cache, /usr/lib/...).
    System,
}

impl Place {
    fn describe(&self) -> String {
        match self {
            Place::Dir(d, why) => format!("{} ({why})", d.display()),
            Place::System => "the system library path (LD_LIBRARY_PATH, ldconfig)".into(),
        }
    }
}

/// The places searched: only `--trt-lib-dir` when given (so a test or a user can pin one
/// TensorRT), else `$TENSORRT_ROOT/lib` and the system loader.
pub fn search_places(trt_lib_dir: Option<&Path>) -> Vec<Place> {
    if let Some(d) = trt_lib_dir {
        return vec![Place::Dir(d.to_path_buf(), "--trt-lib-dir")];
    }
    let mut p = Vec::new();
    if let Some(root) = std::env::var_os("TENSORRT_ROOT") {
        p.push(Place::Dir(
            Path::new(&root).join("lib"),
            "$TENSORRT_ROOT/lib",
        ));
    }
    p.push(Place::System);
    p
}

/// A loaded library and the name or path it was opened by.
pub struct Loaded {
    pub lib: Library,
    pub path: String,
}

/// Opens with RTLD_NOW | RTLD_GLOBAL: libs6plugin's static registration (TensorRT 8.5, no
/// `loadLibrary`) finds `getPluginRegistry` among the global symbols.
fn open_global(name: &std::ffi::OsStr) -> Result<Library, libloading::Error> {
    use libloading::os::unix::{Library as UnixLib, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: loading a shared library runs its initialisers; TensorRT's are meant to run in any
    // process, and this is the documented way to use it without linking.
    unsafe { UnixLib::open(Some(name), RTLD_NOW | RTLD_GLOBAL) }.map(Library::from)
}

/// The whole error chain: libloading's own text is only "dlopen failed"; dlerror()'s message,
/// which says why, is its source.
pub fn dl_error(e: &libloading::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// True if a dlopen error only says the file is not there (then the next candidate is tried;
/// any other failure — a missing dependency, a wrong architecture — is reported).
fn is_absent(e: &libloading::Error) -> bool {
    dl_error(e).contains("No such file or directory")
}

/// Loads the first of `names` found in `places`.
pub fn load_first(names: &[&str], places: &[Place]) -> Result<Loaded, EngineError> {
    for place in places {
        for name in names {
            let target: PathBuf = match place {
                Place::Dir(d, _) => d.join(name),
                Place::System => PathBuf::from(name),
            };
            if matches!(place, Place::Dir(..)) && !target.exists() {
                continue;
            }
            match open_global(target.as_os_str()) {
                Ok(lib) => {
                    return Ok(Loaded {
                        lib,
                        path: target.display().to_string(),
                    })
                }
                Err(e) if matches!(place, Place::System) && is_absent(&e) => continue,
                Err(e) => {
                    return Err(EngineError::LibLoad {
                        path: target,
                        reason: dl_error(&e),
                    })
                }
            }
        }
    }
    Err(EngineError::LibNotFound {
        names: names.join(", "),
        places: places
            .iter()
            .map(Place::describe)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Loads one library file by path (e.g. `libnvinfer_lean.so.10` for running engines).
pub fn load_file(path: &Path) -> Result<Loaded, EngineError> {
    open_global(path.as_os_str())
        .map(|lib| Loaded {
            lib,
            path: path.display().to_string(),
        })
        .map_err(|e| EngineError::LibLoad {
            path: path.to_path_buf(),
            reason: dl_error(&e),
        })
}

/// Resolves a C symbol to a raw pointer (handed to the C++ glue as is).
pub fn symbol(l: &Loaded, name: &'static str) -> Result<*mut c_void, EngineError> {
    // SAFETY: the symbol is only read as an address here; its type is fixed where it is called.
    let s = unsafe { l.lib.get::<*mut c_void>(name) };
    match s {
        // SAFETY: the address stays valid while `l` is loaded, and `l` outlives every use.
        Ok(s) => Ok(unsafe { s.try_as_raw_ptr() }.unwrap_or(std::ptr::null_mut())),
        Err(e) => Err(EngineError::Symbol {
            lib: l.path.clone(),
            symbol: name,
            reason: dl_error(&e),
        }),
    }
}

/// Reads the library's version through `getInferLibVersion()` (exported by libnvinfer and
/// libnvinfer_lean of every TensorRT since 5).
pub fn detect_version(l: &Loaded) -> Result<TrtVersion, EngineError> {
    let f = symbol(l, "getInferLibVersion")?;
    // SAFETY: `int32_t getInferLibVersion() noexcept` in every TensorRT (NvInferRuntime*.h).
    let v = unsafe {
        let f: extern "C" fn() -> i32 = std::mem::transmute(f);
        f()
    };
    TrtVersion::from_lib_int(v).ok_or(EngineError::BadVersion {
        lib: l.path.clone(),
        value: v,
    })
}

/// libnvinfer found, loaded and its version read.
pub struct NvInfer {
    pub loaded: Loaded,
    pub version: TrtVersion,
}

/// Finds libnvinfer (or loads `file` when given) and checks that this tool supports it.
pub fn load_nvinfer(file: Option<&Path>, places: &[Place]) -> Result<NvInfer, EngineError> {
    let loaded = match file {
        Some(f) => load_file(f)?,
        None => load_first(&NVINFER_NAMES, places)?,
    };
    let version = detect_version(&loaded)?;
    if version < TrtVersion::MIN_SUPPORTED {
        return Err(EngineError::TooOld {
            lib: loaded.path.clone(),
            found: version.to_string(),
            min: TrtVersion::MIN_SUPPORTED.to_string(),
        });
    }
    Ok(NvInfer { loaded, version })
}

/// Loads the ONNX parser of the same major as libnvinfer, next to it when it came from a folder.
pub fn load_parser(nvinfer: &NvInfer, places: &[Place]) -> Result<Loaded, EngineError> {
    let name = format!("libnvonnxparser.so.{}", nvinfer.version.major);
    let mut p: Vec<Place> = Vec::new();
    if let Some(dir) = Path::new(&nvinfer.loaded.path).parent() {
        if !dir.as_os_str().is_empty() {
            p.push(Place::Dir(dir.to_path_buf(), "libnvinfer's folder"));
        }
    }
    for place in places {
        if !p.contains(place) {
            p.push(place.clone());
        }
    }
    load_first(&[name.as_str()], &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_dir_names_everything_tried() {
        let dir = std::env::temp_dir().join(format!("s6-engine-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = load_first(&NVINFER_NAMES, &search_places(Some(&dir)))
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("TensorRT not found: looked for libnvinfer.so.11, libnvinfer.so.10, libnvinfer.so.8 in "), "{e}");
        assert!(
            e.contains(&format!("{} (--trt-lib-dir)", dir.display())),
            "{e}"
        );
        assert!(!e.contains('\n'));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_broken_library_is_reported_not_skipped() {
        let dir = std::env::temp_dir().join(format!("s6-engine-broken-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("libnvinfer.so.10"), b"not an ELF file").unwrap();
        let e = load_first(&NVINFER_NAMES, &search_places(Some(&dir)))
            .err()
            .unwrap();
        assert!(
            matches!(e, EngineError::LibLoad { ref path, .. } if path.ends_with("libnvinfer.so.10")),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
