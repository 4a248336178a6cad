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
//! [`Sleep`] keeps exactly one registration, made through a waker of its own that notes
//! when the timer fires: a poll for another reason (a combinator's other branch) leaves
//! the registration as it is, and a poll after the timer fired registers afresh (after
//! dropping the old one). A timer that fired before the deadline can only be the
//! wheel's doing, and registering for the rest of the same millisecond would fire at
//! once again, so such a sleep aims one wheel slot (1 ms) past its deadline instead:
//! on the wheel a sleep ends within a millisecond after its deadline rather than
//! spinning through the one before it. Off the wheel (fewer than 256 timers) timers
//! fire at or after their deadline and nothing changes. Use [`sleep`] /
//! [`sleep_until`] instead of `glommio::timer::sleep`.

use glommio::timer::Timer;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// The slot of glommio's timer wheel: how early it can fire a timer, and how far past
/// the deadline a sleep aims once its timer fired early.
const WHEEL_SLOT: Duration = Duration::from_millis(1);

/// A future that completes at its deadline and holds at most one timer registration.
#[derive(Debug)]
#[must_use = "a sleep does nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    /// The registration made by the last poll that registered (dropping a glommio
    /// `Timer` removes its registration).
    armed: Option<Armed>,
}

#[derive(Debug)]
struct Armed {
    /// Held for its registration only.
    _timer: Timer,
    /// What the timer wakes: it notes that the timer fired, then wakes the task.
    signal: Arc<Signal>,
}

#[derive(Debug)]
struct Signal {
    fired: AtomicBool,
    task: Waker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Relaxed);
        self.task.wake_by_ref();
    }
}

/// Sleeps for `duration` (measured from now, not from the first poll).
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(Instant::now() + duration)
}

/// Sleeps until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        armed: None,
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
            self.armed = None;
            return Poll::Ready(());
        }
        let early = match &self.armed {
            // Polled for another reason (a combinator's other branch): the registration
            // stands.
            Some(a)
                if !a.signal.fired.load(Ordering::Relaxed)
                    && a.signal.task.will_wake(cx.waker()) =>
            {
                return Poll::Pending;
            }
            Some(a) => a.signal.fired.load(Ordering::Relaxed),
            None => false,
        };
        // Fired before the deadline: glommio's wheel, which would fire a timer for this
        // millisecond again at once. Aim at the next slot instead of spinning to the
        // deadline (the sleep then ends within a millisecond after it).
        let wait = if early {
            self.deadline - now + WHEEL_SLOT
        } else {
            self.deadline - now
        };
        // Drop (deregister) the last registration before making the next.
        self.armed = None;
        let signal = Arc::new(Signal {
            fired: AtomicBool::new(false),
            task: cx.waker().clone(),
        });
        let waker = Waker::from(Arc::clone(&signal));
        let mut timer = Timer::new(wait);
        match Pin::new(&mut timer).poll(&mut Context::from_waker(&waker)) {
            // The clock moved past the timer between the two reads.
            Poll::Ready(_) => Poll::Ready(()),
            Poll::Pending => {
                self.armed = Some(Armed {
                    _timer: timer,
                    signal,
                });
                Poll::Pending
            }
        }
    }
}
