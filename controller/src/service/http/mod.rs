//! The HTTP front end: the Open Inference Protocol (KServe v2 REST) with the model
//! repository and binary tensor extensions, and Prometheus metrics.
//!
//! It runs on the controller's executor, beside the native client port. Each HTTP
//! connection is one task; it only decodes its inference requests and hands them to
//! the service's one request path (`Shared::submit`, which native clients use too)
//! under a [`ClientKey`] the connection owns (its route sits in `Shared::routes`), so
//! admission, input checks, accounting and logs are shared. HTTP/1.1 answers in order,
//! so a connection has at most one inference outstanding and the answer is matched by
//! request id. See `docs/http.md` for the endpoints.
//!
//! Two engines speak HTTP/1.1 ([`HttpEngine`]): the front end's own (`wire`, the
//! default) and hyper's (`hyper_engine`); both answer through the same `route`.
//!
//! The admin endpoints (load, unload) are guarded (`admin`); what callers may ask
//! for is bounded (`bounds`); registrations made here can outlive a restart
//! (`state`).

mod admin;
mod answer;
mod bounds;
pub(super) mod bridge;
mod hyper_engine;
pub(crate) mod metrics;
mod oip;
pub(crate) mod state;
mod tensors;
mod timed;
mod wire;

pub use admin::{AdminAccess, AdminTokenError};
pub use bounds::DEFAULT_MAX_SLO;
pub use state::STATE_FILE;

use super::auth::ApiAuth;
use super::path::{Answered, Route};
use super::repository::RepositoryLoadError;
use super::{now, Shared, SharedRef};
use clockwork_core::{
    ClientStatus, InferRequest, InferResponse, ModelId, Nanos, RequestId, Slo, TensorSpec,
};
use clockwork_net::tls::{self, TlsAcceptor};
use clockwork_scheduler::ClientKey;
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::{TcpListener, TcpStream};
use metrics::Call;
use serde_json::{json, Value};
use std::rc::Rc;
use std::time::Duration;
use wire::{ReadError, Request, Response};

/// Limits of the HTTP front end.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Largest request body (after chunked decoding), bytes. Larger: 413.
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers), bytes. Larger: 431.
    pub max_header_bytes: usize,
    /// Open connections at most; further ones get 503 and are closed.
    pub max_connections: usize,
    /// A keep-alive connection with no new request for this long is closed.
    pub idle_timeout: Duration,
    /// A request must arrive completely within this from its first byte (else 408).
    pub request_timeout: Duration,
    /// A response must be written within this (else the connection is closed).
    pub write_timeout: Duration,
    /// The longest SLO an inference request may ask for (else 400).
    pub max_slo: Duration,
    /// gRPC: after this long without a frame from the peer, send an HTTP/2 PING, and
    /// close the connection when it is not answered within as long again (a dead peer
    /// with a call in progress). `None`: no pings.
    pub grpc_keepalive: Option<Duration>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_header_bytes: 16 * 1024,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_slo: DEFAULT_MAX_SLO,
            grpc_keepalive: Some(Duration::from_secs(30)),
        }
    }
}

/// Which HTTP/1.1 implementation serves the HTTP port (`--http-engine`); both route
/// every request to the same endpoint logic. See `docs/http.md`, "HTTP engines".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpEngine {
    /// The front end's own HTTP/1.1 over `httparse` (`wire`): the default.
    #[default]
    Native,
    /// hyper's HTTP/1.1 server, on the controller's executor: within 1.2x of the
    /// native engine's latency, but about 22 KB per held connection against the
    /// native engine's 4 KB (docs/http.md, "HTTP engines").
    Hyper,
}

impl std::str::FromStr for HttpEngine {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "native" => Ok(Self::Native),
            "hyper" => Ok(Self::Hyper),
            _ => Err(format!("unknown HTTP engine {s:?}: use native or hyper")),
        }
    }
}

impl std::fmt::Display for HttpEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Hyper => "hyper",
        })
    }
}

/// Seconds a client is told to wait in `Retry-After` (429 and 503).
const RETRY_AFTER: &str = "1";
/// Extra time, beyond a request's SLO, before the front end stops waiting for the
/// scheduler's answer (which always comes by the deadline) and answers 504.
const ANSWER_GRACE: Duration = Duration::from_secs(2);

/// What every connection needs to know: its limits and who may use the admin
/// endpoints and the others.
struct Ctx {
    limits: HttpLimits,
    admin: AdminAccess,
    api: ApiAuth,
    /// Whether `/metrics` needs the API token too (else it stays open).
    metrics_need_token: bool,
    /// Which engine serves the connections.
    engine: HttpEngine,
}

