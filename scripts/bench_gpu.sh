#!/usr/bin/env bash
# GPU machine run of the kernels work: tool check, GPU tests (also through NVRTC), 
# compute-sanitizer memcheck + racecheck, our benchmark, mamba_ssm 2.3.2.post1 built from its
# sdist and benchmarked the same way. Logs and CSVs go to $OUT (default /tmp/s6out).
#
# Expects, built on the developer machine (see docs/benchmarks.md) and copied to $BIN
# (default .carry/kernels): gpu_kernels (the test binary), kernels (the bench binary) and
# mamba_ssm-2.3.2.post1.tar.gz (the sdist); for S6ScanHeads also gpu_heads (its test binary) and
# heads (its bench binary). Set STEPS to a subset of
# "tools exprate tests nvrtc sanitizer bench mamba profile heads" to run part of it.
set -u -o pipefail
OUT=${OUT:-/tmp/s6out}
BIN=${BIN:-.carry/kernels}
STEPS=${STEPS:-tools exprate tests nvrtc sanitizer bench mamba profile heads}
mkdir -p "$OUT"
has() { [[ " $STEPS " == *" $1 "* ]]; }
rc=0

if has mamba; then
  # Build mamba_ssm's CUDA extension in the background (sm_90 only, 16 jobs) while tests run.
  (
    set -e
    tar xzf "$BIN/mamba_ssm-2.3.2.post1.tar.gz" -C /tmp
    cd /tmp/mamba_ssm-2.3.2.post1
    python3 - <<'EOF'
import re
s = open("setup.py").read()
# Keep sm_90 only: drop every other arch (and the "-gencode" appended just before it).
s = re.sub(r'cc_flag\.append\("arch=compute_(?!90)\d+,code=sm_\d+"\)', 'cc_flag.pop()', s)
open("setup.py", "w").write(s)
EOF
    # The package's own imports pull in models we do not need; setup.py reads the version here.
    echo '__version__ = "2.3.2.post1"' > mamba_ssm/__init__.py
    MAMBA_FORCE_BUILD=TRUE MAX_JOBS=16 python3 setup.py build_ext --inplace
  ) > "$OUT/mamba_build.log" 2>&1 &
  BUILD_PID=$!
  T0=$(date +%s)
fi

if has tools; then
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv
  compute-sanitizer --version | tail -1
fi

if has exprate; then
  # The exp unit's rate on this GPU (the bench's exp limit assumes 16 per SM per clock).
  nvcc -O3 -arch=sm_90 -o /tmp/exp_unit_rate scripts/exp_unit_rate.cu && /tmp/exp_unit_rate \
    | tee "$OUT/exprate.log" || rc=1
fi

if has tests; then
  "$BIN/gpu_kernels" --nocapture --test-threads 1 2>&1 | tee "$OUT/tests.log" || rc=1
fi

if has nvrtc; then
  # The NVRTC fallback: same tests (quick set) with the module compiled at run time.
  export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}:/usr/local/cuda/lib64
  S6PLUGIN_FORCE_NVRTC=1 S6_GPU_TEST_QUICK=1 "$BIN/gpu_kernels" --nocapture --test-threads 1 \
    kernels_match 2>&1 | tee "$OUT/nvrtc.log" || rc=1
fi

if has sanitizer; then
  for tool in memcheck racecheck; do
    S6_GPU_TEST_QUICK=1 compute-sanitizer --tool $tool --error-exitcode 9 \
      "$BIN/gpu_kernels" --nocapture --test-threads 1 kernels_match 2>&1 \
      | tail -25 | tee "$OUT/sanitizer_$tool.log" || rc=1
  done
fi

if has mamba; then
  wait "$BUILD_PID" || { echo "mamba_ssm build FAILED"; tail -30 "$OUT/mamba_build.log"; rc=1; }
  echo "mamba_ssm build finished after $(( $(date +%s) - T0 )) s"
fi

if has bench; then
  "$BIN/kernels" --dump /tmp/s6_dump --csv "$OUT/ours.csv" 2>&1 | tee "$OUT/bench_ours.log" || rc=1
fi

if has mamba; then
  # With our bench's inputs (bench step) mamba_ssm's error is measured on the same inputs.
  dump=(); [ -d /tmp/s6_dump ] && dump=(--dump /tmp/s6_dump)
  PYTHONPATH=/tmp/mamba_ssm-2.3.2.post1 PYTHONUNBUFFERED=1 python3 scripts/bench_mamba.py \
    ${dump[@]+"${dump[@]}"} --csv "$OUT/mamba.csv" 2>&1 | tee "$OUT/bench_mamba.log" || rc=1
fi
if has profile; then
  # Where the time goes in one large shape, and the prefill kernel's SASS.
  ncu --clock-control none --section SpeedOfLight --section WarpStateStats --section Occupancy \
    --section LaunchStats --section ComputeWorkloadAnalysis \
    --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum' \
    -k 'regex:s6_(prefill|warp|chan)' -c 1 \
    "$BIN/kernels" --only "${PROFILE_SHAPE:-f16,1,5120,1024}" > "$OUT/ncu.txt" 2>&1 || true
  grep -E "Duration|Throughput|stalled|Warp Cycles|Issued|Eligible|Achieved|Registers|pipe_xu|inst_executed" "$OUT/ncu.txt" | head -40
  if [ -f "$BIN/s6scan.fatbin" ]; then
    cuobjdump -sass -fun s6_warp_f16_p2 "$BIN/s6scan.fatbin" > "$OUT/sass_warp_f16_p2.txt" 2>&1 || true
  fi
fi
if has heads; then
  # S6ScanHeads: tests (fatbin, NVRTC, memcheck, racecheck), then ours and mamba_ssm's Triton SSD
  # in the same run, accuracy on the same inputs. Triton needs no build: the sdist is unpacked.
  "$BIN/gpu_heads" --nocapture --test-threads 1 2>&1 | tee "$OUT/heads_tests.log" || rc=1
  S6PLUGIN_FORCE_NVRTC=1 S6_GPU_TEST_QUICK=1 "$BIN/gpu_heads" --nocapture --test-threads 1 \
    heads_kernels_match 2>&1 | tail -12 | tee "$OUT/heads_nvrtc.log" || rc=1
  for tool in memcheck racecheck; do
    S6_GPU_TEST_QUICK=1 compute-sanitizer --tool $tool --error-exitcode 9 \
      "$BIN/gpu_heads" --nocapture --test-threads 1 heads_kernels_match 2>&1 \
      | tail -6 | tee "$OUT/heads_sanitizer_$tool.log" || rc=1
  done
  [ -d /tmp/mamba_ssm-2.3.2.post1 ] || tar xzf "$BIN/mamba_ssm-2.3.2.post1.tar.gz" -C /tmp
  "$BIN/heads" --dump /tmp/heads_dump --csv "$OUT/heads_ours.csv" 2>&1 | tee "$OUT/heads_ours.log" || rc=1
  PYTHONUNBUFFERED=1 python3 scripts/bench_mamba2.py --mamba-src /tmp/mamba_ssm-2.3.2.post1 \
    --dump /tmp/heads_dump --ours "$OUT/heads_ours.csv" --csv "$OUT/heads_mamba.csv" 2>&1 \
    | tee "$OUT/heads_mamba.log" || rc=1
fi
exit $rc
