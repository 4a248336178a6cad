//! The service's tasks: worker links, client links, the timer, and `serve` that
//! starts them.
//!
//! A worker link is watched two ways (docs/operations.md): it must carry a frame at
//! least every link timeout (both sides send heartbeats), and every LOAD and INFER
//! sent on it must come back by its window's end plus its duration plus a grace
//! ([`Expected`]). Either failure, like a closed socket, ends the link: the worker is
//! reported lost to the scheduler (which answers or moves its work), counted in
//! `/metrics`, and reconnected; a worker that comes back is planned onto from a fresh
//! GET STATE.

use super::expected::Expected;
use super::http::metrics::Call;
use super::path::Route;
use super::{
    now, spawn_writer, LogFiles, ServiceConfig, ServiceError, Shared, SharedRef, WorkerAddr,
};
use clockwork_core::client::{ArchivedClientRequest, ClientResponse, InferRequest, InferResponse};
use clockwork_core::result::{ActionResult, Outcome, WorkerState};
use clockwork_core::wire::{FromWorker, PeerRole, ToWorker};
use clockwork_core::ClientStatus;
use clockwork_core::{Action, ActionId, ActionKind, ModelProfile, Nanos, Window, WorkerId};
use clockwork_net::tls::TlsServer;
use clockwork_net::wakes::{self, Cause};
use clockwork_net::{
    bind_exclusive, connect_named, Activity, FrameWriter, LinkConfig, Listener, Liveness, NetError,
    TcpConnection,
};
use clockwork_scheduler::Scheduler;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use rkyv::rancor::BoxedError;
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

/// Action id of the GET STATE the service sends on every new worker link. The
/// scheduler never sees it.
fn state_action_id(worker: WorkerId) -> ActionId {
    ActionId(u64::MAX - u64::from(worker.0))
}