/// Keep-alive connections keep their read buffer between requests; one that grew
/// past this (a large body) is given back down to it.
const KEPT_BUFFER: usize = 64 * 1024;

/// Accepts HTTP connections until the task is dropped; with `tls`, each one must
/// complete a TLS handshake first.
#[allow(clippy::too_many_arguments)]
pub(super) async fn accept_task(
    shared: SharedRef,
    listener: TcpListener,
    limits: HttpLimits,
    admin: AdminAccess,
    api: ApiAuth,
    metrics_need_token: bool,
    tls: Option<TlsAcceptor>,
    engine: HttpEngine,
) {
    let ctx = Rc::new(Ctx {
        limits,
        admin,
        api,
        metrics_need_token,
        engine,
    });
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                clockwork_net::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let full = {
            let mut s = shared.borrow_mut();
            let full = s.metrics.http_open >= ctx.limits.max_connections as u64;
            if full {
                s.metrics.http_refused += 1;
            } else {
                s.metrics.http_open += 1;
                s.metrics.http_accepted += 1;
            }
            full
        };
        match (&tls, full) {
            (Some(acceptor), _) => {
                let task =
                    tls_connection(shared.clone(), stream, ctx.clone(), acceptor.clone(), full);
                glommio::spawn_local(task).detach();
            }
            (None, true) => {
                glommio::spawn_local(refuse(stream)).detach();
            }
            (None, false) => {
                glommio::spawn_local(serve_connection(shared.clone(), stream, ctx.clone()))
                    .detach();
            }
        }
    }
}

/// How long a connection refused at the limit may take to hear why.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(1);

async fn refuse(mut stream: impl wire::Stream) {
    let r = Response::error(503, "too many connections").with("Retry-After", RETRY_AFTER);
    let _ = wire::write_response(&mut stream, &r.encode(false, false), REFUSE_TIMEOUT).await;
}

/// A connection on a TLS port: the handshake (within the request timeout), then HTTP
/// as on a plain port (or the refusal, when `full`). A failed handshake closes the
/// connection and is counted.
async fn tls_connection(
    shared: SharedRef,
    stream: TcpStream,
    ctx: Rc<Ctx>,
    acceptor: TlsAcceptor,
    full: bool,
) {
    let timeout = if full {
        REFUSE_TIMEOUT
    } else {
        ctx.limits.request_timeout
    };
    match tls::accept(&acceptor, stream, timeout).await {
        Ok(stream) if full => refuse(stream).await,
        Ok(stream) => serve_connection(shared, stream, ctx).await,
        Err(e) => {
            tracing::debug!(error = %e, "TLS handshake failed; closing the HTTP connection");
            let mut s = shared.borrow_mut();
            s.metrics.tls_failed("http");
            if !full {
                s.metrics.http_open = s.metrics.http_open.saturating_sub(1);
            }
        }
    }
}

/// Serves an accepted connection (plain or TLS) with the configured engine.
async fn serve_connection(shared: SharedRef, stream: impl wire::Stream + 'static, ctx: Rc<Ctx>) {
    match ctx.engine {
        HttpEngine::Native => connection(shared, stream, ctx).await,
        HttpEngine::Hyper => hyper_engine::connection(shared, stream, ctx).await,
    }
}

/// One HTTP connection's inference state.
struct Conn {
    key: ClientKey,
    answers: LocalReceiver<Answered>,
    next_id: u64,
    /// The inference whose answer is being written: its id, whether it succeeded,
    /// and its deadline (arrival + SLO, as the front end resolved it).
    answering: Option<(RequestId, bool, Nanos)>,
}

