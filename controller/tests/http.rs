//! The HTTP front end end to end: a real HTTP client (`ureq`, blocking, from plain
//! test threads) against a controller with emulated workers on loopback.

mod support;

use clockwork_client::Client;
use clockwork_controller::service::{serve, HttpEngine, HttpLimits, ServiceConfig, ServiceError};
use clockwork_core::{ClientStatus, ModelId, Slo};
use clockwork_net::runtime::{self, ExecutorConfig};
use clockwork_worker::WorkerHandle;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{free_port, tiny_profile, Controller, ADMIN_TOKEN, TOKEN};

fn worker_at(addr: SocketAddr, gpus: u32) -> WorkerHandle {
    support::worker_with_gpus(addr, gpus)
}

/// The shared test controller with these workers and HTTP limits.
fn start(workers: Vec<SocketAddr>, limits: HttpLimits) -> Controller {
    Controller::start_with_workers(workers, move |cfg| cfg.http_limits = limits)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// An HTTP answer: status, headers we look at, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    header_len: Option<usize>,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut r = r.expect("HTTP exchange");
    let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    let retry_after = h("retry-after");
    let header_len = h("inference-header-content-length").map(|v| v.parse().unwrap());
    let content_type = h("content-type").unwrap_or_default();
    Answer {
        status: r.status().as_u16(),
        retry_after,
        header_len,
        content_type,
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

fn post_raw(a: &ureq::Agent, url: &str, body: &[u8], header_len: Option<usize>) -> Answer {
    let mut req = a
        .post(url)
        .header("Content-Type", "application/octet-stream");
    if let Some(n) = header_len {
        req = req.header("Inference-Header-Content-Length", n.to_string());
    }
    answer(req.send(body))
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(8);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Registers `copies` instances through the repository API; returns their names.
fn load(a: &ureq::Agent, c: &Controller, name: &str, params: Value) -> Vec<String> {
    let r = post(
        a,
        &c.url(&format!("/v2/repository/models/{name}/load")),
        &json!({ "parameters": params }),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    r.json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn infer_empty(a: &ureq::Agent, c: &Controller, model: &str) -> Answer {
    post(
        a,
        &c.url(&format!("/v2/models/{model}/infer")),
        &json!({ "inputs": [] }),
    )
}

fn infer_until_ok(a: &ureq::Agent, c: &Controller, model: &str) -> u32 {
    for i in 0..200 {
        if infer_empty(a, c, model).status == 200 {
            return i + 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{model} never served");
}

#[test]
fn health_metadata_and_readiness_that_flips_when_a_worker_connects() {
    let waddr = free_port();
    let c = start(vec![waddr], HttpLimits::default());
    let a = agent();
    let live = get(&a, &c.url("/v2/health/live"));
    assert_eq!((live.status, live.json()), (200, json!({ "live": true })));
    let ready = get(&a, &c.url("/v2/health/ready"));
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["ready"], json!(false));
    assert!(ready.retry_after.is_some());
    let meta = get(&a, &c.url("/v2")).json();
    assert_eq!(meta["name"], "clockwork-rs");
    let ext: Vec<&str> = meta["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(ext.contains(&"model_repository") && ext.contains(&"binary_tensor_data"));

    // Models can be registered before any worker is there.
    let names = load(&a, &c, "resnet50_v2", json!({ "copies": 2 }));
    assert_eq!(names, ["resnet50_v2-0", "resnet50_v2-1"]);
    let m = get(&a, &c.url("/v2/models/resnet50_v2-1"));
    assert_eq!(m.status, 200);
    let m = m.json();
    assert_eq!(m["name"], "resnet50_v2-1");
    assert_eq!(m["versions"], json!(["1"]));
    assert_eq!(m["inputs"][0]["shape"], json!([602_112]));
    assert_eq!(m["outputs"][0]["shape"], json!([4_000]));
    assert_eq!(m["clockwork"]["max_batch"], json!(16));
    // The numeric id and the versioned path address the same instance.
    assert_eq!(
        get(&a, &c.url("/v2/models/1/versions/1")).json()["name"],
        "resnet50_v2-1"
    );
    assert_eq!(
        get(&a, &c.url("/v2/models/resnet50_v2-1/versions/2")).status,
        404
    );
    assert_eq!(
        get(&a, &c.url("/v2/models/resnet50_v2-1/ready")).status,
        503
    );
    // Not ready: inference is refused with 503 + Retry-After, not queued.
    let r = infer_empty(&a, &c, "resnet50_v2-0");
    assert_eq!(r.status, 503, "{:?}", r.json());
    assert!(r.retry_after.is_some());
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("unavailable"));

    // Unknown models, a wrong network for an id, unknown paths, wrong methods.
    for path in [
        "/v2/models/resnet18_v2-0",
        "/v2/models/nope",
        "/v2/models/99",
    ] {
        let r = get(&a, &c.url(path));
        assert_eq!(r.status, 404, "{path}");
        assert!(r.json()["error"].is_string());
    }
    assert_eq!(infer_empty(&a, &c, "resnet50_v2-7").status, 404);
    assert_eq!(get(&a, &c.url("/v3/nothing")).status, 404);
    let r = answer(a.post(&c.url("/v2/health/live")).send_empty());
    assert_eq!(r.status, 405);

    // The worker comes up: ready flips.
    let w = worker_at(waddr, 1);
    wait_for("ready", || {
        get(&a, &c.url("/v2/health/ready")).status == 200
    });
    assert_eq!(
        get(&a, &c.url("/v2/models/resnet50_v2-0/ready")).json(),
        json!({ "name": "resnet50_v2-0", "ready": true })
    );
    infer_until_ok(&a, &c, "resnet50_v2-0");
    drop(c);
    drop(w);
}

#[test]
fn json_and_binary_inference_with_slo_parameters() {
    let waddr = free_port();
    let w = worker_at(waddr, 1);
    let c = start(vec![waddr], HttpLimits::default());
    let a = agent();
    wait_for("ready", || {
        get(&a, &c.url("/v2/health/ready")).status == 200
    });
    let names = load(&a, &c, "tiny", json!({ "profile": tiny_profile() }));
    assert_eq!(names, ["tiny-0"]);
    let url = c.url("/v2/models/tiny-0/infer");
    infer_until_ok(&a, &c, "tiny-0");

    // JSON tensor: 4 FP32 = the model's 16 input bytes; SLO as Triton's timeout (µs).
    let body = json!({
        "id": "req-1",
        "parameters": { "timeout": 50_000 },
        "inputs": [{ "name": "input", "shape": [1, 4], "datatype": "FP32", "data": [[1.0, 2.0, 3.5, -4.0]] }],
        "outputs": [{ "name": "output" }]
    });
    let r = post(&a, &url, &body);
    assert_eq!(r.status, 200, "{:?}", r.json());
    let v = r.json();
    assert_eq!(v["model_name"], "tiny-0");
    assert_eq!(v["id"], "req-1");
    assert_eq!(v["parameters"]["clockwork_emulated"], json!(true));
    assert!(v["parameters"]["clockwork_batch_size"].as_u64().unwrap() >= 1);
    assert_eq!(v["outputs"][0]["name"], "output");
    // Emulated outputs: zeros of the model's 8 output bytes.
    assert_eq!(v["outputs"][0]["shape"], json!([8]));
    assert_eq!(v["outputs"][0]["data"], json!([0, 0, 0, 0, 0, 0, 0, 0]));

    // Our own SLO parameter, and the binary tensor extension both ways.
    let header = serde_json::to_vec(&json!({
        "id": "bin",
        "parameters": { "clockwork_slo_ms": 40.0, "binary_data_output": true },
        "inputs": [{ "name": "input", "shape": [16], "datatype": "UINT8",
                     "parameters": { "binary_data_size": 16 } }]
    }))
    .unwrap();
    let mut raw = header.clone();
    raw.extend(0u8..16);
    let r = post_raw(&a, &url, &raw, Some(header.len()));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.content_type, "application/octet-stream");
    let n = r.header_len.expect("Inference-Header-Content-Length");
    let v: Value = serde_json::from_slice(&r.body[..n]).unwrap();
    assert_eq!(v["id"], "bin");
    assert_eq!(v["parameters"]["clockwork_emulated"], json!(true));
    assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], json!(8));
    assert_eq!(&r.body[n..], &[0; 8]);

    // Factor SLO.
    let r = post(
        &a,
        &url,
        &json!({ "parameters": { "clockwork_slo_factor": 50 }, "inputs": [] }),
    );
    assert_eq!(r.status, 200);

    // Malformed JSON, wrong sizes, bad parameters: 400 with a JSON error.
    let bad: [&[u8]; 6] = [
        b"{not json",
        br#"{"inputs": [{"name":"input","shape":[2],"datatype":"FP32","data":[1,2]}]}"#,
        br#"{"inputs": [{"name":"input","shape":[16],"datatype":"UINT8","data":[1]}]}"#,
        br#"{"parameters":{"timeout":100000,"clockwork_slo_ms":5},"inputs":[]}"#,
        br#"{"parameters":{"timeout":-5},"inputs":[]}"#,
        br#"{"inputs":[],"outputs":[{"name":"logits"}]}"#,
    ];
    for b in bad {
        let r = post_raw(&a, &url, b, None);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(b));
        assert!(r.json()["error"].is_string());
    }
    // A binary header length past the body.
    let r = post_raw(&a, &url, br#"{"inputs":[]}"#, Some(500));
    assert_eq!(r.status, 400);
    drop(c);
    drop(w);
}

#[test]
fn overload_is_429_with_retry_after_and_never_a_hang_or_500() {
    let waddr = free_port();
    let w = worker_at(waddr, 1);
    let c = start(vec![waddr], HttpLimits::default());
    let a = agent();
    wait_for("ready", || {
        get(&a, &c.url("/v2/health/ready")).status == 200
    });
    load(&a, &c, "resnet50_v2", json!({ "copies": 4 }));
    infer_until_ok(&a, &c, "resnet50_v2-0");
    // An SLO no plan can meet (1 ms, below the model's 3.3 ms batch-1 time).
    let r = post(
        &a,
        &c.url("/v2/models/resnet50_v2-0/infer"),
        &json!({ "id": "x", "parameters": { "timeout": 1_000 }, "inputs": [] }),
    );
    assert_eq!(r.status, 429, "{:?}", r.json());
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    let v = r.json();
    assert!(v["error"].as_str().unwrap().starts_with("rejected"), "{v}");
    assert_eq!(v["id"], "x");

    // A burst from 12 connections over 4 cold models on one GPU with a tight SLO:
    // every answer is a success or a 429 with Retry-After, promptly.
    let http = c.http;
    let threads: Vec<_> = (0..12)
        .map(|t| {
            std::thread::spawn(move || {
                let a = agent();
                let url = format!("http://{http}/v2/models/resnet50_v2-{}/infer", t % 4);
                let mut seen = Vec::new();
                for _ in 0..15 {
                    let t0 = Instant::now();
                    let r = post(
                        &a,
                        &url,
                        &json!({ "parameters": { "clockwork_slo_ms": 12 }, "inputs": [] }),
                    );
                    assert!(t0.elapsed() < Duration::from_secs(2), "slow answer");
                    if r.status == 429 {
                        assert_eq!(r.retry_after.as_deref(), Some("1"));
                    }
                    seen.push(r.status);
                }
                seen
            })
        })
        .collect();
    let mut counts: BTreeMap<u16, u32> = BTreeMap::new();
    for t in threads {
        for s in t.join().unwrap() {
            *counts.entry(s).or_default() += 1;
        }
    }
    assert!(
        counts.keys().all(|s| *s == 200 || *s == 429),
        "unexpected statuses {counts:?}"
    );
    assert!(
        counts.get(&429).copied().unwrap_or(0) > 0,
        "no overload seen: {counts:?}"
    );
    drop(c);
    drop(w);
}

/// Sends raw bytes on a fresh connection and reads until the server closes it.
fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn malformed_http_is_400_and_closes_only_that_connection() {
    let waddr = free_port();
    let w = worker_at(waddr, 1);
    let limits = HttpLimits {
        max_body_bytes: 64 * 1024,
        max_header_bytes: 4 * 1024,
        request_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(800),
        ..HttpLimits::default()
    };
    let c = start(vec![waddr], limits);
    let a = agent();
    wait_for("ready", || {
        get(&a, &c.url("/v2/health/ready")).status == 200
    });
    load(&a, &c, "tiny", json!({ "profile": tiny_profile() }));
    infer_until_ok(&a, &c, "tiny-0");

    // A slow client holds a half-sent request open meanwhile.
    let mut slow = TcpStream::connect(c.http).unwrap();
    slow.write_all(b"POST /v2/models/tiny-0/infer HTTP/1.1\r\nHost: x\r\n")
        .unwrap();

    let garbage = raw_exchange(c.http, b"THIS IS NOT HTTP\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    assert!(
        garbage.to_ascii_lowercase().contains("connection: close"),
        "{garbage}"
    );
    // hyper answers a head it cannot parse itself, with an empty body (docs/http.md,
    // "HTTP engines"); the native engine says why in JSON.
    if support::http_engine() == HttpEngine::Native {
        assert!(garbage.contains("\"error\""), "{garbage}");
    }
    // The keep-alive client is undisturbed.
    assert_eq!(infer_empty(&a, &c, "tiny-0").status, 200);

    let huge_head = format!(
        "GET /v2 HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(8 * 1024)
    );
    assert!(raw_exchange(c.http, huge_head.as_bytes()).starts_with("HTTP/1.1 431"));
    let too_big =
        "POST /v2/models/tiny-0/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n";
    assert!(raw_exchange(c.http, too_big.as_bytes()).starts_with("HTTP/1.1 413"));
    let bad_len = "POST /v2/repository/index HTTP/1.1\r\nContent-Length: nope\r\n\r\n";
    assert!(raw_exchange(c.http, bad_len.as_bytes()).starts_with("HTTP/1.1 400"));

    // Pipelined keep-alive requests on one connection, answered in order; a chunked
    // body; then `Connection: close`.
    let body = r#"{"inputs":[]}"#;
    let chunked = format!(
        "POST /v2/models/tiny-0/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        5,
        &body[..5],
        body.len() - 5,
        &body[5..]
    );
    let pipelined = format!(
        "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n{chunked}GET /v2/models/tiny-0/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let out = raw_exchange(c.http, pipelined.as_bytes());
    let statuses: Vec<&str> = out
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &out[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "200", "200"], "{out}");
    assert!(out.contains("\"live\":true") && out.contains("\"model_name\":\"tiny-0\""));

    // The slow request times out with 408; the idle keep-alive connection is closed.
    let mut rest = Vec::new();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = slow.read_to_end(&mut rest);
    assert!(String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"));
    let mut idle = TcpStream::connect(c.http).unwrap();
    idle.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t0 = Instant::now();
    let mut got = Vec::new();
    let _ = idle.read_to_end(&mut got);
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "idle connection not closed"
    );
    assert_eq!(infer_empty(&a, &c, "tiny-0").status, 200);
    drop(c);
    drop(w);
}

#[test]
fn repository_load_and_unload_while_serving() {
    let waddr = free_port();
    let w = worker_at(waddr, 1);
    let c = start(vec![waddr], HttpLimits::default());
    let a = agent();
    wait_for("ready", || {
        get(&a, &c.url("/v2/health/ready")).status == 200
    });
    let names = load(
        &a,
        &c,
        "resnet50_v2",
        json!({ "profile": "resnet50_v2", "copies": 2 }),
    );
    assert_eq!(names, ["resnet50_v2-0", "resnet50_v2-1"]);
    infer_until_ok(&a, &c, "resnet50_v2-0");
    infer_until_ok(&a, &c, "resnet50_v2-1");

    // Background traffic on instance 0 throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let (http, s) = (c.http, stop.clone());
    let traffic = std::thread::spawn(move || {
        let a = agent();
        let url = format!("http://{http}/v2/models/resnet50_v2-0/infer");
        let mut seen: BTreeMap<u16, u32> = BTreeMap::new();
        while !s.load(Ordering::Relaxed) {
            let r = post(&a, &url, &json!({ "inputs": [] }));
            *seen.entry(r.status).or_default() += 1;
        }
        seen
    });

    // Unload instance 1: it disappears for inference and metadata.
    let r = post(
        &a,
        &c.url("/v2/repository/models/resnet50_v2-1/unload"),
        &json!({}),
    );
    assert_eq!(
        (r.status, r.json()),
        (200, json!({ "models": ["resnet50_v2-1"] }))
    );
    assert_eq!(infer_empty(&a, &c, "resnet50_v2-1").status, 404);
    assert_eq!(get(&a, &c.url("/v2/models/resnet50_v2-1")).status, 404);
    let index = post(&a, &c.url("/v2/repository/index"), &json!({})).json();
    let states: HashMap<String, (String, String)> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                (
                    m["state"].as_str().unwrap().to_owned(),
                    m["reason"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(states["resnet50_v2-0"].0, "READY");
    assert_eq!(
        states["resnet50_v2-1"],
        ("UNAVAILABLE".to_owned(), "unloaded".to_owned())
    );
    let ready_only = post(
        &a,
        &c.url("/v2/repository/index"),
        &json!({ "ready": true }),
    )
    .json();
    assert_eq!(ready_only.as_array().unwrap().len(), 1);
    // Its weights are freed (an UNLOAD went to the worker).
    wait_for("the UNLOAD", || {
        scrape(&a, &c)
            .get("clockwork_unloads_total")
            .is_some_and(|v| *v >= 1.0)
    });

    // A new network with a full profile, loaded and served meanwhile.
    let tiny = load(
        &a,
        &c,
        "tiny",
        json!({ "profile": tiny_profile(), "copies": 1 }),
    );
    assert_eq!(tiny, ["tiny-2"]);
    infer_until_ok(&a, &c, "tiny-2");
    // Loading an unloaded instance brings it back.
    let r = post(
        &a,
        &c.url("/v2/repository/models/resnet50_v2-1/load"),
        &json!({}),
    );
    assert_eq!(r.status, 200);
    infer_until_ok(&a, &c, "resnet50_v2-1");

    // Bad loads and unloads.
    let r = post(
        &a,
        &c.url("/v2/repository/models/nonesuch/load"),
        &json!({}),
    );
    assert_eq!(r.status, 400);
    let r = post(
        &a,
        &c.url("/v2/repository/models/other/load"),
        &json!({ "parameters": { "profile": "resnet18_v2" } }),
    );
    assert_eq!(r.status, 400, "profile name must match the model name");
    assert_eq!(
        post(
            &a,
            &c.url("/v2/repository/models/nonesuch/unload"),
            &json!({})
        )
        .status,
        404
    );

    // Unloading the network retires every instance, also the one under traffic.
    let r = post(
        &a,
        &c.url("/v2/repository/models/resnet50_v2/unload"),
        &json!({}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["models"],
        json!(["resnet50_v2-0", "resnet50_v2-1"])
    );
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let seen = traffic.join().unwrap();
    assert!(seen.get(&200).copied().unwrap_or(0) > 0, "{seen:?}");
    assert!(seen.get(&404).copied().unwrap_or(0) > 0, "{seen:?}");
    assert!(
        seen.keys().all(|s| [200, 404].contains(s)),
        "traffic saw {seen:?}"
    );
    assert_eq!(infer_empty(&a, &c, "tiny-2").status, 200);
    drop(c);
    drop(w);
}

/// One parsed Prometheus sample.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict parser of the Prometheus text format (0.0.4): every line is a HELP, a
/// TYPE, or a sample of a declared family; label values are quoted and escaped.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let is_name = |s: &str| {
        let mut c = s.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    };
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(is_name(name), "bad HELP line {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(
                is_name(name) && parts.next().is_none(),
                "bad TYPE line {line}"
            );
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type in {line}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "duplicate TYPE {name}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                    assert!(is_name(&key), "bad label name in {line}");
                    assert_eq!(chars.next(), Some('"'), "unquoted label in {line}");
                    let mut v = String::new();
                    loop {
                        match chars
                            .next()
                            .unwrap_or_else(|| panic!("unterminated {line}"))
                        {
                            '"' => break,
                            '\\' => match chars.next() {
                                Some('n') => v.push('\n'),
                                Some(c @ ('\\' | '"')) => v.push(c),
                                other => panic!("bad escape {other:?} in {line}"),
                            },
                            c => v.push(c),
                        }
                    }
                    assert!(labels.insert(key, v).is_none(), "duplicate label in {line}");
                    match chars.next() {
                        None => break,
                        Some(',') => {}
                        other => panic!("unexpected {other:?} in {line}"),
                    }
                }
                (name, labels)
            }
        };
        assert!(is_name(name), "bad metric name in {line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample before its TYPE: {line}");
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    // Histograms: buckets cumulative, +Inf bucket equals _count.
    type Labels = Vec<(String, String)>;
    let mut series: BTreeMap<(String, Labels), Vec<(f64, f64)>> = BTreeMap::new();
    for s in &samples {
        if let Some(f) = s.name.strip_suffix("_bucket") {
            let le = &s.labels["le"];
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            let rest: Vec<_> = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            series
                .entry((f.to_owned(), rest))
                .or_default()
                .push((le, s.value));
        }
    }
    for ((f, labels), buckets) in &series {
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{f}"
        );
        let inf = buckets.last().unwrap();
        assert!(inf.0.is_infinite());
        let count = samples
            .iter()
            .find(|s| {
                s.name == format!("{f}_count")
                    && s.labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<Vec<_>>()
                        == *labels
            })
            .unwrap_or_else(|| panic!("{f} has no _count"));
        assert_eq!(count.value, inf.1, "{f}");
    }
    samples
}

