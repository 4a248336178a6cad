//! A controller with an emulated worker on loopback, for the front-end tests
//! (`admin.rs`, `http.rs`, `service.rs`, `auth.rs`, `tls.rs`, `stats.rs`), and one HTTP/1.1 exchange over any byte stream (plain TCP or
//! TLS), written by hand so the tests see exactly what went over the wire.

#![allow(dead_code, unreachable_pub)]

use clockwork_controller::service::{serve, AdminAccess, HttpEngine, ServiceConfig};
use clockwork_net::runtime::{self, ExecutorConfig};
use clockwork_worker::{Worker, WorkerConfig, WorkerHandle};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The cluster token of the test controller and worker.
pub const TOKEN: &str = "access-test";
/// The admin token of the test controller.
pub const ADMIN_TOKEN: &str = "the-admin-token";

pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub fn worker_at(addr: SocketAddr) -> WorkerHandle {
    worker_with_gpus(addr, 1)
}

/// An emulated worker with `gpus` GPUs listening at `addr`.
pub fn worker_with_gpus(addr: SocketAddr, gpus: u32) -> WorkerHandle {
    let mut cfg = WorkerConfig::emulated(gpus);
    cfg.listen = addr;
    cfg.link.token = TOKEN.into();
    Worker::serve(cfg).expect("worker starts")
}

/// A worker whose link port speaks TLS with `tls`'s certificate.
pub fn tls_worker_at(addr: SocketAddr, tls: clockwork_net::tls::TlsServer) -> WorkerHandle {
    let mut cfg = WorkerConfig::emulated(1);
    cfg.listen = addr;
    cfg.link.token = TOKEN.into();
    cfg.link.tls_server = Some(tls);
    Worker::serve(cfg).expect("worker starts")
}

/// The variable that picks the HTTP engine the test controllers run
/// (`CLOCKWORK_TEST_HTTP_ENGINE=hyper`; unset: the default engine, native), so that
/// the same HTTP tests run against both engines.
pub const ENGINE_VAR: &str = "CLOCKWORK_TEST_HTTP_ENGINE";

/// The HTTP engine of this test run (see [`ENGINE_VAR`]).
pub fn http_engine() -> HttpEngine {
    match std::env::var(ENGINE_VAR) {
        Ok(v) if !v.is_empty() => v.parse().unwrap_or_else(|e| panic!("{ENGINE_VAR}: {e}")),
        _ => HttpEngine::default(),
    }
}

/// A running controller with its HTTP port; stopped on drop.
pub struct Controller {
    pub http: SocketAddr,
    /// Its native client port.
    pub native: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<runtime::ExecutorHandle<Result<(), String>>>,
}

impl Controller {
    /// Starts a controller serving HTTP, after `setup` adjusted its configuration
    /// (the HTTP address and engine, the worker and the admin token are set already).
    pub fn start(
        worker: SocketAddr,
        setup: impl FnOnce(&mut ServiceConfig) + Send + 'static,
    ) -> Self {
        Self::start_with_workers(vec![worker], setup)
    }

