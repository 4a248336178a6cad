#!/usr/bin/env python3
"""Infer against a running Clockwork-RS controller with the unmodified Triton client.

Reads the model's metadata (input and output names, datatypes, shapes), sends
`--count` seeded random inputs (one item each: the server batches requests itself),
prints each answer's outputs (the top classes, for a classifier), then the model's statistics (the statistics
extension: request counts, mean queue and compute times, batches by size).

    python3 examples/tritonclient_http.py --url 127.0.0.1:8000 --model small_cnn

`--protocol grpc` uses `tritonclient.grpc` instead (the same calls; `--url` is then the
gRPC address); when nothing answers gRPC there, it says so and exits 2. Setting up the
controller and a worker: `examples/README.md`. Packages (pinned):
`pip install -r tests/python/requirements.txt`.

Exit status: 0 when every inference succeeded, 1 on a failed inference, 2 when the
server could not be reached or is not ready in time.
"""

import argparse
import os
import sys
import time

import numpy as np

# Triton datatype -> numpy dtype, for the inputs this example can generate.
NUMPY_TYPES = {
    "FP32": np.float32,
    "FP64": np.float64,
    "FP16": np.float16,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="127.0.0.1:8000", help="server address, host:port")
    p.add_argument("--protocol", choices=["http", "grpc"], default="http")
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--count", type=int, default=3, help="inferences to send")
    p.add_argument("--seed", type=int, default=7, help="seed of the random inputs")
    p.add_argument(
        "--binary",
        action="store_true",
        help="HTTP: send and receive tensors with the binary tensor extension",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("CLOCKWORK_API_TOKEN"),
        help="the server's API token, sent as `authorization: Bearer TOKEN` "
        "(default: $CLOCKWORK_API_TOKEN; none when unset)",
    )
    p.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for the model to be ready"
    )
    args = p.parse_args(argv)
    # Lower-case: gRPC metadata keys must be; HTTP header names are case-insensitive.
    args.headers = {"authorization": f"Bearer {args.token}"} if args.token else None
    return args


def connect(args):
    """The client module and a client for `--protocol`."""
    if args.protocol == "grpc":
        import tritonclient.grpc as module

        client = module.InferenceServerClient(url=args.url)
    else:
        import tritonclient.http as module

        client = module.InferenceServerClient(url=args.url, network_timeout=60.0)
    return module, client


def wait_ready(client, args):
    """True once the model is ready; False if nothing answers or it is not ready in time."""
    from tritonclient.utils import InferenceServerException

    deadline = time.monotonic() + args.wait
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            if client.is_server_live() and client.is_model_ready(args.model, headers=args.headers):
                return True
            last = "model not ready"
        except (InferenceServerException, ConnectionError, OSError) as e:
            last = str(e) or type(e).__name__
        time.sleep(0.25)
    if args.protocol == "grpc":
        print(
            f"nothing answers gRPC at {args.url} ({last}): does this server have a "
            "gRPC port, and is it the one given with --url?",
            file=sys.stderr,
        )
    else:
        print(f"{args.model} at {args.url} is not ready: {last}", file=sys.stderr)
    return False


def metadata(client, args):
    """The model's metadata as a dict with integer shapes (gRPC's JSON has strings)."""
    if args.protocol == "grpc":
        meta = client.get_model_metadata(args.model, headers=args.headers, as_json=True)
    else:
        meta = client.get_model_metadata(args.model, headers=args.headers)
    for t in meta["inputs"] + meta["outputs"]:
        t["shape"] = [int(d) for d in t["shape"]]
    return meta


def make_input(module, spec, rng, binary):
    """A seeded random tensor for one input; -1 (the batch axis) becomes 1."""
    shape = [1 if d < 0 else d for d in spec["shape"]]
    dtype = NUMPY_TYPES.get(spec["datatype"])
    if dtype is None:
        raise SystemExit(f"input {spec['name']}: datatype {spec['datatype']} not supported here")
    if np.issubdtype(dtype, np.floating):
        data = rng.standard_normal(shape).astype(dtype)
    else:
        data = rng.integers(0, 100, size=shape).astype(dtype)
    tensor = module.InferInput(spec["name"], shape, spec["datatype"])
    if binary:
        tensor.set_data_from_numpy(data, binary_data=True)
    else:
        tensor.set_data_from_numpy(data)
    return tensor


