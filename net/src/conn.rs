//! A framed, clock-synchronised connection over any async byte stream (glommio TCP in
//! production). Sending encodes into one reused aligned buffer and issues one write
//! per frame; receiving reads into an aligned buffer and hands out frames in place,
//! validated once.
//!
//! A connection can be split into a [`FrameReader`] and a [`FrameWriter`] so that one
//! task receives while others send. Both halves live on the same executor thread.
//! Any error from [`FrameReader::recv`] means the link is gone (or was poisoned by a
//! bad frame) and is the owner's "connection lost" event: the connection must be
//! dropped; [`NetError::is_disconnect`] tells a clean loss from a protocol violation.
//!
//! What a connection may cost is bounded: the receive buffer starts empty and small
//! (see [`crate::frame::MIN_READ`]) and gives back memory a big frame took; a frame
//! whose first bytes arrived must be complete within the frame timeout, or the
//! connection fails with [`NetError::Timeout`]; and a connection accepted by a
//! [`Listener`](crate::Listener) holds one of its slots until the reader is dropped.

use crate::clock_sync::ClockSync;
use crate::error::NetError;
use crate::frame::{Decode, Encode, Frame, FrameEncoder, Header, RecvBuffer};
use crate::liveness::Activity;
use crate::tcp::ConnectionSlot;
use clockwork_core::time::MonotonicClock;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A stream that can be read without waiting, for busy-polling a latency-critical link.
pub trait ReadNow {
    /// Read what is available now without blocking: `None` when the stream cannot
    /// (the default), `Some(Err(WouldBlock))` when nothing is there yet.
    fn read_now(&mut self, _buf: &mut [u8]) -> Option<io::Result<usize>> {
        None
    }
}

impl ReadNow for glommio::net::TcpStream {
    fn read_now(&mut self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        use nix::sys::socket::{recv, MsgFlags};
        use std::os::fd::AsRawFd;
        // A non-blocking recv on the socket glommio owns. Only called while no glommio
        // read is in flight on this stream (the reader issues one at a time and only
        // after this returned WouldBlock), so bytes are never split between the two paths.
        Some(recv(self.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT).map_err(io::Error::from))
    }
}

/// A stream shared by the two halves of a split connection. Each poll borrows it only
/// for the duration of that poll, and polls on one thread never nest, so the borrow
/// cannot conflict; if it ever did, the poll fails with an error instead of panicking.
#[derive(Debug)]
pub struct SharedStream<S>(Rc<RefCell<S>>);

impl<S> Clone for SharedStream<S> {
    fn clone(&self) -> Self {
        Self(Rc::clone(&self.0))
    }
}

fn busy() -> io::Error {
    io::Error::other("stream borrowed by the other half")
}

