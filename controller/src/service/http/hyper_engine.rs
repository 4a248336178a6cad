//! The hyper engine of the HTTP front end (`--http-engine hyper`): each connection is
//! served by hyper's HTTP/1.1 server (keep-alive, pipelined requests answered in
//! order with `pipeline_flush`) on the controller's executor, through the runtime
//! adapter the gRPC front end uses (`grpc::rt`); no tokio runtime runs.
//!
//! Every request is answered by the front end's one `route`, as on the native engine
//! (`wire`), so endpoints, tokens, admission, accounting and logs are the same. The
//! limits the native engine applies while reading a request are applied around hyper:
//! the head's size and header count by hyper itself, the time limits on the stream
//! (`timed`), the body's size and time limit here, while the body is read. It owns no
//! endpoint logic and no accept loop (`mod.rs` accepts, counts and refuses
//! connections for both engines). What differs from the native engine is listed in
//! `docs/http.md`, "HTTP engines".

use super::super::grpc::rt;
use super::super::path::{Answered, Route};
use super::super::{now, SharedRef};
use super::timed::{Timed, Watch};
use super::wire::{self, Request, Response};
use super::{route, Conn, Ctx, HttpLimits};
use clockwork_core::Nanos;
use clockwork_scheduler::ClientKey;
use glommio::channels::local_channel;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::StatusCode;
use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long the answer to a request hyper could not parse may take to be written.
const LAST_WORD_TIMEOUT: Duration = Duration::from_secs(1);

/// One connection's state between its requests.
struct ConnState {
    key: ClientKey,
    /// The connection's inference state, held by the request being served (HTTP/1.1
    /// serves one request at a time; the next waits for this one's answer).
    conn: Cell<Option<Conn>>,
    watch: Rc<Watch>,
}

/// Serves one connection (plain or TLS) until it closes, a limit ends it, or the
/// task is dropped.
pub(super) async fn connection<S>(shared: SharedRef, stream: S, ctx: Rc<Ctx>)
where
    S: wire::Stream + 'static,
{
    let (tx, answers) = local_channel::new_unbounded::<Answered>();
    let key = shared.borrow_mut().open_route(Route::Http(tx));
    let state = Rc::new(ConnState {
        key,
        conn: Cell::new(Some(Conn {
            key,
            answers,
            next_id: 0,
            answering: None,
        })),
        watch: Watch::new(&ctx.limits),
    });
    let stream = Rc::new(RefCell::new(stream));
    let io = rt::Io::new(Timed::new(stream.clone(), state.watch.clone()));
    let service = {
        let (shared, ctx, state) = (shared.clone(), ctx.clone(), state.clone());
        hyper::service::service_fn(move |req| {
            let (shared, ctx, state) = (shared.clone(), ctx.clone(), state.clone());
            async move { Ok::<_, Infallible>(serve(&shared, &ctx, &state, req).await) }
        })
    };
    let served = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .pipeline_flush(true)
        // The native engine's header case on the wire (`Content-Type`, ...).
        .title_case_headers(true)
        .max_headers(wire::MAX_HEADERS)
        .max_header_size(ctx.limits.max_header_bytes)
        // The time limits are `timed`'s: hyper's timer would need `Send + Sync`.
        .header_read_timeout(None)
        .serve_connection(io, service)
        .await;
    // hyper answers most heads it cannot parse itself (400, 431; empty body), but
    // some (a bad HTTP version) with nothing: those get the native engine's answer.
    let unanswered = state.watch.all_quiet();
    // Answers handed over but never written are over too.
    state.watch.settle(false);
    let last_word = match &served {
        Ok(()) => None,
        // A head that did not arrive in time: hyper answers nothing.
        Err(_) if state.watch.head_timed_out() => {
            Some(Response::error(408, "request not received in time"))
        }
        Err(e) => {
            tracing::debug!(error = %e, "HTTP connection ended");
            if e.is_parse() && !e.is_parse_version_h2() {
                let status = if e.is_parse_too_large() { 431 } else { 400 };
                if unanswered {
                    Some(Response::error(
                        status,
                        format!("malformed HTTP request: {e}"),
                    ))
                } else {
                    shared
                        .borrow_mut()
                        .metrics
                        .http("bad_request", status, Nanos::ZERO);
                    None
                }
            } else {
                None
            }
        }
    };
    // hyper has dropped its handle on the stream with the connection (its shutdown
    // only flushed: closing is ours, after the last word).
    if let Ok(stream) = Rc::try_unwrap(stream) {
        let mut stream = stream.into_inner();
        if let Some(r) = last_word {
            let t0 = now();
            let bytes = r.encode(false, false);
            let _ = wire::write_response(&mut stream, &bytes, LAST_WORD_TIMEOUT).await;
            shared
                .borrow_mut()
                .metrics
                .http("bad_request", r.status, now() - t0);
        }
        let _ = futures_lite::AsyncWriteExt::close(&mut stream).await;
    }
    let mut s = shared.borrow_mut();
    s.close_route(key);
    s.metrics.http_open = s.metrics.http_open.saturating_sub(1);
}

