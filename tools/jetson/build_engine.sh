#!/usr/bin/env bash
# Builds and checks a TensorRT engine of the bundled Mamba export (or your model) on a Jetson
# with JetPack 5 or 6: environment check, libs6plugin.so for sm_87 (Orin), onnx-patch, engine
# build with Orin Nano limits (8 GB shared by CPU and GPU), a smoke inference and the
# cross-check of TensorRT's outputs against the s6-run interpreter; then token generation:
# the stateful graph (onnx-patch --stateful), its engine, s6-engine generate against s6-run's.
#
#   tools/jetson/build_engine.sh [--dry-run] [--model M.onnx --input NAME=FILE.npy]
#       [--prompt IDS.npy] [--out DIR] [--precision fp16|fp32] [--max-seq N] [--opt-seq N]
#       [--gen-batch N] [--new-tokens N] [--workspace-mib N] [--skip-build] [--skip-generate]
#
# --dry-run checks what it can, prints every command instead of running it, and exits 0 on any
# machine (CI runs it). Run from anywhere; paths are relative to the repository root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODEL="$ROOT/fixtures/models/hf_ts_L12/model.onnx"
INPUT="input_ids=$ROOT/fixtures/models/hf_ts_L12/inputs/input_ids.npy"
# Token ids for generation, (batch, P) int64: the bundled model's test prompt (batch 2).
PROMPT="$ROOT/fixtures/generate/hf/prompt.npy"
GEN_BATCH=2
NEW_TOKENS=32
SKIP_GENERATE=0
OUT="$ROOT/build/jetson"
PRECISION="fp16"
# Orin Nano: 8 GB for CPU and GPU together. A small builder workspace and moderate max shapes
# keep the build inside it next to the desktop; raise both on an AGX Orin.
WORKSPACE_MIB=512
OPT_SEQ=128
MAX_SEQ=1024
DRY_RUN=0
SKIP_BUILD=0
TRT_INCLUDE="${TENSORRT_INCLUDE_DIR:-/usr/include/aarch64-linux-gnu}"
CUDA_DIR="${CUDA_HOME:-/usr/local/cuda}"

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --skip-build) SKIP_BUILD=1 ;;
        --skip-generate) SKIP_GENERATE=1 ;;
        --prompt) PROMPT="$2"; shift ;;
        --gen-batch) GEN_BATCH="$2"; shift ;;
        --new-tokens) NEW_TOKENS="$2"; shift ;;
        --model) MODEL="$2"; shift ;;
        --input) INPUT="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        --precision) PRECISION="$2"; shift ;;
        --max-seq) MAX_SEQ="$2"; shift ;;
        --opt-seq) OPT_SEQ="$2"; shift ;;
        --workspace-mib) WORKSPACE_MIB="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "build_engine.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

case "$PRECISION" in
    fp16) ATOL=3e-2; RTOL=3e-2 ;;
    fp32) ATOL=1e-3; RTOL=1e-3 ;;
    *) echo "build_engine.sh: --precision must be fp16 or fp32" >&2; exit 2 ;;
esac

for n in "$MAX_SEQ" "$OPT_SEQ" "$GEN_BATCH" "$NEW_TOKENS" "$WORKSPACE_MIB"; do
    if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
        echo "build_engine.sh: sizes must be positive integers, got '$n'" >&2
        exit 2
    fi
done

