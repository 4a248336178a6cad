//! The glommio shell around [`WorkerCore`]: it owns the sockets and tasks, feeds the
//! core its events and carries out its outputs. Nothing here decides anything.
//!
//! Tasks, all on one executor: the accept loop (with one handshake task per incoming
//! connection), per controller connection a **reader** (frames → [`WorkerCore::message`])
//! and a **writer** (results from a local channel → the socket, `sent` stamped just
//! before each send), and one **completions** task for the whole worker (device
//! completions → [`WorkerCore::completion`]); with devices that compute, one
//! **registrations** task (measurements from the registration thread →
//! [`WorkerCore::measured`]). After every event the shell drains the
//! core's outputs ([`Shell::flush`]). No `RefCell` borrow is held across an `.await`.
//!
//! Liveness is the shell's too (it owns the time): per controller connection a
//! **heartbeat** task queues a heartbeat for the writer every interval, and the reader
//! races a watchdog that ends the connection once the controller has been silent for
//! the link timeout. A new controller is admitted only when no connected one is alive
//! (docs/adr/0004-one-controller.md).

use crate::clock::ClockMap;
use crate::core::buffers::BufferPool;
use crate::core::{Output, SessionId, WorkerCore};
use crate::error::WorkerError;
use crate::measure::{MeasureError, Registrations};
use crate::StopSignal;
use clockwork_core::wire::{FromWorker, PeerRole, ToWorker};
use clockwork_core::{ActionResult, MonotonicClock, Outcome, WorkerStatus};
use clockwork_gpu::{Completions, DeviceSet};
use clockwork_net::liveness::watch;
use clockwork_net::LinkStream;
use clockwork_net::{
    Activity, FrameReader, FrameWriter, LinkConfig, Listener, Liveness, NetError, PeerInfo,
    TcpConnection,
};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::{spawn_local, Task};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;

/// How a refusal of a second controller starts.
const HELD_BY: &str = "this worker is held by controller";

/// What the service needs besides the devices.
pub(crate) struct ServiceConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) link: LinkConfig,
    pub(crate) liveness: Liveness,
    pub(crate) drain_timeout: Duration,
    pub(crate) stop: Arc<StopSignal>,
    /// The registration thread, for devices that compute.
    pub(crate) registrations: Option<Registrations>,
}

/// The executor's root future: serve until stopped.
pub(crate) async fn run(
    cfg: ServiceConfig,
    devices: DeviceSet,
    completions: Completions,
    ready: SyncSender<Result<SocketAddr, WorkerError>>,
) -> Result<(), WorkerError> {
    let max_frame = cfg.link.max_frame;
    let bound = Listener::bind(cfg.listen, PeerRole::Controller, cfg.link)
        .and_then(|l| l.local_addr().map(|a| (l, a)));
    let (listener, addr) = match bound {
        Ok(b) => b,
        Err(e) => {
            // `serve` is waiting on this channel; it returns the error.
            let _ = ready.send(Err(e.into()));
            return Ok(());
        }
    };
    let shell = Rc::new(Shell {
        core: RefCell::new(WorkerCore::new(devices, max_frame)),
        links: RefCell::new(HashMap::new()),
        registrations: cfg.registrations,
        liveness: cfg.liveness,
    });
    let completions_task = spawn_local(completions_loop(Rc::clone(&shell), completions));
    let registrations_task = spawn_local(registrations_loop(Rc::clone(&shell)));
    if ready.send(Ok(addr)).is_err() {
        return Ok(());
    }
    drop(ready);
    tracing::info!(%addr, "worker listening for the controller");
    let listener = Rc::new(listener);
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            cfg.stop.wait().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => {
                let (shell, listener, stop) = (
                    Rc::clone(&shell),
                    Rc::clone(&listener),
                    Arc::clone(&cfg.stop),
                );
                spawn_local(async move {
                    let admit = |peer: &PeerInfo| shell.admit(peer);
                    match listener.handshake_admit(stream, admit).await {
                        Ok((conn, peer)) if !stop.is_stopped() => shell.install(conn, peer),
                        Ok(_) => {}
                        Err(NetError::Refused(r)) if r.starts_with(HELD_BY) => {
                            tracing::debug!(reason = %r, "refused a second controller");
                        }
                        Err(e) => tracing::warn!(error = %e, "refused a connection"),
                    }
                })
                .detach();
            }
            Some(Err(e)) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                clockwork_net::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    drop(listener);
    if cfg.stop.is_draining() {
        shell.drain(cfg.drain_timeout).await;
    }
    tracing::info!("worker stopping");
    shell.shutdown();
    // Measurements still running answer nothing: the session is closed.
    drop(registrations_task);
    // The engines have stopped; the completions task drains what they cancelled.
    completions_task.await;
    Ok(())
}