async fn connection(shared: SharedRef, mut stream: impl wire::Stream, ctx: Rc<Ctx>) {
    let limits = &ctx.limits;
    let (tx, answers) = local_channel::new_unbounded::<Answered>();
    let key = shared.borrow_mut().open_route(Route::Http(tx));
    let mut conn = Conn {
        key,
        answers,
        next_id: 0,
        answering: None,
    };
    let mut buf = Vec::new();
    let mut served = 0u64;
    loop {
        if buf.capacity() > KEPT_BUFFER && buf.len() <= KEPT_BUFFER {
            buf.shrink_to(KEPT_BUFFER);
        }
        let req = match wire::read_request(&mut stream, &mut buf, limits, served == 0).await {
            Ok(r) => r,
            Err(e) => {
                let answer = match e {
                    ReadError::Bad { status, message } => Some(Response::error(status, message)),
                    ReadError::Timeout => {
                        Some(Response::error(408, "request not received in time"))
                    }
                    ReadError::Io(e) => {
                        tracing::debug!(error = %e, "HTTP connection failed");
                        None
                    }
                    ReadError::Closed | ReadError::Idle => None,
                };
                if let Some(r) = answer {
                    tracing::debug!(
                        status = r.status,
                        "bad HTTP request; closing the connection"
                    );
                    let t0 = now();
                    let _ = wire::write_response(
                        &mut stream,
                        &r.encode(false, false),
                        limits.write_timeout,
                    )
                    .await;
                    shared
                        .borrow_mut()
                        .metrics
                        .http("bad_request", r.status, now() - t0);
                }
                break;
            }
        };
        let t0 = now();
        let (endpoint, resp) = route(&shared, &ctx, &mut conn, &req).await;
        let keep = req.keep_alive;
        let bytes = resp.encode(keep, req.method == "HEAD");
        let status = resp.status;
        drop(resp);
        let written = wire::write_response(&mut stream, &bytes, limits.write_timeout).await;
        drop(bytes);
        {
            let sent = now();
            let mut s = shared.borrow_mut();
            if let Some((id, success, deadline)) = conn.answering.take() {
                // Written or not, the answer is over: its log row goes out now.
                let success = success && written.is_ok();
                s.http_answer_sent(key, id, success, deadline, sent);
            }
            s.metrics.http(endpoint, status, sent - t0);
        }
        served += 1;
        if written.is_err() || !keep {
            break;
        }
    }
    {
        let mut s = shared.borrow_mut();
        s.close_route(key);
        s.metrics.http_open = s.metrics.http_open.saturating_sub(1);
    }
    let _ = futures_lite::AsyncWriteExt::close(&mut stream).await;
}

fn method_not_allowed(allow: &'static str) -> Response {
    Response::error(405, format!("method not allowed; use {allow}")).with("Allow", allow)
}

/// Dispatches one request: returns the endpoint label (for metrics) and the answer.
async fn route(
    shared: &SharedRef,
    ctx: &Ctx,
    conn: &mut Conn,
    req: &Request,
) -> (&'static str, Response) {
    let path = req.path.trim_matches('/');
    let segs: Vec<&str> = path.split('/').collect();
    let get = req.method == "GET" || req.method == "HEAD";
    let post = req.method == "POST";
    // The optional `/versions/{v}` segment: every model has the one version "1".
    let version_ok = |v: &str| v == "1";
    // Health probes stay open; `/metrics` too unless asked otherwise.
    let open = match segs.as_slice() {
        ["v2", "health", "live" | "ready"] => true,
        ["metrics"] => !ctx.metrics_need_token,
        _ => false,
    };
    if !open {
        if let Err(refusal) = ctx.api.check(req.authorization.as_deref()) {
            shared
                .borrow_mut()
                .metrics
                .auth_refused("http", refusal.label());
            let r = Response::error(401, refusal.message()).with("WWW-Authenticate", "Bearer");
            return ("unauthorized", r);
        }
    }
    match segs.as_slice() {
        ["v2", "health", "live"] => (
            "health_live",
            if get {
                Response::json(200, &json!({ "live": true }))
            } else {
                method_not_allowed("GET")
            },
        ),
        ["v2", "health", "ready"] => ("health_ready", {
            if get {
                server_ready(&shared.borrow())
            } else {
                method_not_allowed("GET")
            }
        }),
        ["v2"] => (
            "server_metadata",
            if get {
                Response::json(
                    200,
                    &json!({
                        "name": "clockwork-rs",
                        "version": env!("CARGO_PKG_VERSION"),
                        "extensions": ["model_repository", "binary_tensor_data", "schedule_policy", "statistics"],
                    }),
                )
            } else {
                method_not_allowed("GET")
            },
        ),
        ["v2", "models", "stats"]
        | ["v2", "models", _, "stats"]
        | ["v2", "models", _, "versions", "1", "stats"] => (
            "model_statistics",
            if get {
                let model = segs.get(2).filter(|_| segs.len() > 3);
                statistics(&shared.borrow(), model.copied())
            } else {
                method_not_allowed("GET")
            },
        ),
        ["v2", "models", m] | ["v2", "models", m, "versions", "1"] => (
            "model_metadata",
            if get {
                model_metadata(&shared.borrow(), m)
            } else {
                method_not_allowed("GET")
            },
        ),
        ["v2", "models", m, "ready"] | ["v2", "models", m, "versions", "1", "ready"] => (
            "model_ready",
            if get {
                model_ready(&shared.borrow(), m)
            } else {
                method_not_allowed("GET")
            },
        ),
        ["v2", "models", m, "infer"] | ["v2", "models", m, "versions", "1", "infer"] => (
            "infer",
            if post {
                infer(shared, ctx, conn, m, req).await
            } else {
                method_not_allowed("POST")
            },
        ),
        ["v2", "models", m, "versions", v, ..] if !version_ok(v) => (
            "other",
            Response::error(
                404,
                format!("model {m} has no version {v}; its only version is 1"),
            ),
        ),
        ["v2", "repository", "index"] => (
            "repository_index",
            if post {
                repository_index(shared, &req.query, &req.body).await
            } else {
                method_not_allowed("POST")
            },
        ),
        ["v2", "repository", "models", m, "load"] => (
            "repository_load",
            if !post {
                method_not_allowed("POST")
            } else if let Err(refusal) = ctx.admin.check(req) {
                refusal
            } else {
                repository_load(&mut shared.borrow_mut(), m, &req.body)
            },
        ),
        ["v2", "repository", "models", m, "unload"] => (
            "repository_unload",
            if !post {
                method_not_allowed("POST")
            } else if let Err(refusal) = ctx.admin.check(req) {
                refusal
            } else {
                repository_unload(&mut shared.borrow_mut(), m, &req.body)
            },
        ),
        ["metrics"] => (
            "metrics",
            if get {
                let s = shared.borrow();
                let text = s.metrics.render(&s.sched, s.workers.len(), now());
                Response {
                    status: 200,
                    content_type: "text/plain; version=0.0.4; charset=utf-8",
                    headers: Vec::new(),
                    body: text.into_bytes(),
                }
            } else {
                method_not_allowed("GET")
            },
        ),
        _ => (
            "other",
            Response::error(404, format!("no endpoint {} {}", req.method, req.path)),
        ),
    }
}

