//! The model repository on the controller, end to end: a repository of generated
//! models (and one bad entry) served by emulated workers over HTTP. Emulated workers
//! answer zeros, so these tests check the controller's side: what is registered and
//! listed, the tensor signatures, the checks on request tensors, and the answers'
//! names, datatypes and shapes.

use clockwork_controller::service::{serve, AdminAccess, ServiceConfig};
use clockwork_models::{make_model, write_entry, ModelConfig, ModelKind};
use clockwork_net::runtime::{self, ExecutorConfig};
use clockwork_worker::{Worker, WorkerConfig, WorkerHandle};
use serde_json::{json, Value};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const TOKEN: &str = "repo-test";
/// The admin token the controller is started with (admin endpoints need it).
const ADMIN_TOKEN: &str = "admin-test-token";

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn worker_at(addr: SocketAddr) -> WorkerHandle {
    let mut cfg = WorkerConfig::emulated(1);
    cfg.listen = addr;
    cfg.link.token = TOKEN.into();
    Worker::serve(cfg).expect("worker starts")
}

/// Everything logged in this test binary (a global subscriber writing here).
fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

struct LogSink;

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        captured_logs().lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let sub = tracing_subscriber::fmt()
            .with_writer(|| LogSink)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        let _ = tracing::subscriber::set_global_default(sub);
    });
}

/// A running controller serving `repo`; stopped on drop.
struct Controller {
    http: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<runtime::ExecutorHandle<Result<(), String>>>,
    _worker: WorkerHandle,
}