def describe(name, value):
    """One line per output: its shape, and per row the top classes of a classifier."""
    lines = [f"  {name}: shape {list(value.shape)} {value.dtype}"]
    rows = value.reshape(value.shape[0], -1) if value.ndim > 1 else value.reshape(1, -1)
    for i, row in enumerate(rows):
        top = np.argsort(row)[::-1][:3]
        shown = ", ".join(f"class {int(c)}: {float(row[c]):.4f}" for c in top)
        lines.append(f"    [{i}] {shown}")
    return "\n".join(lines)


def number(d, *path):
    """A count or duration from a statistics dict (gRPC's JSON has strings, leaves zeros out)."""
    for k in path:
        d = d.get(k, {}) if isinstance(d, dict) else {}
    return int(d) if d != {} else 0


def print_statistics(client, args):
    if args.protocol == "grpc":
        stats = client.get_inference_statistics(args.model, headers=args.headers, as_json=True)
    else:
        stats = client.get_inference_statistics(args.model, headers=args.headers)
    for m in stats.get("model_stats", []):
        s = m.get("inference_stats", {})
        ok = number(s, "success", "count")
        print(f"statistics of {m['name']} (version {m.get('version', '1')}):")
        print(
            f"  requests: {ok} succeeded, {number(s, 'fail', 'count')} failed; "
            f"{number(m, 'inference_count')} inferences in "
            f"{number(m, 'execution_count')} executions"
        )
        if ok:
            for k in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
                mean_us = number(s, k, "ns") / max(number(s, k, "count"), 1) / 1e3
                print(f"  mean {k}: {mean_us:.1f} us")
        for b in m.get("batch_stats", []):
            n = number(b, "compute_infer", "count")
            mean_us = number(b, "compute_infer", "ns") / max(n, 1) / 1e3
            print(
                f"  batch size {number(b, 'batch_size')}: {n} executions, "
                f"mean compute_infer {mean_us:.1f} us"
            )


def main(argv=None):
    args = parse_args(argv)
    if args.binary and args.protocol == "grpc":
        print("--binary is for HTTP; gRPC always sends raw tensors", file=sys.stderr)
    try:
        module, client = connect(args)
    except ImportError as e:
        print(f"{e}: pip install -r tests/python/requirements.txt", file=sys.stderr)
        return 2
    from tritonclient.utils import InferenceServerException

    try:
        if not wait_ready(client, args):
            return 2
        meta = metadata(client, args)
        print(f"model {meta['name']} over {args.protocol} at {args.url}")
        for t in meta["inputs"]:
            print(f"  input {t['name']}: {t['datatype']} {t['shape']}")
        for t in meta["outputs"]:
            print(f"  output {t['name']}: {t['datatype']} {t['shape']}")
        rng = np.random.default_rng(args.seed)
        binary = args.binary and args.protocol == "http"
        for n in range(args.count):
            inputs = [
                make_input(module, spec, rng, binary) for spec in meta["inputs"]
            ]
            if args.protocol == "grpc":
                outputs = [module.InferRequestedOutput(t["name"]) for t in meta["outputs"]]
            else:
                outputs = [
                    module.InferRequestedOutput(t["name"], binary_data=binary)
                    for t in meta["outputs"]
                ]
            try:
                result = client.infer(args.model, inputs, outputs=outputs, headers=args.headers)
            except InferenceServerException as e:
                print(f"inference {n + 1} failed: {e}", file=sys.stderr)
                return 1
            print(f"inference {n + 1}:")
            for t in meta["outputs"]:
                print(describe(t["name"], result.as_numpy(t["name"])))
        print_statistics(client, args)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