fn server_ready(s: &Shared) -> Response {
    if s.sched.live_gpus() > 0 {
        Response::json(200, &json!({ "ready": true }))
    } else {
        Response::json(503, &json!({ "ready": false, "error": "no GPU connected" }))
            .with("Retry-After", RETRY_AFTER)
    }
}

/// A model addressed by name, not retired.
struct Resolved {
    id: ModelId,
    name: String,
}

fn resolve(s: &Shared, name: &str) -> Result<Resolved, Response> {
    let unknown = || Response::error(404, format!("unknown model {name}"));
    if let Some(id) = s.repository.as_ref().and_then(|r| r.route(name, &s.sched)) {
        return Ok(Resolved {
            id,
            name: name.to_owned(),
        });
    }
    let (net, id) = oip::parse_instance(name).ok_or_else(unknown)?;
    let model = ModelId(id);
    let p = s.sched.model_profile(model).ok_or_else(unknown)?;
    if net.is_some_and(|n| n != p.name) || s.sched.is_retired(model) {
        return Err(unknown());
    }
    Ok(Resolved {
        id: model,
        name: oip::instance_name(&p.name, model),
    })
}

/// The statistics extension: one model's statistics (`Some(name)`), or those of every
/// instance that has answered a request (`None`).
fn statistics(s: &Shared, model: Option<&str>) -> Response {
    let models = match model {
        Some(name) => match resolve(s, name) {
            Ok(m) => vec![s.inference_stats.model(m.id, m.name)],
            Err(r) => return r,
        },
        None => s
            .inference_stats
            .seen()
            .filter(|&m| !s.sched.is_retired(m))
            .filter_map(|m| {
                let p = s.sched.model_profile(m)?;
                let name = s
                    .repository
                    .as_ref()
                    .and_then(|r| r.bare_name(m))
                    .map_or_else(|| oip::instance_name(&p.name, m), str::to_owned);
                Some(s.inference_stats.model(m, name))
            })
            .collect(),
    };
    Response::json(200, &super::stats::to_json(&models))
}

fn model_metadata(s: &Shared, name: &str) -> Response {
    let m = match resolve(s, name) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(p) = s.sched.model_profile(m.id) else {
        return Response::error(404, format!("unknown model {name}"));
    };
    let replicas: Vec<Value> = s
        .sched
        .replicas(m.id)
        .into_iter()
        .map(|(w, g, ready)| json!({ "worker": w.0, "gpu": g.0, "ready": ready }))
        .collect();
    // A real model has its tensors; an emulated one opaque bytes in and out.
    let (inputs, outputs) = if p.inputs.is_empty() {
        (
            json!([{ "name": oip::INPUT_NAME, "datatype": "UINT8", "shape": [p.input_bytes] }]),
            json!([{ "name": oip::OUTPUT_NAME, "datatype": "UINT8", "shape": [p.output_bytes] }]),
        )
    } else {
        (tensors::metadata(&p.inputs), tensors::metadata(&p.outputs))
    };
    Response::json(
        200,
        &json!({
            "name": m.name,
            "versions": ["1"],
            "platform": "clockwork",
            "inputs": inputs,
            "outputs": outputs,
            "clockwork": {
                "id": m.id.0,
                "network": p.name,
                "max_batch": p.max_batch(),
                "profile": oip::profile_json(p),
                "replicas": replicas,
                "queued": s.sched.queued(m.id),
            },
        }),
    )
}

