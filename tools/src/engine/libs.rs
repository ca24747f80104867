//! Finding and loading TensorRT's libraries at run time (nothing is linked at build time), and
//! reading their version. Two backends: TensorRT (libnvinfer.so.N, libnvonnxparser.so.N) and
//! TensorRT-RTX (libtensorrt_rtx.so.1, libtensorrt_onnxparser_rtx.so.1).

use super::error::EngineError;
use super::version::{Backend, Target, TrtVersion};
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
/// TensorRT-RTX's builder/runtime library.
pub const RTX_NAMES: [&str; 1] = ["libtensorrt_rtx.so.1"];

/// `--backend`: which TensorRT to drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// TensorRT when found, else TensorRT-RTX.
    #[default]
    Auto,
    Only(Backend),
}

/// The builder/runtime library names of a backend.
pub fn lib_names(backend: Backend) -> &'static [&'static str] {
    match backend {
        Backend::Trt => &NVINFER_NAMES,
        Backend::Rtx => &RTX_NAMES,
    }
}

/// The ONNX parser of a backend and major.
pub fn parser_name(backend: Backend, major: u32) -> String {
    match backend {
        Backend::Trt => format!("libnvonnxparser.so.{major}"),
        Backend::Rtx => format!("libtensorrt_onnxparser_rtx.so.{major}"),
    }
}

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

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The places searched for a backend: only `--trt-lib-dir` when given (so a test or a user can
/// pin one library), else TensorRT: `$TENSORRT_ROOT/lib`; TensorRT-RTX: `$S6_TRT_RTX_LIB_DIR`,
/// `$TENSORRT_RTX_ROOT/lib`; then the system loader.
pub fn search_places(backend: Backend, trt_lib_dir: Option<&Path>) -> Vec<Place> {
    if let Some(d) = trt_lib_dir {
        return vec![Place::Dir(d.to_path_buf(), "--trt-lib-dir")];
    }
    let mut p = Vec::new();
    match backend {
        Backend::Trt => {
            if let Some(root) = env_dir("TENSORRT_ROOT") {
                p.push(Place::Dir(root.join("lib"), "$TENSORRT_ROOT/lib"));
            }
        }
        Backend::Rtx => {
            if let Some(d) = env_dir("S6_TRT_RTX_LIB_DIR") {
                p.push(Place::Dir(d, "$S6_TRT_RTX_LIB_DIR"));
            }
            if let Some(root) = env_dir("TENSORRT_RTX_ROOT") {
                p.push(Place::Dir(root.join("lib"), "$TENSORRT_RTX_ROOT/lib"));
            }
        }
    }
    p.push(Place::System);
    p
}

/// A loaded library and the name or path it was opened by.
///
/// Never unloaded: TensorRT keeps exit handlers and the plugin libraries its registry opened
/// pointing into itself, so a dlclose before exit crashes the process at exit (seen with
/// TensorRT-RTX 1.7.1 after `loadLibrary`). A second load of the same file is the same handle.
pub struct Loaded {
    pub lib: std::mem::ManuallyDrop<Library>,
    pub path: String,
}

impl Loaded {
    fn new(lib: Library, path: String) -> Self {
        Self {
            lib: std::mem::ManuallyDrop::new(lib),
            path,
        }
    }
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

fn not_found_hint(backend: Backend) -> &'static str {
    match backend {
        Backend::Trt => "install TensorRT or pass --trt-lib-dir DIR (the folder holding libnvinfer.so.N)",
        Backend::Rtx => "install TensorRT-RTX (e.g. the tensorrt-rtx-cu12-libs wheel) and set S6_TRT_RTX_LIB_DIR or pass --trt-lib-dir DIR (the folder holding libtensorrt_rtx.so.1)",
    }
}

/// Loads the first of `names` found in `places`; `backend` names the product in the error.
pub fn load_first(
    backend: Backend,
    names: &[&str],
    places: &[Place],
) -> Result<Loaded, EngineError> {
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
                Ok(lib) => return Ok(Loaded::new(lib, target.display().to_string())),
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
        product: backend.product(),
        hint: not_found_hint(backend),
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
        .map(|lib| Loaded::new(lib, path.display().to_string()))
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

/// A TensorRT library found, loaded and its version read.
pub struct NvInfer {
    pub backend: Backend,
    pub loaded: Loaded,
    pub version: TrtVersion,
}

impl NvInfer {
    /// Product and version, for decisions and messages.
    pub fn target(&self) -> Target {
        Target {
            backend: self.backend,
            version: self.version,
        }
    }
}

/// Finds the backend's library (or loads `file` when given) and checks that this tool supports
/// its version.
pub fn load_backend(
    backend: Backend,
    file: Option<&Path>,
    places: &[Place],
) -> Result<NvInfer, EngineError> {
    let loaded = match file {
        Some(f) => load_file(f)?,
        None => load_first(backend, lib_names(backend), places)?,
    };
    let version = detect_version(&loaded)?;
    let target = Target { backend, version };
    if version < target.min_supported() {
        return Err(EngineError::TooOld {
            lib: loaded.path.clone(),
            found: target.to_string(),
            min: Target {
                backend,
                version: target.min_supported(),
            }
            .to_string(),
        });
    }
    Ok(NvInfer {
        backend,
        loaded,
        version,
    })
}

/// TensorRT's libnvinfer (or `file`): [`load_backend`] for [`Backend::Trt`].
pub fn load_nvinfer(file: Option<&Path>, places: &[Place]) -> Result<NvInfer, EngineError> {
    load_backend(Backend::Trt, file, places)
}

/// The backend a library file belongs to, by its name (`libtensorrt_rtx*` is TensorRT-RTX).
pub fn backend_of_file(file: &Path) -> Backend {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    if name.is_some_and(|n| n.contains("tensorrt_rtx")) {
        Backend::Rtx
    } else {
        Backend::Trt
    }
}

/// Resolves `--backend` (with `--nvinfer FILE` / `--trt-lib-dir DIR`) to a loaded library and
/// the places searched (for the parser). `auto`: TensorRT when found, else TensorRT-RTX; when
/// neither is found the error names both searches.
pub fn open(
    choice: BackendChoice,
    file: Option<&Path>,
    trt_lib_dir: Option<&Path>,
) -> Result<(NvInfer, Vec<Place>), EngineError> {
    let backend = match (choice, file) {
        (BackendChoice::Only(b), _) => b,
        (BackendChoice::Auto, Some(f)) => backend_of_file(f),
        (BackendChoice::Auto, None) => {
            let trt = search_places(Backend::Trt, trt_lib_dir);
            let first = match load_backend(Backend::Trt, None, &trt) {
                Ok(l) => return Ok((l, trt)),
                Err(e @ EngineError::LibNotFound { .. }) => e,
                Err(e) => return Err(e),
            };
            let rtx = search_places(Backend::Rtx, trt_lib_dir);
            return match load_backend(Backend::Rtx, None, &rtx) {
                Ok(l) => {
                    tracing::info!("{first}; using TensorRT-RTX");
                    Ok((l, rtx))
                }
                Err(EngineError::LibNotFound {
                    names: rtx_names,
                    places: rtx_places,
                    ..
                }) => {
                    let EngineError::LibNotFound { names, places, .. } = first else {
                        unreachable!("matched above")
                    };
                    Err(EngineError::LibNotFound {
                        product: "TensorRT or TensorRT-RTX",
                        names: format!("{names} in {places}, and {rtx_names}"),
                        places: rtx_places,
                        hint: "install one, or pass --trt-lib-dir DIR (the folder holding libnvinfer.so.N or libtensorrt_rtx.so.1) or set S6_TRT_RTX_LIB_DIR",
                    })
                }
                Err(e) => Err(e),
            };
        }
    };
    let places = search_places(backend, trt_lib_dir);
    Ok((load_backend(backend, file, &places)?, places))
}

/// The file a loaded library was mapped from, by its soname prefix (`/proc/self/maps` names
/// the resolved file, e.g. `.../libtensorrt_rtx.so.1.7.1`).
fn mapped_file(prefix: &str) -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(PathBuf::from)
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
}

/// Loads the ONNX parser of the same backend and major, next to the library when it came from a
/// folder.
pub fn load_parser(nvinfer: &NvInfer, places: &[Place]) -> Result<Loaded, EngineError> {
    let name = parser_name(nvinfer.backend, nvinfer.version.major);
    let lib_file = match Path::new(&nvinfer.loaded.path) {
        p if p.parent().is_some_and(|d| !d.as_os_str().is_empty()) => Some(p.to_path_buf()),
        _ => mapped_file(lib_names(nvinfer.backend)[0]),
    };
    let mut p: Vec<Place> = Vec::new();
    if let Some(dir) = lib_file.as_deref().and_then(Path::parent) {
        p.push(Place::Dir(dir.to_path_buf(), "the library's folder"));
    }
    for place in places {
        if !p.contains(place) {
            p.push(place.clone());
        }
    }
    if nvinfer.backend == Backend::Rtx {
        if let Some(l) = load_rtx_parser(lib_file.as_deref(), &name, &p)? {
            return Ok(l);
        }
    }
    load_first(nvinfer.backend, &[name.as_str()], &p)
}

/// TensorRT-RTX's ONNX parser does not link libtensorrt_rtx: when it imports a plugin it dlopens
/// `libtensorrt_rtx.so` — the unversioned name, which the wheel does not ship — searching its
/// own folder first (its RPATH is `$ORIGIN`), and aborts the process when that fails. So the
/// parser is opened through a folder holding links to it and to the library already loaded, as
/// `libtensorrt_rtx.so`; the loader then finds that library loaded (same file) and uses it.
/// None when the parser file is not in a folder searched (the system loader's turn then).
fn load_rtx_parser(
    lib_file: Option<&Path>,
    name: &str,
    places: &[Place],
) -> Result<Option<Loaded>, EngineError> {
    let Some(lib_file) = lib_file else {
        return Ok(None);
    };
    let Some(parser) = places.iter().find_map(|p| match p {
        Place::Dir(d, _) => Some(d.join(name)).filter(|f| f.is_file()),
        Place::System => None,
    }) else {
        return Ok(None);
    };
    let canon = |p: &Path| {
        std::fs::canonicalize(p).map_err(|source| EngineError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let (lib_file, parser_file) = (canon(lib_file)?, canon(&parser)?);
    let dir = link_dir(&[("libtensorrt_rtx.so", &lib_file), (name, &parser_file)])?;
    let mut loaded = load_file(&dir.join(name))?;
    loaded.path = parser.display().to_string();
    Ok(Some(loaded))
}

/// A folder holding the symbolic links `links` (name, target), named after them so that every
/// run with the same libraries shares it: the parser's later dlopen calls need it for as long
/// as the process lives. Under `$XDG_CACHE_HOME/s6-engine` (or `~/.cache/s6-engine`), else the
/// temporary folder when that cannot be written.
fn link_dir(links: &[(&str, &Path)]) -> Result<PathBuf, EngineError> {
    let cache = env_dir("XDG_CACHE_HOME").or_else(|| env_dir("HOME").map(|h| h.join(".cache")));
    let tmp = std::env::temp_dir();
    let mut last = None;
    for base in cache.iter().chain([&tmp]) {
        match link_dir_in(&base.join("s6-engine"), links) {
            Ok(d) => return Ok(d),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("the temporary folder was tried"))
}

/// [`link_dir`] under `base`: made atomically (built beside, then renamed), so that concurrent
/// runs agree; a folder whose links point elsewhere (the libraries moved) is replaced.
fn link_dir_in(base: &Path, links: &[(&str, &Path)]) -> Result<PathBuf, EngineError> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    links.hash(&mut h);
    let dir = base.join(format!("tensorrt-rtx-{:016x}", h.finish()));
    let complete = || {
        links
            .iter()
            .all(|(n, t)| std::fs::read_link(dir.join(n)).is_ok_and(|l| l == *t))
    };
    if complete() {
        return Ok(dir);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EngineError::Io { path, source }
    };
    std::fs::create_dir_all(base).map_err(io(base))?;
    let tmp = base.join(format!(".tmp-{}-{:016x}", std::process::id(), h.finish()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(io(&tmp))?;
    for (name, target) in links {
        std::os::unix::fs::symlink(target, tmp.join(name)).map_err(io(&tmp.join(name)))?;
    }
    if dir.exists() && !complete() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    // A concurrent run's identical folder may have won the rename: then ours goes.
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if complete() {
        Ok(dir)
    } else {
        Err(EngineError::BadArg {
            path: dir,
            reason: "could not create the links TensorRT-RTX's parser needs".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_dir_names_everything_tried() {
        let dir = std::env::temp_dir().join(format!("s6-engine-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = load_first(
            Backend::Trt,
            &NVINFER_NAMES,
            &search_places(Backend::Trt, Some(&dir)),
        )
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
    fn link_folder_is_made_once_and_replaced_when_stale() {
        let base = std::env::temp_dir().join(format!("s6-engine-links-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (a, b) = (Path::new("/opt/a/libx.so.1"), Path::new("/opt/b/libx.so.1"));
        let d = link_dir_in(&base, &[("libx.so", a)]).unwrap();
        assert_eq!(std::fs::read_link(d.join("libx.so")).unwrap(), a);
        // Same links: the same folder, untouched.
        assert_eq!(link_dir_in(&base, &[("libx.so", a)]).unwrap(), d);
        // Other targets: another folder; a folder of the same name with wrong links is redone.
        let e = link_dir_in(&base, &[("libx.so", b)]).unwrap();
        assert_ne!(d, e);
        std::fs::remove_file(e.join("libx.so")).unwrap();
        std::os::unix::fs::symlink(a, e.join("libx.so")).unwrap();
        assert_eq!(link_dir_in(&base, &[("libx.so", b)]).unwrap(), e);
        assert_eq!(std::fs::read_link(e.join("libx.so")).unwrap(), b);
        // Nothing left over from building them.
        let names: Vec<_> = std::fs::read_dir(&base)
            .unwrap()
            .map(|x| x.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names.iter().all(|n| n.starts_with("tensorrt-rtx-")),
            "{names:?}"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_broken_library_is_reported_not_skipped() {
        let dir = std::env::temp_dir().join(format!("s6-engine-broken-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("libnvinfer.so.10"), b"not an ELF file").unwrap();
        let e = load_first(
            Backend::Trt,
            &NVINFER_NAMES,
            &search_places(Backend::Trt, Some(&dir)),
        )
        .err()
        .unwrap();
        assert!(
            matches!(e, EngineError::LibLoad { ref path, .. } if path.ends_with("libnvinfer.so.10")),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