PROBLEMS=0
say() { printf '== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
# A missing requirement stops a real run; a dry run notes it and goes on.
problem() {
    printf '   MISSING: %s\n' "$*" >&2
    PROBLEMS=$((PROBLEMS + 1))
}
run() {
    printf '+ %s\n' "$*"
    if [[ "$DRY_RUN" -eq 0 ]]; then
        "$@"
    fi
}

check_environment() {
    say "environment"
    if [[ -r /etc/nv_tegra_release ]]; then
        local l4t
        l4t="$(head -n 1 /etc/nv_tegra_release)"
        ok "L4T: $l4t"
        case "$l4t" in
            *R35*) ok "JetPack 5 (TensorRT 8.5)" ;;
            *R36*) ok "JetPack 6 (TensorRT 8.6 / 10.x)" ;;
            *) problem "L4T release not JetPack 5 (R35) or 6 (R36): $l4t" ;;
        esac
    else
        problem "not a Jetson (/etc/nv_tegra_release missing)"
    fi
    if command -v dpkg-query >/dev/null 2>&1 && dpkg-query -W nvidia-jetpack >/dev/null 2>&1; then
        ok "nvidia-jetpack $(dpkg-query -W -f='${Version}' nvidia-jetpack)"
    fi
    if [[ -x "$CUDA_DIR/bin/nvcc" ]]; then
        ok "nvcc: $("$CUDA_DIR/bin/nvcc" --version | tail -n 1)"
    else
        problem "nvcc not at $CUDA_DIR/bin/nvcc (install cuda-toolkit or set CUDA_HOME)"
    fi
    local version_h="$TRT_INCLUDE/NvInferVersion.h"
    if [[ -r "$version_h" ]]; then
        local major minor
        # TensorRT 10 routes the numbers through TRT_*_ENTERPRISE; 8.x defines them directly.
        major="$(grep -Eo '(NV_TENSORRT_MAJOR|TRT_MAJOR_ENTERPRISE) [0-9]+' "$version_h" | head -n 1 | grep -Eo '[0-9]+$' || true)"
        minor="$(grep -Eo '(NV_TENSORRT_MINOR|TRT_MINOR_ENTERPRISE) [0-9]+' "$version_h" | head -n 1 | grep -Eo '[0-9]+$' || true)"
        ok "TensorRT headers $major.$minor at $TRT_INCLUDE"
    else
        problem "TensorRT headers not at $TRT_INCLUDE (apt install libnvinfer-dev, or set TENSORRT_INCLUDE_DIR)"
    fi
    if [[ -r "$TRT_INCLUDE/NvOnnxParser.h" ]]; then
        ok "ONNX parser header"
    else
        problem "NvOnnxParser.h not at $TRT_INCLUDE (apt install libnvonnxparsers-dev)"
    fi
    if command -v cargo >/dev/null 2>&1; then
        ok "$(cargo --version)"
    else
        problem "cargo not found (install Rust with rustup)"
    fi
    local free_mb
    free_mb="$(df -Pm "$ROOT" | awk 'NR == 2 { print $4 }')"
    if [[ "$free_mb" -ge 4000 ]]; then
        ok "disk: $free_mb MB free"
    else
        problem "disk: $free_mb MB free in $ROOT, need about 4000 (cargo's release build)"
    fi
    local mem_kb swap_kb
    mem_kb="$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
    swap_kb="$(awk '/^SwapTotal:/ { print $2 }' /proc/meminfo)"
    ok "memory: $((mem_kb / 1024)) MB, swap $((swap_kb / 1024)) MB"
    if [[ "$mem_kb" -lt 7000000 && "$swap_kb" -lt 2000000 ]]; then
        problem "under 8 GB memory and under 2 GB swap: add swap before building (e.g. a 4 GB swapfile)"
    fi
    if [[ ! -r "$MODEL" ]]; then
        problem "model $MODEL not readable"
    fi
    if [[ "$SKIP_GENERATE" -eq 0 && ! -r "$PROMPT" ]]; then
        problem "prompt $PROMPT not readable (--prompt IDS.npy, or --skip-generate)"
    fi
    if [[ "$PROBLEMS" -gt 0 ]]; then
        if [[ "$DRY_RUN" -eq 1 ]]; then
            say "dry run: $PROBLEMS requirement(s) missing on this machine; the plan follows"
        else
            echo "build_engine.sh: $PROBLEMS requirement(s) missing (see above)" >&2
            exit 1
        fi
    fi
}

check_environment

BIN="$ROOT/target/release"
PATCHED="$OUT/model.s6.onnx"
ENGINE="$OUT/model.engine"
PLUGIN="$BIN/libs6plugin.so"

