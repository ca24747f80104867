//! Registering libs6plugin's `S6Scan` creator in the TensorRT loaded by s6-engine.
//!
//! First the static way (dlopen with RTLD_GLOBAL: the library's initialiser finds
//! `getPluginRegistry` among the global symbols, which is what TensorRT 8.5 needs), then, if the
//! creator is still missing and the version has it, `IPluginRegistry::loadLibrary`.

use super::error::EngineError;
use super::glue;
use super::libs::{self, Loaded, NvInfer};
use s6plugin::contract::{OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION};
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

/// Makes sure the `S6Scan` creator is registered; returns the library handle to keep loaded.
pub fn register(nvinfer: &NvInfer, plugin: &Path) -> Result<Option<Loaded>, EngineError> {
    let reg = libs::symbol(&nvinfer.loaded, "getPluginRegistry")?;
    let has = || {
        // SAFETY: `reg` is getPluginRegistry of `nvinfer`, whose major the caller checked
        // against the headers (glue::check_abi).
        unsafe { glue::has_creator(reg, OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE) }
    };
    if has()? {
        return Ok(None);
    }
    let loaded = libs::load_file(plugin)?;
    if has()? {
        tracing::info!(
            "{}: {OP_TYPE} v{PLUGIN_VERSION} registered statically",
            plugin.display()
        );
        return Ok(Some(loaded));
    }
    if nvinfer.version.has_load_library() {
        // SAFETY: as above.
        unsafe { glue::load_plugin_library(reg, plugin) }?;
        if has()? {
            tracing::info!(
                "{}: {OP_TYPE} v{PLUGIN_VERSION} registered through loadLibrary",
                plugin.display()
            );
            return Ok(Some(loaded));
        }
    }
    Err(EngineError::BadArg {
        path: plugin.to_path_buf(),
        reason: format!(
            "loaded, but TensorRT {} has no {OP_TYPE} v{PLUGIN_VERSION} creator afterwards (was libs6plugin built with --features trt against this TensorRT's headers?)",
            nvinfer.version
        ),
    })
}