/// Run the controller until `shutdown` resolves. Call it on an executor built with
/// `clockwork_net::runtime`. On shutdown every pending request is answered before it
/// returns.
pub async fn serve(
    cfg: ServiceConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServiceError> {
    let mut link = LinkConfig::new(cfg.token.expose(), cfg.name.clone());
    link.max_connections = cfg.max_client_connections;
    link.max_frame = cfg.link_max_frame;
    // An INFER goes to its worker in one frame of the link, and its result comes back
    // in one: the scheduler forms no batch that could not.
    let mut sched_cfg = cfg.scheduler.clone();
    let frame_room = link.max_frame.saturating_sub(LINK_FRAME_HEADROOM) as u64;
    sched_cfg.max_batch_bytes = sched_cfg.max_batch_bytes.min(frame_room.max(1));
    let sched = Scheduler::new(sched_cfg).map_err(|e| ServiceError::Config(e.to_string()))?;
    let logs = match &cfg.log_dir {
        Some(dir) => Some(LogFiles::create(dir).map_err(|source| ServiceError::Logs {
            dir: dir.clone(),
            source,
        })?),
        None => None,
    };
    let listener =
        Listener::bind(cfg.client_listen, PeerRole::Client, link.clone()).map_err(|source| {
            ServiceError::Listen {
                addr: cfg.client_listen,
                source,
            }
        })?;
    // Exclusive (no SO_REUSEPORT), like the client port: a second controller on the
    // same address fails here instead of sharing it.
    let http_listener = cfg
        .http
        .map(|addr| {
            bind_exclusive(addr).map_err(|source| ServiceError::HttpListen { addr, source })
        })
        .transpose()?;
    let grpc_listener = cfg
        .grpc
        .map(|addr| {
            bind_exclusive(addr).map_err(|source| ServiceError::GrpcListen { addr, source })
        })
        .transpose()?;
    let shared: SharedRef = Rc::new(RefCell::new(Shared::new(
        sched,
        logs,
        (cfg.tick, cfg.tick_max),
    )));
    if let Some(dir) = &cfg.model_repository {
        shared
            .borrow_mut()
            .open_repository(dir)
            .map_err(|source| ServiceError::Repository {
                dir: dir.clone(),
                source,
            })?;
    }
    if let Some(dir) = &cfg.state_dir {
        let restored = shared.borrow_mut().restore_registrations(dir);
        restored.map_err(|source| ServiceError::State {
            dir: dir.clone(),
            source,
        })?;
    }
    let (kick_tx, kick_rx) = local_channel::new_unbounded::<()>();
    shared.borrow_mut().timer_kick = Some(kick_tx);
    let timer = glommio::spawn_local(timer_task(shared.clone(), kick_rx));
    let mut workers = Vec::new();
    let mut worker_link = link.clone();
    // A worker that does not answer its hello within two link timeouts is as silent as
    // one that stopped sending heartbeats (e.g. frozen: its kernel still accepts).
    worker_link.handshake_timeout = cfg.liveness.timeout * 2;
    worker_link.tls_client.clone_from(&cfg.worker_tls);
    let watch = WorkerWatch {
        reconnect: cfg.reconnect_interval,
        busy_poll: cfg.worker_busy_poll,
        liveness: cfg.liveness,
        grace: Nanos(u64::try_from(cfg.result_grace.as_nanos()).unwrap_or(u64::MAX)),
    };
    for (i, addr) in cfg.workers.iter().enumerate() {
        let id = WorkerId(u32::try_from(i).unwrap_or(u32::MAX));
        workers.push(glommio::spawn_local(worker_task(
            shared.clone(),
            id,
            addr.clone(),
            worker_link.clone(),
            watch,
        )));
    }
    let accept = glommio::spawn_local(accept_task(shared.clone(), Rc::new(listener)));
    let http = http_listener.map(|l| {
        glommio::spawn_local(super::http::accept_task(
            shared.clone(),
            l,
            cfg.http_limits.clone(),
            cfg.http_admin.clone(),
            super::ApiAuth::new(cfg.api_token.clone(), cfg.http_admin.bearer().cloned()),
            cfg.metrics_need_token,
            cfg.http_tls.as_ref().map(TlsServer::acceptor),
            cfg.http_engine,
        ))
    });
    let grpc = grpc_listener.map(|l| {
        glommio::spawn_local(super::grpc::accept_task(
            shared.clone(),
            l,
            cfg.http_limits.clone(),
            cfg.http_admin.clone(),
            super::ApiAuth::new(cfg.api_token.clone(), cfg.http_admin.bearer().cloned()),
            cfg.grpc_tls.as_ref().map(TlsServer::acceptor),
        ))
    });
    tracing::info!(clients = %cfg.client_listen, http = ?cfg.http, http_engine = %cfg.http_engine, grpc = ?cfg.grpc, workers = cfg.workers.len(), "controller serving");
    shutdown.await;
    tracing::info!("controller shutting down");
    // Stop taking work, then answer what is pending.
    drop(accept);
    drop(http);
    drop(grpc);
    drop(workers);
    {
        let mut s = shared.borrow_mut();
        let ids: Vec<WorkerId> = s.workers.keys().copied().collect();
        let t = now();
        for id in ids {
            s.sched.worker_lost(t, id);
        }
        s.sched.shutdown(t);
        s.drain();
        s.workers.clear();
        if let Some(logs) = &mut s.logs {
            if let Err(e) = logs.flush() {
                tracing::error!(error = %e, "flushing logs failed");
            }
        }
    }
    drop(timer);
    // Give the client writers a moment to deliver the last answers.
    clockwork_net::timer::sleep(Duration::from_millis(50)).await;
    if let Some(report) = wakes::report() {
        eprintln!("{report}");
    }
    Ok(())
}

async fn timer_task(shared: SharedRef, kick: LocalReceiver<()>) {
    loop {
        let next = {
            let mut s = shared.borrow_mut();
            let next = s.sched.next_deadline();
            s.armed = next;
            next
        };
        let Some(at) = next else {
            if kick.recv().await.is_none() {
                return;
            }
            continue;
        };
        let t = now();
        if at <= t {
            let first = wakes::note(Cause::SchedTimer);
            clockwork_net::runtime::awake();
            {
                let mut s = shared.borrow_mut();
                s.timed(Call::Timeout, |sc| sc.handle_timeout(t));
                if s.drain() == 0 {
                    wakes::reclassify(Cause::SchedTimer, Cause::SchedTimerIdle, first);
                }
            }
            // Let the other tasks run before the next deadline, even one already due:
            // a scheduler that kept naming a deadline in the past must cost a busy
            // executor, not starve the links whose results would end it.
            futures_lite::future::yield_now().await;
            continue;
        }
        let wait = Duration::from_nanos((at - t).get());
        let woke = futures_lite::future::or(
            async {
                clockwork_net::timer::sleep(wait).await;
                TimerWake::Slept
            },
            async {
                match kick.recv().await {
                    Some(()) => TimerWake::Kicked,
                    None => TimerWake::Closed,
                }
            },
        )
        .await;
        match woke {
            TimerWake::Closed => return,
            TimerWake::Kicked => {
                wakes::note(Cause::SchedKick);
            }
            TimerWake::Slept if now() < at => {
                wakes::note(Cause::SchedTimerEarly);
            }
            TimerWake::Slept => {}
        }
    }
}

/// Why the timer task's wait ended.
enum TimerWake {
    /// Its sleep until the deadline ended.
    Slept,
    /// The deadline moved earlier.
    Kicked,
    /// The service is shutting down.
    Closed,
}

/// How a worker link is kept and watched.
#[derive(Debug, Clone, Copy)]
struct WorkerWatch {
    reconnect: Duration,
    busy_poll: Duration,
    liveness: Liveness,
    /// Added to an action's window end and duration to give its result's deadline.
    grace: Nanos,
}

/// Why a worker link ended.
#[derive(Debug)]
enum LinkLoss {
    /// The transport said so: closed, silent for the link timeout, a bad frame.
    Net(NetError),
    /// A result was not back by its deadline.
    Overdue {
        /// The action.
        action: ActionId,
        /// How far past its deadline it was when noticed.
        late: Nanos,
    },
}

impl LinkLoss {
    /// The `/metrics` label.
    fn label(&self) -> &'static str {
        match self {
            Self::Net(NetError::Silent { .. }) => "silent",
            Self::Net(e) if e.is_disconnect() => "closed",
            Self::Net(_) => "error",
            Self::Overdue { .. } => "result_overdue",
        }
    }
}