impl<S: ReadNow> SharedStream<S> {
    fn read_now(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        self.0.try_borrow_mut().ok()?.read_now(buf)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SharedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.0.try_borrow_mut() {
            Ok(mut s) => Pin::new(&mut *s).poll_read(cx, buf),
            Err(_) => Poll::Ready(Err(busy())),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SharedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.0.try_borrow_mut() {
            Ok(mut s) => Pin::new(&mut *s).poll_write(cx, buf),
            Err(_) => Poll::Ready(Err(busy())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.try_borrow_mut() {
            Ok(mut s) => Pin::new(&mut *s).poll_flush(cx),
            Err(_) => Poll::Ready(Err(busy())),
        }
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.try_borrow_mut() {
            Ok(mut s) => Pin::new(&mut *s).poll_close(cx),
            Err(_) => Poll::Ready(Err(busy())),
        }
    }
}

/// The receiving half: frames in, clock samples recorded.
#[derive(Debug)]
pub struct FrameReader<S> {
    stream: SharedStream<S>,
    rx: RecvBuffer,
    sync: Rc<RefCell<ClockSync>>,
    last_read_ts: u64,
    /// When bytes last arrived, shared with a liveness watchdog.
    activity: Activity,
    /// How long a frame may take to arrive once its first bytes did.
    frame_timeout: Duration,
    /// When the first bytes of the frame being assembled arrived.
    partial_since: Option<Instant>,
    poisoned: bool,
    label: String,
    busy_poll: Duration,
    /// The listener slot this connection takes, released when the reader is dropped.
    slot: Option<ConnectionSlot>,
}

/// How long a frame may take to arrive once its first bytes did, by default.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// The sending half: one write per frame.
#[derive(Debug)]
pub struct FrameWriter<S> {
    stream: SharedStream<S>,
    enc: FrameEncoder,
    sync: Rc<RefCell<ClockSync>>,
    /// Largest payload sent: the link's limit, which both ends share, so that a
    /// frame the peer would refuse (and close the link for) is never written.
    max_payload: usize,
}

/// A framed connection (both halves).
#[derive(Debug)]
pub struct Connection<S> {
    reader: FrameReader<S>,
    writer: FrameWriter<S>,
}

impl<S: AsyncRead + AsyncWrite + ReadNow + Unpin> Connection<S> {
    /// Frame `stream`, refusing received payloads over `max_frame` bytes.
    pub fn new(stream: S, max_frame: usize) -> Self {
        let stream = SharedStream(Rc::new(RefCell::new(stream)));
        let sync = Rc::new(RefCell::new(ClockSync::new()));
        Self {
            reader: FrameReader {
                stream: stream.clone(),
                rx: RecvBuffer::new(max_frame),
                sync: Rc::clone(&sync),
                last_read_ts: 0,
                activity: Activity::new(),
                frame_timeout: DEFAULT_FRAME_TIMEOUT,
                partial_since: None,
                poisoned: false,
                label: String::from("unnamed peer"),
                busy_poll: Duration::ZERO,
                slot: None,
            },
            writer: FrameWriter {
                stream,
                enc: FrameEncoder::new(),
                sync,
                max_payload: max_frame,
            },
        }
    }

    /// Send one message as one frame.
    pub async fn send<T: Encode>(&mut self, msg: &T) -> Result<(), NetError> {
        self.writer.send(msg).await
    }

    /// Receive the next frame.
    pub async fn recv(&mut self) -> Result<Frame<'_>, NetError> {
        self.reader.recv().await
    }

    /// Receive the next frame as a validated archive of `T`.
    pub async fn recv_msg<T: Decode>(&mut self) -> Result<&T::Archived, NetError> {
        self.reader.recv_msg::<T>().await
    }

    /// This link's clock estimator.
    pub fn clock(&self) -> ClockSync {
        self.reader.clock()
    }

    /// Run `f` on the underlying stream (e.g. to read socket options).
    pub fn with_stream<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        f(&self.writer.stream.0.borrow())
    }

    /// Busy-poll before waiting for data; see [`FrameReader::set_busy_poll`].
    pub fn set_busy_poll(&mut self, budget: Duration) {
        self.reader.set_busy_poll(budget);
    }

    /// Name the peer in this connection's log lines.
    pub fn set_label(&mut self, label: impl Into<String>) {
        self.reader.label = label.into();
    }

    /// Change the largest payload accepted, and sent (raised once the peer is
    /// authenticated).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.reader.rx.set_max_payload(max_frame);
        self.writer.max_payload = max_frame;
    }

    /// Bytes of receive buffer this connection holds.
    pub fn receive_capacity(&self) -> usize {
        self.reader.buffer_capacity()
    }

    /// Keep up to `bytes` of receive buffer between frames
    /// ([`RecvBuffer::set_keep`](crate::frame::RecvBuffer::set_keep)).
    pub fn set_receive_keep(&mut self, bytes: usize) {
        self.reader.rx.set_keep(bytes);
    }

    /// How long a frame may take to arrive once its first bytes did.
    pub fn set_frame_timeout(&mut self, timeout: Duration) {
        self.reader.frame_timeout = timeout;
    }

    /// When bytes last arrived on this connection (for a liveness watchdog).
    pub fn activity(&self) -> Activity {
        self.reader.activity.clone()
    }

    /// Hold a listener slot for as long as the reader lives.
    pub(crate) fn attach_slot(&mut self, slot: ConnectionSlot) {
        self.reader.slot = Some(slot);
    }

    /// Split into halves that can be used from different tasks on this thread.
    pub fn into_split(self) -> (FrameReader<S>, FrameWriter<S>) {
        (self.reader, self.writer)
    }
}

impl<S: AsyncRead + ReadNow + Unpin> FrameReader<S> {
    /// Busy-poll the socket for up to `budget` before each wait for data (zero, the
    /// default, never spins). While it spins the executor runs nothing else, so give
    /// a budget only to a link that owns its executor's attention (a worker's
    /// controller link, a benchmark client); it saves the wake-up path, which costs
    /// tens of microseconds on some virtual machines.
    pub fn set_busy_poll(&mut self, budget: Duration) {
        self.busy_poll = budget;
    }

    /// When bytes last arrived on this connection (for a liveness watchdog).
    pub fn activity(&self) -> Activity {
        self.activity.clone()
    }

    /// Bytes of receive buffer this connection holds.
    pub fn buffer_capacity(&self) -> usize {
        self.rx.capacity()
    }