fn model_ready(s: &Shared, name: &str) -> Response {
    let m = match resolve(s, name) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if s.sched.live_gpus() > 0 {
        Response::json(200, &json!({ "name": m.name, "ready": true }))
    } else {
        Response::json(
            503,
            &json!({ "name": m.name, "ready": false, "error": "no GPU connected" }),
        )
        .with("Retry-After", RETRY_AFTER)
    }
}

/// How long to wait for the scheduler's answer: the request's SLO plus a grace.
fn answer_limit(s: &Shared, model: ModelId, slo: Slo) -> Duration {
    let slo = match slo {
        Slo::Default => s.sched.config().default_slo,
        Slo::Absolute(n) => n,
        Slo::Factor(f) => {
            let b1 = s
                .sched
                .model_profile(model)
                .and_then(|p| p.exec_time(1))
                .unwrap_or(Nanos::from_millis(100));
            // Estimates can drift from the profile: allow a wide margin.
            Nanos((b1.get() as f64 * f64::from(f) * 4.0).min(3.6e12) as u64)
        }
    };
    Duration::from(slo) + ANSWER_GRACE
}

/// Decodes an inference request, submits it on the service's one request path and
/// waits for its answer.
async fn infer(
    shared: &SharedRef,
    ctx: &Ctx,
    conn: &mut Conn,
    name: &str,
    req: &Request,
) -> Response {
    let model = match resolve(&shared.borrow(), name) {
        Ok(m) => m,
        Err(r) => return r,
    };
    // A real model's request is checked against its tensors here, before it is
    // queued; an emulated model's input is opaque bytes (the scheduler checks its size).
    let (signature, model_slo, b1, default_slo) = {
        let s = shared.borrow();
        let p = s.sched.model_profile(model.id);
        let signature = p
            .filter(|p| !p.inputs.is_empty())
            .map(|p| (p.inputs.clone(), p.outputs.clone()));
        let model_slo = p.and_then(|p| s.repository.as_ref()?.default_slo(&p.name));
        let b1 = p.and_then(|p| p.exec_time(1)).unwrap_or(Nanos::ZERO);
        (signature, model_slo, b1, s.sched.config().default_slo)
    };
    let (client_id, slo, input, render) = match signature {
        None => match oip::parse_infer(&req.body, req.inference_header_len) {
            Ok(b) => (
                b.id,
                b.slo,
                b.input,
                Render::Opaque {
                    binary: b.binary_output,
                },
            ),
            Err(e) => return Response::error(400, e),
        },
        Some((inputs, outputs)) => {
            match tensors::parse_typed(&req.body, req.inference_header_len, &inputs, &outputs) {
                Ok(b) => (
                    b.id,
                    b.slo,
                    b.input,
                    Render::Typed {
                        outputs,
                        choices: b.outputs,
                    },
                ),
                Err(e) => return Response::error(400, e),
            }
        }
    };
    // A repository model's config sets its default SLO.
    let slo = match (slo, model_slo) {
        (Slo::Default, Some(n)) => Slo::Absolute(n),
        (slo, _) => slo,
    };
    let resolved = match bounds::check_slo(slo, default_slo, b1, ctx.limits.max_slo) {
        Ok(n) => n,
        Err(e) => return Response::error(400, e),
    };
    conn.next_id += 1;
    let id = RequestId(conn.next_id);
    let (limit, deadline) = {
        let mut s = shared.borrow_mut();
        let request = InferRequest {
            id,
            model: model.id,
            slo,
            input,
        };
        let arrival = now();
        s.submit(conn.key, request);
        (answer_limit(&s, model.id, slo), arrival + resolved)
    };
    let answer = futures_lite::future::or(
        async {
            while let Some(a) = conn.answers.recv().await {
                // Others are answers to earlier requests this connection gave up on.
                if a.response.id == id {
                    return Some(a);
                }
            }
            None
        },
        async {
            clockwork_net::timer::sleep(limit).await;
            None
        },
    )
    .await;
    match answer {
        Some(a) => {
            let success = a.response.status == ClientStatus::Success;
            conn.answering = Some((id, success, deadline));
            infer_answer(&model.name, client_id.as_deref(), &render, &a)
        }
        None => Response::error(504, "internal: no answer from the scheduler in time"),
    }
}

/// The HTTP status for a scheduler answer, whether to send `Retry-After`, and a
/// message with a stable prefix: all from `clockwork_core`'s one status table.
fn http_status(s: ClientStatus) -> (u16, bool, &'static str) {
    (s.http_status(), s.retry_after(), s.reason())
}

