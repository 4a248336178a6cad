//! Wake-up accounting: which event an executor thread handled first after it last
//! slept, counted by cause. A diagnostic, off unless the environment variable
//! `CLOCKWORK_WAKE_STATS` is set (to anything but `0`) when the process starts.
//!
//! On a parked glommio executor every wake-up is a context switch plus io_uring and
//! timer work in the kernel, and on a virtual machine that costs tens of microseconds,
//! far more than handling the event itself (docs/benchmarks.md, "Controller CPU per
//! request"). So what a service costs per request is mostly how many wake-ups it needs
//! per request, and this module says which events those are.
//!
//! Services call [`note`] where an event starts being handled (a frame read, a timer
//! fired). When accounting is on, `note` reads the thread's count of voluntary context
//! switches (`getrusage(RUSAGE_THREAD)`, one system call): if it moved since the last
//! `note`, the thread slept in between and this event is counted as the wake-up's
//! cause. [`report`] lists events and wake-ups per cause, and the switches that no
//! noted event followed (glommio's own work, or an event nobody notes). When accounting
//! is off, `note` costs one thread-local read.
//!
//! The accounting is per thread; a service reports from the thread it counted on.

use std::cell::{Cell, RefCell};
use std::sync::OnceLock;

/// What an executor woke up for (or handled first after waking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Cause {
    /// The tick guard's timer (`runtime`).
    Tick,
    /// A frame from a native client link.
    ClientRead,
    /// Bytes on an HTTP or gRPC connection.
    HttpRead,
    /// A frame (result or heartbeat) from a worker link.
    WorkerRead,
    /// A frame from the controller (on a worker).
    ControllerRead,
    /// The scheduler's timer fired and handling it produced output.
    SchedTimer,
    /// The scheduler's timer fired but nothing was due (a stale or moved deadline).
    SchedTimerIdle,
    /// The scheduler's timer woke before its deadline (glommio's timer wheel).
    SchedTimerEarly,
    /// The scheduler's next deadline moved earlier, so its timer is set again.
    SchedKick,
    /// A link's heartbeat timer.
    Heartbeat,
    /// A link's liveness watchdog.
    Watchdog,
    /// Anything else a service notes.
    Other,
}

impl Cause {
    const ALL: [Self; 12] = [
        Self::Tick,
        Self::ClientRead,
        Self::HttpRead,
        Self::WorkerRead,
        Self::ControllerRead,
        Self::SchedTimer,
        Self::SchedTimerIdle,
        Self::SchedTimerEarly,
        Self::SchedKick,
        Self::Heartbeat,
        Self::Watchdog,
        Self::Other,
    ];

    /// The label in [`report`].
    pub const fn label(self) -> &'static str {
        match self {
            Self::Tick => "tick guard",
            Self::ClientRead => "client read",
            Self::HttpRead => "http read",
            Self::WorkerRead => "worker read",
            Self::ControllerRead => "controller read",
            Self::SchedTimer => "scheduler timer",
            Self::SchedTimerIdle => "scheduler timer, nothing due",
            Self::SchedTimerEarly => "scheduler timer, early",
            Self::SchedKick => "scheduler deadline moved earlier",
            Self::Heartbeat => "heartbeat",
            Self::Watchdog => "watchdog",
            Self::Other => "other",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

const CAUSES: usize = Cause::ALL.len();

/// Whether accounting is on for this process (read once).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("CLOCKWORK_WAKE_STATS").is_some_and(|v| v != "0"))
}

#[derive(Debug, Default)]
struct Counts {
    events: [u64; CAUSES],
    wakes: [u64; CAUSES],
    /// Voluntary switches when counting started on this thread.
    start: Option<i64>,
}

thread_local! {
    static LAST_SWITCHES: Cell<i64> = const { Cell::new(-1) };
    static COUNTS: RefCell<Counts> = RefCell::new(Counts::default());
}

fn switches() -> i64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_THREAD).map_or(0, |u| u.voluntary_context_switches())
}

/// Notes that an event of `cause` starts being handled on this thread. Returns whether
/// it is the first since the thread last slept (always `false` when accounting is off).
pub fn note(cause: Cause) -> bool {
    if !enabled() {
        return false;
    }
    let now = switches();
    let first = LAST_SWITCHES.with(|last| last.replace(now) != now);
    COUNTS.with(|c| {
        let mut c = c.borrow_mut();
        c.start.get_or_insert(now);
        c.events[cause.index()] += 1;
        if first {
            c.wakes[cause.index()] += 1;
        }
    });
    first
}

/// Moves one event (and its wake-up, when `first`) from `from` to `to`: for a cause
/// only known once the event was handled (a scheduler timer that had nothing due).
pub fn reclassify(from: Cause, to: Cause, first: bool) {
    if !enabled() {
        return;
    }
    COUNTS.with(|c| {
        let mut c = c.borrow_mut();
        c.events[from.index()] = c.events[from.index()].saturating_sub(1);
        c.events[to.index()] += 1;
        if first {
            c.wakes[from.index()] = c.wakes[from.index()].saturating_sub(1);
            c.wakes[to.index()] += 1;
        }
    });
}

/// This thread's counts since its first [`note`], as text (one line per cause that
/// occurred, then the voluntary context switches and how many of them no noted event
/// followed, then glommio's task counters); `None` when accounting is off. Call it on
/// the executor that counted, inside its future (glommio's counters need it).
pub fn report() -> Option<String> {
    if !enabled() {
        return None;
    }
    let total = switches();
    COUNTS.with(|c| {
        let c = c.borrow();
        let mut out = String::from("wake-ups by cause (this thread):\n");
        let mut attributed = 0;
        for cause in Cause::ALL {
            let (e, w) = (c.events[cause.index()], c.wakes[cause.index()]);
            attributed += w;
            if e > 0 {
                out.push_str(&format!(
                    "  {:<30} events {:>9}  wake-ups {:>9}\n",
                    cause.label(),
                    e,
                    w
                ));
            }
        }
        let slept = u64::try_from(total - c.start.unwrap_or(total)).unwrap_or(0);
        // glommio's counters since the executor started (or since the last report).
        let stats = glommio::executor().executor_stats();
        out.push_str(&format!(
            "  glommio: {} task polls, {} task-queue runs\n",
            stats.tasks_executed(),
            stats.scheduler_runs()
        ));
        out.push_str(&format!(
            "  voluntary context switches {slept}, of them followed by no noted event {}\n",
            slept.saturating_sub(attributed)
        ));
        Some(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_its_own_slot() {
        for (i, c) in Cause::ALL.iter().enumerate() {
            assert_eq!(c.index(), i, "{c:?}");
        }
    }
}
