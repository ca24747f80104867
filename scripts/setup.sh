#!/usr/bin/env bash
# Installs what s6plugin needs to build and test into ./.deps (git-ignored) and writes
# ./.deps/env.sh, which the other scripts source. Safe to run again: it skips what is there.
#
# Linux x86-64 / aarch64:
#   - TensorRT 10.14.1 headers (wheel kernel-lens), unless TENSORRT_INCLUDE_DIR/TENSORRT_ROOT
#     or a system TensorRT (JetPack) is found;
#   - the TensorRT lean runtime (x86-64 only; used by the plugin-registry test);
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
say "TensorRT headers: $trt_inc"

# --- TensorRT lean runtime (plugin-registry test; x86-64 wheel only) ---
if [ "$arch" = x86_64 ]; then
  if [ ! -f "$deps/py/tensorrt_lean_libs/libnvinfer_lean.so.10" ]; then
    say "fetching the TensorRT 10.16 lean runtime"
    pip_target "$deps/py" tensorrt-lean-cu12-libs==10.16.1.11
  fi
  echo "export S6_TRT_LEAN_LIB='$deps/py/tensorrt_lean_libs/libnvinfer_lean.so.10'" >>"$env_file"
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
