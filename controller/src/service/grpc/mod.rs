//! The gRPC front end: the Open Inference Protocol's `inference.GRPCInferenceService`
//! (KServe v2, as Triton serves it), so that `tritonclient[grpc]` works unmodified.
//!
//! It runs on the controller's executor like the HTTP front end, with no tokio
//! runtime: hyper's HTTP/2 server drives each connection through hyper's runtime
//! traits implemented for glommio (`rt`); every call is one HTTP/2 stream, spawned on
//! the same executor, so a connection carries many calls at once. A call's one
//! message is unframed (`framing`), decoded (`messages`, `prost`), and answered by
//! the HTTP front end's logic through `http::bridge` (`service`; inference requests
//! are translated to the REST body by `infer`), so both front ends check, admit,
//! count and log alike. With an API token (`--api-token`) every call but `ServerLive`
//! and `ServerReady` needs it (or the admin token) as `authorization: Bearer TOKEN`
//! metadata; admin calls (repository load and unload) need the admin token, as over
//! HTTP. See `docs/grpc.md`.
//!
//! Public: the protobuf messages ([`messages`]) and hyper's runtime on glommio
//! ([`rt`]), so that a Rust client (`clockwork-bench http`) speaks the same schema
//! over the same adapter; serving stays private.

mod framing;
mod idle;
mod infer;
pub mod messages;
pub mod rt;
mod service;

use super::auth::ApiAuth;
use super::http::bridge::Bridge;
use super::{now, SharedRef};
use super::{AdminAccess, HttpLimits};
use clockwork_net::tls::{self, TlsAcceptor};
use framing::{Code, GrpcBody, Status};
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::{TcpListener, TcpStream};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use idle::Activity;
use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

/// Most calls in flight on one connection (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`).
const MAX_STREAMS: u32 = 1024;

/// How long an idle connection told to go away (GOAWAY) may take to close before it
/// is dropped (a peer that never sent its preface never finishes hyper's handshake).
const LAST_WORD_TIMEOUT: Duration = Duration::from_secs(1);

/// What every connection shares.
struct Ctx {
    bridge: Bridge,
    open: Cell<usize>,
}

/// Accepts gRPC connections until the task is dropped. The HTTP front end's limits
/// apply: `max_body_bytes` bounds a message, `max_connections` the connections,
/// `request_timeout` how long a request's message may take to arrive, and
/// `idle_timeout` how long a connection may go without a call (`idle`).
pub(super) async fn accept_task(
    shared: SharedRef,
    listener: TcpListener,
    limits: HttpLimits,
    admin: AdminAccess,
    api: ApiAuth,
    tls: Option<TlsAcceptor>,
) {
    let ctx = Rc::new(Ctx {
        bridge: Bridge::new(limits, admin, api),
        open: Cell::new(0),
    });
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "gRPC accept failed");
                clockwork_net::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if ctx.open.get() >= ctx.bridge.limits().max_connections {
            tracing::debug!("gRPC connection refused: too many connections");
            drop(stream);
            continue;
        }
        ctx.open.set(ctx.open.get() + 1);
        let _ = stream.set_nodelay(true);
        match &tls {
            Some(acceptor) => {
                let task = tls_connection(shared.clone(), stream, ctx.clone(), acceptor.clone());
                glommio::spawn_local(task).detach();
            }
            None => {
                glommio::spawn_local(connection(shared.clone(), stream, ctx.clone())).detach();
            }
        }
    }
}

/// A connection on a TLS port: the handshake (within the request timeout), then
/// gRPC as on a plain port. A failed handshake closes the connection and is counted.
async fn tls_connection(shared: SharedRef, stream: TcpStream, ctx: Rc<Ctx>, acceptor: TlsAcceptor) {
    let timeout = ctx.bridge.limits().request_timeout;
    match tls::accept(&acceptor, stream, timeout).await {
        Ok(stream) => connection(shared, stream, ctx).await,
        Err(e) => {
            tracing::debug!(error = %e, "TLS handshake failed; closing the gRPC connection");
            shared.borrow_mut().metrics.tls_failed("grpc");
            ctx.open.set(ctx.open.get().saturating_sub(1));
        }
    }
}