impl std::fmt::Display for LinkLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Net(e) => write!(f, "{e}"),
            Self::Overdue { action, late } => write!(
                f,
                "the result of action {} is {} ms overdue (window end + duration + grace)",
                action.0,
                late.get() / 1_000_000
            ),
        }
    }
}

/// Connect, fetch the worker's state, and serve its results until the link drops,
/// falls silent or loses a result; then report the loss and try again.
async fn worker_task(
    shared: SharedRef,
    id: WorkerId,
    addr: WorkerAddr,
    link: LinkConfig,
    watch: WorkerWatch,
) {
    // The last connection error logged: each new one is logged once (so a token
    // mismatch after "connection refused" is named), a repeated one is not.
    let mut last_error: Option<String> = None;
    loop {
        // A name is resolved at every attempt: a worker back at a new address under
        // the same name (a rescheduled pod) is found again.
        let dialled = match addr.resolve().await {
            Ok(ip) => connect_named(ip, addr.host(), PeerRole::Controller, &link).await,
            Err(e) => Err(NetError::Io(e)),
        };
        let conn = match dialled {
            Ok((conn, name)) => {
                tracing::info!(worker = %id, %addr, %name, "worker connected");
                last_error = None;
                conn
            }
            Err(e) => {
                if matches!(e, NetError::Tls(_)) {
                    shared.borrow_mut().metrics.tls_failed("worker");
                }
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(worker = %id, %addr, error = %e, "cannot reach worker; retrying");
                    last_error = Some(text);
                }
                clockwork_net::timer::sleep(watch.reconnect).await;
                continue;
            }
        };
        let loss = run_worker_link(&shared, id, conn, watch).await;
        tracing::warn!(worker = %id, %addr, reason = loss.label(), error = %loss, "worker link lost; the worker is out of the plan until it reconnects");
        {
            let mut s = shared.borrow_mut();
            s.workers.remove(&id);
            s.worker_gpus(id, &[]);
            s.metrics.worker_lost(id);
            s.metrics.link_lost(loss.label());
            let t = now();
            s.timed(Call::Worker, |sc| sc.worker_lost(t, id));
            s.drain();
        }
        clockwork_net::timer::sleep(watch.reconnect).await;
    }
}

/// The result in a worker frame; `None` for a heartbeat.
fn to_result(
    a: &<FromWorker as rkyv::Archive>::Archived,
) -> Result<Option<ActionResult>, NetError> {
    let msg =
        rkyv::deserialize::<FromWorker, BoxedError>(a).map_err(|e| NetError::InvalidPayload {
            kind: 11,
            reason: e.to_string(),
        })?;
    Ok(match msg {
        FromWorker::Result(r) => Some(r),
        FromWorker::Heartbeat => None,
    })
}

