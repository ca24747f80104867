"""TensorRT-RTX's own Python bindings load libs6plugin.so, as a Python user does, keeping
TensorRT's logger finder; run by tests/trt_python.rs, one mode per process.

usage: rtx_bindings.py RTX_LIB_DIR PLUGIN MODE
  load-library  registry.load_library, then create_plugin (valid, then a missing field)
  ctypes        ctypes.CDLL(PLUGIN) after importing the bindings (load-time registration)
  mismatch      PLUGIN is built for another TensorRT: refused, nothing registered, no crash
Prints one 'MODE: ok' line on success; any other outcome exits non-zero.
"""

import array
import ctypes
import sys

lib_dir, plugin, mode = sys.argv[1:4]
# The bindings' own loader looks for the wheel layout; load the libraries it needs first.
ctypes.CDLL(lib_dir + "/libtensorrt_rtx.so.1", mode=ctypes.RTLD_GLOBAL)
ctypes.CDLL(lib_dir + "/libtensorrt_onnxparser_rtx.so.1", mode=ctypes.RTLD_GLOBAL)
import tensorrt_rtx_bindings as trt  # noqa: E402

NAMES = ["delta_softplus", "has_D", "has_z", "has_delta_bias", "has_initial_state",
         "has_last_state", "channels_last", "bc_channels_last"]


KEEP = []  # PluginField does not own its data: keep every buffer alive


def fields(values, drop_last=False):
    items = []
    for n, v in zip(NAMES, values):
        buf = array.array("i", [v])
        KEEP.append(buf)
        items.append(trt.PluginField(n, buf, trt.PluginFieldType.INT32))
    return trt.PluginFieldCollection(items[:-1] if drop_last else items)


logger = trt.Logger(trt.Logger.WARNING)
builder = trt.Builder(logger)
registry = builder.get_plugin_registry()

if mode == "mismatch":
    handle = registry.load_library(plugin)
    assert handle is None, "a library of another ABI was loaded"
    ctypes.CDLL(plugin)
    assert registry.get_creator("S6Scan", "1", "") is None, "it registered itself"
    print("mismatch: ok")
    sys.exit(0)

if mode == "load-library":
    assert registry.load_library(plugin) is not None, "load_library failed"
elif mode == "ctypes":
    ctypes.CDLL(plugin)
else:
    sys.exit("unknown mode " + mode)
creator = registry.get_creator("S6Scan", "1", "")
assert type(creator).__name__ == "IPluginCreatorV3One", type(creator).__name__
good = creator.create_plugin("layer_s6", fields([1, 1, 1, 0, 0, 1, 0, 0]), trt.TensorRTPhase.BUILD)
assert good is not None, "valid fields refused"
bad = creator.create_plugin("layer_missing", fields([0] * 8, drop_last=True), trt.TensorRTPhase.BUILD)
assert bad is None, "a missing field was accepted"
print(mode + ": ok")
