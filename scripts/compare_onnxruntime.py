#!/usr/bin/env python3
"""Compare the CUDA executor's outputs with onnxruntime (CPU) on the same ONNX model.

Reads the JSON lines that `cuda_real` prints (stdin or files given as arguments): for
each (model, precision, batch) it runs the line's ONNX file on `input_b<B>.bin` with
onnxruntime and compares with `output_b<B>.bin` (both fp32, next to the model's version
directory). Prints one JSON line per batch with the max relative error (max |diff| over
max |reference|) and the executor's p50/p99, and exits 1 when an error exceeds its
tolerance (1e-3 for fp32, 3e-2 for fp16).
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort

TOLERANCE = {"fp32": 1e-3, "fp16": 3e-2}


def main():
    lines = []
    sources = [open(p) for p in sys.argv[1:]] or [sys.stdin]
    for src in sources:
        for line in src:
            line = line.strip()
            if line.startswith("{") and '"p50_ms"' in line:
                lines.append(json.loads(line))
    failed = False
    sessions = {}
    for rec in lines:
        onnx = rec["onnx"]
        entry = os.path.dirname(os.path.dirname(onnx))
        b = rec["batch"]
        if onnx not in sessions:
            sessions[onnx] = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
        sess = sessions[onnx]
        inp = sess.get_inputs()[0]
        shape = [b] + [int(d) for d in inp.shape[1:]]
        x = np.fromfile(os.path.join(entry, f"input_b{b}.bin"), dtype="<f4").reshape(shape)
        want = sess.run(None, {inp.name: x})[0].astype(np.float32)
        got = np.fromfile(os.path.join(entry, f"output_b{b}.bin"), dtype="<f4").reshape(want.shape)
        scale = float(np.max(np.abs(want))) or 1.0
        err = float(np.max(np.abs(got - want))) / scale
        tol = TOLERANCE[rec["precision"]]
        ok = bool(np.isfinite(got).all() and err <= tol)
        failed |= not ok
        print(json.dumps({
            "model": rec["model"], "precision": rec["precision"], "batch": b,
            "max_rel_err": err, "tolerance": tol, "ok": ok,
            "p50_ms": rec["p50_ms"], "p99_ms": rec["p99_ms"], "load_ms": rec["load_ms"],
        }))
    if not lines:
        print("no cuda_real results to compare", file=sys.stderr)
        sys.exit(1)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
