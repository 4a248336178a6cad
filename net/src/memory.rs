//! Giving the memory of closed connections back to the operating system.
//!
//! The services run on glibc malloc, which keeps freed chunks for reuse and returns
//! memory to the kernel only from the top of a heap: after 10,000 connections closed,
//! the controller's ~40 MB for them stayed resident (`docs/operations.md`). `malloc_trim(0)` releases the
//! free pages of every arena. It walks the heap holding the arena's lock, so it runs
//! on glommio's blocking thread, only after a burst of closes has ended (no close for
//! `QUIET`), and only after at least `TRIM_AFTER_CLOSES` closes: ordinary churn
//! never pays for it. Elsewhere (another libc) it does nothing.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// Closes that arm a trim.
const TRIM_AFTER_CLOSES: u32 = 1024;
/// A trim waits until no connection closed for this long.
const QUIET: Duration = Duration::from_secs(1);

/// Counts closed connections and trims after a large burst of them.
#[derive(Debug, Default)]
pub struct ClosedConnections {
    /// Closes since the last trim.
    closed: Rc<Cell<u32>>,
    /// A trim is waiting or running.
    armed: Rc<Cell<bool>>,
}

impl ClosedConnections {
    /// A connection closed (call on the glommio executor that served it).
    pub fn closed(&self) {
        self.closed.set(self.closed.get().saturating_add(1));
        if self.armed.get() || self.closed.get() < TRIM_AFTER_CLOSES {
            return;
        }
        self.armed.set(true);
        let (closed, armed) = (self.closed.clone(), self.armed.clone());
        glommio::spawn_local(async move {
            // Wait for the burst to end: one trim for the lot.
            loop {
                let before = closed.get();
                crate::timer::sleep(QUIET).await;
                if closed.get() == before {
                    break;
                }
            }
            closed.set(0);
            let _ = glommio::executor().spawn_blocking(trim).await;
            armed.set(false);
        })
        .detach();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks and releases glibc's own free lists; it takes
    // each arena's lock, so it is safe to call while other threads allocate.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
