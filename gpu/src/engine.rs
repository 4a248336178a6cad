//! An engine thread: drives one or more devices (one per thread for CUDA; many emulated
//! devices may share one). It drains its command ring, polls the devices that are due,
//! pushes completions, and then waits for the next due event: it parks until `spin`
//! before it (with timer slack 1 ns, so the park ends close to when asked) and spins
//! the rest, so window starts and emulated completions land within a few µs of plan.
//! With nothing due it parks until a command arrives: an idle engine burns no CPU.
//!
//! Due events per device come from [`Device::next_due`]; the engine keeps them in one
//! min-heap with at most one live entry per device (`armed`), so a poll touches only the
//! devices that are due, whatever their number.

use crate::action::{Completion, DeviceAction};
use crate::backend::DeviceBackend;
use crate::device::{Device, Registry};
use crate::error::GpuError;
use crate::handoff::{EngineSignal, Outbox};
use crate::snapshot::Snapshot;
use clockwork_core::{ModelId, ModelProfile, MonotonicClock, Nanos};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What travels through an engine's command ring.
#[derive(Debug)]
pub(crate) enum Command {
    /// A model is now known (sent to every engine before any action naming it).
    Register {
        /// The model.
        model: ModelId,
        /// Its profile.
        profile: Arc<ModelProfile>,
    },
    /// An action for the engine's device number `local`.
    Action {
        /// Index into the engine's devices.
        local: u32,
        /// The action.
        action: DeviceAction,
    },
}

/// How long a backlog of completions (ring full) waits before the next retry.
const BACKLOG_RETRY: Duration = Duration::from_micros(200);
/// How long a stopping engine keeps trying to hand over its last completions.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(1);

/// Everything an engine thread needs besides its devices.
#[derive(Debug)]
pub(crate) struct EngineParts {
    pub(crate) inbox: rtrb::Consumer<Command>,
    pub(crate) outbox: Outbox,
    pub(crate) signal: Arc<EngineSignal>,
    pub(crate) cpu: Option<usize>,
    pub(crate) spin: Duration,
}

/// The body of an engine thread: prepare the thread, build the devices (on this thread:
/// CUDA contexts bind to it), report readiness with the devices' snapshots, then run
/// until shutdown.
pub(crate) fn engine_main<B, F>(
    parts: EngineParts,
    make: F,
    ready: SyncSender<Result<Vec<Arc<Snapshot>>, GpuError>>,
) where
    B: DeviceBackend,
    F: FnOnce() -> Result<Vec<Device<B>>, GpuError>,
{
    prepare_thread(parts.cpu);
    let devices = match make() {
        Ok(d) => d,
        Err(e) => {
            // The starter is waiting on this channel; if it is gone there is nobody to tell.
            let _ = ready.send(Err(e));
            return;
        }
    };
    let snapshots = devices.iter().map(Device::snapshot).collect();
    if ready.send(Ok(snapshots)).is_err() {
        return;
    }
    drop(ready);
    Engine::new(devices, parts).run();
}

/// Timer slack 1 ns (default 50 µs) so parks end when asked; pin when a CPU is given.
fn prepare_thread(cpu: Option<usize>) {
    if let Err(e) = nix::sys::prctl::set_timerslack(1) {
        tracing::warn!(error = %e, "could not set timer slack; sleeps may overshoot by ~50 µs");
    }
    if let Some(cpu) = cpu {
        let mut set = nix::sched::CpuSet::new();
        let pinned = set
            .set(cpu)
            .and_then(|()| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set));
        if let Err(e) = pinned {
            tracing::warn!(cpu, error = %e, "could not pin engine thread; running unpinned");
        }
    }
}

