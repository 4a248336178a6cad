//! The connection handshake: the connecting side sends [`Hello`] (protocol version,
//! role, cluster token, name); the listening side answers [`HelloReply`] and, on any
//! mismatch, closes the connection after saying why. The frame header's version is
//! checked first, so a peer of another protocol version is told so in words even
//! though neither side can read the other's payloads.
//!
//! Until the handshake succeeds, a connection accepts frames of at most
//! [`HANDSHAKE_MAX_FRAME`] bytes, so an unauthenticated peer cannot make either side
//! allocate more than that; the link's own limit ([`LinkConfig::max_frame`]) applies
//! after it.

use crate::conn::{Connection, ReadNow, DEFAULT_FRAME_TIMEOUT};
use crate::error::NetError;
use crate::frame::{FrameEncoder, DEFAULT_MAX_FRAME};
use crate::tls::{TlsClient, TlsServer};
use clockwork_core::wire::{
    ArchivedHelloReply, ArchivedPeerRole, Hello, HelloReply, PeerRole, PROTOCOL_VERSION,
};
use futures_lite::io::{AsyncRead, AsyncWrite};
use std::future::Future;
use std::time::Duration;

/// Settings of one side of a handshake. Its `Debug` output leaves the token out.
#[derive(Clone)]
pub struct LinkConfig {
    /// The cluster token both sides must share.
    pub token: String,
    /// Our name, for the peer's logs.
    pub name: String,
    /// Largest payload accepted.
    pub max_frame: usize,
    /// How long the peer may take to answer.
    pub handshake_timeout: Duration,
    /// How long a frame may take to arrive once its first bytes did.
    pub frame_timeout: Duration,
    /// Most connections a listener with this config holds at once (accepted, in the
    /// handshake or open); more are refused in words.
    pub max_connections: usize,
    /// A listener with this config speaks TLS with this certificate (the worker's
    /// link port); `None`: plain TCP.
    pub tls_server: Option<TlsServer>,
    /// Connections made with this config speak TLS and trust these CAs (the
    /// controller's worker links); `None`: plain TCP.
    pub tls_client: Option<TlsClient>,
}

impl std::fmt::Debug for LinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkConfig")
            .field("token", &"<redacted>")
            .field("name", &self.name)
            .field("max_frame", &self.max_frame)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("frame_timeout", &self.frame_timeout)
            .field("max_connections", &self.max_connections)
            .field("tls_server", &self.tls_server.is_some())
            .field("tls_client", &self.tls_client.is_some())
            .finish()
    }
}

/// Largest payload accepted before the handshake succeeds (a hello or its reply).
pub const HANDSHAKE_MAX_FRAME: usize = 4096;

/// Default of [`LinkConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

impl LinkConfig {
    /// A config with the given token and name and default limits.
    pub fn new(token: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            name: name.into(),
            max_frame: DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(5),
            frame_timeout: DEFAULT_FRAME_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls_server: None,
            tls_client: None,
        }
    }
}

/// Who connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its role.
    pub role: PeerRole,
    /// Its name.
    pub name: String,
}

async fn with_timeout<T>(
    d: Duration,
    what: &'static str,
    f: impl Future<Output = Result<T, NetError>>,
) -> Result<T, NetError> {
    futures_lite::future::or(f, async move {
        crate::timer::sleep(d).await;
        Err(NetError::Timeout(what))
    })
    .await
}

/// Token comparison whose time does not depend on where the tokens differ.
fn tokens_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// Connecting side: say hello as `role`, wait for the answer.
pub async fn client_handshake<S: AsyncRead + AsyncWrite + ReadNow + Unpin>(
    stream: S,
    role: PeerRole,
    cfg: &LinkConfig,
) -> Result<(Connection<S>, String), NetError> {
    let mut conn = Connection::new(stream, HANDSHAKE_MAX_FRAME);
    conn.set_frame_timeout(cfg.frame_timeout);
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        role,
        token: cfg.token.clone(),
        name: cfg.name.clone(),
    };
    conn.send(&hello).await?;
    conn.set_label("listener");
    let name = with_timeout(
        cfg.handshake_timeout,
        "waiting for the handshake reply",
        async {
            match conn.recv_msg::<HelloReply>().await? {
                ArchivedHelloReply::Accepted { name } => Ok(name.as_str().to_owned()),
                ArchivedHelloReply::Rejected { reason } => {
                    Err(NetError::Rejected(reason.as_str().to_owned()))
                }
            }
        },
    )
    .await?;
    conn.set_label(name.clone());
    conn.set_max_frame(cfg.max_frame);
    if role == PeerRole::Controller {
        // A worker link: large frames are its daily work.
        conn.set_receive_keep(cfg.max_frame);
    }
    Ok((conn, name))
}

