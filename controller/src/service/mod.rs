//! The controller service: the [`Scheduler`] driven by real sockets on one glommio
//! executor.
//!
//! Everything runs on the executor the caller starts (through
//! `clockwork_net::runtime`): the scheduler sits in one `RefCell` that no task holds
//! across an await, so its decisions stay single-threaded and ordered. Around it:
//! - one task per worker address that connects (and reconnects), sends GET STATE,
//!   feeds results to the scheduler, and reports the link's loss as `worker_lost`:
//!   closed, silent past the link timeout (both sides send heartbeats), or a result
//!   overdue past its window (`expected`);
//! - one task per client connection that decodes requests and hands them to the one
//!   request path (`path`: `Shared::submit` in, answers out on the client's route),
//!   which the HTTP front end shares;
//! - one writer task per link, owning the link's `FrameWriter`, fed by a local queue,
//!   so that nothing else ever awaits a socket write;
//! - a timer task that calls `handle_timeout` at the scheduler's next deadline;
//! - the telemetry writer for the request and action logs (TSV).
//!
//! Input bytes of INFER requests wait in the service (`pending`; the scheduler plans
//! with their lengths only) and are concatenated into the INFER action when it is
//! sent; the scheduler's `Send` lists each INFER's members, so the service never
//! calls back into it.
//!
//! Optionally a model repository (`repository`) is registered at start and served
//! through the HTTP front end's repository endpoints.
//!
//! Who may use the client APIs is `auth`'s to say (bearer tokens).
//!
//! Optionally an HTTP front end (`http`: Open Inference Protocol, model repository,
//! Prometheus metrics, per-model statistics from `stats`) runs on the same executor and feeds the same scheduler,
//! and so does a gRPC front end (`grpc`: the Open Inference Protocol's gRPC service),
//! which answers through the HTTP front end's logic.

pub mod auth;
mod expected;
pub mod grpc;
mod http;
mod links;
mod logs;
mod path;
mod pending;
mod repository;
mod stats;
mod tick;
mod worker_addr;

use clockwork_core::client::{ClientResponse, ModelInfo};
use clockwork_core::telemetry::RequestLog;
use clockwork_core::wire::ToWorker;
use clockwork_core::{GpuId, MonotonicClock, Nanos, Secret, WorkerId};
use clockwork_net::tls::{TlsClient, TlsServer};
use clockwork_net::{Encode, FrameWriter, Liveness};
use clockwork_scheduler::ClientKey;
use clockwork_scheduler::{Config, Scheduler};
use glommio::channels::local_channel::{self, LocalSender};
use http::metrics::{Call, Metrics};
use path::Route;
use pending::PendingRequests;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

pub use auth::{ApiAuth, BearerToken, TokenError};
pub use http::{AdminAccess, AdminTokenError, HttpEngine, HttpLimits, DEFAULT_MAX_SLO, STATE_FILE};
pub use links::serve;
pub use logs::LogFiles;
pub use worker_addr::WorkerAddr;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Workers to connect to; the i-th becomes `WorkerId(i)`.
    pub workers: Vec<WorkerAddr>,
    /// Where clients connect.
    pub client_listen: SocketAddr,
    /// The cluster token (workers and clients must present the same).
    pub token: Secret,
    /// Our name in handshakes and logs.
    pub name: String,
    /// The scheduler's configuration.
    pub scheduler: Config,
    /// Directory for `clockwork_request_log.tsv` and `clockwork_action_log.tsv`;
    /// `None` writes no logs.
    pub log_dir: Option<PathBuf>,
    /// Pause between attempts to reach a worker that is down.
    pub reconnect_interval: Duration,
    /// Busy-poll budget on worker links (see `clockwork_net::FrameReader::set_busy_poll`).
    pub worker_busy_poll: Duration,
    /// Largest frame payload on the links to workers and clients, bytes; both ends of
    /// a link must use the same (workers and clients use
    /// `clockwork_net::frame::DEFAULT_MAX_FRAME`, 16 MiB, unless configured otherwise).
    /// It also bounds a batch's inputs and outputs (`Config::max_batch_bytes`).
    pub link_max_frame: usize,
    /// Where the HTTP front end (Open Inference Protocol, `/metrics`) listens; `None`
    /// runs none.
    pub http: Option<SocketAddr>,
    /// Limits of the HTTP front end (the gRPC front end's too).
    pub http_limits: HttpLimits,
    /// Which HTTP/1.1 implementation serves the HTTP port.
    pub http_engine: HttpEngine,
    /// Where the gRPC front end (the Open Inference Protocol's
    /// `inference.GRPCInferenceService`) listens; `None` runs none.
    pub grpc: Option<SocketAddr>,
    /// A model repository (`DIR/<name>/<version>/model.onnx`): every good entry is
    /// registered at start and can be loaded and unloaded while serving; `None`
    /// serves the built-in (emulated) profiles only.
    pub model_repository: Option<PathBuf>,
    /// Who may register, load and unload models over HTTP (default: nobody).
    pub http_admin: AdminAccess,
    /// The token HTTP (and gRPC) clients must send as `Authorization: Bearer TOKEN`
    /// (the admin token is accepted too); `None` leaves the client APIs open.
    pub api_token: Option<BearerToken>,
    /// Whether HTTP `/metrics` needs the API token too (default: open).
    pub metrics_need_token: bool,
    /// The HTTP front end's certificate and key: with one it speaks HTTPS only.
    pub http_tls: Option<TlsServer>,
    /// The gRPC front end's certificate and key (ALPN h2): with one it speaks TLS only.
    pub grpc_tls: Option<TlsServer>,
    /// The CAs that sign the workers' certificates: with them every worker link is
    /// TLS and a worker whose certificate does not verify (or that speaks plain TCP)
    /// is not connected; `None`: plain TCP.
    pub worker_tls: Option<TlsClient>,
    /// Where registrations made over HTTP are kept across restarts; `None` keeps
    /// them in memory only.
    pub state_dir: Option<PathBuf>,
    /// Heartbeat interval and silence timeout of worker links.
    pub liveness: Liveness,
    /// How long after its window's end plus its expected duration a LOAD's or INFER's
    /// result may still arrive before the link is declared broken.
    pub result_grace: Duration,
    /// Most native client connections held at once; more are refused in words.
    pub max_client_connections: usize,
    /// The tick guard's period at the tightest SLOs: the executor's configured tick
    /// (`--tick-us`).
    pub tick: Duration,
    /// The longest tick the controller stretches its guard to under loose SLOs (a
    /// twentieth of the tightest recent SLO; `service::tick`); at or below `tick` it
    /// keeps `tick`.
    pub tick_max: Duration,
}

