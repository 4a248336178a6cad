#!/usr/bin/env bash
# GPU check for clockwork-gpu's CUDA backend, run from PREBUILT binaries: the GPU machine
# has an NVIDIA driver (and PyTorch) but no Rust toolchain and no network, so nothing is
# built there. Device 0 is used.
#
# Build and carry (on a machine with Rust; cudarc loads libcuda at run time, so no CUDA
# toolkit is needed to build):
#   cargo test --release -p clockwork-gpu --features cuda --no-run --message-format=json \
#     | jq -r 'select(.profile.test == true and .executable != null) | "\(.target.name) \(.target.kind[0]) \(.executable)"'
#   # copy the `cuda` (kind test) binary to gpu-bin/cuda-tests and the clockwork-gpu lib
#   # (kind lib) test binary to gpu-bin/gpu-lib-tests; optionally
#   cargo build --release -p clockwork-gpu --features cuda --example emulated_many
#   # and copy target/release/examples/emulated_many to gpu-bin/emulated_many
#   cargo build --release -p clockwork-gpu --features cuda --example cuda_real
#   # and copy target/release/examples/cuda_real to gpu-bin/cuda_real (real models
#   # through the CUDA executor: cuDNN, cuBLASLt, our PTX kernels, CUDA graphs)
#   strip gpu-bin/*          # keeps them well under a 64 MiB transfer limit
# then copy the checkout (with gpu-bin/, which is git-ignored) to the GPU machine and run
#   scripts/gpu-check.sh                   # or CW_GPU_BIN=/path/to/dir scripts/gpu-check.sh
# The executor needs libcudnn.so.9 and libcublasLt (.so.13 or .so.12) on the loader's
# path (set LD_LIBRARY_PATH for pip-installed ones); without them the CUDA backend
# refuses to start with an error naming the library. The real-model step generates
# small_cnn, resnet18 and resnet50, runs them at batch 1, 16 and 32 and compares the
# outputs with onnxruntime (python3 with onnxruntime and numpy) through
# scripts/compare_onnxruntime.py: one JSON line per (model, precision, batch) with the
# max relative error and p50/p99. The whole script is meant to stay under 8 minutes.
# The CUDA tests print LOAD bandwidth and INFER timings. Without a driver they print why
# and pass (skip). If libnvrtc is findable, a unit test also recompiles the INFER
# kernel's source (at compute_75: NVRTC 13 accepts nothing older); otherwise it skips.
# A missing binary is reported and skipped; the script fails if a test run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CW_GPU_BIN:-gpu-bin}"

echo "== environment"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=index,name,driver_version,memory.total,clocks.sm --format=csv || true
else
    echo "nvidia-smi not found (no NVIDIA driver?): the CUDA tests will skip"
fi
ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libnvrtc\.so' || echo "libcuda/libnvrtc not in the ldconfig cache (LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-})"

run() {
    local name="$1"
    shift
    if [[ ! -x "$BIN/$name" ]]; then
        echo "(skipped: $BIN/$name not found; see this script's header for how to build it)"
        return 0
    fi
    "$BIN/$name" "$@"
}

echo "== CUDA tests: LOAD bandwidth, INFER timings, windows, versioning, shutdown"
run cuda-tests --nocapture --test-threads=1

echo "== the crate's unit tests with the feature on (CUDA gate, kernel compile, ...)"
run gpu-lib-tests --nocapture

echo "== emulated backend under load for comparison (150 devices, 1 engine thread, 3 s)"
run emulated_many 150 1 3

echo "== real models through the CUDA executor, compared with onnxruntime (JSON lines)"
real_status=0
if [[ ! -x "$BIN/cuda_real" ]]; then
    echo "(skipped: $BIN/cuda_real not found; see this script's header for how to build it)"
else
    work="$(mktemp -d)"
    results="$work/results.jsonl"
    : >"$results"
    for spec in "small_cnn fp32" "small_cnn fp16" "resnet18 fp32" "resnet18 fp16" "resnet50 fp32" "resnet50 fp16"; do
        read -r kind prec <<<"$spec"
        if ! timeout 60 "$BIN/cuda_real" "$kind" "$prec" "$work/models" 50 | tee -a "$results"; then
            echo "cuda_real $kind $prec FAILED"
            real_status=1
        fi
    done
    if python3 -c "import onnxruntime, numpy" 2>/dev/null; then
        timeout 150 python3 scripts/compare_onnxruntime.py "$results" || real_status=1
    else
        echo "(python3 cannot import onnxruntime and numpy: outputs not compared)"
    fi
    rm -rf "$work"
fi
exit "$real_status"