cd "$ROOT"
run mkdir -p "$OUT"
if [[ "$SKIP_BUILD" -eq 0 ]]; then
    say "build libs6plugin.so (sm_87) and the tools"
    # Four jobs: rustc and nvcc together can exhaust an Orin Nano's 8 GB.
    run env S6PLUGIN_CUDA_ARCHS=87 CUDA_HOME="$CUDA_DIR" TENSORRT_INCLUDE_DIR="$TRT_INCLUDE" \
        cargo build --release --jobs 4 --features trt
    run env TENSORRT_INCLUDE_DIR="$TRT_INCLUDE" CUDA_INCLUDE_DIR="$CUDA_DIR/include" \
        S6_ENGINE_REQUIRE_TRT=1 cargo build --release --jobs 4 -p s6-tools \
        --bin s6-engine --bin onnx-patch --bin s6-run
fi

say "patch the export"
run "$BIN/onnx-patch" "$MODEL" -o "$PATCHED" --verify

say "build the engine ($PRECISION, workspace $WORKSPACE_MIB MiB, sequence up to $MAX_SEQ)"
# --backend trt: JetPack's own TensorRT, never TensorRT-RTX (its engines do not run on Orin).
run "$BIN/s6-engine" build "$PATCHED" -o "$ENGINE" --backend trt --plugin "$PLUGIN" \
    --min batch=1,sequence=1 --opt "batch=1,sequence=$OPT_SEQ" --max "batch=1,sequence=$MAX_SEQ" \
    --precision "$PRECISION" --workspace-mib "$WORKSPACE_MIB" --timing-cache "$OUT/timing.cache"

say "smoke inference"
run "$BIN/s6-engine" run "$ENGINE" --backend trt --plugin "$PLUGIN" --input "$INPUT" --out-dir "$OUT/trt"

say "cross-check TensorRT against the interpreter (atol $ATOL, rtol $RTOL)"
run "$BIN/s6-run" "$PATCHED" --input "$INPUT" --out-dir "$OUT/cpu" --compare "$OUT/trt" \
    --atol "$ATOL" --rtol "$RTOL"

if [[ "$SKIP_GENERATE" -eq 0 ]]; then
    STATEFUL="$OUT/model.st.onnx"
    GEN_ENGINE="$OUT/model.st.engine"
    say "token generation: the stateful graph"
    run "$BIN/onnx-patch" "$MODEL" -o "$STATEFUL" --stateful --verify

    say "build its engine (profile: sequence 1..$MAX_SEQ, batch 1..$GEN_BATCH, tuned for the decode step)"
    run "$BIN/s6-engine" build "$STATEFUL" -o "$GEN_ENGINE" --backend trt --plugin "$PLUGIN" \
        --stateful --max "batch=$GEN_BATCH,sequence=$MAX_SEQ" \
        --precision "$PRECISION" --workspace-mib "$WORKSPACE_MIB" --timing-cache "$OUT/timing.cache"

    say "generate $NEW_TOKENS tokens with TensorRT, then with the interpreter"
    run "$BIN/s6-engine" generate "$GEN_ENGINE" --backend trt --plugin "$PLUGIN" \
        --prompt "$PROMPT" --max-new-tokens "$NEW_TOKENS" --out "$OUT/trt_tokens.npy"
    run "$BIN/s6-run" generate "$STATEFUL" --prompt "$PROMPT" --max-new-tokens "$NEW_TOKENS" \
        --out "$OUT/cpu_tokens.npy"

    say "compare the greedy tokens"
    # Both files come from the same .npy writer: equal tokens are equal bytes.
    printf '+ cmp %s %s\n' "$OUT/trt_tokens.npy" "$OUT/cpu_tokens.npy"
    if [[ "$DRY_RUN" -eq 0 ]]; then
        if cmp -s "$OUT/trt_tokens.npy" "$OUT/cpu_tokens.npy"; then
            ok "TensorRT's tokens equal the interpreter's"
        elif [[ "$PRECISION" == fp32 ]]; then
            echo "build_engine.sh: fp32 engine's greedy tokens differ from the interpreter's" >&2
            exit 1
        else
            # fp16 logits can swap near-equal maxima (random-weight models have many).
            printf '   note: fp16 tokens differ from the fp32 interpreter (near-equal logits); rerun with --precision fp32 to compare exactly\n'
        fi
    fi
fi

if [[ "$DRY_RUN" -eq 1 ]]; then
    say "dry run done"
else
    say "done: $ENGINE"
fi