/// How a successful answer's outputs are rendered.
enum Render {
    /// One opaque `UINT8` output (a model without a tensor signature).
    Opaque {
        /// Through the binary tensor extension.
        binary: bool,
    },
    /// The model's outputs, as asked.
    Typed {
        outputs: Vec<TensorSpec>,
        choices: Vec<tensors::OutputChoice>,
    },
}

fn infer_answer(model_name: &str, id: Option<&str>, render: &Render, a: &Answered) -> Response {
    let r: &InferResponse = &a.response;
    let (code, retry, message) = http_status(r.status);
    if code != 200 {
        // What was invalid is the scheduler's to say (the SLO, the input's size).
        let error = if r.status == ClientStatus::InvalidRequest {
            format!("{message}: {}", r.message)
        } else {
            message.to_owned()
        };
        let mut body = json!({
            "error": error,
            "clockwork_status": r.status.to_string(),
        });
        if let Some(id) = id {
            body["id"] = json!(id);
        }
        let resp = Response::json(code, &body);
        return if retry {
            resp.with("Retry-After", RETRY_AFTER)
        } else {
            resp
        };
    }
    let answer = oip::InferAnswer {
        model_name,
        id,
        batch_size: r.batch_size,
        controller_latency: r.controller_latency,
        output: &r.output,
        emulated: a.emulated,
        binary: matches!(render, Render::Opaque { binary: true }),
    };
    let (v, tail, binary) = match render {
        Render::Opaque { binary } => {
            let (v, tail) = answer.encode();
            (v, tail, *binary)
        }
        Render::Typed { outputs, choices } => {
            match tensors::render_outputs(outputs, choices, &r.output) {
                Ok((entries, tail)) => (
                    answer.envelope(entries),
                    tail,
                    choices.iter().any(|c| c.binary),
                ),
                Err(e) => return Response::error(500, format!("internal: {e}")),
            }
        }
    };
    if binary {
        let mut body = serde_json::to_vec(&v).unwrap_or_default();
        let json_len = body.len();
        body.extend_from_slice(&tail);
        Response {
            status: 200,
            content_type: "application/octet-stream",
            headers: vec![("Inference-Header-Content-Length", json_len.to_string())],
            body,
        }
    } else {
        Response::json(200, &v)
    }
}

/// Entries per page of the repository index, and the most a caller may ask for: a
/// page is built on the scheduler's thread, so it must stay small (about 1,000
/// entries: a few ms). A whole index is built a page at a time.
const INDEX_PAGE: usize = 1_000;

/// The header of a repository index page that says where the next page starts.
const NEXT_OFFSET_HEADER: &str = "X-Clockwork-Next-Offset";

/// What a repository index request asks for.
struct IndexQuery {
    offset: usize,
    /// One page of at most this many entries; `None`: the whole index from `offset`.
    limit: Option<usize>,
    only_ready: bool,
}

/// `offset` and `limit` from a query string (`offset=2000&limit=500`), and `ready`
/// from the JSON body.
fn index_query(query: &str, body: &[u8]) -> Result<IndexQuery, String> {
    let (mut offset, mut limit) = (0, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let n = || {
            v.parse::<usize>().map_err(|_| {
                format!("query parameter {k} must be a non-negative integer, got {v:?}")
            })
        };
        match k {
            "offset" => offset = n()?,
            "limit" => {
                let l = n()?;
                if !(1..=INDEX_PAGE).contains(&l) {
                    return Err(format!(
                        "query parameter limit must be in 1..={INDEX_PAGE} (the page bound), got {l}"
                    ));
                }
                limit = Some(l);
            }
            _ => {}
        }
    }
    let only_ready = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => v.get("ready").and_then(Value::as_bool).unwrap_or(false),
            Err(e) => return Err(format!("malformed JSON: {e}")),
        }
    };
    Ok(IndexQuery {
        offset,
        limit,
        only_ready,
    })
}

/// `POST /v2/repository/index`: with `limit`, one page (`X-Clockwork-Total` says how
/// many entries there are in all, `X-Clockwork-Next-Offset` where the next page
/// starts, absent on the last page); without, the whole index from `offset`, as
/// Triton's clients expect it.
async fn repository_index(shared: &SharedRef, query: &str, body: &[u8]) -> Response {
    let q = match index_query(query, body) {
        Ok(q) => q,
        Err(e) => return Response::error(400, e),
    };
    let Some(limit) = q.limit else {
        // The JSON array's text, a page at a time (no tree of the whole index).
        let mut text = b"[".to_vec();
        let total = whole_index(shared, q.offset, q.only_ready, |page| {
            for entry in page {
                if text.len() > 1 {
                    text.push(b',');
                }
                // Writing a `Value` to a Vec cannot fail.
                let _ = serde_json::to_writer(&mut text, &entry);
            }
        })
        .await;
        text.push(b']');
        return Response {
            status: 200,
            content_type: "application/json",
            headers: vec![("X-Clockwork-Total", total.to_string())],
            body: text,
        };
    };
    let page = index_page(&shared.borrow(), q.offset, limit, q.only_ready);
    let resp = Response::json(200, &Value::Array(page.entries))
        .with("X-Clockwork-Total", page.total.to_string());
    match page.next {
        Some(next) => resp.with(NEXT_OFFSET_HEADER, next.to_string()),
        None => resp,
    }
}

