#!/usr/bin/env bash
# The plugin's GPU test (tests/trt_gpu.rs + tests/cpp/gpu_harness.cpp) in two steps, because the
# GPU machine has no TensorRT headers and no Rust toolchain:
#
#   scripts/plugin_gpu_harness.sh build   # here: builds libs6plugin.so, the C++ harness and the
#                                         # Rust test binary into .carry/plugin/
#   scripts/plugin_gpu_harness.sh run     # on the GPU machine (with .carry/plugin carried):
#                                         # runs the harness through the test, then once more
#                                         # under compute-sanitizer memcheck when available
#
# Both ops run, through both plugin interfaces: S6Scan's six cases and S6ScanHeads' three
# (Mamba2; they fail until its kernels exist: enqueue refuses, logged, and their outputs stay NaN).
#
# build needs TENSORRT_INCLUDE_DIR (or TENSORRT_ROOT) and CUDA_HOME as for `--features trt`.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=.carry/plugin

case "${1:-}" in
build)
    mkdir -p "$CARRY"
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
    cargo build -p s6plugin --features trt --lib
    test_bin=$(cargo test -p s6plugin --features trt --test trt_gpu --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "trt_gpu" and m.get("executable"):
        print(m["executable"])')
    cp "$CARGO_TARGET_DIR/debug/libs6plugin.so" "$test_bin" "$CARRY/"
    mv "$CARRY/$(basename "$test_bin")" "$CARRY/trt_gpu"
    # Only what the run needs travels (64 MiB): no debug info.
    strip --strip-debug "$CARRY/libs6plugin.so" "$CARRY/trt_gpu"
    trt_inc="${TENSORRT_INCLUDE_DIR:-${TENSORRT_ROOT:-/usr}/include}"
    "${CXX:-c++}" -std=c++17 -O1 -g -Wall -Werror -Wno-deprecated-declarations -isystem "$trt_inc" \
        -isystem "${CUDA_HOME:-/usr/local/cuda}/include" tests/cpp/gpu_harness.cpp -o "$CARRY/gpu_harness" -ldl -lpthread
    ls -la "$CARRY"
    ;;
run)
    export S6_GPU_HARNESS="$CARRY/gpu_harness" S6_PLUGIN_LIB="$PWD/$CARRY/libs6plugin.so"
    export S6_GPU_OUT="${S6_GPU_OUT:-/tmp/s6_gpu_harness_out}"
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
    S6_GPU_REQUIRE=1 "$CARRY/trt_gpu" --nocapture
    if command -v compute-sanitizer >/dev/null; then
        mkdir -p /tmp/s6_sanitizer_out
        set +e
        compute-sanitizer --tool memcheck --error-exitcode 3 "$CARRY/gpu_harness" "$S6_PLUGIN_LIB" \
            /tmp/s6_sanitizer_out >/tmp/s6_memcheck.log 2>&1
        rc=$?
        set -e
        grep -E "ERROR SUMMARY|harness:|FAIL|Invalid" /tmp/s6_memcheck.log || tail -20 /tmp/s6_memcheck.log
        echo "compute-sanitizer memcheck exit: $rc"
        [ "$rc" = 0 ]
    fi
    ;;
*)
    sed -n 2,12p "$0"
    exit 2
    ;;
esac