/// Serve one worker connection until it is lost; every task it started ends with it.
async fn run_worker_link(
    shared: &SharedRef,
    id: WorkerId,
    mut conn: TcpConnection,
    watch: WorkerWatch,
) -> LinkLoss {
    conn.set_busy_poll(watch.busy_poll);
    let activity = conn.activity();
    let expected = Rc::new(RefCell::new(Expected::default()));
    let (mut reader, writer) = conn.into_split();
    let (tx, writer_task) = spawn_worker_writer(writer, Rc::clone(&expected), watch.grace);
    let _heartbeat = glommio::spawn_local(heartbeat(Rc::clone(&tx), watch.liveness.heartbeat));
    let ask = ToWorker::Actions(vec![Action {
        id: state_action_id(id),
        window: Window::ANY,
        kind: ActionKind::GetState,
    }]);
    if tx.try_send(ask).is_err() {
        return LinkLoss::Net(NetError::Closed);
    }
    let serve = async {
        let state: WorkerState = loop {
            let r = match reader.recv_msg::<FromWorker>().await.and_then(to_result) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => return LinkLoss::Net(e),
            };
            if r.action_id != state_action_id(id) {
                continue;
            }
            match r.outcome {
                Outcome::State(s) => break s,
                other => {
                    return LinkLoss::Net(NetError::Refused(format!(
                        "worker answered GET STATE with {other:?}"
                    )));
                }
            }
        };
        {
            let mut s = shared.borrow_mut();
            s.workers.insert(id, Rc::clone(&tx));
            s.worker_gpus(id, &state.gpus);
            s.metrics.worker_joined(id, &state);
            let t = now();
            // The handshake and GET STATE measured the link's RTT: the scheduler's
            // margins start from it (clockwork_scheduler::margins).
            let rtt = reader.clock().rtt_ns().map(Nanos);
            s.timed(Call::Worker, |sc| {
                if let Some(rtt) = rtt {
                    sc.link_measured(id, rtt);
                }
                sc.worker_joined(t, id, &state);
            });
            s.drain();
        }
        loop {
            let got = reader.recv_msg::<FromWorker>().await;
            wakes::note(Cause::WorkerRead);
            let r = match got.and_then(to_result) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => return LinkLoss::Net(e),
            };
            expected.borrow_mut().answered(r.action_id);
            let mut s = shared.borrow_mut();
            let t = now();
            s.metrics.result(id, &r.outcome, t);
            s.worker_result(id, &r, t);
        }
    };
    let loss = futures_lite::future::or(serve, watchdog(activity, watch.liveness, &expected)).await;
    // Cancel the writer even if it is stuck in a write to a stalled peer: the link is
    // gone, and dropping both halves closes the socket.
    drop(writer_task);
    loss
}

/// Resolves when the link has been silent for the link timeout or a result is overdue.
/// Looks every heartbeat interval (and exactly when the silence would expire).
async fn watchdog(
    activity: Activity,
    liveness: Liveness,
    expected: &RefCell<Expected>,
) -> LinkLoss {
    loop {
        let silent = activity.silent_for();
        if silent >= liveness.timeout {
            return LinkLoss::Net(NetError::Silent {
                silent_ms: u64::try_from(silent.as_millis()).unwrap_or(u64::MAX),
            });
        }
        let t = now();
        if let Some((action, due)) = expected.borrow().overdue(t) {
            return LinkLoss::Overdue {
                action,
                late: t - due,
            };
        }
        clockwork_net::timer::sleep(liveness.heartbeat.min(liveness.timeout - silent)).await;
        wakes::note(Cause::Watchdog);
    }
}

/// Queue a heartbeat for the worker every `interval` (cancelled with its link).
async fn heartbeat(tx: Rc<LocalSender<ToWorker>>, interval: Duration) {
    loop {
        clockwork_net::timer::sleep(interval).await;
        wakes::note(Cause::Heartbeat);
        if tx.try_send(ToWorker::Heartbeat).is_err() {
            return;
        }
    }
}

/// Room in a worker link's frame for an INFER's fields other than its inputs.
const LINK_FRAME_HEADROOM: usize = 64 * 1024;

