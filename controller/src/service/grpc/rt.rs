//! hyper's runtime traits on glommio: an executor that spawns hyper's HTTP/2 stream
//! tasks on the controller's executor (they are `!Send`, and stay on its thread), and
//! a futures-io stream (a glommio `TcpStream`, or TLS over one) as hyper's I/O
//! (`hyper::rt::{Read, Write}`).
//! The HTTP front end's hyper engine (HTTP/1.1) uses the same `Io`.
//! No tokio runtime runs. hyper's timer (for HTTP/2 keep-alive pings) is
//! [`LocalTimer`]: the executor's own timers, behind the `Send + Sync` face hyper asks
//! for. Public so that a Rust gRPC client on a glommio executor (`clockwork-bench
//! http`) drives hyper's HTTP/2 client the same way.

use futures_lite::io::{AsyncRead, AsyncWrite};
use hyper::rt::{Executor, Read, ReadBufCursor, Sleep, Timer, Write};
use slab::Slab;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// Spawns hyper's tasks on the current glommio executor.
#[derive(Debug, Clone, Copy)]
pub struct LocalExec;

impl<F> Executor<F> for LocalExec
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, fut: F) {
        glommio::spawn_local(fut).detach();
    }
}

/// hyper's timer on the current glommio executor's timers.
///
/// hyper wants sleeps that are `Send + Sync`; a glommio timer is neither. So each
/// [`LocalSleep`] keeps its timer in a table of its thread's and holds only the key.
/// hyper's connection task runs on this thread's executor ([`LocalExec`]) and polls
/// and drops its sleeps here; a sleep polled on another thread would arm a timer of
/// that thread's, and one dropped there would leave its entry here until the thread
/// ends. Nothing is shared between threads either way.
#[derive(Debug, Clone, Copy)]
pub struct LocalTimer;

impl Timer for LocalTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(LocalSleep {
            deadline,
            slot: None,
        })
    }
}

thread_local! {
    /// The timers of this thread's [`LocalSleep`]s.
    static SLEEPS: RefCell<Slab<clockwork_net::timer::Sleep>> = const { RefCell::new(Slab::new()) };
}

/// A sleep of [`LocalTimer`]: its deadline, and where its timer is once polled.
#[derive(Debug)]
pub struct LocalSleep {
    deadline: Instant,
    slot: Option<(ThreadId, usize)>,
}

impl LocalSleep {
    fn release(&mut self) {
        if let Some((thread, key)) = self.slot.take() {
            if thread == std::thread::current().id() {
                // `try_with`: a sleep dropped while its thread ends finds no table.
                let _ = SLEEPS.try_with(|s| s.borrow_mut().try_remove(key));
            }
        }
    }
}

impl Future for LocalSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.release();
            return Poll::Ready(());
        }
        let here = std::thread::current().id();
        let key = match self.slot {
            Some((thread, key)) if thread == here => key,
            _ => {
                let timer = clockwork_net::timer::sleep_until(self.deadline);
                let key = SLEEPS.with(|s| s.borrow_mut().insert(timer));
                self.slot = Some((here, key));
                key
            }
        };
        // Polling a timer never reaches back into the table.
        let ready = SLEEPS.with(|s| {
            s.borrow_mut()
                .get_mut(key)
                .is_none_or(|t| Pin::new(t).poll(cx).is_ready())
        });
        if ready {
            self.release();
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for LocalSleep {
    fn drop(&mut self) {
        self.release();
    }
}

impl Sleep for LocalSleep {}

/// Most bytes read from the socket per `poll_read`.
const READ_CHUNK: usize = 64 * 1024;

/// A futures-io stream for hyper. Reads go through a scratch buffer (hyper hands
/// out uninitialised memory; copying keeps this free of `unsafe`).
pub struct Io<S> {
    stream: S,
    scratch: Vec<u8>,
}

impl<S> std::fmt::Debug for Io<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io").finish_non_exhaustive()
    }
}

impl<S> Io<S> {
    /// Wraps `stream`.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            scratch: Vec::new(),
        }
    }
}

impl<S: AsyncRead + Unpin> Read for Io<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = buf.remaining().min(READ_CHUNK);
        if this.scratch.len() < n {
            this.scratch.resize(n, 0);
        }
        match Pin::new(&mut this.stream).poll_read(cx, &mut this.scratch[..n]) {
            Poll::Ready(Ok(k)) => {
                buf.put_slice(&this.scratch[..k]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> Write for Io<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_close(cx)
    }
}
