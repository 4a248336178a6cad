//! Link liveness: knowing, within a bounded time, that the peer of a link stopped
//! talking even when TCP says nothing (a stalled path, a frozen process, a dead host).
//!
//! Each side of a controller–worker link sends a cheap heartbeat frame every
//! [`Liveness::heartbeat`] and watches the time the last bytes arrived from the peer
//! ([`Activity`], kept by the link's [`FrameReader`](crate::FrameReader)). When nothing
//! arrived for [`Liveness::timeout`], [`watch`] resolves with [`NetError::Silent`] and
//! the owner treats the link exactly as a closed one. The messages that carry the
//! heartbeats belong to the link's own message types (`clockwork-core`); this module
//! owns only the timing.

use crate::error::NetError;
use clockwork_core::time::MonotonicClock;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// How often each side of a link speaks when it has nothing else to say, and how long
/// the other side waits before it declares the link dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Interval between heartbeats.
    pub heartbeat: Duration,
    /// Silence after which the link is dead.
    pub timeout: Duration,
}

impl Liveness {
    /// The defaults: a heartbeat every 100 ms, dead after 800 ms of silence.
    pub const DEFAULT: Self = Self {
        heartbeat: Duration::from_millis(100),
        timeout: Duration::from_millis(800),
    };

    /// Check that the timeout leaves room for at least two lost or late heartbeats.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat.is_zero() {
            return Err("the heartbeat interval must be positive".into());
        }
        if self.timeout < self.heartbeat * 2 {
            return Err(format!(
                "the link timeout ({} ms) must be at least twice the heartbeat interval ({} ms)",
                self.timeout.as_millis(),
                self.heartbeat.as_millis()
            ));
        }
        Ok(())
    }
}

impl Default for Liveness {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// When bytes last arrived on a link (monotonic ns), shared between the link's reader,
/// which updates it, and its watchdog, which reads it.
#[derive(Debug, Clone)]
pub struct Activity(Rc<Cell<u64>>);

impl Activity {
    /// A link that was heard from just now.
    pub fn new() -> Self {
        Self(Rc::new(Cell::new(MonotonicClock::read().get())))
    }

    /// Record that bytes arrived at `now_ns`.
    pub fn heard(&self, now_ns: u64) {
        self.0.set(now_ns);
    }

    /// How long the link has been silent.
    pub fn silent_for(&self) -> Duration {
        Duration::from_nanos(MonotonicClock::read().get().saturating_sub(self.0.get()))
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// Resolves once the link has been silent for `timeout`, with the error that says so.
/// It sleeps until the moment the link would expire and looks again, so it costs one
/// timer per `timeout` while the link is alive.
pub async fn watch(activity: Activity, timeout: Duration) -> NetError {
    loop {
        let silent = activity.silent_for();
        if silent >= timeout {
            return NetError::Silent {
                silent_ms: u64::try_from(silent.as_millis()).unwrap_or(u64::MAX),
            };
        }
        crate::timer::sleep(timeout - silent).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_must_leave_room_for_two_heartbeats() {
        assert!(Liveness::DEFAULT.validate().is_ok());
        let bad = Liveness {
            heartbeat: Duration::from_millis(100),
            timeout: Duration::from_millis(150),
        };
        assert!(bad.validate().unwrap_err().contains("twice"));
        let zero = Liveness {
            heartbeat: Duration::ZERO,
            timeout: Duration::from_secs(1),
        };
        assert!(zero.validate().is_err());
    }
}
