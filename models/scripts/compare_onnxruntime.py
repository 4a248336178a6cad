#!/usr/bin/env python3
"""Compare tract's outputs for the generated models with onnxruntime's.

Not part of `cargo test`. Needs `pip install onnxruntime numpy`. Usage:

    cargo run --release -p clockwork-models --example export_outputs -- /tmp/cw-models 2
    python3 models/scripts/compare_onnxruntime.py /tmp/cw-models

Exits non-zero if any model's outputs differ by more than the tolerance.
"""
import json
import pathlib
import sys

import numpy as np
import onnxruntime as ort

# Relative to the output's largest magnitude: float32 reassociation across different
# convolution and matrix-multiply kernels.
TOLERANCE = 1e-4


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/cw-models")
    failed = 0
    for entry in sorted(p for p in root.iterdir() if (p / "shapes.json").exists()):
        shapes = json.loads((entry / "shapes.json").read_text())
        x = np.fromfile(entry / "input.bin", dtype="<f4").reshape(shapes["input"])
        want = np.fromfile(entry / "tract_output.bin", dtype="<f4").reshape(shapes["output"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(entry / "1" / "model.onnx"), options, providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        scale = max(float(np.abs(got).max()), 1e-6)
        err = float(np.abs(got - want).max()) / scale
        ok = got.shape == want.shape and err <= TOLERANCE
        failed += not ok
        print(f"{entry.name}: shape {got.shape}, max |diff| / max |out| = {err:.2e} {'ok' if ok else 'MISMATCH'}")
    print(f"onnxruntime {ort.__version__}: {failed} mismatches")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
