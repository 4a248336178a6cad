//! The HTTP admin surface under abuse: the admin token, the bounds on profiles, SLOs
//! and copies, the repository index (whole or paged), the connection limit, slow
//! senders, answers that leave after their deadline, and registrations that outlive
//! a restart. A
//! controller with emulated workers on loopback; a real HTTP client (`ureq`) and raw
//! sockets.

mod support;

use clockwork_controller::service::{serve, AdminAccess, HttpLimits, ServiceConfig};
use clockwork_core::telemetry::{parse_log, RequestLog, REQUEST_LOG_FILE};
use clockwork_core::ClientStatus;
use clockwork_net::runtime::{self, ExecutorConfig};
use clockwork_worker::WorkerHandle;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{free_port, Controller, ADMIN_TOKEN, TOKEN};

fn worker_at(addr: SocketAddr, gpus: u32) -> WorkerHandle {
    support::worker_with_gpus(addr, gpus)
}

struct Setup {
    workers: Vec<SocketAddr>,
    limits: HttpLimits,
    admin: AdminAccess,
    state_dir: Option<PathBuf>,
    log_dir: Option<PathBuf>,
}

impl Setup {
    fn new(worker: SocketAddr) -> Self {
        Self {
            workers: vec![worker],
            limits: HttpLimits::default(),
            admin: AdminAccess::token(ADMIN_TOKEN).unwrap(),
            state_dir: None,
            log_dir: None,
        }
    }
}

/// Starts the shared test controller with `setup`'s workers, limits, admin access and
/// folders.
fn start(setup: Setup) -> Controller {
    let Setup {
        workers,
        limits,
        admin,
        state_dir,
        log_dir,
    } = setup;
    Controller::start_with_workers(workers, move |cfg| {
        cfg.http_limits = limits;
        cfg.http_admin = admin;
        cfg.state_dir = state_dir;
        cfg.scheduler.telemetry = log_dir.is_some();
        cfg.log_dir = log_dir;
    })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut r = r.expect("HTTP exchange");
    let headers = r
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    Answer {
        status: r.status().as_u16(),
        headers,
        body: r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap(),
    }
}

fn get(a: &ureq::Agent, url: &str) -> Answer {
    answer(a.get(url).call())
}

/// POSTs JSON with an optional `Authorization` header value.
fn post_as(a: &ureq::Agent, url: &str, auth: Option<&str>, body: &Value) -> Answer {
    let mut req = a.post(url).header("Content-Type", "application/json");
    if let Some(v) = auth {
        req = req.header("Authorization", v);
    }
    answer(req.send(serde_json::to_vec(body).unwrap()))
}

fn bearer() -> String {
    format!("Bearer {ADMIN_TOKEN}")
}

