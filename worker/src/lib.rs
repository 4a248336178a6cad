//! Clockwork-RS worker: the passive executor process.
//!
//! This crate owns the worker process of one machine: it listens for the controller,
//! registers models, hands every LOAD, UNLOAD and INFER to `clockwork-gpu`'s device
//! executors with its window translated into the local clock, answers GET STATE and
//! CLEAR CACHE, and returns each action's result as soon as it finishes, with its
//! timings translated back into the controller's clock. It makes **no decisions**: it
//! never evicts (a LOAD that does not fit fails with 53), never reorders beyond what
//! each action's `[earliest, latest]` window allows, never retries, and never runs
//! anything late; every action gets exactly one result. The devices themselves (engine
//! threads, page caches, the window rule) belong to `clockwork-gpu`; framing, the
//! handshake and clock estimation to `clockwork-net`; every decision to the controller.
//! The command line ([`cli`]) is here too, so the `clockwork-worker` binary and the
//! main job's worker processes (`clockwork-bench local`) parse the same flags.
//!
//! # Shape
//!
//! A sans-IO **core** (`core/`) owns the state and every decision-free rule of the
//! worker: sessions, decoding and checking actions, clock translation, REGISTER, GET
//! STATE, CLEAR CACHE, and turning device completions into results. It is driven by
//! events (a controller connected or disconnected, a message arrived, a completion
//! arrived) and emits outputs (send this result on session S, close session S); it
//! reaches the devices through a small trait, so its tests need neither sockets nor
//! devices. A thin glommio **shell** (`shell.rs`) owns the sockets and tasks: one
//! executor (built through `clockwork_net::runtime`, optionally pinned) runs an accept
//! loop, one handshake task per incoming connection, per controller connection a
//! **reader** and a single **writer** task, plus one **completions** task for the whole
//! worker. No `RefCell` borrow is held across an `.await`.
//!
//! Deadline precision depends on the engine threads getting a CPU when an action is
//! due. On a shared host run the worker with real-time priority (`chrt -f 50
//! clockwork-worker ...`; every thread inherits it): on a loaded 2-core VM this took
//! the 100-device emulation's completion-error p99 from ~4.5 ms to ~0.8 ms.
//!
//! # Policies
//!
//! * **One controller at a time, held by liveness** (docs/adr/0004-one-controller.md). A
//!   controller that authenticates (cluster token, role) while another is connected
//!   and alive (heard from within the link timeout: both sides send heartbeats) is
//!   refused in words ("held by controller X"). Once the connected one has been silent
//!   for the link timeout, the worker closes its connection (a watchdog) and the next
//!   controller gets in, so a restarted controller is locked out for at most the link
//!   timeout by the half-open connection of its crashed predecessor, and two live
//!   controllers can never take the worker from each other.
//! * **Signals** (the binary): SIGINT and SIGTERM drain: the worker stops taking
//!   connections and actions, waits (bounded by `--drain-ms`) for the actions its
//!   devices hold, sends their results, releases the devices and exits 0.
//! * **Disconnects.** When a controller goes away, actions already handed to a device
//!   run to completion (or are dropped at `latest`) but their results are discarded:
//!   results are tagged with their connection and never delivered to a later
//!   controller. Device state (registered models, resident weights) survives, and the
//!   worker accepts the next controller at once.
//! * **Clocks.** See [`ClockMap`]: windows are converted with the link's offset
//!   estimate as it stood when the frame was awaited (0 until the estimator has samples
//!   both ways, logged at debug level), and all of one action's timestamps are converted
//!   back with that same offset.
//! * **Inputs and outputs.** An INFER's input bytes (when `input_sizes` is non-empty)
//!   are copied once out of the frame and handed to the device with a zeroed output
//!   buffer of `output_bytes × batch_size` bytes, so the device thread allocates
//!   nothing. The device fills it; the result's `outputs` is that buffer, one
//!   `output_bytes` slice per request in batch order. Both buffers come from the
//!   worker thread's pool (`core::buffers`) and go back to it (the input with the
//!   completion, the output once its result is written), so in steady state an INFER
//!   allocates nothing on the worker either. Emulated outputs are zeros of the
//!   declared size (the CUDA stand-in kernel's too, for now). `copy_input` and
//!   `copy_output` are zero-length timings at the start and end of `exec`, and the SM
//!   clocks are 0.
//! * **Validation**, each check in one place: the worker checks what only the wire can
//!   get wrong (the window of REGISTER, GET STATE and CLEAR CACHE, 12; an unreadable
//!   profile, 12; INFER inputs: `input_sizes` empty with no `inputs`, or one size per
//!   request summing to `inputs.len()`, else 30 InvalidInput; an INFER whose outputs
//!   would not fit in a result frame of the link, 31); the device set checks the
//!   profile and conflicting re-registration (12, 10) and the GPU id (13); the device
//!   checks the window of LOAD, UNLOAD and INFER (12), that the model is registered (10,
//!   52 or 62 by kind) and the batch size (31). Every refused action gets exactly one
//!   result with its status and changes nothing else. The windows of REGISTER, GET
//!   STATE and CLEAR CACHE are validated but not waited for: those run at once.
//! * **CPU devices** (`--cpu N`, `Backend::Cpu`) compute for real (not emulated): a
//!   REGISTER of a real model (an ONNX path) is measured first on the worker's
//!   registration thread (`measure.rs`: import, plans for the profile's batch sizes, a
//!   warm-up and a few timed runs each) and answered when that finishes, with
//!   `measured: Some(times)`; a file that cannot be read is refused with 41
//!   (InvalidModelPath), an invalid or unsupported model with 12, an emulated model with
//!   12. The worker serves everything else meanwhile. See `docs/cpu-backend.md`.
//! * **CLEAR CACHE** unloads, on every GPU, every resident model, and also every model
//!   a LOAD already handed to a device will bring in: that unload is queued with the
//!   LOAD's `earliest`, so it runs as soon as the LOAD starts and supersedes it (the
//!   LOAD fails with 54, and its result is sent before the CLEAR CACHE's).
//!   `CacheCleared` is sent once every such unload and LOAD has ended, so the cache is
//!   empty when the controller reads it (an answer may therefore wait for a LOAD
//!   planned in the future). Host copies (registrations) stay.
//!
//! # Example
//!
//! ```no_run
//! use clockwork_worker::{Worker, WorkerConfig};
//!
//! let mut config = WorkerConfig::emulated(4);
//! config.listen = "127.0.0.1:0".parse().unwrap();
//! let worker = Worker::serve(config)?;
//! println!("worker listening on {}", worker.local_addr());
//! worker.stop()?;
//! # Ok::<(), clockwork_worker::WorkerError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![deny(unused_must_use)]