struct Engine<B> {
    devices: Vec<Device<B>>,
    /// The live timer of each device, if any.
    armed: Vec<Option<Nanos>>,
    timers: BinaryHeap<Reverse<(Nanos, usize)>>,
    registry: Registry,
    inbox: rtrb::Consumer<Command>,
    outbox: Outbox,
    signal: Arc<EngineSignal>,
    spin: Nanos,
    out: Vec<Completion>,
    dirty: Vec<usize>,
}

impl<B: DeviceBackend> Engine<B> {
    fn new(devices: Vec<Device<B>>, parts: EngineParts) -> Self {
        let n = devices.len();
        Self {
            devices,
            armed: vec![None; n],
            timers: BinaryHeap::with_capacity(n * 2),
            registry: Registry::default(),
            inbox: parts.inbox,
            outbox: parts.outbox,
            signal: parts.signal,
            spin: Nanos::from(parts.spin),
            out: Vec::with_capacity(64),
            dirty: Vec::with_capacity(n),
        }
    }

    fn run(mut self) {
        while !self.signal.shutdown_requested() && !self.inbox.is_abandoned() {
            self.drain_inbox(MonotonicClock::read());
            let now = MonotonicClock::read();
            self.fire_timers(now);
            self.poll_dirty(now);
            let backlog = !self.outbox.send(&mut self.out);

            let mut next = self.timers.peek().map(|Reverse((t, _))| *t);
            if backlog {
                let retry = now + Nanos::from(BACKLOG_RETRY);
                next = Some(next.map_or(retry, |t| t.min(retry)));
            }
            let now = MonotonicClock::read();
            let inbox = &self.inbox;
            match next {
                Some(t) if t <= now => {}
                Some(t) if t - now <= self.spin => std::hint::spin_loop(),
                Some(t) => self.signal.sleep(
                    || !inbox.is_empty(),
                    Some(Duration::from(t - now - self.spin)),
                ),
                None => self.signal.sleep(|| !inbox.is_empty(), None),
            }
        }
        self.stop();
    }

    fn drain_inbox(&mut self, now: Nanos) {
        while let Ok(cmd) = self.inbox.pop() {
            match cmd {
                Command::Register { model, profile } => {
                    for d in &mut self.devices {
                        d.register(model, &profile);
                    }
                    self.registry.insert(model, profile);
                }
                Command::Action { local, action } => {
                    let i = local as usize;
                    if let Some(d) = self.devices.get_mut(i) {
                        d.accept(action, now, &self.registry, &mut self.out);
                        self.dirty.push(i);
                    } else {
                        debug_assert!(false, "action routed to a device this engine lacks");
                    }
                }
            }
        }
    }

    fn fire_timers(&mut self, now: Nanos) {
        while let Some(&Reverse((t, i))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            if self.armed[i] == Some(t) {
                self.armed[i] = None;
                self.dirty.push(i);
            }
        }
    }

    fn poll_dirty(&mut self, now: Nanos) {
        while let Some(i) = self.dirty.pop() {
            let d = &mut self.devices[i];
            d.poll(now, &self.registry, &mut self.out);
            if let Some(t) = d.next_due(now) {
                if self.armed[i].is_none_or(|a| t < a) {
                    self.armed[i] = Some(t);
                    self.timers.push(Reverse((t, i)));
                }
            }
        }
    }

    /// Cancel what is queued or running (including commands still in the ring), then
    /// hand the completions over, for a bounded time if the consumer is slow.
    fn stop(mut self) {
        self.drain_inbox(MonotonicClock::read());
        let now = MonotonicClock::read();
        for d in &mut self.devices {
            d.cancel_all(now, &mut self.out);
        }
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        while !self.outbox.send(&mut self.out) && Instant::now() < deadline {
            std::thread::sleep(BACKLOG_RETRY);
        }
        if self.outbox.has_backlog() {
            tracing::warn!("completion ring full at shutdown; dropping undelivered completions");
        }
        // Devices drop here (CUDA: memory freed after their streams were synchronised
        // by `cancel_all`); the outbox drops last and wakes the consumer.
    }
}
