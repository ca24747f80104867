#!/usr/bin/env bash
# Runs every test s6plugin has on this machine. GPU tests skip with a line saying so when no
# CUDA device is present; the wgpu tests skip when no adapter is found.
# Run scripts/setup.sh first (scripts/demo.sh does).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=/dev/null
[ -f .deps/env.sh ] && . .deps/env.sh
features=()
if [ "$(uname -s)" = Linux ]; then
  features=(--features s6plugin/trt)
  # The plugin built for the other TensorRT ABIs whose headers setup.sh fetched (the registry
  # and engine tests load each into its own TensorRT, and every other one to see it refused).
  scripts/build_plugin_variants.sh --skip-native
  export S6_PLUGIN_VARIANTS_DIR="$root/target/plugin-variants"
  if [ -f "$S6_PLUGIN_VARIANTS_DIR/libs6plugin-rtx1.so" ]; then
    export S6_PLUGIN_LIB_RTX="$S6_PLUGIN_VARIANTS_DIR/libs6plugin-rtx1.so"
  fi
fi
# wgpu (Vulkan) wants a runtime folder; without one the loader prints errors the tests do not
# cause.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d)
  export XDG_RUNTIME_DIR
fi
# ${a[@]+"${a[@]}"}: macOS's bash 3.2 calls an empty "${a[@]}" unbound under set -u.
cargo test --workspace ${features[@]+"${features[@]}"} "$@"