/// Scrapes `/metrics`: samples without labels by name, for quick checks.
fn scrape(a: &ureq::Agent, c: &Controller) -> HashMap<String, f64> {
    let r = get(a, &c.url("/metrics"));
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/plain; version=0.0.4"));
    parse_prometheus(&String::from_utf8(r.body).unwrap())
        .into_iter()
        .filter(|s| s.labels.is_empty())
        .map(|s| (s.name, s.value))
        .collect()
}

#[test]
fn metrics_parse_as_prometheus_text_and_count_the_traffic() {
    let waddr = free_port();
    let w = worker_at(waddr, 1);
    let c = start(vec![waddr], HttpLimits::default());
    let a = agent();
    wait_for("ready", || {
        get(&a, &c.url("/v2/health/ready")).status == 200
    });
    load(&a, &c, "resnet50_v2", json!({ "copies": 2 }));
    let mut sent: BTreeMap<(&str, u16), u32> = BTreeMap::new();
    let mut note = |m: &'static str, s: u16| *sent.entry((m, s)).or_default() += 1;
    for _ in 0..infer_until_ok(&a, &c, "resnet50_v2-0") - 1 {
        note("resnet50_v2-0", 503); // not counted below: only the final tally matters
    }
    note("resnet50_v2-0", 200);
    for i in 0..30 {
        let m = if i % 3 == 0 {
            "resnet50_v2-1"
        } else {
            "resnet50_v2-0"
        };
        let r = infer_empty(&a, &c, m);
        note(m, r.status);
    }
    for _ in 0..4 {
        let r = post(
            &a,
            &c.url("/v2/models/resnet50_v2-1/infer"),
            &json!({ "parameters": { "timeout": 1_000 }, "inputs": [] }),
        );
        assert_eq!(r.status, 429);
        note("resnet50_v2-1", 429);
    }
    assert_eq!(infer_empty(&a, &c, "nope-3").status, 404);
    // Native clients go through the same path and are counted alike.
    let native = c.native;
    let statuses = runtime::run_here(ExecutorConfig::named("http-test-native"), async move {
        let mut cl = Client::connect(native, TOKEN, "native").await.unwrap();
        let mut v = Vec::new();
        for _ in 0..5 {
            let r = cl
                .infer(ModelId(1), Slo::Default, Vec::new())
                .await
                .unwrap();
            v.push(r.status);
        }
        v
    })
    .unwrap();
    for st in statuses {
        note(
            "resnet50_v2-1",
            if st == ClientStatus::Success {
                200
            } else {
                503
            },
        );
    }

    let text = String::from_utf8(get(&a, &c.url("/metrics")).body).unwrap();
    let samples = parse_prometheus(&text);
    let find = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    };
    // Per-model counts match what the client saw, status by status.
    for m in ["resnet50_v2-0", "resnet50_v2-1"] {
        let ok = sent.get(&(m, 200)).copied().unwrap_or(0);
        let over = sent.get(&(m, 429)).copied().unwrap_or(0);
        let unavailable = sent.get(&(m, 503)).copied().unwrap_or(0);
        assert_eq!(
            find(
                "clockwork_model_requests_total",
                &[("model", m), ("status", "success")]
            ),
            f64::from(ok),
            "{m}: {text}"
        );
        let refused = find("clockwork_model_requests_total", &[("model", m)]) - f64::from(ok);
        assert_eq!(refused, f64::from(over + unavailable), "{m}");
    }
    let total: u32 = sent.values().sum();
    assert_eq!(find("clockwork_requests_total", &[]), f64::from(total));
    assert_eq!(
        find("clockwork_requests_offered_total", &[]),
        f64::from(total)
    );
    let ok: u32 = sent
        .iter()
        .filter(|(k, _)| k.1 == 200)
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        find(
            "clockwork_http_requests_total",
            &[("endpoint", "infer"), ("code", "200")]
        ),
        f64::from(ok - 5),
        "the 5 native requests are not HTTP requests"
    );
    assert_eq!(
        find(
            "clockwork_http_requests_total",
            &[("endpoint", "infer"), ("code", "404")]
        ),
        1.0
    );
    assert_eq!(
        find(
            "clockwork_request_duration_seconds_count",
            &[("network", "resnet50_v2"), ("outcome", "success")]
        ),
        f64::from(ok)
    );
    // Rejections are counted apart from other outcomes.
    assert!(find("clockwork_requests_total", &[("status", "rejected")]) >= 4.0);
    // Scheduler, GPU and controller gauges are there.
    assert_eq!(find("clockwork_gpus", &[]), 1.0);
    assert_eq!(find("clockwork_workers_connected", &[]), 1.0);
    assert!(find("clockwork_loads_total", &[]) >= 2.0);
    assert!(find("clockwork_cold_starts_total", &[]) >= 1.0);
    assert!(
        find(
            "clockwork_gpu_cache_pages",
            &[("worker", "0"), ("gpu", "0")]
        ) > 0.0
    );
    assert!(find("clockwork_gpu_busy_seconds_total", &[]) > 0.0);
    assert!(find("clockwork_estimator_samples_total", &[("estimate", "exec")]) >= 1.0);
    assert!(
        find(
            "clockwork_controller_decision_seconds_count",
            &[("call", "request")]
        ) >= f64::from(total)
    );
    assert!(find("clockwork_infer_exec_seconds_count", &[]) >= 1.0);
    assert!(find("clockwork_load_seconds_count", &[]) >= 2.0);
    assert_eq!(find("clockwork_http_connections", &[]), 1.0);
    drop(c);
    drop(w);
}

#[test]
fn an_http_port_in_use_is_a_start_up_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = ServiceConfig::new(Vec::<SocketAddr>::new(), free_port(), TOKEN);
    cfg.http = Some(taken.local_addr().unwrap());
    let r = runtime::run_here(ExecutorConfig::named("http-test-bind"), async move {
        serve(cfg, futures_lite::future::pending::<()>()).await
    })
    .unwrap();
    assert!(matches!(r, Err(ServiceError::HttpListen { .. })), "{r:?}");
}