/// The core and the I/O of its sessions.
struct Shell {
    core: RefCell<WorkerCore<DeviceSet>>,
    links: RefCell<HashMap<SessionId, LinkIo>>,
    /// The registration thread (devices that compute only).
    registrations: Option<Registrations>,
    liveness: Liveness,
}

/// One controller connection's I/O.
struct LinkIo {
    /// The controller's name.
    peer: String,
    /// When it was last heard from.
    activity: Activity,
    /// To the writer (shared with the heartbeat task).
    results: Rc<LocalSender<Outgoing>>,
    /// Reader (`None` once draining), writer and heartbeat; dropping them cancels
    /// them, which closes the connection.
    reader: Option<Task<()>>,
    writer: Task<()>,
    heartbeat: Task<()>,
}

/// What the writer sends.
enum Outgoing {
    /// A result, with the clock map its times use.
    Result {
        result: ActionResult,
        clock: ClockMap,
    },
    /// A heartbeat.
    Heartbeat,
}

impl Shell {
    /// May `peer`, which passed the token and role checks, become the controller? Not
    /// while a connected controller is alive: one controller at a time, and two live
    /// ones must not take the worker from each other.
    fn admit(&self, peer: &PeerInfo) -> Result<(), String> {
        let links = self.links.borrow();
        let live = links
            .values()
            .map(|io| (io, io.activity.silent_for()))
            .find(|(_, silent)| *silent < self.liveness.timeout);
        match live {
            None => Ok(()),
            Some((io, silent)) => {
                // Debug only: a refused controller retries every few hundred ms, and
                // it logs the refusal itself.
                tracing::debug!(
                    refused = %peer.name,
                    holder = %io.peer,
                    heard_ms_ago = silent.as_millis() as u64,
                    "refusing a second controller while the connected one is alive"
                );
                // The same words every time, so that a retrying controller logs it once.
                Err(format!(
                    "{HELD_BY} `{}`; one controller at a time: retry once it has been \
                     silent for {} ms",
                    io.peer,
                    self.liveness.timeout.as_millis()
                ))
            }
        }
    }

    /// A controller authenticated: open its session in the core and start its I/O.
    fn install(self: &Rc<Self>, conn: TcpConnection, peer: PeerInfo) {
        let session = self.core.borrow_mut().connect(&peer.name);
        let (tx, rx) = local_channel::new_unbounded();
        let tx = Rc::new(tx);
        let activity = conn.activity();
        let (reader, writer) = conn.into_split();
        let reader = spawn_local(reader_loop(
            Rc::clone(self),
            session,
            peer.name.clone(),
            reader,
        ));
        let buffers = self.core.borrow().buffers();
        let writer = spawn_local(writer_loop(rx, writer, peer.name.clone(), buffers));
        let heartbeat = spawn_local(heartbeat_loop(Rc::clone(&tx), self.liveness.heartbeat));
        self.links.borrow_mut().insert(
            session,
            LinkIo {
                peer: peer.name,
                activity,
                results: tx,
                reader: Some(reader),
                writer,
                heartbeat,
            },
        );
        self.flush();
    }

    /// Wait (up to `timeout`) until the devices hold no action and the writers have
    /// taken every result. Stops reading from the controllers first, so that no new
    /// action arrives; heartbeats go on, so the controller keeps the link meanwhile.
    async fn drain(&self, timeout: Duration) {
        for io in self.links.borrow_mut().values_mut() {
            drop(io.reader.take());
        }
        let start = std::time::Instant::now();
        let mut in_flight = self.core.borrow().in_flight();
        tracing::info!(in_flight, "draining: waiting for in-flight actions");
        loop {
            in_flight = self.core.borrow().in_flight();
            let queued: usize = self
                .links
                .borrow()
                .values()
                .map(|io| io.results.len())
                .sum();
            if in_flight == 0 && queued == 0 {
                break;
            }
            if start.elapsed() >= timeout {
                tracing::warn!(in_flight, "drain timed out; cancelling what is left");
                break;
            }
            clockwork_net::timer::sleep(Duration::from_millis(2)).await;
        }
        // Let the writers finish the frame they are sending.
        clockwork_net::timer::sleep(Duration::from_millis(20)).await;
        tracing::info!(waited_ms = start.elapsed().as_millis() as u64, "drained");
    }

    /// The reader of `session` saw its connection end.
    fn reader_ended(&self, session: SessionId) {
        let io = self.links.borrow_mut().remove(&session);
        if let Some(io) = io {
            // The reader is returning and the writer ends once the last sender (in
            // `io`) is gone: let both finish on their own. The heartbeat holds a sender
            // too: cancel it.
            if let Some(reader) = io.reader {
                reader.detach();
            }
            io.writer.detach();
            drop(io.heartbeat);
        }
        self.core.borrow_mut().disconnect(session);
        self.flush();
    }

