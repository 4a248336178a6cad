//! Sleeping on a glommio executor without leaking timer registrations.
//!
//! glommio-ng 0.12's `Timer` registers itself with the reactor again on **every** poll
//! while it is pending, and forgets the earlier registration: it stays in the
//! reactor's timer set until its deadline and then wakes the task once more. A sleep
//! that sits in a combinator beside a future that wakes often (`or(read, sleep)`, a
//! link's watchdog beside its reader) is polled on every one of those wake-ups, so the
//! reactor collects one registration per wake-up. Beyond 255 live timers glommio
//! switches its timer set to a wheel of 1 ms slots, which fires timers up to 1 ms
//! **early**; a sleep fired early polls its timer again, which re-registers in the
//! current slot and fires at once, so the executor spins without parking until the
//! deadline. On the main job this kept the controller's executor spinning for a large
//! part of every millisecond (docs/benchmarks.md, "Controller CPU per request").
//!
//! [`Sleep`] keeps exactly one registration: each poll before the deadline first drops
//! the registration it made last time and then registers afresh (two O(1) operations
//! on the reactor's timer set). Use [`sleep`] / [`sleep_until`] instead of
//! `glommio::timer::sleep` wherever a sleep can be polled more than once.

use glommio::timer::Timer;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A future that completes at its deadline and holds at most one timer registration.
#[derive(Debug)]
#[must_use = "a sleep does nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    /// The registration made by the last poll (dropping a glommio `Timer`, or resetting
    /// it, removes its registration).
    timer: Option<Timer>,
}

/// Sleeps for `duration` (measured from now, not from the first poll).
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(Instant::now() + duration)
}

/// Sleeps until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        timer: None,
    }
}

impl Sleep {
    /// When it completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        if now >= self.deadline {
            self.timer = None;
            return Poll::Ready(());
        }
        let left = self.deadline - now;
        let timer = match &mut self.timer {
            // `reset` removes the registration the last poll made; the poll below
            // registers the timer again, once.
            Some(timer) => {
                timer.reset(left);
                timer
            }
            None => self.timer.insert(Timer::new(left)),
        };
        match Pin::new(timer).poll(cx) {
            // The clock moved past the deadline between the two reads.
            Poll::Ready(_) => {
                self.timer = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
