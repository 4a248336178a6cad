//! Handoff between the caller's thread (a glommio reactor, or any thread) and the engine
//! threads, without locks and without blocking the caller.
//!
//! * **In:** one `rtrb` SPSC ring of commands per engine. The engine sleeps when idle; the
//!   producer wakes it with the Dekker handshake of the stack notes (section 4.2): the
//!   engine sets `sleeping`, issues a SeqCst fence, re-checks its ring and only then
//!   parks; the producer pushes, issues a SeqCst fence and unparks the engine if
//!   `sleeping` is set. With both fences, one side always sees the other's store, so a
//!   push is never missed.
//! * **Out:** one `rtrb` SPSC ring of completions per engine, all drained by one
//!   [`Completions`]. The consumer waits through an [`AtomicWaker`]: pop; if empty,
//!   register the waker, pop again; the engines push, then wake. That order means a
//!   completion is never stranded, and an async consumer never blocks its reactor.

use crate::action::Completion;
use crate::error::{RecvTimeoutError, TryRecvError};
use atomic_waker::AtomicWaker;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// The sleep/wake state of one engine thread, shared with its producer.
#[derive(Debug, Default)]
pub(crate) struct EngineSignal {
    sleeping: AtomicBool,
    shutdown: AtomicBool,
}

impl EngineSignal {
    /// Producer side, after pushing: wake the engine if it is (about to be) asleep.
    pub(crate) fn notify(&self, engine: &Thread) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            engine.unpark();
        }
    }

    /// Ask the engine to stop (works even when its ring is full).
    pub(crate) fn request_shutdown(&self, engine: &Thread) {
        self.shutdown.store(true, Ordering::SeqCst);
        engine.unpark();
    }

    /// Whether a shutdown was requested.
    pub(crate) fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Engine side: park for up to `timeout` (forever if `None`) unless `has_work` or a
    /// shutdown request says otherwise. May return early (spurious wake-ups).
    pub(crate) fn sleep(&self, has_work: impl Fn() -> bool, timeout: Option<Duration>) {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if !has_work() && !self.shutdown_requested() {
            match timeout {
                Some(t) => std::thread::park_timeout(t),
                None => std::thread::park(),
            }
        }
        self.sleeping.store(false, Ordering::Relaxed);
    }
}

/// The engine's end of its completion ring. Completions that do not fit wait in a
/// local backlog, in order; none is dropped while the consumer exists.
#[derive(Debug)]
pub(crate) struct Outbox {
    ring: Option<rtrb::Producer<Completion>>,
    waker: Arc<AtomicWaker>,
    backlog: VecDeque<Completion>,
}

impl Outbox {
    pub(crate) fn new(ring: rtrb::Producer<Completion>, waker: Arc<AtomicWaker>) -> Self {
        Self {
            ring: Some(ring),
            waker,
            backlog: VecDeque::new(),
        }
    }

    /// Queue `batch` (emptying it) and push what fits; wake the consumer if anything
    /// was pushed. Returns true when nothing is left waiting.
    pub(crate) fn send(&mut self, batch: &mut Vec<Completion>) -> bool {
        self.backlog.extend(batch.drain(..));
        self.flush()
    }

    /// Push the backlog; true when it is empty.
    pub(crate) fn flush(&mut self) -> bool {
        let Some(ring) = self.ring.as_mut() else {
            self.backlog.clear();
            return true;
        };
        if ring.is_abandoned() {
            // Nobody will ever read these.
            self.backlog.clear();
            return true;
        }
        let mut pushed = false;
        while let Some(c) = self.backlog.pop_front() {
            if let Err(rtrb::PushError::Full(c)) = ring.push(c) {
                self.backlog.push_front(c);
                break;
            }
            pushed = true;
        }
        if pushed {
            self.waker.wake();
        }
        self.backlog.is_empty()
    }

    /// True when completions wait for room in the ring.
    pub(crate) fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        // Close the ring first, then wake, so the consumer sees the close.
        drop(self.ring.take());
        self.waker.wake();
    }
}

/// The receiving end of every device's completions. Runtime-agnostic: poll it from any
/// async executor ([`Completions::poll_next`], [`Completions::next`]), or block a plain
/// thread on it ([`Completions::recv_timeout`]).
#[derive(Debug)]
pub struct Completions {
    rings: Vec<rtrb::Consumer<Completion>>,
    waker: Arc<AtomicWaker>,
    /// Round-robin start, so one busy engine cannot starve the others.
    next: usize,
}

impl Completions {
    pub(crate) fn new(rings: Vec<rtrb::Consumer<Completion>>, waker: Arc<AtomicWaker>) -> Self {
        Self {
            rings,
            waker,
            next: 0,
        }
    }

