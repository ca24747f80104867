#!/usr/bin/env bash
# Installs what s6plugin needs to build and test into ./.deps (git-ignored) and writes
# ./.deps/env.sh, which the other scripts source. Safe to run again: it skips what is there.
#
# Linux x86-64 / aarch64:
#   - TensorRT 10.14.1 headers (wheel kernel-lens), unless TENSORRT_INCLUDE_DIR/TENSORRT_ROOT
#     or a system TensorRT (JetPack) is found; TensorRT 11.4 and TensorRT-RTX 1.7 headers (crate
#     trtx-sys, through cargo) for the other plugin variants;
#   - the TensorRT 10.16 lean runtime and TensorRT-RTX 1.7.1 (x86-64 only; the registry,
#     loading and engine-build tests);
#   - nvcc 13.5 and CUDA headers from the nvidia-cuda-* wheels, unless nvcc is already installed;
#   - Mesa's Vulkan driver (lavapipe) for the wgpu backend tests, through apt when run as root.
# macOS: nothing to install (the wgpu backend uses Metal); the CUDA/TensorRT parts are skipped.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps="$root/.deps"
mkdir -p "$deps"
env_file="$deps/env.sh"
: >"$env_file"
say() { printf 'setup: %s\n' "$*" >&2; }

os=$(uname -s)
arch=$(uname -m)

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: install Rust (rustup) first"
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

if [ "$os" != Linux ]; then
  say "$os: CUDA and TensorRT parts are Linux-only; wgpu uses the platform GPU"
  exit 0
fi

pip_target() { # pip_target DIR SPEC...
  local dir=$1
  shift
  if ! python3 -m pip --version >/dev/null 2>&1; then
    say "python3 -m pip is missing (needed for: $*)."
    say "install it — Debian/Ubuntu: sudo apt-get install python3-pip; elsewhere: python3 -m ensurepip --user — then run scripts/setup.sh again"
    exit 1
  fi
  python3 -m pip install -q --disable-pip-version-check --no-deps --target "$dir" "$@"
}

# --- Vulkan (lavapipe) for the wgpu tests ---
if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Mesa's Vulkan driver (lavapipe)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    say "no lavapipe and not root: wgpu tests will skip (apt-get install mesa-vulkan-drivers libvulkan1)"
  fi
fi

# --- TensorRT headers ---
# The plugin is built against the headers of the TensorRT it will run in (one library per ABI).
# A system TensorRT (JetPack, a tarball named by TENSORRT_INCLUDE_DIR/TENSORRT_ROOT) wins;
# otherwise the TensorRT 10.14 headers of the kernel-lens wheel. Apart from that, CI builds the
# TensorRT 11.4 and TensorRT-RTX 1.7 variants from the headers the trtx-sys crate carries.
trt_inc=""
for d in "${TENSORRT_INCLUDE_DIR:-}" "${TENSORRT_ROOT:+$TENSORRT_ROOT/include}" \
  /usr/include/x86_64-linux-gnu /usr/include/aarch64-linux-gnu /usr/local/TensorRT/include /usr/include; do
  if [ -n "$d" ] && [ -f "$d/NvInfer.h" ]; then
    trt_inc=$d
    break
  fi
done
if [ -z "$trt_inc" ]; then
  if [ ! -f "$deps/py/kernel_lens/include/tensorrt/NvInfer.h" ]; then
    say "fetching TensorRT 10.14.1 headers"
    pip_target "$deps/py" kernel-lens==2.0.1
  fi
  trt_inc="$deps/py/kernel_lens/include/tensorrt"
fi
echo "export TENSORRT_INCLUDE_DIR='$trt_inc'" >>"$env_file"
echo "export S6_TRT10_INCLUDE_DIR='$deps/py/kernel_lens/include/tensorrt'" >>"$env_file"
say "TensorRT headers: $trt_inc"

