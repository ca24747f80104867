#!/usr/bin/env bash
# Builds libs6plugin.so once per TensorRT ABI whose headers scripts/setup.sh fetched, into
# target/plugin-variants/libs6plugin-<tag>.so (tags: trt10, trt11, rtx1). A plugin library is
# only safe inside the TensorRT whose headers it was compiled against (docs/plugin.md), so CI
# builds and tests every variant; users build the one for their TensorRT (README).
#
# usage: scripts/build_plugin_variants.sh [--release] [--skip-native] [TAG...]
#   (default: every tag whose headers are there; --skip-native: not the one TENSORRT_INCLUDE_DIR
#   names, which the ordinary build already is)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=/dev/null
[ -f .deps/env.sh ] && . .deps/env.sh
profile=debug
cargo_profile=()
skip_native=0
while [ $# -gt 0 ]; do
  case $1 in
  --release)
    profile=release
    cargo_profile=(--release)
    ;;
  --skip-native) skip_native=1 ;;
  *) break ;;
  esac
  shift
done
headers_for() {
  case $1 in
  trt10) echo "${S6_TRT10_INCLUDE_DIR:-}" ;;
  trt11) echo "${S6_TRT11_INCLUDE_DIR:-}" ;;
  rtx1) echo "${S6_TRT_RTX_INCLUDE_DIR:-}" ;;
  *) return 1 ;;
  esac
}
tags=("$@")
if [ ${#tags[@]} -eq 0 ]; then
  tags=(trt10 trt11 rtx1)
fi
out="$root/target/plugin-variants"
mkdir -p "$out"
for tag in "${tags[@]}"; do
  if ! inc=$(headers_for "$tag"); then
    echo "build_plugin_variants: unknown tag '$tag' (trt10, trt11, rtx1)" >&2
    exit 2
  fi
  if [ -z "$inc" ] || [ ! -f "$inc/NvInferRuntime.h" ]; then
    echo "build_plugin_variants: SKIP $tag: no headers (run scripts/setup.sh)" >&2
    continue
  fi
  if [ "$skip_native" = 1 ] && [ "$inc" = "${TENSORRT_INCLUDE_DIR:-}" ]; then
    echo "build_plugin_variants: $tag is the ordinary build (TENSORRT_INCLUDE_DIR)" >&2
    continue
  fi
  echo "build_plugin_variants: $tag from $inc" >&2
  # One target folder per variant: the same crate built against other headers.
  TENSORRT_INCLUDE_DIR="$inc" CARGO_TARGET_DIR="$root/target/variants/$tag" \
    cargo build -q -p s6plugin --features trt --lib ${cargo_profile[@]+"${cargo_profile[@]}"}
  cp "$root/target/variants/$tag/$profile/libs6plugin.so" "$out/libs6plugin-$tag.so.tmp"
  mv "$out/libs6plugin-$tag.so.tmp" "$out/libs6plugin-$tag.so"
  echo "build_plugin_variants: $out/libs6plugin-$tag.so" >&2
done
