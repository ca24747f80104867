//! Registering libs6plugin's `S6Scan` creator in the TensorRT loaded by s6-engine, and reading
//! which TensorRT a plugin library was built for.
//!
//! Where the registry has `loadLibrary` (TensorRT ≥ 8.6, TensorRT-RTX), the library is handed to
//! it: TensorRT then calls the library's `getCreators`/`getPluginCreators` itself. TensorRT 8.5
//! has no `loadLibrary`: there the library is dlopen'ed with RTLD_GLOBAL, and its initialiser
//! registers the creator through the global `getPluginRegistry`.

use super::error::EngineError;
use super::glue::Glue;
use super::libs::{self, Loaded, NvInfer};
use s6_contract::contract::{OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION};
use std::path::{Path, PathBuf};

/// The default plugin: `libs6plugin.so` next to the running executable (cargo puts both in
/// `target/<profile>/`).
pub fn default_plugin_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join("libs6plugin.so"), dir.join("../libs6plugin.so")]
        .into_iter()
        .find(|p| p.is_file())
}

/// Makes sure the `S6Scan` creator is registered; returns the library handle to keep loaded
/// (None when TensorRT holds it, or it was registered already).
pub fn register(
    glue: Glue,
    nvinfer: &NvInfer,
    plugin: &Path,
) -> Result<Option<Loaded>, EngineError> {
    let reg = libs::symbol(&nvinfer.loaded, "getPluginRegistry")?;
    let has = || {
        // SAFETY: `reg` is getPluginRegistry of `nvinfer`, whose major the caller checked
        // against the headers of `glue`'s backend (Glue::check_abi).
        unsafe { glue.has_creator(reg, OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE) }
    };
    if has()? {
        return Ok(None);
    }
    let how;
    let kept = if nvinfer.target().has_load_library() {
        // SAFETY: as above.
        unsafe { glue.load_plugin_library(reg, plugin) }.map_err(|e| match e {
            EngineError::Trt(msg) => EngineError::Trt(format!(
                "{msg} (a libs6plugin built for another TensorRT is refused: is it the variant for {}? `s6-engine info --plugin {}` says which TensorRT it was built for)",
                nvinfer.target(),
                plugin.display()
            )),
            other => other,
        })?;
        how = "through loadLibrary";
        None
    } else {
        how = "statically";
        Some(libs::load_file(plugin)?)
    };
    if has()? {
        tracing::info!(
            "{}: {OP_TYPE} v{PLUGIN_VERSION} registered {how}",
            plugin.display()
        );
        return Ok(kept);
    }
    Err(EngineError::BadArg {
        path: plugin.to_path_buf(),
        reason: format!(
            "loaded, but {} has no {OP_TYPE} v{PLUGIN_VERSION} creator afterwards (was libs6plugin built with --features trt against this TensorRT's headers? `s6-engine info --plugin` says what it was built for)",
            nvinfer.target()
        ),
    })
}

/// What `s6pluginBuildInfo()` of a plugin library says ("s6plugin 0.1.0 for TensorRT-RTX 1.7.1
/// (IPluginV3)"), or None for a library that predates the function.
///
/// The library is opened RTLD_LOCAL, so that nothing of it joins the global symbols; call this
/// before any TensorRT is loaded, so that its load-time registration finds no registry to
/// call into.
pub fn build_info(plugin: &Path) -> Result<Option<String>, EngineError> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // SAFETY: loading runs the library's initialisers, which libs6plugin keeps free of calls
    // into TensorRT when none is loaded.
    let lib =
        unsafe { Library::open(Some(plugin.as_os_str()), RTLD_NOW | RTLD_LOCAL) }.map_err(|e| {
            EngineError::LibLoad {
                path: plugin.to_path_buf(),
                reason: libs::dl_error(&e),
            }
        })?;
    // SAFETY: `const char* s6pluginBuildInfo(void)`, exported by libs6plugin.
    let f = match unsafe {
        lib.get::<unsafe extern "C" fn() -> *const std::ffi::c_char>(b"s6pluginBuildInfo\0")
    } {
        Ok(f) => f,
        Err(_) => return Ok(None),
    };
    // SAFETY: the function returns a static NUL-terminated string (or null).
    let p = unsafe { f() };
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null, NUL-terminated, static in the library, which is still loaded here.
    let s = unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned();
    Ok(Some(s))
}
