//! The gRPC front end's connections and its repository index, with hyper's HTTP/2
//! client and raw sockets against a controller with an emulated worker.
//!
//! Connections follow the HTTP front end's limits: one that sends nothing, or that
//! goes quiet after its calls, is closed after the idle rule
//! (`HttpLimits::request_timeout` before the first call, `idle_timeout` after the
//! last) and gives its slot back to `max_connections`; one whose calls keep coming,
//! or whose one call is still arriving, stays open. A peer that does not answer the
//! server's HTTP/2 PINGs is closed. `RepositoryIndex` answers the whole index, also
//! past the HTTP front end's page of 1,000 entries.

mod support;

use clockwork_controller::service::grpc::messages::{RepositoryIndexResponse, ServerLiveResponse};
use clockwork_controller::service::grpc::rt::{Io, LocalExec};
use clockwork_controller::service::HttpLimits;
use clockwork_net::runtime::{run_here, ExecutorConfig};
use clockwork_worker::WorkerHandle;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use prost::Message;
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};
use support::{free_port, plain, wait_for, worker_at, Controller, ADMIN_TOKEN};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// An empty gRPC message (`ServerLiveRequest` has no fields) with its prefix.
const EMPTY_MESSAGE: [u8; 5] = [0; 5];

fn controller(limits: HttpLimits) -> (Controller, SocketAddr, WorkerHandle) {
    let waddr = free_port();
    let w = worker_at(waddr);
    let grpc = free_port();
    let c = Controller::start(waddr, move |cfg| {
        cfg.grpc = Some(grpc);
        cfg.http_limits = limits;
    });
    wait_for("the gRPC port", || TcpStream::connect(grpc).is_ok());
    (c, grpc, w)
}

/// Everything the server sends on `s` until it closes the connection (a reset, where
/// it closed with bytes of ours unread, counts), and how long that took; `None` if it
/// is still open after 20 s.
fn read_until_closed(mut s: TcpStream) -> Option<(Vec<u8>, Duration)> {
    use std::io::ErrorKind;
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut back = Vec::new();
    match s.read_to_end(&mut back) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        _ => Some((back, t0.elapsed())),
    }
}

/// The HTTP/2 frame types in `bytes` (a server's side of a connection).
fn frame_types(bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = u32::from_be_bytes([0, bytes[at], bytes[at + 1], bytes[at + 2]]) as usize;
        types.push(bytes[at + 3]);
        at += 9 + len;
    }
    types
}

/// Connects until the server takes the connection: it sends its SETTINGS at once,
/// where one over the connection limit is closed without a byte (a slot given back
/// a moment ago may not be free yet). The stream past that frame, and when it
/// connected.
fn accepted(addr: SocketAddr) -> (TcpStream, Instant) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = [0u8; 9];
        if s.read_exact(&mut head).is_ok() && head[3] == 0x04 {
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            s.read_exact(&mut payload).unwrap();
            return (s, t);
        }
        assert!(Instant::now() < deadline, "no connection was taken in 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn idle_grpc_connections_are_closed_and_give_their_slot_back() {
    let (_c, grpc, _w) = controller(HttpLimits {
        max_connections: 1,
        request_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(700),
        ..HttpLimits::default()
    });

    // A peer that sends nothing, not even the preface, holds the one slot ...
    let (silent, connected) = accepted(grpc);
    let mut second = TcpStream::connect(grpc).unwrap();
    second.write_all(H2_PREFACE).unwrap();
    let (back, _) = read_until_closed(second).expect("a connection over the limit is closed");
    assert!(back.is_empty(), "over the limit, yet answered: {back:?}");
    // ... until the request timeout has passed without a call.
    let (back, _) = read_until_closed(silent).expect("a silent connection is closed");
    let types = frame_types(&back);
    assert!(!types.contains(&0x00), "data to a silent peer: {types:?}");
    let took = connected.elapsed();
    assert!(took >= Duration::from_millis(350), "closed after {took:?}");

    // Then the slot is free again. A peer that speaks HTTP/2 but makes no call is
    // told to go away (GOAWAY) and closed.
    let (mut s, _) = accepted(grpc);
    s.write_all(H2_PREFACE).unwrap();
    let (back, _) = read_until_closed(s).expect("an idle HTTP/2 connection is closed");
    let types = frame_types(&back);
    assert!(types.contains(&0x07), "no GOAWAY: {types:?}");
}

/// A client connection for the test's calls: its request sender and whether the
/// connection has ended.
struct Client {
    send: hyper::client::conn::http2::SendRequest<StreamBody<SlowBody>>,
    ended: Rc<Cell<bool>>,
    addr: SocketAddr,
}

