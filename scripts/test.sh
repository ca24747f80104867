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
cargo test --workspace "${features[@]}" "$@"
