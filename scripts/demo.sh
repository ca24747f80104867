#!/usr/bin/env bash
# The main job, end to end, on the bundled Mamba export (transformers MambaForCausalLM, 2 layers,
# exported by torch.onnx's TorchScript exporter at sequence length 12):
#   1. install what is needed (scripts/setup.sh)
#   2. build libs6plugin.so and the tools
#   3. patch the export: every unrolled selective scan → one S6Scan node, dynamic sequence length
#   4. cross-check with s6-run: patched vs original at L = 12, and the patched model at L = 7
#      against PyTorch (a length the export never saw)
#   5. build a TensorRT engine, where a TensorRT builder is installed
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
cargo build --release -p s6plugin "${features[@]}"
cargo build --release -p s6-tools
bin=target/release
if [ -f "$bin/libs6plugin.so" ]; then
  echo "libs6plugin.so exports:"
  nm -D --defined-only "$bin/libs6plugin.so" | grep -E ' (getCreators|getPluginCreators|setLoggerFinder)$' || true
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
if "$bin/s6-engine" build "$out/model.s6.onnx" -o "$out/model.engine" \
  --plugin "$bin/libs6plugin.so" "${shapes[@]}"; then
  "$bin/s6-engine" run "$out/model.engine" "${inputs[@]}" --out-dir "$out/trt"
  "$bin/s6-run" "$out/model.s6.onnx" "${inputs[@]}" --out-dir "$out/cpu" \
    --compare "$out/trt" --atol 3e-2 --rtol 3e-2
else
  echo "(no TensorRT builder here — the equivalent trtexec command for TensorRT 10.x:)"
  "$bin/s6-engine" build "$out/model.s6.onnx" -o "$out/model.engine" \
    --plugin "$bin/libs6plugin.so" "${shapes[@]}" --print-trtexec 10.3
fi
echo
echo "demo done: outputs under $out/"
