//! glommio TCP: connecting and listening with `TCP_NODELAY` on every socket (our
//! messages are tiny RPCs), then the handshake.
//!
//! Listeners are exclusive: they are bound without `SO_REUSEPORT` (glommio's own
//! `TcpListener::bind` sets it), so a second process on the same address fails with
//! "address in use" instead of silently sharing the port. Each [`Listener`] admits at
//! most [`LinkConfig::max_connections`] connections at once; a connection over the
//! limit is told why in a refusal frame and closed (in plain text, also on a TLS
//! port: a TLS peer then sees a failed handshake).
//!
//! With TLS in the [`LinkConfig`], the TLS handshake comes before ours: a listener
//! with a certificate (`tls_server`) accepts only TLS, a connection with trusted CAs
//! (`tls_client`) verifies the listener's certificate; the cluster token is then
//! checked inside TLS as on a plain link.

use crate::conn::Connection;
use crate::error::NetError;
use crate::frame::{FrameEncoder, NO_DELTA};
use crate::handshake::{client_handshake, server_handshake_admit, LinkConfig, PeerInfo};
use crate::link_stream::LinkStream;
use crate::tls;
use clockwork_core::wire::{HelloReply, PeerRole};
use glommio::net::{TcpListener, TcpStream};
use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::rc::Rc;

/// A connection over glommio TCP, plain or TLS.
pub type TcpConnection = Connection<LinkStream>;

/// Connect to `addr` as `role` and complete the handshake. Returns the connection and
/// the listener's name. With [`LinkConfig::tls_client`], the listener's certificate
/// must name `addr`'s IP address (see [`connect_named`]).
pub async fn connect(
    addr: SocketAddr,
    role: PeerRole,
    cfg: &LinkConfig,
) -> Result<(TcpConnection, String), NetError> {
    connect_named(addr, &addr.ip().to_string(), role, cfg).await
}

/// [`connect`] to `addr`, known as `host` (a DNS name or an IP address): with
/// [`LinkConfig::tls_client`] the TLS handshake comes first (within the handshake
/// timeout) and the listener's certificate must name `host` and be signed by a
/// trusted CA; otherwise it fails with [`NetError::Tls`] and the reason.
pub async fn connect_named(
    addr: SocketAddr,
    host: &str,
    role: PeerRole,
    cfg: &LinkConfig,
) -> Result<(TcpConnection, String), NetError> {
    let stream = TcpStream::connect(addr).await.map_err(io::Error::from)?;
    stream.set_nodelay(true).map_err(io::Error::from)?;
    let stream = match &cfg.tls_client {
        None => LinkStream::Plain(stream),
        Some(client) => {
            let name = tls::server_name(host).map_err(|e| NetError::Tls(e.to_string()))?;
            let tls = tls::connect(&client.connector(), name, stream, cfg.handshake_timeout)
                .await
                .map_err(|e| NetError::Tls(format!("handshake with {host} ({addr}): {e}")))?;
            LinkStream::TlsClient(Box::new(tls))
        }
    };
    client_handshake(stream, role, cfg).await
}

/// Bind a glommio listener on `addr` without `SO_REUSEPORT`: a second listener on the
/// same address, in this process or another, fails with `AddrInUse`. Call it on the
/// executor that will accept.
pub fn bind_exclusive(addr: SocketAddr) -> io::Result<TcpListener> {
    // std binds with SO_REUSEADDR only (which on Linux lets a restart bind while old
    // connections sit in TIME_WAIT, but never lets two sockets listen on one port).
    let std_listener = std::net::TcpListener::bind(addr)?;
    let fd = std_listener.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket that we own: `into_raw_fd` gave up
    // std's ownership, so the glommio listener becomes its only owner and closes it.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}

/// One of a listener's connection slots, given back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot(Rc<Cell<usize>>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// An accepted connection that has not done its handshake yet; it holds one of the
/// listener's slots.
#[derive(Debug)]
pub struct Incoming {
    stream: TcpStream,
    slot: ConnectionSlot,
}

impl Incoming {
    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream.peer_addr().ok()
    }
}

/// A listening socket for one kind of peer.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    expect: PeerRole,
    cfg: LinkConfig,
    open: Rc<Cell<usize>>,
    refused: Cell<u64>,
}