async fn connection<S>(shared: SharedRef, stream: S, ctx: Rc<Ctx>)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let max_frame = ctx
        .bridge
        .limits()
        .max_body_bytes
        .clamp(16 * 1024, 16 * 1024 * 1024 - 1);
    let activity = Rc::new(Activity::new(ctx.bridge.limits()));
    let service = {
        let ctx = ctx.clone();
        let activity = activity.clone();
        hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            let ctx = ctx.clone();
            let activity = activity.clone();
            async move {
                let _call = activity.call();
                Ok::<_, Infallible>(handle(&shared, &ctx, req).await)
            }
        })
    };
    let mut builder = hyper::server::conn::http2::Builder::new(rt::LocalExec);
    builder
        .max_concurrent_streams(MAX_STREAMS)
        .max_frame_size(u32::try_from(max_frame).unwrap_or(16 * 1024));
    if let Some(every) = ctx.bridge.limits().grpc_keepalive {
        builder
            .timer(rt::LocalTimer)
            .keep_alive_interval(every)
            .keep_alive_timeout(every);
    }
    let conn = builder.serve_connection(rt::Io::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let served = futures_lite::future::or(async { Some(conn.as_mut().await) }, async {
        activity.expired().await;
        None
    })
    .await;
    let served = match served {
        Some(served) => served,
        None => {
            tracing::debug!("gRPC connection idle too long; closing it");
            conn.as_mut().graceful_shutdown();
            let last_word = async {
                clockwork_net::timer::sleep(LAST_WORD_TIMEOUT).await;
                Ok(())
            };
            futures_lite::future::or(conn.as_mut(), last_word).await
        }
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "gRPC connection ended");
    }
    ctx.open.set(ctx.open.get().saturating_sub(1));
}

/// Answers one call: exactly one response, with a status, whatever the request.
async fn handle(
    shared: &SharedRef,
    ctx: &Ctx,
    req: hyper::Request<Incoming>,
) -> hyper::Response<GrpcBody> {
    let t0 = now();
    let endpoint = service::endpoint(req.uri().path());
    let result = answer(shared, ctx, req).await;
    let (code, body) = match result {
        Ok(message) => (Code::Ok, GrpcBody::ok(&message)),
        Err(status) => {
            tracing::debug!(code = ?status.code, message = %status.message, "gRPC call failed");
            (status.code, GrpcBody::error(&status))
        }
    };
    service::count(shared, endpoint, code, t0);
    service::response(body)
}

async fn answer(
    shared: &SharedRef,
    ctx: &Ctx,
    req: hyper::Request<Incoming>,
) -> Result<Vec<u8>, Status> {
    let grpc = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/grpc"));
    if req.method() != hyper::Method::POST || !grpc {
        return Err(Status::new(
            Code::InvalidArgument,
            "gRPC calls are POST requests with content-type application/grpc",
        ));
    }
    let meta = service::CallMeta::of(req.headers())?;
    let path = req.uri().path().to_owned();
    let limits = ctx.bridge.limits();
    let max = limits.max_body_bytes;
    // The message and its 5-byte prefix, read within the request timeout.
    let limited = http_body_util::Limited::new(req.into_body(), max.saturating_add(5));
    let body = futures_lite::future::or(
        async {
            limited
                .collect()
                .await
                .map(|c| Some(c.to_bytes()))
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        Status::new(
                            Code::ResourceExhausted,
                            format!("message exceeds the limit of {max} bytes"),
                        )
                    } else {
                        Status::new(Code::InvalidArgument, format!("request body: {e}"))
                    }
                })
        },
        async {
            clockwork_net::timer::sleep(limits.request_timeout).await;
            Ok(None)
        },
    )
    .await?
    .ok_or_else(|| {
        Status::new(
            Code::DeadlineExceeded,
            "request message not received in time",
        )
    })?;
    let message = body.slice_ref(framing::unframe(&body, max)?);
    service::call(shared, &ctx.bridge, &path, meta, &message).await
}