/// Default [`ServiceConfig::tick_max`] in microseconds: 5 ms, a twentieth of the
/// default 100 ms SLO.
pub const DEFAULT_TICK_MAX_US: u64 = 5_000;

impl ServiceConfig {
    /// A configuration with default scheduler settings.
    pub fn new<W: Into<WorkerAddr>>(
        workers: Vec<W>,
        client_listen: SocketAddr,
        token: impl Into<Secret>,
    ) -> Self {
        Self {
            workers: workers.into_iter().map(Into::into).collect(),
            client_listen,
            token: token.into(),
            name: String::from("clockwork-controller"),
            scheduler: Config::default(),
            log_dir: None,
            reconnect_interval: Duration::from_millis(200),
            worker_busy_poll: Duration::ZERO,
            link_max_frame: clockwork_net::frame::DEFAULT_MAX_FRAME,
            http: None,
            http_limits: HttpLimits::default(),
            http_engine: HttpEngine::default(),
            grpc: None,
            model_repository: None,
            http_admin: AdminAccess::Closed,
            api_token: None,
            metrics_need_token: false,
            http_tls: None,
            grpc_tls: None,
            worker_tls: None,
            state_dir: None,
            liveness: Liveness::DEFAULT,
            result_grace: Duration::from_secs(1),
            max_client_connections: clockwork_net::handshake::DEFAULT_MAX_CONNECTIONS,
            tick: Duration::from_micros(clockwork_net::runtime::DEFAULT_TICK_US),
            tick_max: Duration::from_micros(DEFAULT_TICK_MAX_US),
        }
    }
}

