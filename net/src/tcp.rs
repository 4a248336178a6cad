//! glommio TCP: connecting and listening with `TCP_NODELAY` on every socket (our
//! messages are tiny RPCs), then the handshake.

use crate::conn::Connection;
use crate::error::NetError;
use crate::handshake::{client_handshake, server_handshake, LinkConfig, PeerInfo};
use clockwork_core::wire::PeerRole;
use glommio::net::{TcpListener, TcpStream};
use std::io;
use std::net::SocketAddr;

/// A connection over glommio TCP.
pub type TcpConnection = Connection<TcpStream>;

/// Connect to `addr` as `role` and complete the handshake. Returns the connection and
/// the listener's name.
pub async fn connect(
    addr: SocketAddr,
    role: PeerRole,
    cfg: &LinkConfig,
) -> Result<(TcpConnection, String), NetError> {
    let stream = TcpStream::connect(addr).await.map_err(io::Error::from)?;
    stream.set_nodelay(true).map_err(io::Error::from)?;
    client_handshake(stream, role, cfg).await
}

/// A listening socket for one kind of peer.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    expect: PeerRole,
    cfg: LinkConfig,
}

impl Listener {
    /// Listen on `addr` for peers of role `expect`.
    pub fn bind(addr: SocketAddr, expect: PeerRole, cfg: LinkConfig) -> Result<Self, NetError> {
        let inner = TcpListener::bind(addr).map_err(io::Error::from)?;
        Ok(Self { inner, expect, cfg })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        Ok(self.inner.local_addr().map_err(io::Error::from)?)
    }

    /// Accept the next TCP connection (no handshake yet, so that a slow or hostile peer
    /// cannot hold up the accept loop: run [`Listener::handshake`] in its own task).
    pub async fn accept(&self) -> Result<TcpStream, NetError> {
        let stream = self.inner.accept().await.map_err(io::Error::from)?;
        stream.set_nodelay(true).map_err(io::Error::from)?;
        Ok(stream)
    }

    /// Run the listening side of the handshake on an accepted stream.
    pub async fn handshake(
        &self,
        stream: TcpStream,
    ) -> Result<(TcpConnection, PeerInfo), NetError> {
        server_handshake(stream, self.expect, &self.cfg).await
    }

    /// The link settings of this listener.
    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }
}
