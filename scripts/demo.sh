#!/usr/bin/env bash
# The main job, end to end, on the bundled Mamba export (transformers MambaForCausalLM, 2 layers,
# exported by torch.onnx's TorchScript exporter at sequence length 12):
#   1. install what is needed (scripts/setup.sh)
#   2. build libs6plugin.so and the tools
#   3. patch the export: every unrolled selective scan → one S6Scan node, dynamic sequence length
#   4. cross-check with s6-run: patched vs original at L = 12, and the patched model at L = 7
#      against PyTorch (a length the export never saw)
#   5. build a real TensorRT engine: with the system TensorRT where there is one, else with
#      TensorRT-RTX (installed by setup.sh), which builds engines on a machine without a GPU
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
model=${1:-fixtures/models/hf_ts_L12}
out=out/demo
step() { printf '\n== %s\n' "$*"; }

step "1/5 install (scripts/setup.sh)"
scripts/setup.sh
# shellcheck source=/dev/null
. .deps/env.sh

step "2/5 build libs6plugin.so and the tools"
features=()
[ "$(uname -s)" = Linux ] && features=(--features trt)
cargo build --release -p s6plugin ${features[@]+"${features[@]}"} # bash 3.2: empty array
cargo build --release -p s6-tools
if [ "$(uname -s)" = Linux ] && [ -n "${S6_TRT_RTX_INCLUDE_DIR:-}" ]; then
  # The plugin for TensorRT-RTX, which builds the engine of step 5 where no TensorRT is installed.
  scripts/build_plugin_variants.sh --release rtx1
fi
bin=target/release
if [ -f "$bin/libs6plugin.so" ]; then
  echo "libs6plugin.so exports:"
  nm -D --defined-only "$bin/libs6plugin.so" | grep -E ' (getCreators|getPluginCreators|setLoggerFinder|s6pluginBuildInfo)$' || true
fi

step "3/5 patch $model/model.onnx"
mkdir -p "$out"
"$bin/onnx-patch" "$model/model.onnx" -o "$out/model.s6.onnx" --verify --report "$out/patch.json"

step "4/5 cross-check with s6-run"
inputs=()
for f in "$model"/inputs/*.npy; do
  inputs+=(--input "$(basename "$f" .npy)=$f")
done
"$bin/s6-run" "$model/model.onnx" "${inputs[@]}" --out-dir "$out/original"
"$bin/s6-run" "$out/model.s6.onnx" "${inputs[@]}" --out-dir "$out/patched" --compare "$out/original"
"$bin/s6-run" "$out/model.s6.onnx" "${inputs[@]}" --out-dir "$out/patched_vs_ort" --compare "$model/expected"
for other in "$model"/expected_L*; do
  [ -d "$other" ] || continue
  oin=()
  for f in "$other"/inputs/*.npy; do
    oin+=(--input "$(basename "$f" .npy)=$f")
  done
  mkdir -p "$out/$(basename "$other")_ref"
  cp "$other"/*.npy "$out/$(basename "$other")_ref/"
  echo "patched model at another length ($(basename "$other")) vs PyTorch:"
  "$bin/s6-run" "$out/model.s6.onnx" "${oin[@]}" --out-dir "$out/$(basename "$other")" \
    --compare "$out/$(basename "$other")_ref"
done

echo "token generation: the stateful graph, prefill once, then one step per token:"
"$bin/onnx-patch" "$model/model.onnx" -o "$out/model.st.onnx" --stateful --verify
"$bin/s6-run" generate "$out/model.st.onnx" --prompt "$model/inputs/input_ids.npy" \
  --max-new-tokens 16 --out "$out/tokens.npy"

step "5/5 TensorRT engine"
shapes=(--min sequence=1 --opt sequence=12 --max sequence=256)
# libs6plugin built against TensorRT-RTX's headers (scripts/build_plugin_variants.sh).
rtx_plugin=target/plugin-variants/libs6plugin-rtx1.so
cross_check() { # ENGINE BACKEND PLUGIN
  "$bin/s6-engine" run "$1" --backend "$2" --plugin "$3" "${inputs[@]}" --out-dir "$out/trt"
  "$bin/s6-run" "$out/model.s6.onnx" "${inputs[@]}" --out-dir "$out/cpu" \
    --compare "$out/trt" --atol 3e-2 --rtol 3e-2
}
if "$bin/s6-engine" build "$out/model.s6.onnx" -o "$out/model.engine" --backend trt \
  --plugin "$bin/libs6plugin.so" "${shapes[@]}" 2>"$out/trt_build.log"; then
  cat "$out/trt_build.log"
  cross_check "$out/model.engine" trt "$bin/libs6plugin.so"
else
  echo "(no TensorRT build here: $(tail -n 1 "$out/trt_build.log"))"
  echo "TensorRT-RTX instead: it builds engines without a GPU."
  if [ -f "$rtx_plugin" ]; then
    "$bin/s6-engine" build "$out/model.s6.onnx" -o "$out/model.rtx.engine" --backend rtx \
      --plugin "$rtx_plugin" "${shapes[@]}"
  else
    echo "($rtx_plugin is missing: scripts/build_plugin_variants.sh builds it;"
    echo " building the unpatched export instead, which needs no plugin)"
    len=$(sed -n 's/.*"seq_len": *\([0-9]*\).*/\1/p' "$model/meta.json" | head -n 1)
    "$bin/s6-engine" build "$model/model.onnx" -o "$out/model.rtx.engine" --backend rtx \
      --min "sequence=$len" --opt "sequence=$len" --max "sequence=$len"
  fi
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 || true)
  case "$cc" in
    7.5 | 8.0 | 8.6 | 8.9 | 12.*)
      if [ -f "$rtx_plugin" ]; then cross_check "$out/model.rtx.engine" rtx "$rtx_plugin"; fi
      ;;
    *)
      echo "TensorRT-RTX engines run on GPUs of compute capability 7.5, 8.0, 8.6, 8.9 and 12.x"
      echo "only (here: ${cc:-no GPU}), so the engine is not run on this machine."
      ;;
  esac
fi
echo
echo "demo done: outputs under $out/"
