//! The service's tasks: worker links, client links, the timer, and `serve` that
//! starts them.

use super::http::metrics::Call;
use super::path::Route;
use super::{now, spawn_writer, LogFiles, ServiceConfig, ServiceError, Shared, SharedRef};
use clockwork_core::client::{ArchivedClientRequest, ClientResponse, InferRequest, InferResponse};
use clockwork_core::result::{ActionResult, Outcome, WorkerState};
use clockwork_core::wire::{FromWorker, PeerRole, ToWorker};
use clockwork_core::ClientStatus;
use clockwork_core::{Action, ActionId, ActionKind, ModelProfile, Nanos, Window, WorkerId};
use clockwork_net::{connect, LinkConfig, Listener, NetError, TcpConnection};
use clockwork_scheduler::Scheduler;
use glommio::channels::local_channel::{self, LocalReceiver};
use rkyv::rancor::BoxedError;
use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
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
    let sched =
        Scheduler::new(cfg.scheduler.clone()).map_err(|e| ServiceError::Config(e.to_string()))?;
    let logs = match &cfg.log_dir {
        Some(dir) => Some(LogFiles::create(dir).map_err(|source| ServiceError::Logs {
            dir: dir.clone(),
            source,
        })?),
        None => None,
    };
    let link = LinkConfig::new(cfg.token.clone(), cfg.name.clone());
    let listener =
        Listener::bind(cfg.client_listen, PeerRole::Client, link.clone()).map_err(|source| {
            ServiceError::Listen {
                addr: cfg.client_listen,
                source,
            }
        })?;
    let http_listener = cfg
        .http
        .map(|addr| {
            glommio::net::TcpListener::bind(addr).map_err(|e| ServiceError::HttpListen {
                addr,
                source: e.into(),
            })
        })
        .transpose()?;
    let shared: SharedRef = Rc::new(RefCell::new(Shared::new(sched, logs)));
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
    for (i, &addr) in cfg.workers.iter().enumerate() {
        let id = WorkerId(u32::try_from(i).unwrap_or(u32::MAX));
        workers.push(glommio::spawn_local(worker_task(
            shared.clone(),
            id,
            addr,
            link.clone(),
            cfg.reconnect_interval,
            cfg.worker_busy_poll,
        )));
    }
    let accept = glommio::spawn_local(accept_task(shared.clone(), Rc::new(listener)));
    let http = http_listener.map(|l| {
        glommio::spawn_local(super::http::accept_task(
            shared.clone(),
            l,
            cfg.http_limits.clone(),
            cfg.http_admin.clone(),
        ))
    });
    tracing::info!(clients = %cfg.client_listen, http = ?cfg.http, workers = cfg.workers.len(), "controller serving");
    shutdown.await;
    tracing::info!("controller shutting down");
    // Stop taking work, then answer what is pending.
    drop(accept);
    drop(http);
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
    glommio::timer::sleep(Duration::from_millis(50)).await;
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
            let mut s = shared.borrow_mut();
            s.timed(Call::Timeout, |sc| sc.handle_timeout(t));
            s.drain();
            continue;
        }
        let wait = Duration::from_nanos((at - t).get());
        let closed = futures_lite::future::or(
            async {
                glommio::timer::sleep(wait).await;
                false
            },
            async { kick.recv().await.is_none() },
        )
        .await;
        if closed {
            return;
        }
    }
}

/// Connect, fetch the worker's state, and serve its results until the link drops;
/// then report the loss and try again.
async fn worker_task(
    shared: SharedRef,
    id: WorkerId,
    addr: SocketAddr,
    link: LinkConfig,
    interval: Duration,
    busy_poll: Duration,
) {
    let mut warned = false;
    loop {
        let conn = match connect(addr, PeerRole::Controller, &link).await {
            Ok((conn, name)) => {
                tracing::info!(worker = %id, %addr, %name, "worker connected");
                warned = false;
                conn
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(worker = %id, %addr, error = %e, "cannot reach worker; retrying");
                    warned = true;
                }
                glommio::timer::sleep(interval).await;
                continue;
            }
        };
        let reason = run_worker_link(&shared, id, conn, busy_poll).await;
        tracing::warn!(worker = %id, %addr, error = %reason, "worker link lost");
        {
            let mut s = shared.borrow_mut();
            s.workers.remove(&id);
            s.worker_gpus(id, &[]);
            s.metrics.worker_lost(id);
            let t = now();
            s.timed(Call::Worker, |sc| sc.worker_lost(t, id));
            s.drain();
        }
        glommio::timer::sleep(interval).await;
    }
}

fn to_result(a: &<FromWorker as rkyv::Archive>::Archived) -> Result<ActionResult, NetError> {
    let FromWorker::Result(r) =
        rkyv::deserialize::<FromWorker, BoxedError>(a).map_err(|e| NetError::InvalidPayload {
            kind: 11,
            reason: e.to_string(),
        })?;
    Ok(r)
}

async fn run_worker_link(
    shared: &SharedRef,
    id: WorkerId,
    mut conn: TcpConnection,
    busy_poll: Duration,
) -> NetError {
    conn.set_busy_poll(busy_poll);
    let ask = ToWorker::Actions(vec![Action {
        id: state_action_id(id),
        window: Window::ANY,
        kind: ActionKind::GetState,
    }]);
    if let Err(e) = conn.send(&ask).await {
        return e;
    }
    let state: WorkerState = loop {
        let r = match conn.recv_msg::<FromWorker>().await.and_then(to_result) {
            Ok(r) => r,
            Err(e) => return e,
        };
        if r.action_id != state_action_id(id) {
            continue;
        }
        match r.outcome {
            Outcome::State(s) => break s,
            other => {
                return NetError::Refused(format!("worker answered GET STATE with {other:?}"));
            }
        }
    };
    let (mut reader, writer) = conn.into_split();
    let tx = spawn_writer::<ToWorker, _>(writer);
    {
        let mut s = shared.borrow_mut();
        s.workers.insert(id, tx);
        s.worker_gpus(id, &state.gpus);
        s.metrics.worker_joined(id, &state);
        let t = now();
        // The handshake and GET STATE measured the link's RTT: the scheduler's margins
        // start from it (clockwork_scheduler::margins).
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
        let r = match reader.recv_msg::<FromWorker>().await.and_then(to_result) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let mut s = shared.borrow_mut();
        let t = now();
        s.metrics.result(id, &r.outcome, t);
        s.timed(Call::Result, |sc| sc.handle_result(t, id, &r));
        s.drain();
    }
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
                glommio::timer::sleep(Duration::from_millis(10)).await;
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

async fn client_task(shared: SharedRef, listener: Rc<Listener>, stream: glommio::net::TcpStream) {
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
        let req = match reader.recv_msg::<clockwork_core::ClientRequest>().await {
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