    /// [`Controller::start`] with several workers (the i-th is `WorkerId(i)`).
    pub fn start_with_workers(
        workers: Vec<SocketAddr>,
        setup: impl FnOnce(&mut ServiceConfig) + Send + 'static,
    ) -> Self {
        let (http, native) = (free_port(), free_port());
        let mut cfg = ServiceConfig::new(workers, native, TOKEN);
        cfg.reconnect_interval = Duration::from_millis(50);
        cfg.http = Some(http);
        cfg.http_engine = http_engine();
        cfg.http_admin = AdminAccess::token(ADMIN_TOKEN).unwrap();
        setup(&mut cfg);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = runtime::spawn(
            ExecutorConfig::named("access-test-ctl"),
            move || async move {
                let shutdown = async move {
                    while !s.load(Ordering::Relaxed) {
                        glommio::timer::sleep(Duration::from_millis(5)).await;
                    }
                };
                serve(cfg, shutdown).await.map_err(|e| e.to_string())
            },
        )
        .unwrap();
        let c = Self {
            http,
            native,
            stop,
            handle: Some(handle),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(http).is_err() {
            assert!(Instant::now() < deadline, "HTTP port did not open");
            std::thread::sleep(Duration::from_millis(10));
        }
        c
    }

    /// `http://<its HTTP address><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Stops the controller and returns how its service ended.
    pub fn stop(mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
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

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The head (status line and headers), as text.
    pub head: String,
    pub body: String,
}

impl Answer {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The `"error"` of a JSON error body.
    pub fn error(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body));
        v["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// One request (`Connection: close`) and its whole answer over `stream`.
pub fn exchange(
    stream: &mut (impl Read + Write),
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &str,
) -> std::io::Result<Answer> {
    let auth = authorization.map_or_else(String::new, |a| format!("Authorization: {a}\r\n"));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes())?;
    stream.flush()?;
    let mut raw = Vec::new();
    // A peer that closes without close_notify (or a reset after the answer) still
    // leaves the answer in `raw`.
    if let Err(e) = stream.read_to_end(&mut raw) {
        if raw.is_empty() {
            return Err(e);
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {text:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status: {head:?}")))?;
    Ok(Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// One exchange over a fresh plain TCP connection to `addr`.
pub fn plain(addr: SocketAddr, method: &str, path: &str, auth: Option<&str>, body: &str) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    exchange(&mut s, method, path, auth, body).unwrap()
}

/// Repeats `f` until it holds (or fails the test after 20 s).
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Test certificates in a temporary directory: a CA, a server certificate it signed
/// (for `localhost` and `127.0.0.1`) with its key, and another CA that signed
/// nothing here.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().unwrap();
        let ca = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(DnType::CommonName, name);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
        };
        let ours = ca("clockwork test CA");
        let other = ca("some other CA");
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "clockwork test server");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = leaf.signed_by(&key, &ours).unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", &ours.pem());
        write("other-ca.pem", &other.pem());
        write("cert.pem", &cert.pem());
        write("key.pem", &key.serialize_pem());
        Self { dir }
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// The server identity (`cert.pem`, `key.pem`).
    pub fn server(&self) -> clockwork_net::tls::TlsServer {
        clockwork_net::tls::TlsServer::from_pem_files(
            &self.path("cert.pem"),
            &self.path("key.pem"),
            &[],
        )
        .unwrap()
    }

    /// A client trusting the CA in `ca_file` (`ca.pem` or `other-ca.pem`).
    pub fn client(&self, ca_file: &str) -> clockwork_net::tls::TlsClient {
        clockwork_net::tls::TlsClient::from_ca_file(&self.path(ca_file)).unwrap()
    }
}

/// One exchange over a fresh TLS connection to `addr` (server name `localhost`) as
/// `client`; `Err` when the handshake or the exchange fails.
pub fn over_tls(
    client: &clockwork_net::tls::TlsClient,
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
) -> std::io::Result<Answer> {
    use clockwork_net::tls::rustls;
    let name = clockwork_net::tls::server_name("localhost").unwrap();
    let conn =
        rustls::ClientConnection::new(client.config(), name).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    exchange(&mut tls, method, path, auth, "")
}

/// A tiny profile: 16 input bytes (4 FP32), 8 output bytes.
pub fn tiny_profile() -> serde_json::Value {
    serde_json::json!({
        "weights_bytes": 20_000_000,
        "input_bytes": 16,
        "output_bytes": 8,
        "load_time_us": 2_000,
        "batches": [
            { "batch_size": 1, "exec_time_us": 1_000 },
            { "batch_size": 2, "exec_time_us": 1_500 },
            { "batch_size": 4, "exec_time_us": 2_000 }
        ]
    })
}
