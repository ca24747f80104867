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
fi
# wgpu (Vulkan) wants a runtime folder; without one the loader prints errors the tests do not
# cause.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d)
  export XDG_RUNTIME_DIR
fi
# ${a[@]+"${a[@]}"}: macOS's bash 3.2 calls an empty "${a[@]}" unbound under set -u.
cargo test --workspace ${features[@]+"${features[@]}"} "$@"
