#!/bin/sh
# Saves onnxruntime's outputs for the bundled hf_ts_L12 export the way TensorRT users hand them
# over: polygraphy's `run --save-outputs` JSON (RunResults), for `s6-run --compare FILE.json`.
# Needs: pip install polygraphy numpy onnx onnxruntime (PYTHON / POLYGRAPHY pick other ones)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
case_dir="$here/fixtures/models/hf_ts_L12"
out="$here/fixtures/polygraphy"
py=${PYTHON:-python3}
polygraphy=${POLYGRAPHY:-polygraphy}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
"$py" -c "
import numpy as np, sys
from polygraphy.json import save_json
save_json([{'input_ids': np.load(sys.argv[1])}], sys.argv[2])
" "$case_dir/inputs/input_ids.npy" "$tmp/inputs.json"
"$polygraphy" run "$case_dir/model.onnx" --onnxrt --load-inputs "$tmp/inputs.json" \
    --save-outputs "$out/hf_ts_L12_onnxrt.json"