pub mod cli;
mod clock;
mod core;
mod error;
mod measure;
mod shell;

pub use clock::ClockMap;
pub use error::WorkerError;

use atomic_waker::AtomicWaker;
use clockwork_core::GpuState;
use clockwork_gpu::{Backend, DeviceConfig, DeviceSet};
use clockwork_net::runtime::{self, ExecutorConfig, ExecutorHandle};
use clockwork_net::{LinkConfig, Liveness};
use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::task::Poll;
use std::time::Duration;

/// Where a worker listens by default (the original's worker port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:12345";

/// The default cluster token. It is public, so it only keeps apart clusters that
/// share a network by accident: set a secret token for anything but local testing.
pub const DEFAULT_TOKEN: &str = "clockwork-dev";

/// The default worker name (shown in the controller's logs).
pub const DEFAULT_NAME: &str = "clockwork-worker";

/// How to run a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Address to listen on for the controller (port 0 picks a free port; see
    /// [`WorkerHandle::local_addr`]).
    pub listen: SocketAddr,
    /// Cluster token, worker name and frame limits of the controller link.
    pub link: LinkConfig,
    /// The devices.
    pub devices: DeviceConfig,
    /// The network executor (name, CPU pinning, spin-before-park).
    pub executor: ExecutorConfig,
    /// Heartbeat interval and silence timeout of the controller link.
    pub liveness: Liveness,
    /// On a draining stop ([`Stopper::drain`]), the longest wait for in-flight actions.
    pub drain_timeout: Duration,
}

impl WorkerConfig {
    /// `cores.len()` CPU devices (real compute, not emulated), device `i` pinned to
    /// core `cores[i]`, default cache, listening on [`DEFAULT_LISTEN`] with
    /// [`DEFAULT_TOKEN`].
    pub fn cpu(cores: Vec<usize>) -> Self {
        Self::with_devices(DeviceConfig::cpu(cores))
    }

    /// `devices` emulated devices with the default cache, listening on
    /// [`DEFAULT_LISTEN`] with [`DEFAULT_TOKEN`].
    pub fn emulated(devices: u32) -> Self {
        Self::with_devices(DeviceConfig::emulated(devices))
    }

    /// The given devices, listening on [`DEFAULT_LISTEN`] with [`DEFAULT_TOKEN`].
    pub fn with_devices(devices: DeviceConfig) -> Self {
        Self {
            // A constant that parses.
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 12345))),
            link: LinkConfig::new(DEFAULT_TOKEN, DEFAULT_NAME),
            devices,
            executor: ExecutorConfig::named("cw-worker"),
            liveness: Liveness::DEFAULT,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Starts workers; see [`Worker::serve`].
#[derive(Debug, Clone, Copy)]
pub struct Worker;

