//! HTTP/1.1 framing: reading one request (head parsed with `httparse`, body by
//! `Content-Length` or chunked transfer coding) under size and time limits, and
//! encoding responses.

use super::HttpLimits;
use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::time::{Duration, Instant, SystemTime};

/// A connection's byte stream: plain TCP or TLS over it.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin {}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for S {}

/// Most header lines accepted in one request.
pub(super) const MAX_HEADERS: usize = 64;

/// One parsed request.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) method: String,
    /// The path without the query string.
    pub(super) path: String,
    /// The query string (after `?`, without it; empty when none).
    pub(super) query: String,
    /// The `Authorization` header, if any.
    pub(super) authorization: Option<String>,
    /// Whether the connection stays open after the answer.
    pub(super) keep_alive: bool,
    /// `Inference-Header-Content-Length` (binary tensor extension).
    pub(super) inference_header_len: Option<usize>,
    /// Shared: an inference's binary tensors are slices of it.
    pub(super) body: Bytes,
}

/// Why no request could be read.
#[derive(Debug)]
pub(super) enum ReadError {
    /// The peer closed the connection between requests.
    Closed,
    /// No new request within the idle timeout.
    Idle,
    /// The request did not arrive completely within the request timeout.
    Timeout,
    /// The socket failed, or closed in the middle of a request.
    Io(std::io::Error),
    /// The request is malformed or over a limit: answer `status` and close.
    Bad { status: u16, message: String },
}

fn bad(status: u16, message: impl Into<String>) -> ReadError {
    ReadError::Bad {
        status,
        message: message.into(),
    }
}

/// Bytes read at a time while a request is arriving.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes an idle connection reads its next request's start into (a typical head and
/// small JSON body fit).
const IDLE_READ: usize = 1024;

/// Reads into `buf` (appending) at most `chunk` bytes, until `deadline`; returns the
/// byte count (0 = EOF).
async fn read_some(
    stream: &mut impl Stream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    chunk: usize,
) -> Result<Option<usize>, std::io::Error> {
    let start = buf.len();
    buf.resize(start + chunk, 0);
    let r = read_into(stream, &mut buf[start..], deadline).await;
    let n = match &r {
        Ok(Some(n)) => *n,
        _ => 0,
    };
    buf.truncate(start + n);
    r
}

/// Reads into `dst` once, until `deadline`; returns the byte count (0 = EOF), `None`
/// at the deadline.
async fn read_into(
    stream: &mut impl Stream,
    dst: &mut [u8],
    deadline: Instant,
) -> Result<Option<usize>, std::io::Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Ok(None);
    }
    let r = futures_lite::future::or(async { stream.read(dst).await.map(Some) }, async {
        clockwork_net::timer::sleep(left).await;
        Ok(None)
    })
    .await;
    clockwork_net::wakes::note(clockwork_net::wakes::Cause::HttpRead);
    clockwork_net::runtime::awake();
    r
}

