"""The unmodified Triton gRPC client (`tritonclient[grpc]`) against Clockwork-RS.

Checks, against a running controller with a gRPC port (`--grpc`) and a model
repository: server live, ready and metadata, model metadata and readiness, FP32
inference of the generated small CNN (`small_cnn`) with raw tensor bytes (what
tritonclient sends) and with typed `contents` (through the service's own stub),
compared with onnxruntime's output for the same `model.onnx` (rtol 1e-4), the
repository index (whole past the HTTP front end's page of 1,000 entries, also
through `tritonclient[http]`), load and unload of a built-in profile under the admin
token (and their refusal without it), the API token (health calls open, the others
UNAUTHENTICATED without it), the statistics extension, and unknown models answered
NOT_FOUND.

Environment:
    CLOCKWORK_GRPC         the controller's gRPC address, e.g. 127.0.0.1:8001
    CLOCKWORK_HTTP         its HTTP address (registers many instances for the index test)
    CLOCKWORK_REPO         the repository directory the controller serves
    CLOCKWORK_ADMIN_TOKEN  the controller's --admin-token (load/unload tests)
    CLOCKWORK_API_TOKEN    the controller's --api-token, if it has one
    CLOCKWORK_MODEL        the model to infer (default small_cnn)

Without CLOCKWORK_GRPC and CLOCKWORK_REPO every test is skipped. Packages (pinned):
`pip install -r tests/python/requirements.txt`.
"""

import os
from pathlib import Path

import pytest

GRPC = os.environ.get("CLOCKWORK_GRPC")
REPO = os.environ.get("CLOCKWORK_REPO")
TOKEN = os.environ.get("CLOCKWORK_ADMIN_TOKEN")
API_TOKEN = os.environ.get("CLOCKWORK_API_TOKEN")
# tritonclient's headers= (gRPC metadata) for every call but the health probes.
AUTH = {"authorization": f"Bearer {API_TOKEN}"} if API_TOKEN else {}
METADATA = tuple(AUTH.items())
MODEL = os.environ.get("CLOCKWORK_MODEL", "small_cnn")
# A built-in (emulated) profile: loading it registers instances without touching MODEL.
BUILTIN = "resnet18_v2"

pytestmark = pytest.mark.skipif(
    not (GRPC and REPO),
    reason="set CLOCKWORK_GRPC and CLOCKWORK_REPO to run against a live controller",
)

RTOL = 1e-4
ATOL = 1e-5


@pytest.fixture(scope="module")
def client():
    import tritonclient.grpc as grpcclient

    c = grpcclient.InferenceServerClient(url=GRPC)
    yield c
    c.close()


