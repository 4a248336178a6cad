//! The time limits of an HTTP/1.1 connection served by hyper (`hyper_engine`),
//! enforced on its byte stream: hyper's own header-read timer needs a `Send + Sync`
//! timer (glommio's are neither) and would close a slow request in silence, and
//! hyper has no idle timeout at all.
//!
//! A connection's [`Watch`] says where it is between requests; [`Timed`] wraps the
//! stream hyper reads and writes and applies the limits the native engine applies
//! (`HttpLimits`):
//! - idle (waiting for a request's first byte): the idle timeout (the first request:
//!   the shorter of the request and idle timeouts); when it runs out, reads end as if
//!   the peer had closed, and hyper closes the connection quietly;
//! - receiving the head (first byte seen, hyper has no complete head yet): the request
//!   timeout from the first byte; when it runs out reads fail and the watch records
//!   it, so that the connection task can answer 408 itself (hyper answers nothing);
//! - serving (hyper handed the head to the service): no read limit here; the service
//!   reads the body within what is left of the request timeout;
//! - writing: once writing an answer stalls, it must be done within the write timeout
//!   (else writes fail and the connection is closed).
//!
//! The watch also tells the service when an answer has gone out: hyper flushes its
//! buffer to the stream, and then flushes the stream, only after writing whole
//! answers, so the stream's next successful flush after an answer was
//! handed over means it was written ([`Watch::answered`] takes what to do then).
//!
//! It owns no HTTP parsing and no answers; which phase a connection is in is the
//! service's to say ([`Watch::serving`], [`Watch::answered`]).

use super::HttpLimits;
use clockwork_net::timer::Sleep;
use futures_lite::io::{AsyncRead, AsyncWrite};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for the next request's first byte until `deadline`.
    Idle { deadline: Instant },
    /// A request's first byte came at `start`.
    Receiving { start: Instant },
    /// The service has the request.
    Serving,
}

/// What to do once an answer is written (`true`) or cannot be (`false`).
pub(super) type OnWritten = Box<dyn FnOnce(bool)>;

/// One connection's phase and limits, shared by its stream and its service.
pub(super) struct Watch {
    phase: Cell<Phase>,
    request_timeout: Duration,
    idle_timeout: Duration,
    write_timeout: Duration,
    /// Answers handed to hyper so far (a write limit starts per answer).
    answers: Cell<u64>,
    /// A request's head did not arrive within the request timeout.
    head_timed_out: Cell<bool>,
    /// Answers handed over and not yet written.
    unwritten: RefCell<Vec<OnWritten>>,
    /// Nothing was written since the last answer went out (or the connection opened).
    quiet: Cell<bool>,
}

impl Watch {
    /// A new connection's watch: its first request must start within the request
    /// timeout (a connection that never sends holds its slot no longer than one that
    /// sends slowly), and within the idle timeout.
    pub(super) fn new(limits: &HttpLimits) -> Rc<Self> {
        let first = limits.request_timeout.min(limits.idle_timeout);
        Rc::new(Self {
            phase: Cell::new(Phase::Idle {
                deadline: Instant::now() + first,
            }),
            request_timeout: limits.request_timeout,
            idle_timeout: limits.idle_timeout,
            write_timeout: limits.write_timeout,
            answers: Cell::new(0),
            head_timed_out: Cell::new(false),
            unwritten: RefCell::new(Vec::new()),
            quiet: Cell::new(true),
        })
    }

    /// The service has a request's head: returns by when its body must have arrived
    /// (the request timeout from its first byte; a request hyper had buffered already,
    /// pipelined, counts from now).
    pub(super) fn serving(&self) -> Instant {
        let start = match self.phase.get() {
            Phase::Receiving { start } => start,
            Phase::Idle { .. } | Phase::Serving => Instant::now(),
        };
        self.phase.set(Phase::Serving);
        start + self.request_timeout
    }

    /// The service handed an answer to hyper: the connection is idle again, and
    /// `on_written` runs once the answer is written (or the connection ends first).
    pub(super) fn answered(&self, on_written: OnWritten) {
        self.unwritten.borrow_mut().push(on_written);
        self.answers.set(self.answers.get() + 1);
        self.phase.set(Phase::Idle {
            deadline: Instant::now() + self.idle_timeout,
        });
    }

    /// Runs what waits for the answers handed over so far: they were `written`, or
    /// the connection ended before they could be.
    pub(super) fn settle(&self, written: bool) {
        if written {
            self.quiet.set(true);
        }
        let done = std::mem::take(&mut *self.unwritten.borrow_mut());
        for f in done {
            f(written);
        }
    }