impl Listener {
    /// Listen on `addr` for peers of role `expect` (exclusively, see
    /// [`bind_exclusive`]).
    pub fn bind(addr: SocketAddr, expect: PeerRole, cfg: LinkConfig) -> Result<Self, NetError> {
        let inner = bind_exclusive(addr)?;
        Ok(Self {
            inner,
            expect,
            cfg,
            open: Rc::new(Cell::new(0)),
            refused: Cell::new(0),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        Ok(self.inner.local_addr().map_err(io::Error::from)?)
    }

    /// Connections open now (accepted and not yet dropped).
    pub fn open_connections(&self) -> usize {
        self.open.get()
    }

    /// Connections refused so far because the listener was full.
    pub fn refused_connections(&self) -> u64 {
        self.refused.get()
    }

    /// Accept the next TCP connection (no handshake yet, so that a slow or hostile peer
    /// cannot hold up the accept loop: run [`Listener::handshake`] in its own task).
    /// Connections over the limit are refused here, in words, and never returned.
    pub async fn accept(&self) -> Result<Incoming, NetError> {
        loop {
            let stream = self.inner.accept().await.map_err(io::Error::from)?;
            if self.open.get() >= self.cfg.max_connections {
                self.refuse_full(&stream);
                continue;
            }
            stream.set_nodelay(true).map_err(io::Error::from)?;
            self.open.set(self.open.get() + 1);
            return Ok(Incoming {
                stream,
                slot: ConnectionSlot(Rc::clone(&self.open)),
            });
        }
    }

    /// Tell a connection over the limit why it is closed, without waiting for it: one
    /// non-blocking write of a refusal frame into the fresh socket's empty send buffer,
    /// then close.
    fn refuse_full(&self, stream: &TcpStream) {
        use nix::sys::socket::{recv, send, shutdown, MsgFlags, Shutdown};
        let n = self.refused.get() + 1;
        self.refused.set(n);
        let limit = self.cfg.max_connections;
        if n.is_power_of_two() {
            tracing::warn!(
                limit,
                refused = n,
                "connection limit reached; refusing new connections"
            );
        }
        let reply = HelloReply::Rejected {
            reason: format!(
                "connection limit reached: this port serves at most {limit} connections at once"
            ),
        };
        let fd = stream.as_raw_fd();
        // Take what the peer already sent (its hello), so that closing sends a FIN
        // after our answer rather than a reset that could overtake it.
        let mut sink = [0u8; 1024];
        for _ in 0..4 {
            if !matches!(recv(fd, &mut sink, MsgFlags::MSG_DONTWAIT), Ok(n) if n > 0) {
                break;
            }
        }
        let mut enc = FrameEncoder::new();
        if let Ok(bytes) = enc.encode(&reply, 0, NO_DELTA) {
            let _ = send(fd, bytes, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL);
        }
        let _ = shutdown(fd, Shutdown::Write);
    }

    /// Run the listening side of the handshake on an accepted connection.
    pub async fn handshake(
        &self,
        incoming: Incoming,
    ) -> Result<(TcpConnection, PeerInfo), NetError> {
        self.handshake_admit(incoming, |_| Ok(())).await
    }

    /// Run the listening side of the handshake; a peer that passes the version, token
    /// and role checks is then put to `admit`, whose `Err(reason)` refuses it with that
    /// reason (e.g. "another controller holds this worker").
    pub async fn handshake_admit(
        &self,
        incoming: Incoming,
        admit: impl FnOnce(&PeerInfo) -> Result<(), String>,
    ) -> Result<(TcpConnection, PeerInfo), NetError> {
        let Incoming { stream, slot } = incoming;
        let stream = match &self.cfg.tls_server {
            None => LinkStream::Plain(stream),
            Some(server) => {
                let peer = stream
                    .peer_addr()
                    .map_or_else(|_| String::from("unknown peer"), |a| a.to_string());
                let tls = tls::accept(&server.acceptor(), stream, self.cfg.handshake_timeout)
                    .await
                    .map_err(|e| NetError::Tls(format!("handshake with {peer}: {e}")))?;
                LinkStream::TlsServer(Box::new(tls))
            }
        };
        let (mut conn, peer) =
            server_handshake_admit(stream, self.expect, &self.cfg, admit).await?;
        conn.attach_slot(slot);
        Ok((conn, peer))
    }

    /// The link settings of this listener.
    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }
}