/// Answers one request: its body read under the limits, then `route`.
async fn serve(
    shared: &SharedRef,
    ctx: &Ctx,
    state: &ConnState,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let body_deadline = state.watch.serving();
    let t0 = now();
    let mut answering = None;
    let (endpoint, resp, close) = match read_request(req, &ctx.limits, body_deadline).await {
        // As on the native engine: a request that cannot be read is answered and
        // the connection closed.
        Err(resp) => ("bad_request", resp, true),
        Ok(req) => match state.conn.take() {
            Some(mut conn) => {
                let (endpoint, resp) = route(shared, ctx, &mut conn, &req).await;
                answering = conn.answering.take();
                state.conn.set(Some(conn));
                (endpoint, resp, false)
            }
            None => (
                "other",
                Response::error(500, "internal: the connection's state is in use"),
                true,
            ),
        },
    };
    // Counted, and the inference's log row written, once the answer is out (as on
    // the native engine; `written` is false when the connection ended first).
    let (on, key, status) = (shared.clone(), state.key, resp.status);
    state.watch.answered(Box::new(move |written| {
        let sent = now();
        let mut s = on.borrow_mut();
        if let Some((id, success, deadline)) = answering {
            s.http_answer_sent(key, id, success && written, deadline, sent);
        }
        s.metrics.http(endpoint, status, sent - t0);
    }));
    to_hyper(resp, close)
}

/// A header's value as text (surrounding whitespace trimmed), or a 400.
fn text<'a>(v: &'a HeaderValue, name: &str) -> Result<&'a str, Response> {
    std::str::from_utf8(v.as_bytes())
        .map(str::trim)
        .map_err(|_| Response::error(400, format!("header {name} is not UTF-8")))
}

/// The request as the front end's `route` takes it: the headers it reads, checked as
/// the native engine checks them, and the body, read whole within `deadline` and the
/// size limit.
async fn read_request(
    req: hyper::Request<Incoming>,
    limits: &HttpLimits,
    deadline: Instant,
) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let mut auths = h.get_all(header::AUTHORIZATION).iter();
    let authorization = match (auths.next(), auths.next()) {
        (Some(_), Some(_)) => {
            return Err(Response::error(400, "more than one Authorization header"))
        }
        (Some(v), None) => Some(text(v, "Authorization")?.to_owned()),
        (None, _) => None,
    };
    if let Some(v) = h.get(header::EXPECT) {
        let v = text(v, "Expect")?;
        if !v.eq_ignore_ascii_case("100-continue") {
            return Err(Response::error(417, format!("unsupported Expect: {v}")));
        }
    }
    let inference_header_len = match h.get("inference-header-content-length") {
        None => None,
        Some(v) => Some(
            text(v, "Inference-Header-Content-Length")?
                .parse()
                .map_err(|_| Response::error(400, "invalid Inference-Header-Content-Length"))?,
        ),
    };
    let max = limits.max_body_bytes;
    if let Some(n) = body.size_hint().exact() {
        if n > max as u64 {
            return Err(Response::error(
                413,
                format!("body of {n} bytes exceeds the limit of {max}"),
            ));
        }
    }
    // A body sent with `Expect: 100-continue` is asked for here (hyper sends the 100).
    let left = deadline.saturating_duration_since(Instant::now());
    let read = futures_lite::future::or(
        async { Some(Limited::new(body, max).collect().await) },
        async {
            clockwork_net::timer::sleep(left).await;
            None
        },
    )
    .await;
    let body = match read {
        None => return Err(Response::error(408, "request not received in time")),
        Some(Ok(collected)) => collected.to_bytes(),
        Some(Err(e)) if e.is::<LengthLimitError>() => {
            return Err(Response::error(
                413,
                format!("chunked body exceeds the limit of {max} bytes"),
            ))
        }
        Some(Err(e)) => {
            return Err(Response::error(
                400,
                format!("malformed HTTP request body: {e}"),
            ))
        }
    };
    Ok(Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        authorization,
        // hyper keeps the connection alive or not (the request's version and
        // `Connection` header, and our `Connection: close`).
        keep_alive: true,
        inference_header_len,
        body,
    })
}

/// The front end's answer as hyper's (`Date` and `Content-Length` are hyper's to add;
/// a `HEAD` answer's body is not sent).
fn to_hyper(r: Response, close: bool) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(Bytes::from(r.body)));
    *out.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = out.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static("clockwork-rs"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(r.content_type),
    );
    for (name, value) in r.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::try_from(value),
        ) {
            (Ok(n), Ok(v)) => {
                h.append(n, v);
            }
            _ => tracing::warn!(
                header = name,
                "an answer header is not valid HTTP; left out"
            ),
        }
    }
    if close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    out
}
