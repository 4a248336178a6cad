//! hyper's runtime traits on glommio: an executor that spawns hyper's HTTP/2 stream
//! tasks on the controller's executor (they are `!Send`, and stay on its thread), and
//! a futures-io stream (a glommio `TcpStream`, or TLS over one) as hyper's I/O
//! (`hyper::rt::{Read, Write}`).
//! The HTTP front end's hyper engine (HTTP/1.1) uses the same `Io`.
//! No tokio runtime runs; hyper is given no timer (the front end sets no HTTP/2
//! keep-alive pings, so it needs none). Public so that a Rust gRPC client on a glommio
//! executor (`clockwork-bench http`) drives hyper's HTTP/2 client the same way.

use futures_lite::io::{AsyncRead, AsyncWrite};
use hyper::rt::{Executor, Read, ReadBufCursor, Write};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

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