@pytest.fixture(scope="module")
def image():
    import numpy as np

    rng = np.random.default_rng(11)
    return rng.standard_normal((1, 3, 64, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(image):
    import onnxruntime as ort

    versions = [
        p for p in (Path(REPO) / MODEL).iterdir() if p.is_dir() and p.name.isdigit()
    ]
    path = max(versions, key=lambda p: int(p.name)) / "model.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: image})[0]


def retrying(call):
    """`call()`, again (5 tries, 1 s apart) while it is refused as overload
    (RESOURCE_EXHAUSTED, HTTP's 429 + Retry-After): on a loaded test machine the
    CPU worker can miss its windows, and that answer says to retry."""
    import time

    import grpc
    from tritonclient.utils import InferenceServerException

    for attempt in range(5):
        try:
            return call()
        except InferenceServerException as e:
            if attempt == 4 or e.status() != "StatusCode.RESOURCE_EXHAUSTED":
                raise
        except grpc.RpcError as e:
            if attempt == 4 or e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
        time.sleep(1.0)


def status_of(call):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as e:
        call()
    return e.value.status()


def test_server_live_ready_and_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata(as_json=True, headers=AUTH)
    assert meta["name"] == "clockwork-rs"
    assert "model_repository" in meta["extensions"]


def test_model_metadata_and_ready(client):
    assert client.is_model_ready(MODEL, headers=AUTH)
    assert client.is_model_ready(MODEL, model_version="1", headers=AUTH)
    meta = client.get_model_metadata(MODEL, as_json=True, headers=AUTH)
    assert meta["name"] == MODEL
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": ["-1", "3", "64", "64"]}
    ]
    assert meta["outputs"] == [
        {"name": "output", "datatype": "FP32", "shape": ["-1", "10"]}
    ]


def test_raw_inference_matches_onnxruntime(client, image, reference):
    import numpy as np
    import tritonclient.grpc as grpcclient

    inp = grpcclient.InferInput("input", list(image.shape), "FP32")
    inp.set_data_from_numpy(image)
    out = grpcclient.InferRequestedOutput("output")
    # client_timeout sends grpc-timeout: a generous one must not get in the way.
    result = retrying(
        lambda: client.infer(
            MODEL,
            [inp],
            outputs=[out],
            request_id="r1",
            client_timeout=20.0,
            headers=AUTH,
        )
    )
    got = result.as_numpy("output")
    assert got is not None
    assert got.dtype.name == "float32"
    assert got.shape == (1, 10)
    np.testing.assert_allclose(got, reference, rtol=RTOL, atol=ATOL)
    response = result.get_response()
    assert response.id == "r1"
    assert response.model_name == MODEL
    # All outputs when none are named.
    result = retrying(lambda: client.infer(MODEL, [inp], headers=AUTH))
    np.testing.assert_allclose(
        result.as_numpy("output"), reference, rtol=RTOL, atol=ATOL
    )


def test_typed_contents_inference_matches_onnxruntime(image, reference):
    import grpc
    import numpy as np
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    with grpc.insecure_channel(GRPC) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        req = service_pb2.ModelInferRequest(model_name=MODEL)
        t = req.inputs.add(name="input", datatype="FP32", shape=list(image.shape))
        t.contents.fp32_contents.extend(image.reshape(-1).tolist())
        req.parameters["timeout"].int64_param = 30_000_000
        resp = retrying(lambda: stub.ModelInfer(req, timeout=60.0, metadata=METADATA))
        assert [o.name for o in resp.outputs] == ["output"]
        assert list(resp.outputs[0].shape) == [1, 10]
        got = np.frombuffer(resp.raw_output_contents[0], dtype=np.float32).reshape(1, 10)
        np.testing.assert_allclose(got, reference, rtol=RTOL, atol=ATOL)
        # A shape the model does not take is INVALID_ARGUMENT, naming what it expects.
        bad = service_pb2.ModelInferRequest(model_name=MODEL)
        t = bad.inputs.add(name="input", datatype="FP32", shape=[1, 2])
        t.contents.fp32_contents.extend([1.0, 2.0])
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(bad, timeout=60.0, metadata=METADATA)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "expected [1, 3, 64, 64]" in e.value.details()


def test_unknown_models_are_not_found(client, image):
    import tritonclient.grpc as grpcclient

    assert status_of(lambda: client.get_model_metadata("no_such_model", headers=AUTH)) == (
        "StatusCode.NOT_FOUND"
    )
    assert status_of(lambda: client.is_model_ready("no_such_model", headers=AUTH)) == (
        "StatusCode.NOT_FOUND"
    )
    inp = grpcclient.InferInput("input", list(image.shape), "FP32")
    inp.set_data_from_numpy(image)
    assert status_of(lambda: client.infer("no_such_model", [inp], headers=AUTH)) == (
        "StatusCode.NOT_FOUND"
    )
    assert status_of(lambda: client.infer(MODEL, [inp], model_version="2", headers=AUTH)) == (
        "StatusCode.NOT_FOUND"
    )


def test_repository_index(client):
    index = client.get_model_repository_index(as_json=True, headers=AUTH)
    names = [m["name"] for m in index["models"]]
    assert MODEL in names
    entry = next(m for m in index["models"] if m["name"] == MODEL)
    assert entry["state"] == "READY"


def admin_post(path, body):
    """POSTs JSON to the controller's HTTP port with the admin token; the JSON answer."""
    import json
    import urllib.request

    req = urllib.request.Request(
        f"http://{os.environ['CLOCKWORK_HTTP']}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


@pytest.mark.skipif(
    not TOKEN or not os.environ.get("CLOCKWORK_HTTP"),
    reason="set CLOCKWORK_ADMIN_TOKEN and CLOCKWORK_HTTP",
)
def test_repository_index_is_whole_past_one_page(client):
    import tritonclient.http as httpclient

    before = len(client.get_model_repository_index(as_json=True, headers=AUTH)["models"])
    added = []
    try:
        # 1,100 instances in two registrations (1,000 at most per call).
        for copies in (1000, 100):
            path = f"/v2/repository/models/{BUILTIN}/load"
            added += admin_post(path, {"parameters": {"copies": copies}})["models"]
        assert len(added) == 1100 and len(set(added)) == 1100
        models = client.get_model_repository_index(as_json=True, headers=AUTH)["models"]
        assert len(models) == before + 1100
        assert set(added) <= {m["name"] for m in models}
        http = httpclient.InferenceServerClient(url=os.environ["CLOCKWORK_HTTP"])
        listed = http.get_model_repository_index(headers=AUTH)
        assert len(listed) == before + 1100
        assert set(added) <= {m["name"] for m in listed}
    finally:
        admin_post(f"/v2/repository/models/{BUILTIN}/unload", {})


@pytest.mark.skipif(not TOKEN, reason="set CLOCKWORK_ADMIN_TOKEN")
def test_load_and_unload_need_the_admin_token(client):
    def names():
        index = client.get_model_repository_index(as_json=True, headers=AUTH)
        return [m["name"] for m in index["models"] if m.get("state") == "READY"]

    assert status_of(lambda: client.load_model(BUILTIN)) == "StatusCode.UNAUTHENTICATED"
    # A client's token (or, without an API token, any) is not the admin's.
    wrong = AUTH or {"authorization": "Bearer not-the-token"}
    assert status_of(lambda: client.load_model(BUILTIN, headers=wrong)) == (
        "StatusCode.PERMISSION_DENIED"
    )
    admin = {"authorization": f"Bearer {TOKEN}"}
    client.load_model(BUILTIN, headers=admin)
    loaded = [n for n in names() if n.startswith(BUILTIN + "-")]
    assert loaded, names()
    assert status_of(lambda: client.unload_model(BUILTIN)) == (
        "StatusCode.UNAUTHENTICATED"
    )
    client.unload_model(BUILTIN, headers=admin)
    assert not [n for n in names() if n.startswith(BUILTIN + "-")]
    assert status_of(lambda: client.unload_model("no_such_model", headers=admin)) == (
        "StatusCode.NOT_FOUND"
    )


def test_statistics_count_the_inferences(client):
    stats = client.get_inference_statistics(MODEL, headers=AUTH, as_json=True)
    (model,) = stats["model_stats"]
    assert model["name"] == MODEL
    # The inferences above (MessageToJson writes uint64 as strings).
    assert int(model["inference_count"]) >= 3
    assert int(model["inference_stats"]["success"]["count"]) >= 3
    assert status_of(
        lambda: client.get_inference_statistics("no_such_model", headers=AUTH)
    ) == ("StatusCode.NOT_FOUND")


@pytest.mark.skipif(not API_TOKEN, reason="set CLOCKWORK_API_TOKEN")
def test_the_api_token_is_needed_but_not_for_health(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert status_of(lambda: client.get_model_metadata(MODEL)) == (
        "StatusCode.UNAUTHENTICATED"
    )
    wrong = {"authorization": "Bearer not-the-token"}
    assert status_of(lambda: client.get_model_metadata(MODEL, headers=wrong)) == (
        "StatusCode.UNAUTHENTICATED"
    )


def test_malformed_compressed_and_unknown_calls_get_a_status():
    import grpc
    from tritonclient.grpc import service_pb2

    with grpc.insecure_channel(GRPC) as channel:
        raw = channel.unary_unary("/inference.GRPCInferenceService/ModelMetadata")
        # Field 1 (a string) says 100 bytes follow; none do.
        with pytest.raises(grpc.RpcError) as e:
            raw(b"\x0a\x64", timeout=30.0, metadata=METADATA)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed message" in e.value.details()
        # A compressed message.
        metadata = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelMetadata",
            request_serializer=service_pb2.ModelMetadataRequest.SerializeToString,
            response_deserializer=service_pb2.ModelMetadataResponse.FromString,
        )
        # (gRPC sends a message uncompressed when gzip would not shrink it.)
        long_name = service_pb2.ModelMetadataRequest(name="x" * 4096)
        with pytest.raises(grpc.RpcError) as e:
            metadata(
                long_name,
                timeout=30.0,
                compression=grpc.Compression.Gzip,
                metadata=METADATA,
            )
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
        request = service_pb2.ModelMetadataRequest(name=MODEL)
        # The channel still serves after both.
        assert metadata(request, timeout=30.0, metadata=METADATA).name == MODEL
        streaming = channel.unary_unary("/inference.GRPCInferenceService/ModelConfig")
        with pytest.raises(grpc.RpcError) as e:
            streaming(b"", timeout=30.0, metadata=METADATA)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