    /// Receive the next frame. Any error is final: the stream is poisoned and every
    /// later call fails too.
    pub async fn recv(&mut self) -> Result<Frame<'_>, NetError> {
        self.fill().await?;
        Ok(Self::take(&mut self.rx, &self.sync, self.last_read_ts))
    }

    /// Receive the next frame as a validated archive of `T`. A frame of another kind or
    /// an invalid archive poisons the stream like any other error.
    pub async fn recv_msg<T: Decode>(&mut self) -> Result<&T::Archived, NetError> {
        self.fill().await?;
        let frame = Self::take(&mut self.rx, &self.sync, self.last_read_ts);
        let label = &self.label;
        let poisoned = &mut self.poisoned;
        frame.access::<T>().inspect_err(|e| {
            *poisoned = true;
            tracing::warn!(peer = %label, error = %e, "closing connection after an invalid message");
        })
    }

    /// Wait until a checksummed frame is buffered.
    async fn fill(&mut self) -> Result<(), NetError> {
        if self.poisoned {
            return Err(NetError::Closed);
        }
        let r = self.fill_inner().await;
        if let Err(e) = &r {
            self.poisoned = true;
            if e.is_disconnect() {
                tracing::debug!(peer = %self.label, error = %e, "connection lost");
            } else {
                tracing::warn!(peer = %self.label, error = %e, "closing connection after a bad frame");
            }
        }
        r
    }

    async fn fill_inner(&mut self) -> Result<(), NetError> {
        while !self.rx.ready()? {
            let n = match self.spin_read()? {
                Some(n) => n,
                None => self.read_some().await?,
            };
            if n == 0 {
                return Err(self.rx.eof_error());
            }
            self.rx.commit(n);
            self.last_read_ts = MonotonicClock::read().get();
            self.activity.heard(self.last_read_ts);
            // Bytes arrived, so the executor is awake: the tick guard need not wake it.
            crate::runtime::awake();
        }
        self.partial_since = None;
        Ok(())
    }

    /// One read. Between frames it waits as long as it takes (an idle link is the
    /// owner's business); inside a frame it fails once the frame has taken longer than
    /// the frame timeout, so that a peer that sends half a frame and stops cannot hold
    /// the buffer for ever.
    async fn read_some(&mut self) -> Result<usize, NetError> {
        if self.rx.buffered() == 0 {
            self.partial_since = None;
            return Ok(self.stream.read(self.rx.spare()).await?);
        }
        let since = *self.partial_since.get_or_insert_with(Instant::now);
        let left = self.frame_timeout.saturating_sub(since.elapsed());
        let stream = &mut self.stream;
        let rx = &mut self.rx;
        futures_lite::future::or(async { Ok(stream.read(rx.spare()).await?) }, async {
            crate::timer::sleep(left).await;
            Err(NetError::Timeout("the rest of a partial frame"))
        })
        .await
    }

    /// Up to `busy_poll` of non-blocking reads; `None` when nothing came in time.
    fn spin_read(&mut self) -> Result<Option<usize>, NetError> {
        if self.busy_poll.is_zero() {
            return Ok(None);
        }
        let start = Instant::now();
        loop {
            match self.stream.read_now(self.rx.spare()) {
                None => return Ok(None),
                Some(Ok(n)) => return Ok(Some(n)),
                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Some(Err(e)) => return Err(e.into()),
            }
            if start.elapsed() >= self.busy_poll {
                return Ok(None);
            }
            std::hint::spin_loop();
        }
    }

    /// Take the frame `fill` found and record its clock sample. Borrows only the
    /// receive buffer, so the caller can still mark the stream poisoned.
    fn take<'a>(rx: &'a mut RecvBuffer, sync: &RefCell<ClockSync>, recv_ts: u64) -> Frame<'a> {
        let frame = rx.take_ready();
        sync.borrow_mut()
            .on_receive(frame.header.send_ts, frame.header.delta_min, recv_ts);
        frame
    }

    /// A copy of this link's clock estimator.
    pub fn clock(&self) -> ClockSync {
        self.sync.borrow().clone()
    }
}

impl<S: AsyncWrite + Unpin> FrameWriter<S> {
    /// Send one message as one frame, in one write. A message whose payload is over
    /// the link's limit is not written: [`NetError::Oversized`], and the link stays
    /// as it was (the caller may send it in parts).
    pub async fn send<T: Encode>(&mut self, msg: &T) -> Result<(), NetError> {
        let delta = self.sync.borrow().local_min();
        let bytes = self.enc.encode(msg, MonotonicClock::read().get(), delta)?;
        let len = Header::parse_len(bytes);
        if len > self.max_payload {
            return Err(NetError::Oversized {
                len: len as u64,
                max: self.max_payload,
            });
        }
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// The largest payload this writer sends.
    pub fn max_frame(&self) -> usize {
        self.max_payload
    }

    /// Send bytes that are already a frame (tests use it to inject malformed frames).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Close the write side.
    pub async fn close(&mut self) -> Result<(), NetError> {
        self.stream.close().await?;
        Ok(())
    }
}