/// Listening side: read the peer's hello, check version, token and role, answer.
/// On refusal the reason is sent to the peer, the write side is closed, and the error
/// is returned for the caller to log.
pub async fn server_handshake<S: AsyncRead + AsyncWrite + ReadNow + Unpin>(
    stream: S,
    expect: PeerRole,
    cfg: &LinkConfig,
) -> Result<(Connection<S>, PeerInfo), NetError> {
    server_handshake_admit(stream, expect, cfg, |_| Ok(())).await
}

/// [`server_handshake`], then `admit` decides about a peer that passed every check:
/// `Err(reason)` refuses it like any other mismatch.
pub async fn server_handshake_admit<S: AsyncRead + AsyncWrite + ReadNow + Unpin>(
    stream: S,
    expect: PeerRole,
    cfg: &LinkConfig,
    admit: impl FnOnce(&PeerInfo) -> Result<(), String>,
) -> Result<(Connection<S>, PeerInfo), NetError> {
    let mut conn = Connection::new(stream, HANDSHAKE_MAX_FRAME);
    conn.set_frame_timeout(cfg.frame_timeout.min(cfg.handshake_timeout));
    let verdict = with_timeout(
        cfg.handshake_timeout,
        "waiting for the peer's hello",
        async {
            let hello = conn.recv_msg::<Hello>().await?;
            let role = match hello.role {
                ArchivedPeerRole::Controller => PeerRole::Controller,
                ArchivedPeerRole::Client => PeerRole::Client,
            };
            let info = PeerInfo {
                role,
                name: hello.name.as_str().to_owned(),
            };
            let version = hello.protocol_version.to_native();
            Ok(if version != PROTOCOL_VERSION {
                Err(NetError::VersionMismatch {
                    ours: PROTOCOL_VERSION,
                    theirs: version,
                })
            } else if !tokens_equal(hello.token.as_str(), &cfg.token) {
                Err(NetError::Refused(format!(
                    "cluster token mismatch: `{}` presented a token that differs from this \
                     listener's (check --token on both sides)",
                    info.name
                )))
            } else if role != expect {
                Err(NetError::Refused(format!(
                    "`{}` connected as {:?}, this port serves {:?}",
                    info.name, role, expect
                )))
            } else {
                Ok(info)
            })
        },
    )
    .await;
    let verdict = match verdict {
        Ok(Ok(info)) => match admit(&info) {
            Ok(()) => Ok(Ok(info)),
            Err(reason) => Ok(Err(NetError::Refused(reason))),
        },
        other => other,
    };
    let refusal = match verdict {
        Ok(Ok(info)) => {
            conn.set_label(info.name.clone());
            conn.set_max_frame(cfg.max_frame);
            if info.role == PeerRole::Controller {
                // A worker link: large frames are its daily work.
                conn.set_receive_keep(cfg.max_frame);
            }
            conn.send(&HelloReply::Accepted {
                name: cfg.name.clone(),
            })
            .await?;
            return Ok((conn, info));
        }
        Ok(Err(refusal)) => refusal,
        // A frame we could not read at all. A header of another version still gets an
        // answer: our header carries our version, so the peer can report the mismatch.
        Err(e @ NetError::VersionMismatch { .. }) => e,
        Err(e) => return Err(e),
    };
    let (_, mut writer) = conn.into_split();
    let reply = HelloReply::Rejected {
        reason: refusal.to_string(),
    };
    let mut enc = FrameEncoder::new();
    if let Ok(bytes) = enc.encode(&reply, 0, crate::frame::NO_DELTA) {
        // Best effort: the peer may already be gone.
        let _ = writer.send_raw(bytes).await;
        let _ = writer.close().await;
    }
    Err(refusal)
}

#[cfg(test)]
mod tests {
    use super::tokens_equal;

    #[test]
    fn token_comparison() {
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "abcd"));
        assert!(!tokens_equal("", "a"));
        assert!(tokens_equal("", ""));
    }
}
