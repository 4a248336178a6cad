//! A link's byte stream: glommio TCP, or TLS over it (as the listening or the
//! connecting side). Framed connections ([`crate::TcpConnection`]) run over it, so
//! the rest of the transport does not care whether a link is encrypted.

use crate::conn::ReadNow;
use crate::tls::{ClientTlsStream, ServerTlsStream};
use futures_lite::io::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Plain TCP or TLS over TCP.
pub enum LinkStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS, accepted by a listener with a certificate.
    TlsServer(Box<ServerTlsStream<TcpStream>>),
    /// TLS, connected to a listener whose certificate was verified.
    TlsClient(Box<ClientTlsStream<TcpStream>>),
}

impl std::fmt::Debug for LinkStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Self::Plain(_) => "plain",
            Self::TlsServer(_) => "TLS (server side)",
            Self::TlsClient(_) => "TLS (client side)",
        };
        write!(f, "LinkStream({kind})")
    }
}

impl LinkStream {
    /// The TCP socket underneath (for addresses and socket options).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(s) => s,
            Self::TlsServer(s) => s.get_ref().0,
            Self::TlsClient(s) => s.get_ref().0,
        }
    }

    /// Whether the link is encrypted.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Self::Plain(_))
    }
}

impl AsyncRead for LinkStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::TlsServer(s) => Pin::new(&mut **s).poll_read(cx, buf),
            Self::TlsClient(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for LinkStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::TlsServer(s) => Pin::new(&mut **s).poll_write(cx, buf),
            Self::TlsClient(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::TlsServer(s) => Pin::new(&mut **s).poll_flush(cx),
            Self::TlsClient(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_close(cx),
            Self::TlsServer(s) => Pin::new(&mut **s).poll_close(cx),
            Self::TlsClient(s) => Pin::new(&mut **s).poll_close(cx),
        }
    }
}

impl ReadNow for LinkStream {
    /// Plain TCP reads the socket without waiting; TLS cannot (see `tls`), so a TLS
    /// link's reader waits instead of busy-polling.
    fn read_now(&mut self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        match self {
            Self::Plain(s) => s.read_now(buf),
            Self::TlsServer(_) | Self::TlsClient(_) => None,
        }
    }
}