    /// Whether every answer went out and nothing was written since: hyper did not
    /// answer the request that ended the connection (the connection task may).
    pub(super) fn all_quiet(&self) -> bool {
        self.quiet.get() && self.unwritten.borrow().is_empty()
    }

    /// Whether a request's head did not arrive in time (the connection task answers
    /// 408 once hyper is done).
    pub(super) fn head_timed_out(&self) -> bool {
        self.head_timed_out.get()
    }
}

/// A timer armed for one deadline, waking the task that polled it.
#[derive(Debug, Default)]
struct Alarm {
    armed: Option<Sleep>,
}

impl Alarm {
    /// Whether `deadline` has passed; if not, the polling task is woken when it does.
    /// Every poll goes to the deadline's `clockwork_net::timer::Sleep`, which registers
    /// again once its timer has fired (registering only once per deadline would miss
    /// the wake-up when glommio's timer wheel fires the timer early).
    fn expired(&mut self, deadline: Instant, cx: &mut Context<'_>) -> bool {
        if Instant::now() >= deadline {
            self.armed = None;
            return true;
        }
        let sleep = match &mut self.armed {
            Some(s) if s.deadline() == deadline => s,
            other => other.insert(clockwork_net::timer::sleep_until(deadline)),
        };
        if Pin::new(sleep).poll(cx).is_ready() {
            self.armed = None;
            return true;
        }
        false
    }

    fn disarm(&mut self) {
        self.armed = None;
    }
}

/// A connection's stream under its [`Watch`]'s limits. The stream is shared with the
/// connection task, which answers 408 on it once hyper has given up the connection.
pub(super) struct Timed<S> {
    stream: Rc<RefCell<S>>,
    watch: Rc<Watch>,
    read_alarm: Alarm,
    write_alarm: Alarm,
    /// The write limit of the current answer: (answer count, deadline).
    write_deadline: Option<(u64, Instant)>,
}

impl<S> Timed<S> {
    pub(super) fn new(stream: Rc<RefCell<S>>, watch: Rc<Watch>) -> Self {
        Self {
            stream,
            watch,
            read_alarm: Alarm::default(),
            write_alarm: Alarm::default(),
            write_deadline: None,
        }
    }

    /// A write cannot proceed: `Err` once the current answer's write limit ran out.
    fn write_stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let answers = self.watch.answers.get();
        let deadline = match self.write_deadline {
            Some((n, d)) if n == answers => d,
            _ => {
                let d = Instant::now() + self.watch.write_timeout;
                self.write_deadline = Some((answers, d));
                d
            }
        };
        if self.write_alarm.expired(deadline, cx) {
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the answer was not written within the write timeout",
            )))
        } else {
            Poll::Pending
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut *this.stream.borrow_mut()).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    if let Phase::Idle { .. } = this.watch.phase.get() {
                        this.watch.phase.set(Phase::Receiving {
                            start: Instant::now(),
                        });
                    }
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.watch.phase.get() {
                Phase::Idle { deadline } => {
                    if this.read_alarm.expired(deadline, cx) {
                        // Idle too long: end the connection as a peer's close would.
                        Poll::Ready(Ok(0))
                    } else {
                        Poll::Pending
                    }
                }
                Phase::Receiving { start } => {
                    if this
                        .read_alarm
                        .expired(start + this.watch.request_timeout, cx)
                    {
                        this.watch.head_timed_out.set(true);
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "request head not received in time",
                        )))
                    } else {
                        Poll::Pending
                    }
                }
                Phase::Serving => {
                    this.read_alarm.disarm();
                    Poll::Pending
                }
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut *this.stream.borrow_mut()).poll_write(cx, buf);
        match polled {
            Poll::Pending => this.write_stalled(cx).map(|r| r.map(|()| 0)),
            ready => {
                this.write_alarm.disarm();
                if let Poll::Ready(Ok(n)) = ready {
                    if n > 0 {
                        this.watch.quiet.set(false);
                    }
                }
                ready
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut *this.stream.borrow_mut()).poll_flush(cx);
        match polled {
            Poll::Pending => this.write_stalled(cx),
            ready => {
                this.write_alarm.disarm();
                if let Poll::Ready(Ok(())) = ready {
                    this.watch.settle(true);
                }
                ready
            }
        }
    }

    /// Flushes only: the connection task closes the stream once hyper is done with
    /// it, after the last word hyper does not say itself (408; a head hyper drops).
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