/// Why the service stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The scheduler configuration is invalid.
    #[error("invalid scheduler configuration: {0}")]
    Config(String),
    /// The client port could not be opened.
    #[error("cannot listen for clients on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: clockwork_net::NetError,
    },
    /// The HTTP port could not be opened.
    #[error("cannot listen for HTTP on {addr}: {source}")]
    HttpListen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The gRPC port could not be opened.
    #[error("cannot listen for gRPC on {addr}: {source}")]
    GrpcListen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The model repository could not be listed.
    #[error("cannot read the model repository {dir}: {source}")]
    Repository {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The state directory could not be read or written.
    #[error("cannot restore the registrations in {dir}: {source}")]
    State {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The log files could not be written.
    #[error("cannot write logs in {dir}: {source}")]
    Logs {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A message for a worker's writer task (shared with the link's heartbeat task).
type WorkerTx = Rc<LocalSender<ToWorker>>;

/// Everything the tasks share. Borrowed only between awaits.
struct Shared {
    sched: Scheduler,
    workers: HashMap<WorkerId, WorkerTx>,
    /// The GPUs of connected workers that are emulated.
    emulated_gpus: HashSet<(WorkerId, GpuId)>,
    /// Where each client's answers go (native links and HTTP connections).
    routes: HashMap<ClientKey, Route>,
    next_client: u64,
    /// Requests not yet answered: their inputs, where the scheduler's `InputRef`s point.
    pending: PendingRequests,
    logs: Option<LogFiles>,
    /// Wakes the timer task when the next deadline moved earlier.
    timer_kick: Option<LocalSender<()>>,
    armed: Option<Nanos>,
    /// Requests answered, for reports.
    answered: u64,
    /// Prometheus metrics (fed whether or not the HTTP front end runs).
    metrics: Metrics,
    /// Per-model statistics (the statistics extension), fed like `metrics`.
    inference_stats: stats::InferenceStats,
    /// The model repository, when one is served.
    repository: Option<repository::ModelRepository>,
    /// Registrations made over HTTP, kept in `--state-dir`.
    registrations: Option<http::state::SavedRegistrations>,
    /// Request-log rows of answers on their way to HTTP clients: written once the
    /// answer is sent, with the send time (see `path`).
    http_rows: HashMap<ClientKey, Vec<RequestLog>>,
    /// Closed client connections, for giving their memory back.
    closed_connections: clockwork_net::memory::ClosedConnections,
    /// The tick guard's bounds ([`ServiceConfig::tick`], [`ServiceConfig::tick_max`]).
    tick_bounds: (Duration, Duration),
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("workers", &self.workers.len())
            .field("clients", &self.routes.len())
            .field("pending_requests", &self.pending.len())
            .finish_non_exhaustive()
    }
}

type SharedRef = Rc<RefCell<Shared>>;

fn now() -> Nanos {
    MonotonicClock::read()
}

impl Shared {
    fn new(sched: Scheduler, logs: Option<LogFiles>, tick_bounds: (Duration, Duration)) -> Self {
        Self {
            sched,
            workers: HashMap::new(),
            emulated_gpus: HashSet::new(),
            routes: HashMap::new(),
            next_client: 0,
            pending: PendingRequests::default(),
            logs,
            timer_kick: None,
            armed: None,
            answered: 0,
            metrics: Metrics::default(),
            inference_stats: stats::InferenceStats::default(),
            repository: None,
            registrations: None,
            http_rows: HashMap::new(),
            closed_connections: clockwork_net::memory::ClosedConnections::default(),
            tick_bounds,
        }
    }

    /// Route everything the scheduler produced. Called after every input. Returns how
    /// many outputs it routed.
    fn drain(&mut self) -> usize {
        let mut routed = 0;
        while let Some(out) = self.sched.poll_output() {
            self.route_output(out);
            routed += 1;
        }
        if let Some(logs) = &mut self.logs {
            while let Some(rec) = self.sched.poll_log() {
                path::write_log(logs, &self.routes, &mut self.http_rows, rec);
            }
        } else {
            while self.sched.poll_log().is_some() {}
        }
        let next = self.sched.next_deadline();
        if next.is_some() && (self.armed.is_none() || next < self.armed) {
            self.armed = next;
            if let Some(k) = &self.timer_kick {
                let _ = k.try_send(());
            }
        }
        let (floor, ceiling) = self.tick_bounds;
        tick::follow(self.sched.tightest_slo(), floor, ceiling);
        routed
    }

    /// Calls into the scheduler, timing the call for the decision-time metric.
    fn timed<R>(&mut self, call: Call, f: impl FnOnce(&mut Scheduler) -> R) -> R {
        let t0 = now();
        let r = f(&mut self.sched);
        self.metrics.decision(call, now() - t0);
        r
    }

    /// Queue an answer other than an inference's for a native client (dropped if it
    /// has gone).
    fn reply(&self, client: ClientKey, response: ClientResponse) {
        if let Some(Route::Native(tx)) = self.routes.get(&client) {
            let _ = tx.try_send(response);
        }
    }

    /// A worker joined with these GPUs: remember which are emulated.
    fn worker_gpus(&mut self, worker: WorkerId, gpus: &[clockwork_core::GpuState]) {
        self.emulated_gpus.retain(|&(w, _)| w != worker);
        let emulated = gpus.iter().filter(|g| g.emulated).map(|g| (worker, g.id));
        self.emulated_gpus.extend(emulated);
    }

    fn model_infos(&self) -> Vec<ModelInfo> {
        self.sched.model_infos().collect()
    }
}

/// Spawn the task that owns a link's writer and sends what the returned queue gets.
/// It ends when the queue's senders are dropped or a send fails (the link's reader
/// then reports the loss).
fn spawn_writer<T, S>(mut writer: FrameWriter<S>) -> LocalSender<T>
where
    T: Encode + 'static,
    S: futures_lite::io::AsyncWrite + Unpin + 'static,
{
    let (tx, rx) = local_channel::new_unbounded::<T>();
    glommio::spawn_local(async move {
        while let Some(msg) = rx.recv().await {
            if let Err(e) = writer.send(&msg).await {
                tracing::debug!(error = %e, "link writer stopped");
                break;
            }
        }
        let _ = writer.close().await;
    })
    .detach();
    tx
}