/// Reads the rest of a `Content-Length` body of `n` bytes, of which `have` arrived
/// with the head, straight into its own buffer: reads as large as the socket gives, and
/// no copy of the body out of the connection's buffer afterwards. The buffer grows (by
/// doubling) with the bytes that arrived, not with the length announced: a peer that
/// announces 16 MiB and sends nothing holds 64 KiB, not 16 MiB. Reads nothing past the
/// body (a pipelined next request stays in the socket).
async fn read_body(
    stream: &mut impl Stream,
    have: &[u8],
    n: usize,
    deadline: Instant,
    continue_sent: &mut bool,
) -> Result<Bytes, ReadError> {
    let mut body = have.to_vec();
    let mut filled = have.len();
    while filled < n {
        if !*continue_sent {
            send_continue(stream).await?;
            *continue_sent = true;
        }
        if filled == body.len() {
            // Room for as much again (at least 64 KiB), within the body.
            let room = filled.max(4 * READ_CHUNK);
            body.resize(n.min(filled + room), 0);
        }
        match read_into(stream, &mut body[filled..], deadline).await {
            Ok(Some(0)) => return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(Some(k)) => filled += k,
            Ok(None) => return Err(ReadError::Timeout),
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    Ok(Bytes::from(body))
}

/// What the head says about the body.
enum BodyKind {
    Length(usize),
    Chunked,
}

struct Head {
    len: usize,
    method: String,
    path: String,
    query: String,
    authorization: Option<String>,
    keep_alive: bool,
    expect_continue: bool,
    inference_header_len: Option<usize>,
    body: BodyKind,
}

fn parse_head(buf: &[u8], limits: &HttpLimits) -> Result<Option<Head>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_header_bytes {
                return Err(bad(431, "request head too large"));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(bad(431, format!("more than {MAX_HEADERS} header lines")))
        }
        Err(e) => return Err(bad(400, format!("malformed HTTP request: {e}"))),
    };
    if len > limits.max_header_bytes {
        return Err(bad(431, "request head too large"));
    }
    let http11 = req.version == Some(1);
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or_default();
    let without_fragment = target.split('#').next().unwrap_or_default();
    let (path, query) = without_fragment
        .split_once('?')
        .unwrap_or((without_fragment, ""));
    let (path, query) = (path.to_owned(), query.to_owned());
    let mut authorization = None;
    let mut keep_alive = http11;
    let mut expect_continue = false;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut inference_header_len = None;
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| bad(400, format!("header {} is not UTF-8", h.name)))?
            .trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| bad(400, "invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(bad(400, "conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            if !last.eq_ignore_ascii_case("chunked") {
                return Err(bad(501, format!("unsupported Transfer-Encoding {value}")));
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("authorization") {
            if authorization.is_some() {
                return Err(bad(400, "more than one Authorization header"));
            }
            authorization = Some(value.to_owned());
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            if value.eq_ignore_ascii_case("100-continue") {
                expect_continue = http11;
            } else {
                return Err(bad(417, format!("unsupported Expect: {value}")));
            }
        } else if h
            .name
            .eq_ignore_ascii_case("inference-header-content-length")
        {
            inference_header_len = Some(
                value
                    .parse()
                    .map_err(|_| bad(400, "invalid Inference-Header-Content-Length"))?,
            );
        }
    }
    if chunked && length.is_some() {
        return Err(bad(400, "both Content-Length and Transfer-Encoding"));
    }
    let body = if chunked {
        BodyKind::Chunked
    } else {
        let n = length.unwrap_or(0);
        if n > limits.max_body_bytes {
            return Err(bad(
                413,
                format!(
                    "body of {n} bytes exceeds the limit of {}",
                    limits.max_body_bytes
                ),
            ));
        }
        BodyKind::Length(n)
    };
    Ok(Some(Head {
        len,
        method,
        path,
        query,
        authorization,
        keep_alive,
        expect_continue,
        inference_header_len,
        body,
    }))
}

/// Reads one request. `buf` holds bytes already received (pipelined requests) and
/// keeps whatever follows this request. A connection's `first` request must start
/// within the request timeout (a connection that never sends holds its slot no
/// longer than one that sends slowly); later ones within the idle timeout.
pub(super) async fn read_request(
    stream: &mut impl Stream,
    buf: &mut Vec<u8>,
    limits: &HttpLimits,
    first: bool,
) -> Result<Request, ReadError> {
    if buf.is_empty() {
        // A keep-alive connection waits for its next request (maybe for long) with
        // only a small buffer: 10,000 idle connections hold 10,000 of them
        // (docs/operations.md). A request that does not fit is read on by `more`.
        buf.shrink_to(IDLE_READ);
        let wait = if first {
            limits.request_timeout.min(limits.idle_timeout)
        } else {
            limits.idle_timeout
        };
        match read_some(stream, buf, Instant::now() + wait, IDLE_READ).await {
            Ok(Some(0)) => return Err(ReadError::Closed),
            Ok(Some(_)) => {}
            Ok(None) => return Err(ReadError::Idle),
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    let deadline = Instant::now() + limits.request_timeout;
    let head = loop {
        if let Some(h) = parse_head(buf, limits)? {
            break h;
        }
        more(stream, buf, deadline).await?;
    };
    let mut continue_sent = !head.expect_continue;
    let body = match head.body {
        BodyKind::Length(n) if buf.len() >= head.len + n => {
            let body = Bytes::copy_from_slice(&buf[head.len..head.len + n]);
            buf.drain(..head.len + n);
            body
        }
        BodyKind::Length(n) => {
            let body = read_body(stream, &buf[head.len..], n, deadline, &mut continue_sent).await;
            buf.clear();
            body?
        }
        BodyKind::Chunked => {
            let mut body = Vec::new();
            let mut pos = head.len;
            loop {
                match httparse::parse_chunk_size(&buf[pos..]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        let size = usize::try_from(size).unwrap_or(usize::MAX);
                        if size > limits.max_body_bytes.saturating_sub(body.len()) {
                            return Err(bad(413, "chunked body exceeds the size limit"));
                        }
                        if size == 0 {
                            // Trailer section: header lines up to an empty line.
                            let start = pos + used;
                            let end = loop {
                                if buf[start..].starts_with(b"\r\n") {
                                    break start + 2;
                                }
                                if let Some(i) =
                                    buf[start..].windows(4).position(|w| w == b"\r\n\r\n")
                                {
                                    break start + i + 4;
                                }
                                if buf.len() - start > limits.max_header_bytes {
                                    return Err(bad(431, "chunk trailers too large"));
                                }
                                more(stream, buf, deadline).await?;
                            };
                            buf.drain(..end);
                            break;
                        }
                        while buf.len() < pos + used + size + 2 {
                            more(stream, buf, deadline).await?;
                        }
                        let data = pos + used;
                        if &buf[data + size..data + size + 2] != b"\r\n" {
                            return Err(bad(400, "malformed chunk"));
                        }
                        body.extend_from_slice(&buf[data..data + size]);
                        pos = data + size + 2;
                    }
                    Ok(httparse::Status::Partial) => {
                        if !continue_sent {
                            send_continue(stream).await?;
                            continue_sent = true;
                        }
                        if buf.len() - pos > 1024 {
                            return Err(bad(400, "malformed chunk size line"));
                        }
                        more(stream, buf, deadline).await?;
                    }
                    Err(_) => return Err(bad(400, "malformed chunk size")),
                }
            }
            Bytes::from(body)
        }
    };
    Ok(Request {
        method: head.method,
        path: head.path,
        query: head.query,
        authorization: head.authorization,
        keep_alive: head.keep_alive,
        inference_header_len: head.inference_header_len,
        body,
    })
}

async fn more(
    stream: &mut impl Stream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(), ReadError> {
    match read_some(stream, buf, deadline, READ_CHUNK).await {
        Ok(Some(0)) => Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into())),
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ReadError::Timeout),
        Err(e) => Err(ReadError::Io(e)),
    }
}