type SlowBody = futures_lite::stream::BoxedLocal<Result<Frame<Bytes>, std::convert::Infallible>>;

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = glommio::net::TcpStream::connect(addr).await.unwrap();
        let (send, conn) = hyper::client::conn::http2::handshake(LocalExec, Io::new(stream))
            .await
            .unwrap();
        let ended = Rc::new(Cell::new(false));
        let e = ended.clone();
        glommio::spawn_local(async move {
            let _ = conn.await;
            e.set(true);
        })
        .detach();
        Self { send, ended, addr }
    }

    /// Calls `method` with an empty message sent after `delay`; the answer's message.
    async fn call(&mut self, method: &str, delay: Duration) -> Result<Bytes, String> {
        let body: SlowBody = Box::pin(futures_lite::stream::once_future(async move {
            clockwork_net::timer::sleep(delay).await;
            Ok(Frame::data(Bytes::from_static(&EMPTY_MESSAGE)))
        }));
        let uri = format!(
            "http://{}/inference.GRPCInferenceService/{method}",
            self.addr
        );
        let req = hyper::Request::post(uri)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(StreamBody::new(body))
            .unwrap();
        self.send.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .send
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let got = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        let status = got.trailers().and_then(|t| t.get("grpc-status")).cloned();
        let bytes = got.to_bytes();
        match status {
            Some(s) if s == "0" => Ok(bytes.slice(5.min(bytes.len())..)),
            s => Err(format!("grpc-status {s:?}")),
        }
    }

    /// `ServerLive`, its message sent after `delay`: whether it answered `live`.
    async fn live(&mut self, delay: Duration) -> Result<bool, String> {
        let message = self.call("ServerLive", delay).await?;
        let live = ServerLiveResponse::decode(message).map_err(|e| e.to_string())?;
        Ok(live.live)
    }
}

#[test]
fn a_grpc_connection_in_use_stays_open_and_closes_once_idle() {
    // Long enough that a loaded machine between two calls does not pass it.
    let idle = Duration::from_millis(1_000);
    let (_c, grpc, _w) = controller(HttpLimits {
        request_timeout: Duration::from_secs(5),
        idle_timeout: idle,
        ..HttpLimits::default()
    });
    run_here(ExecutorConfig::named("grpc-idle-test"), async move {
        let mut client = Client::connect(grpc).await;
        assert_eq!(client.live(Duration::ZERO).await, Ok(true));
        // One call whose message takes longer than the idle timeout to arrive.
        assert_eq!(client.live(idle * 5 / 2).await, Ok(true));
        // Calls closer together than the idle timeout, for longer than it.
        for _ in 0..6 {
            clockwork_net::timer::sleep(idle * 2 / 5).await;
            assert_eq!(client.live(Duration::ZERO).await, Ok(true));
        }
        assert!(!client.ended.get(), "closed while in use");
        // Quiet for longer than the idle timeout: the server closes the connection.
        let t0 = Instant::now();
        while !client.ended.get() && t0.elapsed() < Duration::from_secs(10) {
            clockwork_net::timer::sleep(Duration::from_millis(20)).await;
        }
        assert!(client.ended.get(), "still open after {:?}", t0.elapsed());
        assert!(t0.elapsed() >= idle / 2, "closed after {:?}", t0.elapsed());
        assert!(client.live(Duration::ZERO).await.is_err());
    })
    .unwrap();
}

/// HTTP/2 keep-alive: a peer that stops answering PINGs (a dead host, a cut network)
/// is closed after one interval without frames and one without the answer, where the
/// idle rule would hold it for 10 s; a peer that answers them (hyper's client does so
/// by itself) keeps its connection through a call that lasts five intervals.
#[test]
fn a_peer_that_does_not_answer_pings_is_closed_and_one_that_does_stays() {
    let every = Duration::from_millis(300);
    let (_c, grpc, _w) = controller(HttpLimits {
        request_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
        grpc_keepalive: Some(every),
        ..HttpLimits::default()
    });
    let (mut s, connected) = accepted(grpc);
    s.write_all(H2_PREFACE).unwrap();
    // The server's SETTINGS acknowledged; then nothing more, PINGs included.
    s.write_all(&[0, 0, 0, 0x04, 0x01, 0, 0, 0, 0]).unwrap();
    let (back, _) = read_until_closed(s).expect("a peer that does not answer is closed");
    let types = frame_types(&back);
    assert!(types.contains(&0x06), "no PING: {types:?}");
    let took = connected.elapsed();
    assert!(
        took >= every && took < Duration::from_secs(5),
        "closed after {took:?}"
    );

    run_here(ExecutorConfig::named("grpc-ping-test"), async move {
        let mut client = Client::connect(grpc).await;
        assert_eq!(client.live(every * 5).await, Ok(true));
        assert!(!client.ended.get(), "closed though it answers PINGs");
        assert_eq!(client.live(Duration::ZERO).await, Ok(true));
    })
    .unwrap();
}

#[test]
fn the_repository_index_is_whole_past_one_page() {
    let (c, grpc, _w) = controller(HttpLimits::default());
    wait_for("a worker", || {
        plain(c.http, "GET", "/v2/health/ready", None, "").status == 200
    });
    let auth = format!("Bearer {ADMIN_TOKEN}");
    for copies in [1_000, 1_000, 300] {
        let body = format!(r#"{{"parameters": {{"copies": {copies}}}}}"#);
        let path = "/v2/repository/models/resnet18_v2/load";
        let r = plain(c.http, "POST", path, Some(&auth), &body);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let index = run_here(ExecutorConfig::named("grpc-index-test"), async move {
        let mut client = Client::connect(grpc).await;
        let message = client
            .call("RepositoryIndex", Duration::ZERO)
            .await
            .unwrap();
        RepositoryIndexResponse::decode(message).unwrap()
    })
    .unwrap();
    let mut names: Vec<&str> = index.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names.len(), 2_300);
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 2_300, "an entry is listed twice");
    assert!(index.models.iter().all(|m| m.state == "READY"));
}