/// Sends `msg` to a worker. A batch of actions over the link's frame limit (the
/// actions a worker gets when it joins a controller with many thousands of
/// instances, say) goes as several frames, in order, instead of one that the worker
/// would refuse and close the link for. One action over the limit cannot be split:
/// it is not sent and said so (the scheduler forms no INFER that large).
async fn send_in_frames(
    writer: &mut FrameWriter<clockwork_net::LinkStream>,
    msg: ToWorker,
) -> Result<(), NetError> {
    // Cut where the actions' estimated sizes say, so that a batch of large INFERs is
    // not serialized whole only to be refused; the halving below is what makes it
    // right whatever the estimate.
    let budget = writer.max_frame().saturating_sub(LINK_FRAME_HEADROOM);
    let mut next: Vec<ToWorker> = match msg {
        ToWorker::Actions(actions) => chunks_within(actions, budget)
            .into_iter()
            .rev()
            .map(ToWorker::Actions)
            .collect(),
        other => vec![other],
    };
    while let Some(msg) = next.pop() {
        match writer.send(&msg).await {
            Err(NetError::Oversized { len, max }) => match msg {
                ToWorker::Actions(mut first) if first.len() > 1 => {
                    let second = first.split_off(first.len() / 2);
                    next.push(ToWorker::Actions(second));
                    next.push(ToWorker::Actions(first));
                }
                ToWorker::Actions(one) => {
                    let kind = one.first().map_or("none", |a| a.kind.name());
                    tracing::error!(
                        len,
                        max,
                        kind,
                        "an action over the worker link's frame limit was not sent"
                    );
                }
                ToWorker::Heartbeat => return Err(NetError::Oversized { len, max }),
            },
            other => other?,
        }
    }
    Ok(())
}

/// About how many bytes `a` takes in a frame: an INFER's inputs, a registration's
/// profile, a little for the rest. Only used to cut a batch before encoding it.
fn wire_size_estimate(a: &Action) -> usize {
    const FIXED: usize = 256;
    FIXED
        + match &a.kind {
            ActionKind::Infer {
                inputs,
                input_sizes,
                ..
            } => inputs.len() + 4 * input_sizes.len(),
            ActionKind::RegisterModel { profile, .. } => {
                let tensors = profile.inputs.iter().chain(&profile.outputs);
                profile.name.len()
                    + 32 * profile.batches.len()
                    + tensors
                        .map(|t| 64 + t.name.len() + t.datatype.len() + 8 * t.shape.len())
                        .sum::<usize>()
                    + 256
            }
            _ => 0,
        }
}