impl Controller {
    fn start(repo: &Path) -> Self {
        let waddr = free_port();
        let worker = worker_at(waddr);
        let (http, native) = (free_port(), free_port());
        let mut cfg = ServiceConfig::new(vec![waddr], native, TOKEN);
        cfg.reconnect_interval = Duration::from_millis(50);
        cfg.http = Some(http);
        cfg.model_repository = Some(repo.to_owned());
        cfg.http_admin = AdminAccess::token(ADMIN_TOKEN).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = runtime::spawn(ExecutorConfig::named("repo-test-ctl"), move || async move {
            let shutdown = async move {
                while !s.load(Ordering::Relaxed) {
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                }
            };
            serve(cfg, shutdown).await.map_err(|e| e.to_string())
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(http).is_err() {
            assert!(Instant::now() < deadline, "HTTP port did not open");
            std::thread::sleep(Duration::from_millis(10));
        }
        let c = Self {
            http,
            stop,
            handle: Some(handle),
            _worker: worker,
        };
        let a = agent();
        wait_for("ready", || {
            get(&a, &c.url("/v2/health/ready")).status == 200
        });
        c
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

#[derive(Debug)]
struct Answer {
    status: u16,
    header_len: Option<usize>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        let end = self.header_len.unwrap_or(self.body.len());
        serde_json::from_slice(&self.body[..end])
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut r = r.expect("HTTP exchange");
    let header_len = r
        .headers()
        .get("inference-header-content-length")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    Answer {
        status: r.status().as_u16(),
        header_len,
        body: r.body_mut().read_to_vec().unwrap(),
    }
}

fn get(a: &ureq::Agent, url: &str) -> Answer {
    answer(a.get(url).call())
}

/// POSTs JSON; the repository's admin endpoints get the admin token.
fn post(a: &ureq::Agent, url: &str, body: &Value) -> Answer {
    let mut req = a.post(url).header("Content-Type", "application/json");
    if url.contains("/v2/repository/models/") {
        req = req.header("Authorization", format!("Bearer {ADMIN_TOKEN}"));
    }
    answer(req.send(serde_json::to_vec(body).unwrap()))
}

fn post_binary(a: &ureq::Agent, url: &str, head: &Value, tail: &[u8]) -> Answer {
    let mut body = serde_json::to_vec(head).unwrap();
    let n = body.len();
    body.extend_from_slice(tail);
    answer(
        a.post(url)
            .header("Content-Type", "application/octet-stream")
            .header("Inference-Header-Content-Length", n.to_string())
            .send(body),
    )
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Posts `body` until it is answered 200 (a model's first requests may meet its LOAD);
/// 429, 503 and 504 are retried, any other status fails the test.
fn infer_ok(a: &ureq::Agent, url: &str, body: &Value, tail: Option<&[u8]>) -> Answer {
    for _ in 0..300 {
        let r = match tail {
            Some(t) => post_binary(a, url, body, t),
            None => post(a, url, body),
        };
        match r.status {
            200 => return r,
            429 | 503 | 504 => std::thread::sleep(Duration::from_millis(10)),
            s => panic!("{url}: {s}: {}", String::from_utf8_lossy(&r.body)),
        }
    }
    panic!("{url} never served");
}

/// A repository: `identity`, `small_cnn`, `pair` (the identity model, two copies)
/// and `broken` (garbage bytes as its model file).
fn repository() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    make_model(ModelKind::Identity, &root, 1).unwrap();
    make_model(ModelKind::SmallCnn, &root, 2).unwrap();
    let pair = ModelConfig {
        copies: 2,
        ..ModelKind::Identity.default_config()
    };
    write_entry(
        &root,
        "pair",
        1,
        &ModelKind::Identity.onnx_bytes(3),
        Some(&pair),
    )
    .unwrap();
    write_entry(&root, "broken", 1, b"this is not an ONNX model", None).unwrap();
    (dir, root)
}

fn cnn_input_json() -> Value {
    let data: Vec<f32> = (0..3 * 64 * 64).map(|i| (i % 7) as f32 * 0.25).collect();
    json!({ "name": "input", "datatype": "FP32", "shape": [1, 3, 64, 64], "data": data })
}

fn index(a: &ureq::Agent, c: &Controller) -> Vec<Value> {
    let r = post(a, &c.url("/v2/repository/index"), &json!({}));
    assert_eq!(r.status, 200);
    r.json().as_array().unwrap().clone()
}

fn index_entry<'a>(index: &'a [Value], name: &str) -> &'a Value {
    index
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the index: {index:?}"))
}

fn offered(a: &ureq::Agent, c: &Controller) -> f64 {
    let text = String::from_utf8(get(a, &c.url("/metrics")).body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("clockwork_requests_offered_total "))
        .expect("offered counter")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn good_entries_are_served_with_their_tensors_and_the_bad_one_is_skipped() {
    capture_logs();
    let (_dir, root) = repository();
    let c = Controller::start(&root);
    let a = agent();

    // The bad entry was logged with its reason, and is listed unavailable with it.
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    let skipped = logs
        .lines()
        .find(|l| l.contains("repository entry skipped") && l.contains("broken"))
        .unwrap_or_else(|| panic!("no log line for the bad entry:\n{logs}"));
    assert!(
        skipped.contains("ONNX") || skipped.contains("onnx"),
        "{skipped}"
    );
    let idx = index(&a, &c);
    let broken = index_entry(&idx, "broken");
    assert_eq!(broken["state"], "UNAVAILABLE");
    assert!(
        broken["reason"].as_str().unwrap().contains("broken"),
        "{broken}"
    );
    for name in ["identity", "small_cnn"] {
        assert_eq!(index_entry(&idx, name)["state"], "READY", "{name}");
    }
    let pair: Vec<&Value> = idx
        .iter()
        .filter(|e| e["clockwork"]["network"] == "pair")
        .collect();
    assert_eq!(pair.len(), 2, "{idx:?}");
    assert!(pair
        .iter()
        .all(|e| e["name"].as_str().unwrap().starts_with("pair-")));

    // Readiness and metadata.
    assert_eq!(get(&a, &c.url("/v2/models/small_cnn/ready")).status, 200);
    assert_eq!(get(&a, &c.url("/v2/models/pair/ready")).status, 200);
    assert_eq!(get(&a, &c.url("/v2/models/broken/ready")).status, 404);
    let m = get(&a, &c.url("/v2/models/small_cnn"));
    assert_eq!(m.status, 200);
    let m = m.json();
    assert_eq!(m["name"], "small_cnn");
    assert_eq!(
        m["inputs"],
        json!([{ "name": "input", "datatype": "FP32", "shape": [-1, 3, 64, 64] }])
    );
    assert_eq!(
        m["outputs"],
        json!([{ "name": "output", "datatype": "FP32", "shape": [-1, 10] }])
    );
    assert_eq!(m["clockwork"]["profile"]["input_bytes"], 3 * 64 * 64 * 4);

    // JSON inference: the output by name, datatype and shape (emulated: zeros).
    let r = infer_ok(
        &a,
        &c.url("/v2/models/small_cnn/infer"),
        &json!({ "id": "q1", "inputs": [cnn_input_json()] }),
        None,
    );
    let v = r.json();
    assert_eq!(v["id"], "q1");
    assert_eq!(v["model_name"], "small_cnn");
    assert_eq!(v["parameters"]["clockwork_emulated"], true);
    let out = &v["outputs"][0];
    assert_eq!(out["name"], "output");
    assert_eq!(out["datatype"], "FP32");
    assert_eq!(out["shape"], json!([1, 10]));
    assert_eq!(out["data"].as_array().unwrap().len(), 10);

    // Binary inference on the identity model: binary in, binary out.
    let input: Vec<u8> = (0..16u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let head = json!({
        "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 16],
                     "parameters": { "binary_data_size": 64 } }],
        "outputs": [{ "name": "output", "parameters": { "binary_data": true } }],
    });
    let r = infer_ok(&a, &c.url("/v2/models/identity/infer"), &head, Some(&input));
    let n = r.header_len.expect("binary answer");
    let v = r.json();
    let out = &v["outputs"][0];
    assert_eq!(out["name"], "output");
    assert_eq!(out["datatype"], "FP32");
    assert_eq!(out["shape"], json!([1, 16]));
    assert_eq!(out["parameters"]["binary_data_size"], 64);
    assert_eq!(r.body.len() - n, 64);

    // A model with two copies is served by its bare name and by each instance name.
    let body = json!({ "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 16],
                                    "data": vec![0.5f32; 16] }] });
    let r = infer_ok(&a, &c.url("/v2/models/pair/infer"), &body, None);
    assert_eq!(r.json()["model_name"], "pair");
    for e in pair {
        let name = e["name"].as_str().unwrap();
        let r = infer_ok(&a, &c.url(&format!("/v2/models/{name}/infer")), &body, None);
        assert_eq!(r.json()["outputs"][0]["shape"], json!([1, 16]));
    }
}

#[test]
fn bad_tensors_are_refused_before_queueing_naming_what_was_expected() {
    let (_dir, root) = repository();
    let c = Controller::start(&root);
    let a = agent();
    let url = c.url("/v2/models/small_cnn/infer");
    infer_ok(&a, &url, &json!({ "inputs": [cnn_input_json()] }), None);
    let before = offered(&a, &c);
    let good = cnn_input_json();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut x = good.clone();
        f(&mut x);
        json!({ "inputs": [x] })
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "inputs": [] }),
            "missing input `input` (FP32 [1, 3, 64, 64])",
        ),
        (
            with(&|x| x["name"] = json!("image")),
            "unknown input `image`; the model's inputs are `input` (FP32 [1, 3, 64, 64])",
        ),
        (
            with(&|x| x["datatype"] = json!("FP64")),
            "datatype FP64, expected FP32",
        ),
        (
            with(&|x| x["shape"] = json!([1, 3, 32, 32])),
            "shape [1, 3, 32, 32], expected [1, 3, 64, 64]",
        ),
        (
            with(&|x| x["shape"] = json!([2, 3, 64, 64])),
            "carries 2 items along the batch axis; a request carries exactly one",
        ),
        (
            with(&|x| x["data"] = json!([1.0, 2.0])),
            "2 values, expected 12288",
        ),
        (
            with(&|x| x["data"] = json!(vec!["a"; 12288])),
            "is not a valid FP32",
        ),
        (
            json!({ "inputs": [good.clone(), good.clone()] }),
            "input `input` is given twice",
        ),
        (
            json!({ "inputs": [good.clone()], "outputs": [{ "name": "logits" }] }),
            "unknown output `logits`; the model's outputs are `output` (FP32 [1, 10])",
        ),
    ];
    for (body, says) in &cases {
        let r = post(&a, &url, body);
        assert_eq!(r.status, 400, "{says}");
        assert!(
            r.error().contains(says),
            "want {says:?}, got {:?}",
            r.error()
        );
    }
    // Binary data of the wrong size.
    let head = json!({ "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 3, 64, 64],
                                    "parameters": { "binary_data_size": 100 } }] });
    let r = post_binary(&a, &url, &head, &[0; 100]);
    assert_eq!(r.status, 400);
    assert!(
        r.error()
            .contains("binary_data_size 100, expected 49152 bytes"),
        "{}",
        r.error()
    );
    // None of them reached the scheduler, and the server keeps serving.
    assert_eq!(offered(&a, &c), before);
    let r = infer_ok(&a, &url, &json!({ "inputs": [cnn_input_json()] }), None);
    assert_eq!(r.json()["outputs"][0]["shape"], json!([1, 10]));
    assert_eq!(offered(&a, &c), before + 1.0);
}