async fn send_continue(stream: &mut impl Stream) -> Result<(), ReadError> {
    stream
        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        .await
        .map_err(ReadError::Io)?;
    stream.flush().await.map_err(ReadError::Io)
}

/// A response to send.
#[derive(Debug)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) content_type: &'static str,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub(super) fn json<T: serde::Serialize + ?Sized>(status: u16, v: &T) -> Self {
        Self {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: serde_json::to_vec(v).unwrap_or_default(),
        }
    }

    /// `{"error": message}` with `status`.
    pub(super) fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, &serde_json::json!({ "error": message.into() }))
    }

    /// Adds a header.
    pub(super) fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire. A `HEAD` answer (`head_only`) carries no body.
    pub(super) fn encode(&self, keep_alive: bool, head_only: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 256);
        let head = format!(
            "HTTP/1.1 {} {}\r\nDate: {}\r\nServer: clockwork-rs\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            reason(self.status),
            httpdate::fmt_http_date(SystemTime::now()),
            self.content_type,
            self.body.len()
        );
        out.extend_from_slice(head.as_bytes());
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Writes a response; `Err` if the peer is gone or too slow.
pub(super) async fn write_response(
    stream: &mut impl Stream,
    bytes: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    let w = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    futures_lite::future::or(w, async {
        clockwork_net::timer::sleep(timeout).await;
        Err(std::io::ErrorKind::TimedOut.into())
    })
    .await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A peer that sends `data` at most `step` bytes per read.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
        written: Vec<u8>,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.step).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.written.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A body far larger than the connection's read chunks, arriving a few hundred
    /// bytes at a time, is read whole into its own buffer, and only it: the pipelined
    /// request behind it is read next, and a body that stops short times out.
    #[test]
    fn a_large_body_is_read_whole_and_nothing_past_it() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut data = format!(
            "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        data.extend_from_slice(&body);
        data.extend_from_slice(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n");
        let ex = glommio::LocalExecutorBuilder::default().make().unwrap();
        ex.run(async {
            let mut peer = Trickle {
                data,
                at: 0,
                step: 700,
                written: Vec::new(),
            };
            let limits = HttpLimits::default();
            let mut buf = Vec::new();
            let first = read_request(&mut peer, &mut buf, &limits, true)
                .await
                .unwrap();
            assert_eq!(first.method, "POST");
            assert!(first.body == body[..], "body differs");
            assert!(peer.written.starts_with(b"HTTP/1.1 100 Continue"));
            let next = read_request(&mut peer, &mut buf, &limits, false)
                .await
                .unwrap();
            assert_eq!(
                (next.method.as_str(), next.path.as_str()),
                ("GET", "/v2/health/live")
            );
            assert!(next.body.is_empty());

            // A body that stops short: an error, not a short body.
            let mut short = Trickle {
                data: b"POST /x HTTP/1.1\r\nContent-Length: 50000\r\n\r\nabc".to_vec(),
                at: 0,
                step: 700,
                written: Vec::new(),
            };
            let limits = HttpLimits {
                request_timeout: Duration::from_millis(50),
                ..HttpLimits::default()
            };
            let mut buf = Vec::new();
            let r = read_request(&mut short, &mut buf, &limits, true).await;
            assert!(
                matches!(r, Err(ReadError::Io(_) | ReadError::Timeout)),
                "{r:?}"
            );
        });
    }
}