/// `actions` cut, in order, into runs whose estimated sizes stay within `budget`
/// (an action alone over it is a run of its own).
fn chunks_within(actions: Vec<Action>, budget: usize) -> Vec<Vec<Action>> {
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let mut used = 0usize;
    for a in actions {
        let size = wire_size_estimate(&a);
        if !chunk.is_empty() && used.saturating_add(size) > budget {
            chunks.push(std::mem::take(&mut chunk));
            used = 0;
        }
        used = used.saturating_add(size);
        chunk.push(a);
    }
    if !chunk.is_empty() || chunks.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// The worker link's writer task: sends what its queue gets and notes each LOAD and
/// INFER as expected back. Returned with its handle, so that the link can cancel it.
fn spawn_worker_writer(
    mut writer: FrameWriter<clockwork_net::LinkStream>,
    expected: Rc<RefCell<Expected>>,
    grace: Nanos,
) -> (Rc<LocalSender<ToWorker>>, glommio::Task<()>) {
    let (tx, rx) = local_channel::new_unbounded::<ToWorker>();
    let task = glommio::spawn_local(async move {
        while let Some(msg) = rx.recv().await {
            if let ToWorker::Actions(actions) = &msg {
                let mut e = expected.borrow_mut();
                for a in actions {
                    e.sent(a, grace);
                }
            }
            if let Err(e) = send_in_frames(&mut writer, msg).await {
                tracing::debug!(error = %e, "worker link writer stopped");
                break;
            }
        }
        let _ = writer.close().await;
    });
    (Rc::new(tx), task)
}

async fn accept_task(shared: SharedRef, listener: Rc<Listener>) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(client_task(shared.clone(), listener.clone(), stream))
                    .detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                clockwork_net::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn refuse(id: clockwork_core::RequestId, status: ClientStatus, message: String) -> ClientResponse {
    ClientResponse::Error {
        id,
        status,
        message,
    }
}

async fn client_task(shared: SharedRef, listener: Rc<Listener>, stream: clockwork_net::Incoming) {
    let (conn, peer) = match listener.handshake(stream).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, "client handshake failed");
            return;
        }
    };
    let (mut reader, writer) = conn.into_split();
    let tx = spawn_writer::<ClientResponse, _>(writer);
    let key = shared.borrow_mut().open_route(Route::Native(tx));
    tracing::debug!(client = %peer.name, key = key.0, "client connected");
    loop {
        let got = reader.recv_msg::<clockwork_core::ClientRequest>().await;
        wakes::note(Cause::ClientRead);
        let req = match got {
            Ok(r) => r,
            Err(e) => {
                if !e.is_disconnect() {
                    tracing::warn!(client = %peer.name, error = %e, "closing client connection");
                }
                break;
            }
        };
        let t = now();
        let mut s = shared.borrow_mut();
        match req {
            ArchivedClientRequest::Infer(r) => {
                match rkyv::deserialize::<InferRequest, BoxedError>(r) {
                    Ok(r) => s.submit(key, r),
                    Err(e) => {
                        // Validated on receipt, so this does not happen; answer anyway.
                        let (id, model) = (r.id.to_native(), r.model.to_native());
                        let answer = ClientResponse::Inferred(InferResponse {
                            id,
                            model,
                            status: ClientStatus::InvalidRequest,
                            batch_size: 0,
                            controller_latency: Nanos::ZERO,
                            output: Vec::new(),
                            message: format!("undecodable request: {e}"),
                        });
                        s.reply(key, answer);
                    }
                }
            }
            ArchivedClientRequest::RegisterModel {
                id,
                profile,
                copies,
            } => {
                let id = id.to_native();
                let copies = copies.to_native();
                let answer = match rkyv::deserialize::<ModelProfile, BoxedError>(profile) {
                    Err(e) => refuse(
                        id,
                        ClientStatus::InvalidRequest,
                        format!("bad profile: {e}"),
                    ),
                    Ok(p) => match p.validate() {
                        Err(e) => refuse(id, ClientStatus::InvalidRequest, e.to_string()),
                        Ok(()) if copies == 0 => refuse(
                            id,
                            ClientStatus::InvalidRequest,
                            "copies must be at least 1".into(),
                        ),
                        Ok(()) => {
                            match s.timed(Call::Registry, |sc| sc.register_models(t, p, copies)) {
                                Ok(range) => ClientResponse::Registered {
                                    id,
                                    first_model: range.first,
                                    copies: range.count,
                                },
                                Err(e) => refuse(id, ClientStatus::InvalidRequest, e.to_string()),
                            }
                        }
                    },
                };
                s.reply(key, answer);
            }
            ArchivedClientRequest::ListModels { id } => {
                let models = s.model_infos();
                s.reply(
                    key,
                    ClientResponse::Models {
                        id: id.to_native(),
                        models,
                    },
                );
            }
        }
        s.drain();
    }
    shared.borrow_mut().close_route(key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::{ActionId, GpuId, ModelId};

    fn infer(id: u64, bytes: usize) -> Action {
        Action {
            id: ActionId(id),
            window: Window::ANY,
            kind: ActionKind::Infer {
                model: ModelId(0),
                gpu: GpuId(0),
                batch_size: 1,
                expected_duration: Nanos::ZERO,
                input_sizes: vec![bytes as u32],
                inputs: vec![0; bytes].into(),
            },
        }
    }

    #[test]
    fn a_batch_of_actions_is_cut_in_order_within_the_budget() {
        let mb = 1 << 20;
        let actions: Vec<Action> = [4, 4, 4, 4, 9, 1, 20, 1]
            .iter()
            .enumerate()
            .map(|(i, &n)| infer(i as u64, n * mb))
            .collect();
        let chunks = chunks_within(actions, 12 * mb);
        let ids: Vec<Vec<u64>> = chunks
            .iter()
            .map(|c| c.iter().map(|a| a.id.0).collect())
            .collect();
        // 4+4 (+4 would pass 12 MB with the fixed part), 4+4, 9+1, 20 alone, 1.
        assert_eq!(ids, [vec![0, 1], vec![2, 3], vec![4, 5], vec![6], vec![7]]);
        assert_eq!(
            chunks_within(Vec::new(), mb).len(),
            1,
            "an empty batch is sent"
        );
    }
}