/// The whole repository index from `offset`, handed to `each_page` a page at a time;
/// the executor is let go between pages, so that a long index does not hold up the
/// requests being scheduled. Returns how many entries there are in all.
pub(super) async fn whole_index(
    shared: &SharedRef,
    mut offset: usize,
    only_ready: bool,
    mut each_page: impl FnMut(Vec<Value>),
) -> usize {
    loop {
        let page = index_page(&shared.borrow(), offset, INDEX_PAGE, only_ready);
        each_page(page.entries);
        match page.next {
            // Offsets only grow, so the loop ends.
            Some(n) if n > offset => offset = n,
            _ => return page.total,
        }
        futures_lite::future::yield_now().await;
    }
}

/// One page of the repository index.
struct IndexPage {
    entries: Vec<Value>,
    /// Entries in the whole index.
    total: usize,
    /// Where the next page starts; `None` on the last.
    next: Option<usize>,
}

/// Up to `limit` entries of the repository index from `offset`: the instances (in id
/// order), then the repository entries that are not registered.
fn index_page(s: &Shared, offset: usize, limit: usize, only_ready: bool) -> IndexPage {
    let gpus = s.sched.live_gpus() > 0;
    // Which instances are listed: cheap to decide, so counting them all is too.
    let listed = |m: &ModelId| {
        s.sched.model_profile(*m).is_some() && (!only_ready || (gpus && !s.sched.is_retired(*m)))
    };
    let instances = (0..s.sched.model_count()).map(ModelId).filter(listed);
    let instance_count = if only_ready {
        instances.clone().count()
    } else {
        (0..s.sched.model_count())
            .filter(|&i| s.sched.model_profile(ModelId(i)).is_some())
            .count()
    };
    let mut out = Vec::new();
    for m in instances.skip(offset).take(limit) {
        let Some(p) = s.sched.model_profile(m) else {
            continue;
        };
        let retired = s.sched.is_retired(m);
        let (state, reason) = if retired {
            ("UNAVAILABLE", "unloaded")
        } else if !gpus {
            ("UNAVAILABLE", "no GPU connected")
        } else {
            ("READY", "")
        };
        let replicas = s.sched.replicas(m);
        let resident = replicas.iter().filter(|r| r.2).count();
        let name = s
            .repository
            .as_ref()
            .and_then(|r| r.bare_name(m))
            .map_or_else(|| oip::instance_name(&p.name, m), str::to_owned);
        out.push(json!({
            "name": name,
            "version": "1",
            "state": state,
            "reason": reason,
            "clockwork": {
                "id": m.0,
                "network": p.name,
                "gpus_resident": resident,
                "gpus_loading": replicas.len() - resident,
                "queued": s.sched.queued(m),
            },
        }));
    }
    // Repository entries that are not registered, with why, after the instances.
    let unavailable = match s.repository.as_ref().filter(|_| !only_ready) {
        Some(r) => r.unavailable(),
        None => Vec::new(),
    };
    let total = instance_count + unavailable.len();
    let first = offset.saturating_sub(instance_count);
    let room = limit - out.len();
    if offset + out.len() >= instance_count {
        for u in unavailable.into_iter().skip(first).take(room) {
            out.push(json!({
                "name": u.name,
                "version": "1",
                "state": "UNAVAILABLE",
                "reason": u.reason,
            }));
        }
    }
    let next = offset.saturating_add(out.len());
    IndexPage {
        entries: out,
        total,
        next: (next < total && offset < total).then_some(next),
    }
}