    /// Stop: close the connection, then stop the devices (which cancels what they hold).
    fn shutdown(&self) {
        let devices = self.core.borrow_mut().shutdown();
        self.flush();
        // Joins the engine threads; they hand their cancellations to the completions task.
        drop(devices);
    }

    /// Carry out what the core asks for.
    fn flush(&self) {
        loop {
            let next = self.core.borrow_mut().next_output();
            match next {
                None => return,
                Some(Output::Send {
                    session,
                    result,
                    clock,
                }) => {
                    let links = self.links.borrow();
                    let sent = links.get(&session).is_some_and(|io| {
                        io.results
                            .try_send(Outgoing::Result { result, clock })
                            .is_ok()
                    });
                    if !sent {
                        tracing::debug!(?session, "writer gone; result dropped");
                    }
                }
                Some(Output::Close { session }) => {
                    // Dropping the tasks cancels them, which closes the socket.
                    let io = self.links.borrow_mut().remove(&session);
                    drop(io);
                }
                Some(Output::Measure { tag, profile }) => match &self.registrations {
                    Some(r) => r.submit(tag, profile),
                    None => self.core.borrow_mut().measured(
                        tag,
                        Err(MeasureError {
                            status: WorkerStatus::RuntimeError,
                            message: "this worker has no registration thread".into(),
                        }),
                    ),
                },
            }
        }
    }
}

/// Receive action frames until the connection ends or the controller falls silent.
/// Each frame's actions use the link's clock estimate as it was when the frame was
/// awaited.
async fn reader_loop(
    shell: Rc<Shell>,
    session: SessionId,
    peer: String,
    mut reader: FrameReader<LinkStream>,
) {
    let activity = reader.activity();
    let timeout = shell.liveness.timeout;
    let read = async {
        loop {
            let offset = reader.clock().offset_ns();
            match reader.recv_msg::<ToWorker>().await {
                Ok(msg) => {
                    let now = MonotonicClock::read();
                    shell.core.borrow_mut().message(session, now, offset, msg);
                    shell.flush();
                }
                Err(e) => return e,
            }
        }
    };
    let e = futures_lite::future::or(read, watch(activity, timeout)).await;
    match &e {
        NetError::Silent { .. } => {
            tracing::warn!(controller = %peer, error = %e, "controller silent; closing its connection");
        }
        e if e.is_disconnect() => {
            tracing::debug!(controller = %peer, error = %e, "connection ended");
        }
        e => tracing::warn!(controller = %peer, error = %e, "closing the controller connection"),
    }
    shell.reader_ended(session);
}

/// Queue a heartbeat for the writer every `interval` until the link's writer is gone.
async fn heartbeat_loop(tx: Rc<LocalSender<Outgoing>>, interval: Duration) {
    loop {
        clockwork_net::timer::sleep(interval).await;
        if tx.try_send(Outgoing::Heartbeat).is_err() {
            return;
        }
    }
}

/// Send results in the order they are queued; `sent` is stamped just before each send.
/// An INFER's output buffer goes back to `buffers` once its result is written.
async fn writer_loop(
    rx: LocalReceiver<Outgoing>,
    mut writer: FrameWriter<LinkStream>,
    peer: String,
    buffers: Rc<BufferPool>,
) {
    while let Some(out) = rx.recv().await {
        let msg = match out {
            Outgoing::Result { mut result, clock } => {
                result.sent = clock.to_controller(MonotonicClock::read());
                FromWorker::Result(result)
            }
            Outgoing::Heartbeat => FromWorker::Heartbeat,
        };
        if let Err(e) = writer.send(&msg).await {
            tracing::debug!(controller = %peer, error = %e, "result not sent; connection lost");
            return;
        }
        if let FromWorker::Result(ActionResult {
            outcome: Outcome::Inferred(inferred),
            ..
        }) = msg
        {
            buffers.give(inferred.outputs);
        }
    }
}

/// Turn finished measurements into REGISTER results (forever; cancelled at shutdown).
async fn registrations_loop(shell: Rc<Shell>) {
    let Some(registrations) = &shell.registrations else {
        return;
    };
    loop {
        let (tag, result) = registrations.next().await;
        shell.core.borrow_mut().measured(tag, result);
        shell.flush();
    }
}

/// Turn device completions into results until every engine has stopped.
async fn completions_loop(shell: Rc<Shell>, mut completions: Completions) {
    while let Some(c) = completions.next().await {
        shell.core.borrow_mut().completion(c);
        // Take whatever else is ready before flushing once.
        while let Ok(c) = completions.try_next() {
            shell.core.borrow_mut().completion(c);
        }
        shell.flush();
    }
}