impl Worker {
    /// Start the devices, then a network executor on a new thread that listens for the
    /// controller. Returns once the listener is bound and the devices are ready.
    ///
    /// # Errors
    ///
    /// [`WorkerError::Runtime`] when glommio cannot run on this host,
    /// [`WorkerError::Gpu`] when the devices cannot be started (e.g. `Backend::Cuda`
    /// without CUDA), [`WorkerError::Net`] when the address cannot be bound.
    pub fn serve(config: WorkerConfig) -> Result<WorkerHandle, WorkerError> {
        runtime::preflight()?;
        let (devices, completions) = DeviceSet::start(config.devices.clone())?;
        let gpus = devices.state();
        let registrations = if devices.computes() {
            let cpu = registration_cpu(&config.devices);
            Some(measure::Registrations::start(cpu).map_err(WorkerError::RegistrationThread)?)
        } else {
            None
        };
        let stop = Arc::new(StopSignal::default());
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let service = shell::ServiceConfig {
            listen: config.listen,
            link: config.link.clone(),
            liveness: config.liveness,
            drain_timeout: config.drain_timeout,
            stop: Arc::clone(&stop),
            registrations,
        };
        let executor = runtime::spawn(config.executor, move || {
            shell::run(service, devices, completions, ready_tx)
        })?;
        match ready_rx.recv() {
            Ok(Ok(addr)) => Ok(WorkerHandle {
                addr,
                gpus,
                stop,
                executor: Some(executor),
            }),
            Ok(Err(e)) => {
                // The service returns at once after reporting its error.
                let _ = executor.join();
                Err(e)
            }
            Err(_) => match executor.join() {
                Err(e) => Err(e.into()),
                Ok(Err(e)) => Err(e),
                Ok(Ok(())) => Err(WorkerError::StartupFailed),
            },
        }
    }
}

/// The core the registration thread is pinned to: the first one no CPU device uses, so
/// that measuring does not take an INFER core's time (none when every core has one).
fn registration_cpu(devices: &DeviceConfig) -> Option<usize> {
    let Backend::Cpu { cores } = &devices.backend else {
        return None;
    };
    let n = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    (0..n).find(|c| !cores.contains(c))
}

/// A running worker. Dropping it stops the worker and waits for it.
pub struct WorkerHandle {
    addr: SocketAddr,
    gpus: Vec<GpuState>,
    stop: Arc<StopSignal>,
    executor: Option<ExecutorHandle<Result<(), WorkerError>>>,
}

impl WorkerHandle {
    /// The address the worker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The devices as they were at start-up (ids, names, whether emulated, pages).
    pub fn gpus(&self) -> &[GpuState] {
        &self.gpus
    }

    /// A handle that can stop the worker from any thread.
    pub fn stopper(&self) -> Stopper {
        Stopper(Arc::clone(&self.stop))
    }

    /// Stop serving: close the controller connection, cancel what the devices still
    /// hold, stop the engines, and wait for all of it.
    ///
    /// # Errors
    ///
    /// What the executor failed with, if it failed.
    pub fn stop(mut self) -> Result<(), WorkerError> {
        self.stop.trigger();
        self.join()
    }

    /// Serve until stopped (by a [`Stopper`]) or failed.
    ///
    /// # Errors
    ///
    /// What the executor failed with, if it failed.
    pub fn wait(mut self) -> Result<(), WorkerError> {
        self.join()
    }

    fn join(&mut self) -> Result<(), WorkerError> {
        match self.executor.take() {
            Some(e) => e.join()?,
            None => Ok(()),
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.stop.trigger();
        if let Err(e) = self.join() {
            tracing::error!(error = %e, "worker stopped with an error");
        }
    }
}

impl fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("addr", &self.addr)
            .field("gpus", &self.gpus.len())
            .finish_non_exhaustive()
    }
}

/// Stops a worker from any thread (e.g. a signal handler thread).
#[derive(Debug, Clone)]
pub struct Stopper(Arc<StopSignal>);

impl Stopper {
    /// Ask the worker to stop; [`WorkerHandle::wait`] then returns.
    pub fn stop(&self) {
        self.0.trigger();
    }

    /// Ask the worker to stop gracefully: take no more connections or actions, wait
    /// (up to [`WorkerConfig::drain_timeout`]) for the actions its devices hold, send
    /// their results, then stop; [`WorkerHandle::wait`] then returns.
    pub fn drain(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
        self.0.trigger();
    }
}

/// A one-shot stop flag that wakes the executor from another thread.
#[derive(Debug, Default)]
pub(crate) struct StopSignal {
    stopped: AtomicBool,
    /// The stop should drain in-flight actions first.
    draining: AtomicBool,
    waker: AtomicWaker,
}

impl StopSignal {
    pub(crate) fn trigger(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Resolves once [`StopSignal::trigger`] was called.
    pub(crate) async fn wait(&self) {
        poll_fn(|cx| {
            if self.is_stopped() {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.is_stopped() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}