/// Registers through the repository API with the admin token; returns the names.
fn load(a: &ureq::Agent, c: &Controller, name: &str, params: Value) -> Vec<String> {
    let r = post_as(
        a,
        &c.url(&format!("/v2/repository/models/{name}/load")),
        Some(&bearer()),
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

fn tiny_profile(exec_us: u64) -> Value {
    json!({
        "weights_bytes": 1_000_000,
        "input_bytes": 16,
        "output_bytes": 8,
        "load_time_us": 1_000,
        "batches": [{ "batch_size": 1, "exec_time_us": exec_us }]
    })
}

fn infer(a: &ureq::Agent, c: &Controller, model: &str, params: Value) -> Answer {
    post_as(
        a,
        &c.url(&format!("/v2/models/{model}/infer")),
        None,
        &json!({ "parameters": params, "inputs": [] }),
    )
}

fn infer_until_ok(a: &ureq::Agent, c: &Controller, model: &str) {
    for _ in 0..400 {
        if infer(a, c, model, json!({})).status == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{model} never served");
}

fn index(a: &ureq::Agent, c: &Controller, query: &str) -> Answer {
    post_as(
        a,
        &c.url(&format!("/v2/repository/index{query}")),
        None,
        &json!({}),
    )
}

fn instance_count(a: &ureq::Agent, c: &Controller) -> usize {
    let r = index(a, c, "");
    r.header("x-clockwork-total").unwrap().parse().unwrap()
}

fn metric(a: &ureq::Agent, c: &Controller, name: &str) -> f64 {
    let text = String::from_utf8(get(a, &c.url("/metrics")).body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

#[test]
fn admin_endpoints_need_the_admin_token_and_change_nothing_without_it() {
    let waddr = free_port();
    let _w = worker_at(waddr, 1);
    let c = start(Setup::new(waddr));
    let a = agent();
    let url = c.url("/v2/repository/models/tiny/load");
    let body = json!({ "parameters": { "profile": tiny_profile(1_000), "copies": 5 } });

    let r = post_as(&a, &url, None, &body);
    assert_eq!(r.status, 401, "{:?}", r.json());
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = post_as(&a, &url, Some("Bearer not-the-token"), &body);
    assert_eq!(r.status, 403);
    assert!(r.error().contains("wrong admin token"), "{}", r.error());
    // The cluster token is not the admin token.
    let r = post_as(&a, &url, Some(&format!("Bearer {TOKEN}")), &body);
    assert_eq!(r.status, 403);
    assert_eq!(
        instance_count(&a, &c),
        0,
        "a refused load registered something"
    );

    let names = load(
        &a,
        &c,
        "tiny",
        json!({ "profile": tiny_profile(1_000), "copies": 2 }),
    );
    assert_eq!(names, ["tiny-0", "tiny-1"]);
    infer_until_ok(&a, &c, "tiny-0");

    // Unload without the token: refused, the model still answers.
    let unload = c.url("/v2/repository/models/tiny-0/unload");
    assert_eq!(post_as(&a, &unload, None, &json!({})).status, 401);
    assert_eq!(
        post_as(&a, &unload, Some("Basic dXNlcjpwdw=="), &json!({})).status,
        403
    );
    assert_eq!(infer(&a, &c, "tiny-0", json!({})).status, 200);
    // With it: unloaded.
    assert_eq!(
        post_as(&a, &unload, Some(&bearer()), &json!({})).status,
        200
    );
    assert_eq!(infer(&a, &c, "tiny-0", json!({})).status, 404);
    // Reading stays open: metadata, index, metrics.
    assert_eq!(get(&a, &c.url("/v2/models/tiny-1")).status, 200);
    assert_eq!(index(&a, &c, "").status, 200);
    assert_eq!(get(&a, &c.url("/metrics")).status, 200);
}

#[test]
fn without_a_configured_token_admin_endpoints_say_how_to_enable_them() {
    let waddr = free_port();
    let mut setup = Setup::new(waddr);
    setup.admin = AdminAccess::Closed;
    let c = start(setup);
    let a = agent();
    for path in [
        "/v2/repository/models/resnet50_v2/load",
        "/v2/repository/models/resnet50_v2/unload",
    ] {
        let r = post_as(&a, &c.url(path), Some(&bearer()), &json!({}));
        assert_eq!(r.status, 403);
        assert!(r.error().contains("--admin-token"), "{}", r.error());
    }
    assert_eq!(instance_count(&a, &c), 0);
}

#[test]
fn gpu_parking_profiles_and_huge_slos_are_refused_and_others_keep_being_served() {
    let waddr = free_port();
    let _w = worker_at(waddr, 2);
    let c = start(Setup::new(waddr));
    let a = agent();
    load(&a, &c, "tiny", json!({ "profile": tiny_profile(1_000) }));
    infer_until_ok(&a, &c, "tiny-0");

    // The issue's attack: an INFER of 1e12 µs ...
    let r = post_as(
        &a,
        &c.url("/v2/repository/models/parker/load"),
        Some(&bearer()),
        &json!({ "parameters": { "profile": tiny_profile(1_000_000_000_000) } }),
    );
    assert_eq!(r.status, 400);
    assert!(r.error().contains("exec_time_us"), "{}", r.error());
    let r = post_as(
        &a,
        &c.url("/v2/repository/models/parker/load"),
        Some(&bearer()),
        &json!({ "parameters": { "profile": {
            "weights_bytes": 1000, "input_bytes": 16, "output_bytes": 8,
            "load_time_us": 3_000_000_000u64,
            "batches": [{ "batch_size": 1, "exec_time_us": 1000 }] } } }),
    );
    assert_eq!(r.status, 400);
    assert!(r.error().contains("load_time_us"), "{}", r.error());
    // A request as large as a worker link's frame: its INFER could never be sent.
    let r = post_as(
        &a,
        &c.url("/v2/repository/models/parker/load"),
        Some(&bearer()),
        &json!({ "parameters": { "profile": {
            "weights_bytes": 1000, "input_bytes": 16 << 20, "output_bytes": 8,
            "load_time_us": 1000,
            "batches": [{ "batch_size": 1, "exec_time_us": 1000 }] } } }),
    );
    assert_eq!(r.status, 400);
    assert!(r.error().contains("worker link"), "{}", r.error());
    assert_eq!(get(&a, &c.url("/v2/models/parker")).status, 404);
    // ... and requests whose SLO lets them wait for most of an hour.
    for params in [
        json!({ "timeout": 3_599_000_000u64 }),
        json!({ "clockwork_slo_ms": 3_000_000.0 }),
        json!({ "clockwork_slo_factor": 1e9 }),
    ] {
        let r = infer(&a, &c, "tiny-0", params.clone());
        assert_eq!(r.status, 400, "{params}");
        assert!(r.error().contains("--max-slo-ms"), "{}", r.error());
    }
    // The most the bound allows is served like any other request.
    assert_eq!(
        infer(&a, &c, "tiny-0", json!({ "timeout": 60_000_000 })).status,
        200
    );
    // Other clients were never affected.
    for _ in 0..20 {
        assert_eq!(infer(&a, &c, "tiny-0", json!({})).status, 200);
    }
}

#[test]
fn copies_are_capped_and_the_index_is_whole_or_paged_while_serving_goes_on() {
    let waddr = free_port();
    let _w = worker_at(waddr, 1);
    let c = start(Setup::new(waddr));
    let a = agent();
    load(&a, &c, "tiny", json!({ "profile": tiny_profile(1_000) }));
    infer_until_ok(&a, &c, "tiny-0");

    let r = post_as(
        &a,
        &c.url("/v2/repository/models/resnet18_v2/load"),
        Some(&bearer()),
        &json!({ "parameters": { "copies": 100_000 } }),
    );
    assert_eq!(r.status, 400);
    assert!(r.error().contains("1..=1000"), "{}", r.error());
    assert_eq!(instance_count(&a, &c), 1);

    // 2,500 more in three requests, with inferences in between that are answered.
    for copies in [1_000, 1_000, 500] {
        let n = load(&a, &c, "resnet18_v2", json!({ "copies": copies })).len();
        assert_eq!(n, copies);
        assert_eq!(infer(&a, &c, "tiny-0", json!({})).status, 200);
    }
    // Without a limit, the whole index (as Triton's clients expect), in id order.
    let whole = index(&a, &c, "");
    let ids: Vec<u64> = whole
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["clockwork"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (0..2_501).collect::<Vec<u64>>());
    assert_eq!(whole.json()[0]["name"], "tiny-0");
    assert_eq!(whole.header("x-clockwork-total"), Some("2501"));
    assert_eq!(whole.header("x-clockwork-next-offset"), None);
    let rest = index(&a, &c, "?offset=2400");
    assert_eq!(rest.json().as_array().unwrap().len(), 101);
    // With one, a page.
    let first = index(&a, &c, "?limit=1000");
    assert_eq!(first.json().as_array().unwrap().len(), 1_000);
    assert_eq!(first.header("x-clockwork-total"), Some("2501"));
    assert_eq!(first.header("x-clockwork-next-offset"), Some("1000"));
    assert_eq!(first.json()[0]["name"], "tiny-0");
    let last = index(&a, &c, "?offset=2000&limit=1000");
    let entries = last.json();
    assert_eq!(entries.as_array().unwrap().len(), 501);
    assert_eq!(entries[0]["clockwork"]["id"], 2000);
    assert_eq!(last.header("x-clockwork-next-offset"), None);
    let page = index(&a, &c, "?offset=10&limit=5");
    assert_eq!(page.json()[0]["clockwork"]["id"], 10);
    assert_eq!(page.header("x-clockwork-next-offset"), Some("15"));
    let r = index(&a, &c, "?limit=5000");
    assert_eq!(r.status, 400);
    assert!(r.error().contains("1..=1000"), "{}", r.error());
    assert_eq!(index(&a, &c, "?offset=-1").status, 400);
    assert_eq!(infer(&a, &c, "tiny-0", json!({})).status, 200);
}

/// Reads what the server sends until it closes or `within` passes.
fn read_until_close(s: &mut TcpStream, within: Duration) -> (String, bool) {
    s.set_read_timeout(Some(within)).unwrap();
    let mut out = Vec::new();
    let closed = s.read_to_end(&mut out).is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

#[test]
fn connections_beyond_the_limit_are_refused_in_words_and_slots_come_back() {
    let waddr = free_port();
    let mut setup = Setup::new(waddr);
    setup.limits.max_connections = 3;
    let c = start(setup);
    let a = agent();
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(c.http).unwrap())
        .collect();
    // Accepted (and counted) once the gauge says so.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refused = String::new();
    while Instant::now() < deadline {
        let mut extra = TcpStream::connect(c.http).unwrap();
        let _ = extra.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n");
        let (text, _) = read_until_close(&mut extra, Duration::from_secs(5));
        if text.starts_with("HTTP/1.1 503") {
            refused = text;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(refused.contains("too many connections"), "{refused}");
    drop(held);
    // The slots are given back: a new client is served.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = a
            .get(&c.url("/v2/health/live"))
            .call()
            .is_ok_and(|r| r.status() == 200);
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "slots never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(metric(&a, &c, "clockwork_http_connections_refused_total") >= 1.0);
}

#[test]
fn a_slowloris_connection_is_closed_at_the_request_deadline() {
    let waddr = free_port();
    let _w = worker_at(waddr, 1);
    let mut setup = Setup::new(waddr);
    setup.limits.request_timeout = Duration::from_millis(500);
    let c = start(setup);
    let a = agent();
    load(&a, &c, "tiny", json!({ "profile": tiny_profile(1_000) }));
    infer_until_ok(&a, &c, "tiny-0");

    // A connection that sends nothing at all is closed at the request timeout too,
    // not after the (60 s) keep-alive idle timeout.
    let mut silent = TcpStream::connect(c.http).unwrap();
    let (text, closed) = read_until_close(&mut silent, Duration::from_secs(10));
    assert!(
        closed && text.is_empty(),
        "silent connection: {closed} {text}"
    );

    let mut slow = TcpStream::connect(c.http).unwrap();
    let head = b"POST /v2/models/tiny-0/infer HTTP/1.1\r\nHost: x\r\nX-Padding: ";
    slow.write_all(head).unwrap();
    // One byte every 50 ms: each arrives well within any per-read timeout, but the
    // request as a whole never completes.
    let t0 = Instant::now();
    let mut closed_after = None;
    slow.set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let mut got = Vec::new();
    while t0.elapsed() < Duration::from_secs(15) {
        if slow.write_all(b"a").is_err() {
            closed_after = Some(t0.elapsed());
            break;
        }
        let mut buf = [0u8; 512];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed_after = Some(t0.elapsed());
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        // Meanwhile another client is served.
        assert_eq!(infer(&a, &c, "tiny-0", json!({})).status, 200);
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        closed_after.is_some(),
        "the slow connection was never closed"
    );
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

/// A connection whose receive buffer is tiny, so that the server's write of a large
/// answer waits for the client to read.
fn small_window_connection(addr: SocketAddr) -> TcpStream {
    use nix::sys::socket::{connect, setsockopt, socket, sockopt, AddressFamily, SockFlag};
    use nix::sys::socket::{SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 expected")
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    setsockopt(&fd, sockopt::RcvBuf, &4096).unwrap();
    connect(fd.as_raw_fd(), &SockaddrIn::from(v4)).unwrap();
    TcpStream::from(fd)
}

#[test]
fn an_answer_sent_after_its_deadline_counts_late_in_metrics_and_log() {
    let waddr = free_port();
    let _w = worker_at(waddr, 1);
    let logs = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(waddr);
    setup.log_dir = Some(logs.path().to_owned());
    let c = start(setup);
    let a = agent();
    // 8 MiB of output: more than the socket buffers hold (4 MiB at most for the
    // sender here, and the client's receive buffer is tiny).
    let big = 8 << 20;
    let profile = json!({
        "weights_bytes": 1_000_000, "input_bytes": 16, "output_bytes": big,
        "load_time_us": 1_000, "batches": [{ "batch_size": 1, "exec_time_us": 1_000 }] });
    load(&a, &c, "big", json!({ "profile": profile }));
    // Binary answers: 12 MiB as JSON numbers would be slow to render and read.
    let binary = json!({ "binary_data_output": true, "timeout": 2_000_000 });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = infer(&a, &c, "big-0", binary.clone());
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "big-0 never served: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(metric(&a, &c, "clockwork_http_late_answers_total"), 0.0);

    // SLO 2 s (an 8 MiB result makes a slow INFER on a shared machine); the client
    // reads the answer only after 4 s.
    let mut s = small_window_connection(c.http);
    let body = br#"{"parameters":{"timeout":2000000,"binary_data_output":true},"inputs":[]}"#;
    let head = format!(
        "POST /v2/models/big-0/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    std::thread::sleep(Duration::from_millis(4_000));
    let mut out = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.read_to_end(&mut out).unwrap();
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out[..out.len().min(400)])
    );
    assert!(out.len() > big);
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&a, &c, "clockwork_http_late_answers_total") < 1.0 {
        assert!(Instant::now() < deadline, "the late answer was not counted");
        std::thread::sleep(Duration::from_millis(20));
    }
    c.stop().unwrap();

    // The request log counts it late, with the send time in its latency.
    let path = logs.path().join(REQUEST_LOG_FILE);
    let rows: Vec<RequestLog> = parse_log(
        std::io::BufReader::new(std::fs::File::open(&path).unwrap()),
        &path,
    )
    .unwrap();
    let late: Vec<&RequestLog> = rows.iter().filter(|r| r.late_success()).collect();
    assert_eq!(late.len(), 1, "{rows:?}");
    assert!(late[0].latency.get() > 3_000_000_000, "{:?}", late[0]);
    assert_eq!(late[0].result, ClientStatus::Success.code());
    // Every other success of that run was sent in time.
    assert!(rows
        .iter()
        .filter(|r| r.result == ClientStatus::Success.code())
        .all(|r| r.deadline_met || r.late_success()));
}

#[test]
fn a_restarted_controller_serves_the_models_registered_over_http() {
    let waddr = free_port();
    let _w = worker_at(waddr, 1);
    let state = tempfile::tempdir().unwrap();
    let setup = |dir: &std::path::Path| {
        let mut s = Setup::new(waddr);
        s.state_dir = Some(dir.to_owned());
        s
    };
    let a = agent();
    {
        let c = start(setup(state.path()));
        let names = load(
            &a,
            &c,
            "tiny",
            json!({ "profile": tiny_profile(1_000), "copies": 2 }),
        );
        assert_eq!(names, ["tiny-0", "tiny-1"]);
        load(&a, &c, "resnet18_v2", json!({}));
        infer_until_ok(&a, &c, "tiny-0");
        let r = post_as(
            &a,
            &c.url("/v2/repository/models/tiny-1/unload"),
            Some(&bearer()),
            &json!({}),
        );
        assert_eq!(r.status, 200);
        c.stop().unwrap();
    }
    // Same state directory: the same instances, served, the unloaded one still
    // unloaded; it can be loaded again.
    let c = start(setup(state.path()));
    infer_until_ok(&a, &c, "tiny-0");
    infer_until_ok(&a, &c, "resnet18_v2-2");
    let m = get(&a, &c.url("/v2/models/tiny-0")).json();
    assert_eq!(m["clockwork"]["profile"], {
        let mut p = tiny_profile(1_000);
        p["name"] = json!("tiny");
        p
    });
    assert_eq!(infer(&a, &c, "tiny-1", json!({})).status, 404);
    let r = post_as(
        &a,
        &c.url("/v2/repository/models/tiny-1/load"),
        Some(&bearer()),
        &json!({}),
    );
    assert_eq!(r.status, 200);
    infer_until_ok(&a, &c, "tiny-1");
    c.stop().unwrap();
    // A third start has all three, none unloaded.
    let c = start(setup(state.path()));
    for m in ["tiny-0", "tiny-1", "resnet18_v2-2"] {
        infer_until_ok(&a, &c, m);
    }
    // Without the state directory nothing comes back.
    drop(c);
    let c = start(Setup::new(waddr));
    assert_eq!(infer(&a, &c, "tiny-0", json!({})).status, 404);
}

#[test]
fn a_malformed_state_file_stops_the_start_with_its_reason() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        state.path().join(clockwork_controller::service::STATE_FILE),
        b"{oops",
    )
    .unwrap();
    let mut cfg = ServiceConfig::new(vec![free_port()], free_port(), TOKEN);
    cfg.state_dir = Some(state.path().to_owned());
    let r = runtime::run_here(ExecutorConfig::named("admin-test-bad"), async move {
        serve(cfg, std::future::pending::<()>())
            .await
            .map_err(|e| e.to_string())
    })
    .unwrap();
    let e = r.unwrap_err();
    assert!(e.contains("registrations.json"), "{e}");
}
