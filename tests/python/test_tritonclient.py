"""The unmodified Triton HTTP client (`tritonclient[http]`) against Clockwork-RS.

Checks, against a running controller with an HTTP port and a model repository: server
live and ready, model metadata and readiness, FP32 inference of the generated small
CNN (`small_cnn`) with JSON and with binary tensor data, compared with onnxruntime's
output for the same `model.onnx` (rtol 1e-4), and the statistics extension
(`get_inference_statistics`) counting those inferences.

Environment:
    CLOCKWORK_HTTP   the controller's HTTP address, e.g. 127.0.0.1:8000
    CLOCKWORK_REPO   the repository directory the controller serves (--model-repository)
    CLOCKWORK_MODEL  the model to infer (default small_cnn)
    CLOCKWORK_API_TOKEN  the controller's API token (--api-token-file), if it has one:
                     sent as `headers={"Authorization": "Bearer ..."}`, and a request
                     without it must be refused

Without CLOCKWORK_HTTP and CLOCKWORK_REPO every test is skipped. Packages (pinned):
`pip install -r tests/python/requirements.txt`. Against emulated workers the value
comparisons fail (emulated GPUs answer zeros); everything else passes.
"""

import os
from pathlib import Path

import pytest

HTTP = os.environ.get("CLOCKWORK_HTTP")
REPO = os.environ.get("CLOCKWORK_REPO")
MODEL = os.environ.get("CLOCKWORK_MODEL", "small_cnn")
API_TOKEN = os.environ.get("CLOCKWORK_API_TOKEN")
HEADERS = {"Authorization": f"Bearer {API_TOKEN}"} if API_TOKEN else None

pytestmark = pytest.mark.skipif(
    not (HTTP and REPO),
    reason="set CLOCKWORK_HTTP and CLOCKWORK_REPO to run against a live controller",
)

RTOL = 1e-4
ATOL = 1e-5


@pytest.fixture(scope="module")
def client():
    import tritonclient.http as httpclient

    c = httpclient.InferenceServerClient(url=HTTP, network_timeout=60.0)
    yield c
    c.close()


@pytest.fixture(scope="module")
def model_file():
    versions = [
        p for p in (Path(REPO) / MODEL).iterdir() if p.is_dir() and p.name.isdigit()
    ]
    assert versions, f"{MODEL} has no version directory in {REPO}"
    path = max(versions, key=lambda p: int(p.name)) / "model.onnx"
    assert path.is_file(), path
    return path


@pytest.fixture(scope="module")
def image():
    import numpy as np

    rng = np.random.default_rng(7)
    return rng.standard_normal((1, 3, 64, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(model_file, image):
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: image})[0]


def test_server_live_and_ready(client):
    assert client.is_server_live()
    assert client.is_server_ready()


def test_model_metadata_and_ready(client):
    assert client.is_model_ready(MODEL, headers=HEADERS)
    meta = client.get_model_metadata(MODEL, headers=HEADERS)
    assert meta["name"] == MODEL
    assert meta["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, 3, 64, 64]}
    ]
    assert meta["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 10]}]


@pytest.mark.skipif(not API_TOKEN, reason="the controller has no API token")
def test_requests_without_the_token_are_refused(client, image):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as refused:
        client.get_model_metadata(MODEL)
    assert "[401]" in str(refused.value)
    wrong = {"Authorization": "Bearer not-the-token"}
    with pytest.raises(InferenceServerException) as refused:
        client.get_model_metadata(MODEL, headers=wrong)
    assert "wrong token" in str(refused.value)


def infer(client, image, binary):
    import tritonclient.http as httpclient

    inp = httpclient.InferInput("input", list(image.shape), "FP32")
    inp.set_data_from_numpy(image, binary_data=binary)
    out = httpclient.InferRequestedOutput("output", binary_data=binary)
    # A copy: tritonclient adds Inference-Header-Content-Length to the dict it is
    # given, and a binary request's value would then cut the next JSON body short.
    result = client.infer(MODEL, [inp], outputs=[out], headers=dict(HEADERS))
    got = result.as_numpy("output")
    assert got is not None
    assert got.dtype.name == "float32"
    assert got.shape == (1, 10)
    return got


def test_json_inference_matches_onnxruntime(client, image, reference):
    import numpy as np

    got = infer(client, image, binary=False)
    np.testing.assert_allclose(got, reference, rtol=RTOL, atol=ATOL)


def test_binary_inference_matches_onnxruntime(client, image, reference):
    import numpy as np

    got = infer(client, image, binary=True)
    np.testing.assert_allclose(got, reference, rtol=RTOL, atol=ATOL)


def model_stats(client, **kw):
    stats = client.get_inference_statistics(MODEL, headers=HEADERS, **kw)
    assert [m["name"] for m in stats["model_stats"]] == [MODEL]
    return stats["model_stats"][0]


def test_statistics_count_inferences(client, image):
    from tritonclient.utils import InferenceServerException

    assert "statistics" in client.get_server_metadata(headers=HEADERS)["extensions"]
    before = model_stats(client)
    for binary in (False, True):
        infer(client, image, binary)
    after = model_stats(client, model_version="1")
    assert after["version"] == "1"

    def figure(m, k):
        return m["inference_stats"][k]["count"], m["inference_stats"][k]["ns"]

    # Exactly the two inferences above were answered in between, both successes.
    assert figure(after, "success")[0] == figure(before, "success")[0] + 2
    assert figure(after, "success")[1] > figure(before, "success")[1]
    assert figure(after, "fail") == figure(before, "fail")
    for k in ("queue", "compute_infer"):
        assert figure(after, k)[0] == figure(before, k)[0] + 2, k
        assert figure(after, k)[1] > figure(before, k)[1], k
    # Sequential calls: one batch each.
    assert after["execution_count"] == before["execution_count"] + 2
    assert after["inference_count"] == before["inference_count"] + 2
    batches = after["batch_stats"]
    assert sum(b["compute_infer"]["count"] for b in batches) == after["execution_count"]
    assert (
        sum(b["batch_size"] * b["compute_infer"]["count"] for b in batches)
        == after["inference_count"]
    )
    assert after["last_inference"] >= before["last_inference"] > 0

    # Every model that answered is listed; an unknown model raises.
    everything = client.get_inference_statistics(headers=HEADERS)
    assert MODEL in [m["name"] for m in everything["model_stats"]]
    with pytest.raises(InferenceServerException):
        client.get_inference_statistics("no_such_model", headers=HEADERS)