    /// Take one completion if one is ready, without waiting.
    pub fn try_next(&mut self) -> Result<Completion, TryRecvError> {
        if let Some(c) = self.pop() {
            return Ok(c);
        }
        if self.rings.iter().all(rtrb::Consumer::is_abandoned) {
            // An engine may have pushed just before closing: look once more.
            return self.pop().ok_or(TryRecvError::Closed);
        }
        Err(TryRecvError::Empty)
    }

    /// Poll for the next completion: `Ready(None)` once every engine has stopped and
    /// every completion was taken. Registers `cx`'s waker when nothing is ready.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Completion>> {
        match self.try_next() {
            Ok(c) => return Poll::Ready(Some(c)),
            Err(TryRecvError::Closed) => return Poll::Ready(None),
            Err(TryRecvError::Empty) => {}
        }
        self.waker.register(cx.waker());
        match self.try_next() {
            Ok(c) => Poll::Ready(Some(c)),
            Err(TryRecvError::Closed) => Poll::Ready(None),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }

    /// The next completion, or `None` once every engine has stopped.
    pub async fn next(&mut self) -> Option<Completion> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Block the calling thread until a completion arrives or `timeout` passes. For
    /// plain threads and tests; never call it on an async reactor.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Completion, RecvTimeoutError> {
        let deadline = Instant::now() + timeout;
        let waker = Waker::from(Arc::new(Unparker(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            match self.poll_next(&mut cx) {
                Poll::Ready(Some(c)) => return Ok(c),
                Poll::Ready(None) => return Err(RecvTimeoutError::Closed),
                Poll::Pending => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RecvTimeoutError::Timeout);
            }
            // An unpark that happened since registering makes this return at once.
            std::thread::park_timeout(deadline - now);
        }
    }

    fn pop(&mut self) -> Option<Completion> {
        let n = self.rings.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if let Ok(c) = self.rings[i].pop() {
                self.next = (i + 1) % n;
                return Some(c);
            }
        }
        None
    }
}

/// Wakes a blocked [`Completions::recv_timeout`] caller.
struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::OpKind;
    use clockwork_core::{ActionId, GpuId, ModelId, Timing, WorkerStatus};

    fn completion(id: u64) -> Completion {
        Completion {
            action: ActionId(id),
            gpu: GpuId(0),
            model: ModelId(0),
            kind: OpKind::Infer,
            status: WorkerStatus::Success,
            timing: Timing::default(),
            padded_batch: 1,
            emulated: true,
            output: Vec::new(),
            input: Vec::new(),
        }
    }

    #[test]
    fn backlog_keeps_order_and_closing_is_seen() {
        let waker = Arc::new(AtomicWaker::new());
        let (p, c) = rtrb::RingBuffer::new(2);
        let mut out = Outbox::new(p, Arc::clone(&waker));
        let mut rx = Completions::new(vec![c], waker);
        let mut batch: Vec<_> = (0..5).map(completion).collect();
        assert!(!out.send(&mut batch), "only two fit");
        assert!(out.has_backlog());
        let mut got = Vec::new();
        while got.len() < 5 {
            while let Ok(c) = rx.try_next() {
                got.push(c.action.get());
            }
            out.flush();
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        assert_eq!(rx.try_next(), Err(TryRecvError::Empty));
        drop(out);
        assert_eq!(rx.try_next(), Err(TryRecvError::Closed));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)),
            Err(RecvTimeoutError::Closed)
        );
    }

    #[test]
    fn recv_timeout_wakes_on_push_from_another_thread() {
        let waker = Arc::new(AtomicWaker::new());
        let (p, c) = rtrb::RingBuffer::new(16);
        let mut rx = Completions::new(vec![c], Arc::clone(&waker));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(5)),
            Err(RecvTimeoutError::Timeout)
        );
        let t = std::thread::spawn(move || {
            let mut out = Outbox::new(p, waker);
            for i in 0..100 {
                out.send(&mut vec![completion(i)]);
                std::thread::yield_now();
            }
            // The ring holds 16: hand over the backlog before closing, as an engine does.
            while !out.flush() {
                std::thread::yield_now();
            }
        });
        for i in 0..100 {
            let c = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("a completion");
            assert_eq!(c.action, ActionId(i));
        }
        t.join().expect("producer thread");
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)),
            Err(RecvTimeoutError::Closed)
        );
    }

    #[test]
    fn sleeping_engine_is_woken_by_notify() {
        let signal = Arc::new(EngineSignal::default());
        let flag = Arc::new(AtomicBool::new(false));
        let (s, f) = (Arc::clone(&signal), Arc::clone(&flag));
        let engine = std::thread::spawn(move || {
            let start = Instant::now();
            while !f.load(Ordering::Acquire) {
                s.sleep(|| f.load(Ordering::Acquire), None);
            }
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(20));
        flag.store(true, Ordering::Release);
        signal.notify(engine.thread());
        let waited = engine.join().expect("engine thread");
        assert!(waited >= Duration::from_millis(10), "it did sleep");
    }
}
