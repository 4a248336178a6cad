//! When a gRPC connection has been idle too long: the HTTP front end's idle rule,
//! applied per HTTP/2 connection.
//!
//! A connection is idle while none of its calls is being answered. It may stay so for
//! `HttpLimits::idle_timeout` after its last call ended; before its first call, only
//! for the shorter of the request and idle timeouts (the rule for a first HTTP/1.1
//! request), so that a peer that connects and sends nothing, not even the HTTP/2
//! preface, does not hold one of the `max_connections` for good. A call counts from
//! the moment hyper hands its stream to the service until its answer is handed back.
//!
//! It owns no I/O: the connection task races [`Activity::expired`] against hyper's
//! connection and, when it fires, asks hyper for a graceful shutdown (GOAWAY).

use super::super::HttpLimits;
use clockwork_net::timer::sleep_until;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// One connection's calls in progress and when it last went idle.
#[derive(Debug)]
pub(super) struct Activity {
    calls: Cell<usize>,
    /// When the connection last had no call (its start, or its last call's end).
    idle_since: Cell<Instant>,
    /// Whether any call has started yet.
    served: Cell<bool>,
    idle_timeout: Duration,
    first_timeout: Duration,
}

impl Activity {
    /// A connection accepted now.
    pub(super) fn new(limits: &HttpLimits) -> Self {
        Self {
            calls: Cell::new(0),
            idle_since: Cell::new(Instant::now()),
            served: Cell::new(false),
            idle_timeout: limits.idle_timeout,
            first_timeout: limits.request_timeout.min(limits.idle_timeout),
        }
    }

    /// A call has started; it counts until the returned guard is dropped (also when
    /// hyper drops the call's future unfinished).
    pub(super) fn call(&self) -> Call<'_> {
        self.calls.set(self.calls.get() + 1);
        self.served.set(true);
        Call(self)
    }

    /// When the connection will have been idle too long, if nothing starts before
    /// (`None` while a call is in progress).
    fn deadline(&self) -> Option<Instant> {
        if self.calls.get() > 0 {
            return None;
        }
        let allowed = if self.served.get() {
            self.idle_timeout
        } else {
            self.first_timeout
        };
        Some(self.idle_since.get() + allowed)
    }

    /// Resolves once the connection has been idle for longer than it may be.
    pub(super) async fn expired(&self) {
        loop {
            // While calls run, look again after the idle timeout: the last one to
            // end restarts the clock, so the deadline cannot come sooner than that.
            let at = self
                .deadline()
                .unwrap_or_else(|| Instant::now() + self.idle_timeout);
            sleep_until(at).await;
            if self.deadline().is_some_and(|d| Instant::now() >= d) {
                return;
            }
        }
    }
}

/// A call in progress on a connection (see [`Activity::call`]).
pub(super) struct Call<'a>(&'a Activity);

impl Drop for Call<'_> {
    fn drop(&mut self) {
        let a = self.0;
        a.calls.set(a.calls.get() - 1);
        if a.calls.get() == 0 {
            a.idle_since.set(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(idle_ms: u64, request_ms: u64) -> HttpLimits {
        HttpLimits {
            idle_timeout: Duration::from_millis(idle_ms),
            request_timeout: Duration::from_millis(request_ms),
            ..HttpLimits::default()
        }
    }

    #[test]
    fn the_first_call_must_come_within_the_shorter_timeout() {
        let a = Activity::new(&limits(5_000, 300));
        let d = a.deadline().unwrap();
        assert_eq!(d - a.idle_since.get(), Duration::from_millis(300));
        let a = Activity::new(&limits(200, 10_000));
        assert_eq!(
            a.deadline().unwrap() - a.idle_since.get(),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn calls_in_progress_hold_the_connection_and_the_last_one_restarts_the_clock() {
        let a = Activity::new(&limits(5_000, 300));
        let started = a.idle_since.get();
        let one = a.call();
        let two = a.call();
        assert_eq!(a.deadline(), None);
        drop(one);
        assert_eq!(a.deadline(), None, "one call is still in progress");
        drop(two);
        let d = a.deadline().unwrap();
        assert!(a.idle_since.get() >= started);
        assert_eq!(
            d - a.idle_since.get(),
            Duration::from_millis(5_000),
            "after a call, the idle timeout applies"
        );
    }
}