#[test]
fn repository_models_load_and_unload_while_serving() {
    let (_dir, root) = repository();
    let c = Controller::start(&root);
    let a = agent();
    let infer_url = c.url("/v2/models/identity/infer");
    let body = json!({ "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 16],
                                    "data": vec![1.0f32; 16] }] });
    infer_ok(&a, &infer_url, &body, None);

    // Unload: gone from serving, listed unavailable.
    let r = post(
        &a,
        &c.url("/v2/repository/models/identity/unload"),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(post(&a, &infer_url, &body).status, 404);
    assert_eq!(get(&a, &c.url("/v2/models/identity/ready")).status, 404);
    assert_eq!(
        index_entry(&index(&a, &c), "identity")["state"],
        "UNAVAILABLE"
    );
    // Others keep serving.
    infer_ok(
        &a,
        &c.url("/v2/models/small_cnn/infer"),
        &json!({ "inputs": [cnn_input_json()] }),
        None,
    );

    // Load again: served again under the same name.
    let r = post(
        &a,
        &c.url("/v2/repository/models/identity/load"),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["models"], json!(["identity"]));
    infer_ok(&a, &infer_url, &body, None);

    // A model added to the directory while serving is loaded on request.
    write_entry(&root, "late", 1, &ModelKind::Identity.onnx_bytes(4), None).unwrap();
    assert_eq!(get(&a, &c.url("/v2/models/late")).status, 404);
    assert_eq!(index_entry(&index(&a, &c), "late")["reason"], "not loaded");
    let r = post(&a, &c.url("/v2/repository/models/late/load"), &json!({}));
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r = infer_ok(&a, &c.url("/v2/models/late/infer"), &body, None);
    assert_eq!(r.json()["model_name"], "late");

    // Absent and bad entries: 404 and 400 with the reason.
    let r = post(
        &a,
        &c.url("/v2/repository/models/nonesuch/load"),
        &json!({}),
    );
    assert_eq!(r.status, 404);
    assert!(
        r.error().contains("not in the model repository"),
        "{}",
        r.error()
    );
    let r = post(&a, &c.url("/v2/repository/models/broken/load"), &json!({}));
    assert_eq!(r.status, 400);
    assert!(r.error().contains("broken"), "{}", r.error());
    // The built-in (emulated) profiles still load by name.
    let r = post(
        &a,
        &c.url("/v2/repository/models/resnet50_v2/load"),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
}

#[test]
fn an_unreadable_repository_is_a_start_up_error_naming_it() {
    let missing = tempfile::tempdir()
        .unwrap()
        .path()
        .join("no-such-repository");
    let mut cfg = ServiceConfig::new(vec![free_port()], free_port(), TOKEN);
    cfg.model_repository = Some(missing);
    let handle = runtime::spawn(ExecutorConfig::named("repo-test-bad"), move || async move {
        serve(cfg, std::future::pending::<()>())
            .await
            .map_err(|e| e.to_string())
    })
    .unwrap();
    let e = handle.join().unwrap().unwrap_err();
    assert!(e.contains("model repository"), "{e}");
    assert!(e.contains("no-such-repository"), "{e}");
}