fn repository_load(s: &mut Shared, name: &str, body: &[u8]) -> Response {
    let req = match oip::parse_load(body) {
        Ok(r) => r,
        Err(e) => return Response::error(400, e),
    };
    // An existing instance: loaded again if it was unloaded (parameters are ignored).
    if let Some((net, id)) = oip::parse_instance(name) {
        let model = ModelId(id);
        let Some(p) = s.sched.model_profile(model) else {
            return Response::error(404, format!("unknown model instance {name}"));
        };
        if net.is_some_and(|n| n != p.name) {
            return Response::error(404, format!("unknown model instance {name}"));
        }
        let full = oip::instance_name(&p.name, model);
        s.timed(Call::Registry, |sc| sc.reinstate_model(model));
        s.drain();
        let saved = save(s, |r| r.set_unloaded(&[model], false));
        return with_warning(json!({ "models": [full] }), saved);
    }
    // A model in the repository is (re)loaded from its directory (parameters ignored).
    match s.load_from_repository(name) {
        Ok(ids) => {
            let names: Vec<String> = if ids.len() == 1 {
                vec![name.to_owned()]
            } else {
                ids.iter().map(|&m| oip::instance_name(name, m)).collect()
            };
            return Response::json(200, &json!({ "models": names }));
        }
        Err(RepositoryLoadError::Bad(reason)) => return Response::error(400, reason),
        Err(RepositoryLoadError::NotInRepository) => {
            let builtin = clockwork_core::model::builtin_profiles()
                .iter()
                .any(|p| p.name == name);
            if s.repository.is_some() && req.profile.is_none() && !builtin {
                return Response::error(
                    404,
                    format!(
                        "model {name} is not in the model repository and has no built-in profile"
                    ),
                );
            }
        }
    }
    if !oip::valid_network(name) {
        return Response::error(
            400,
            format!("invalid model name {name}: use 1 to 128 of [A-Za-z0-9_.-], not ending in -<digits>"),
        );
    }
    let profile = match req.profile {
        Some(mut p) => {
            if p.name.is_empty() {
                p.name = name.to_owned();
            } else if p.name != name {
                return Response::error(
                    400,
                    format!("profile name {} differs from the model name {name}", p.name),
                );
            }
            p
        }
        None => match clockwork_core::model::builtin_profiles()
            .into_iter()
            .find(|p| p.name == name)
        {
            Some(p) => p,
            None => {
                return Response::error(
                    400,
                    format!("no built-in profile named {name}; give one in parameters.profile"),
                )
            }
        },
    };
    if let Err(e) = bounds::check_profile(&profile) {
        return Response::error(400, e);
    }
    let t = now();
    let copies = req.copies;
    let r = s.timed(Call::Registry, |sc| {
        sc.register_models(t, profile.clone(), copies)
    });
    s.drain();
    match r {
        Ok(range) => {
            let names: Vec<String> = range.iter().map(|m| oip::instance_name(name, m)).collect();
            let saved = save(s, |r| r.registered(&profile, range.first, copies));
            with_warning(json!({ "models": names }), saved)
        }
        Err(e) => Response::error(400, e.to_string()),
    }
}

fn repository_unload(s: &mut Shared, name: &str, body: &[u8]) -> Response {
    if !body.iter().all(u8::is_ascii_whitespace) {
        if let Err(e) = serde_json::from_slice::<Value>(body) {
            return Response::error(400, format!("malformed JSON: {e}"));
        }
    }
    let targets: Vec<ModelId> = match oip::parse_instance(name) {
        Some((net, id)) => {
            let model = ModelId(id);
            match s.sched.model_profile(model) {
                Some(p) if net.is_none_or(|n| n == p.name) => vec![model],
                _ => return Response::error(404, format!("unknown model instance {name}")),
            }
        }
        None => {
            let all: Vec<ModelId> = (0..s.sched.model_count())
                .map(ModelId)
                .filter(|&m| s.sched.model_profile(m).is_some_and(|p| p.name == name))
                .collect();
            if all.is_empty() {
                return Response::error(404, format!("unknown model {name}"));
            }
            all
        }
    };
    let t = now();
    let mut names = Vec::new();
    let mut unloaded = Vec::new();
    for m in targets {
        if s.sched.is_retired(m) {
            continue;
        }
        s.timed(Call::Registry, |sc| sc.retire_model(t, m));
        unloaded.push(m);
        if let Some(p) = s.sched.model_profile(m) {
            names.push(oip::instance_name(&p.name, m));
        }
    }
    s.drain();
    let saved = save(s, |r| r.set_unloaded(&unloaded, true));
    with_warning(json!({ "models": names }), saved)
}

/// Records a change in the state directory, when there is one. A failure is
/// logged and returned as a warning: the change itself took effect.
fn save(
    s: &mut Shared,
    f: impl FnOnce(&mut state::SavedRegistrations) -> std::io::Result<()>,
) -> Option<String> {
    let r = s.registrations.as_mut()?;
    match f(r) {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(error = %e, "cannot write the state directory; the change is served but will not survive a restart");
            Some(format!(
                "done, but not saved in the state directory ({e}): it will not survive a restart"
            ))
        }
    }
}

/// A 200 answer, with `"warning"` when there is one.
fn with_warning(mut body: Value, warning: Option<String>) -> Response {
    if let Some(w) = warning {
        body["warning"] = json!(w);
    }
    Response::json(200, &body)
}