# TensorRT 11.4 and TensorRT-RTX 1.7 headers (with NvOnnxParser.h), from the trtx-sys crate's
# source, fetched by cargo into its own cache and copied to .deps/trt-headers.
trtx_version=0.9.1
hdrs="$deps/trt-headers"
if [ ! -f "$hdrs/TRT-RTX-1.7/NvInferRuntime.h" ] || [ ! -f "$hdrs/TRT-Enterprise-11.4/NvOnnxParser.h" ]; then
  say "fetching TensorRT 11.4 and TensorRT-RTX 1.7 headers (crate trtx-sys $trtx_version)"
  fetch="$deps/trtx-fetch"
  mkdir -p "$fetch/src"
  printf '[package]\nname = "s6-header-fetch"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n[dependencies]\ntrtx-sys = "=%s"\n[workspace]\n' \
    "$trtx_version" >"$fetch/Cargo.toml"
  echo 'fn main() {}' >"$fetch/src/main.rs"
  cargo fetch -q --manifest-path "$fetch/Cargo.toml"
  src=$(cargo metadata -q --format-version 1 --manifest-path "$fetch/Cargo.toml" |
    python3 -c 'import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "trtx-sys":
        print(p["manifest_path"].rsplit("/", 1)[0])')
  if [ -z "$src" ] || [ ! -d "$src/TensorRT-Headers" ]; then
    say "trtx-sys $trtx_version has no TensorRT-Headers folder (looked in '$src')"
    exit 1
  fi
  rm -rf "$hdrs"
  cp -r "$src/TensorRT-Headers" "$hdrs"
fi
echo "export S6_TRT11_INCLUDE_DIR='$hdrs/TRT-Enterprise-11.4'" >>"$env_file"
echo "export S6_TRT_RTX_INCLUDE_DIR='$hdrs/TRT-RTX-1.7'" >>"$env_file"
say "TensorRT 11.4 / TensorRT-RTX 1.7 headers: $hdrs"

# --- Real TensorRT libraries for the tests (x86-64 wheels only; no GPU needed) ---
# The TensorRT 10.16 lean runtime (plugin registry) and TensorRT-RTX 1.7 (a full builder with
# the ONNX parser that builds engines on a machine without a GPU).
if [ "$arch" = x86_64 ]; then
  if [ ! -f "$deps/py/tensorrt_lean_libs/libnvinfer_lean.so.10" ]; then
    say "fetching the TensorRT 10.16 lean runtime"
    pip_target "$deps/py" tensorrt-lean-cu12-libs==10.16.1.11
  fi
  echo "export S6_TRT_LEAN_LIB='$deps/py/tensorrt_lean_libs/libnvinfer_lean.so.10'" >>"$env_file"
  if [ ! -f "$deps/rtx/tensorrt_rtx_libs/libtensorrt_rtx.so.1" ]; then
    say "fetching TensorRT-RTX 1.7.1 (builder and ONNX parser)"
    pip_target "$deps/rtx" tensorrt-rtx-cu12-libs==1.7.1.116
  fi
  echo "export S6_TRT_RTX_LIB_DIR='$deps/rtx/tensorrt_rtx_libs'" >>"$env_file"
  # Its Python bindings (a wheel per Python version), for the test that loads the plugin the way
  # a Python user does.
  if [ ! -d "$deps/rtx-py/tensorrt_rtx_bindings" ]; then
    if pip_target "$deps/rtx-py" tensorrt-rtx-cu12-bindings==1.7.1.116 2>/dev/null; then
      say "fetched the TensorRT-RTX 1.7.1 Python bindings"
    else
      say "no TensorRT-RTX 1.7.1 Python bindings for $(python3 -V 2>&1): the Python loading test will skip"
    fi
  fi
  if [ -d "$deps/rtx-py/tensorrt_rtx_bindings" ]; then
    echo "export S6_TRT_RTX_PYTHONPATH='$deps/rtx-py'" >>"$env_file"
  fi
fi

# --- nvcc + CUDA headers ---
cuda_home=""
for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
  if [ -n "$d" ] && [ -x "$d/bin/nvcc" ]; then
    cuda_home=$d
    break
  fi
done
if [ -z "$cuda_home" ] && [ "$arch" = x86_64 ]; then
  if [ ! -x "$deps/cuda/nvidia/cu13/bin/nvcc" ]; then
    say "fetching nvcc 13.5 and CUDA headers"
    pip_target "$deps/cuda" nvidia-cuda-nvcc==13.5.37 nvidia-nvvm==13.5.37 \
      nvidia-cuda-crt==13.5.37 nvidia-cuda-runtime==13.5.37 nvidia-cuda-cccl==13.3.5.0.6
  fi
  cuda_home="$deps/cuda/nvidia/cu13"
fi
if [ -n "$cuda_home" ]; then
  echo "export CUDA_HOME='$cuda_home'" >>"$env_file"
  echo "export PATH='$cuda_home/bin':\"\$PATH\"" >>"$env_file"
  say "CUDA: $cuda_home"
else
  say "no nvcc: kernels will be compiled with NVRTC at first use"
fi
say "wrote $env_file"
