//! The load generator's speed check partner: an HTTP/1.1 server that answers every
//! request at once with a fixed 200 (every `refuse_every`-th with a 429 and
//! `Retry-After: 1`), on its own glommio executor. It parses request heads with
//! `httparse`, skips bodies by `Content-Length`, answers pipelined requests with one
//! write, and counts what it answered.

use anyhow::anyhow;
use clockwork_net::runtime::{self, ExecutorConfig, ExecutorHandle};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const OK_BODY: &str = r#"{"model_name":"sink","model_version":"1","outputs":[]}"#;
const REFUSED_BODY: &str = r#"{"error":"refused by the sink"}"#;
const BAD_BODY: &str = r#"{"error":"bad request"}"#;
/// The largest request (head and body) the sink buffers.
const MAX_REQUEST: usize = 64 * 1024 * 1024;

fn response(status: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A running sink.
pub(crate) struct Sink {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: ExecutorHandle<anyhow::Result<u64>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("addr", &self.addr).finish()
    }
}

impl Sink {
    /// Start a sink on a new executor (pinned to `cpu` if given) on a free port of
    /// 127.0.0.1.
    pub(crate) fn start(cpu: Option<usize>, refuse_every: u64) -> anyhow::Result<Self> {
        let mut cfg = ExecutorConfig::named("loadgen-sink");
        if let Some(c) = cpu {
            cfg = cfg.with_cpu(c);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let s = stop.clone();
        let handle = runtime::spawn(cfg, move || async move {
            let listener = match TcpListener::bind("127.0.0.1:0") {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(anyhow!("sink: cannot listen: {e}")));
                    return Ok(0);
                }
            };
            let _ = tx.send(listener.local_addr().map_err(|e| anyhow!("sink: {e}")));
            let served = Rc::new(Cell::new(0u64));
            let accept = glommio::spawn_local(accept_loop(listener, served.clone(), refuse_every));
            while !s.load(Ordering::Relaxed) {
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
            drop(accept);
            Ok(served.get())
        })
        .map_err(|e| anyhow!("sink executor: {e}"))?;
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| anyhow!("the sink did not start"))??;
        Ok(Self { addr, stop, handle })
    }

    /// Stop it; how many requests it answered.
    pub(crate) fn stop(self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .map_err(|e| anyhow!("sink executor: {e}"))?
    }
}

async fn accept_loop(listener: TcpListener, served: Rc<Cell<u64>>, refuse_every: u64) {
    let replies = Rc::new(Replies {
        ok: response("200 OK", "", OK_BODY),
        refused: response("429 Too Many Requests", "Retry-After: 1\r\n", REFUSED_BODY),
        bad: response("400 Bad Request", "Connection: close\r\n", BAD_BODY),
    });
    while let Ok(stream) = listener.accept().await {
        glommio::spawn_local(connection(
            stream,
            served.clone(),
            refuse_every,
            replies.clone(),
        ))
        .detach();
    }
}

struct Replies {
    ok: Vec<u8>,
    refused: Vec<u8>,
    bad: Vec<u8>,
}

/// What the start of a buffer holds.
enum Parsed {
    /// A whole request of this many bytes.
    Request(usize),
    /// Not all of it yet (needing at least this many bytes in all).
    Incomplete(usize),
    /// Not HTTP.
    Bad,
}

fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(head)) => {
            let mut len = 0usize;
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    match std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                    {
                        Some(n) => len = n,
                        None => return Parsed::Bad,
                    }
                }
            }
            match head.checked_add(len) {
                Some(total) if total <= MAX_REQUEST && total <= buf.len() => Parsed::Request(total),
                Some(total) if total <= MAX_REQUEST => Parsed::Incomplete(total),
                _ => Parsed::Bad,
            }
        }
        Ok(httparse::Status::Partial) => Parsed::Incomplete(buf.len() + 1),
        Err(_) => Parsed::Bad,
    }
}

async fn connection(
    mut stream: TcpStream,
    served: Rc<Cell<u64>>,
    refuse_every: u64,
    replies: Rc<Replies>,
) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    let mut filled = 0usize;
    let mut out = Vec::with_capacity(4096);
    loop {
        let n = match stream.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        filled += n;
        // Answer every whole request in the buffer, in one write.
        let mut used = 0;
        let mut need = 0;
        let mut bad = false;
        while used < filled {
            match parse(&buf[used..filled]) {
                Parsed::Request(len) => {
                    used += len;
                    let k = served.get() + 1;
                    served.set(k);
                    let refuse = refuse_every > 0 && k.is_multiple_of(refuse_every);
                    out.extend_from_slice(if refuse {
                        &replies.refused
                    } else {
                        &replies.ok
                    });
                }
                Parsed::Incomplete(total) => {
                    need = total;
                    break;
                }
                Parsed::Bad => {
                    out.extend_from_slice(&replies.bad);
                    bad = true;
                    break;
                }
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if bad {
            return;
        }
        buf.copy_within(used..filled, 0);
        filled -= used;
        if need > buf.len() {
            buf.resize(need.next_power_of_two().min(MAX_REQUEST), 0);
        } else if filled == buf.len() {
            buf.resize((buf.len() * 2).min(MAX_REQUEST), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_delimited_by_their_content_length() {
        let one = b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        assert!(matches!(parse(one), Parsed::Request(n) if n == one.len()));
        assert!(matches!(parse(&one[..one.len() - 1]), Parsed::Incomplete(n) if n == one.len()));
        assert!(matches!(parse(b"POST /x HTT"), Parsed::Incomplete(_)));
        assert!(matches!(parse(b"\x00\x01 nonsense\r\n\r\n"), Parsed::Bad));
        assert!(matches!(
            parse(b"POST /x HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Parsed::Bad
        ));
    }
}
