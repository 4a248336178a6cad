#!/usr/bin/env bash
# GPU check for clockwork-gpu's CUDA backend. Run on a machine with an NVIDIA driver and
# at least one GPU (device 0 is used). It builds with `--features cuda` (cudarc loads
# libcuda at run time: no CUDA toolkit is needed to build or run; the INFER kernel ships
# as PTX that the driver JIT-compiles), runs the CUDA tests, which print LOAD bandwidth
# and INFER timings, then the rest of the crate's tests with the feature on. Without a
# driver the CUDA tests print why and pass (skip). If libnvrtc is findable, a unit test
# also recompiles the kernel source; otherwise it skips.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== environment"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=index,name,driver_version,memory.total,clocks.sm --format=csv || true
else
    echo "nvidia-smi not found (no NVIDIA driver?): the CUDA tests will skip"
fi
ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libnvrtc\.so' || echo "libcuda/libnvrtc not in the ldconfig cache (LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-})"

echo "== build (release, --features cuda)"
cargo build --release -p clockwork-gpu --features cuda --all-targets

echo "== CUDA tests: LOAD bandwidth, INFER timings, windows, versioning, shutdown"
cargo test --release -p clockwork-gpu --features cuda --test cuda -- --nocapture --test-threads=1

echo "== CUDA gate and kernel compile (unit tests)"
cargo test --release -p clockwork-gpu --features cuda --lib cuda -- --nocapture

echo "== the rest of the crate with the feature on"
cargo test --release -p clockwork-gpu --features cuda

echo "== emulated backend under load for comparison (150 devices, 1 engine thread, 3 s)"
cargo run --release -q -p clockwork-gpu --example emulated_many -- 150 1 3
