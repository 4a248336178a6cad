//! The transport's one error type.

use thiserror::Error;

/// Why a frame, a connection or a handshake failed. Every variant closes only the
/// connection it happened on.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NetError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection between frames.
    #[error("connection closed by peer")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed mid-frame ({have} of {need} bytes received)")]
    Truncated {
        /// Bytes of the frame that arrived.
        have: usize,
        /// Bytes the frame should have had.
        need: usize,
    },
    /// The frame does not start with our magic number: not our protocol, or the stream
    /// lost sync.
    #[error("bad magic {0:#010x}: not a Clockwork-RS frame")]
    BadMagic(u32),
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: peer speaks v{theirs}, we speak v{ours}")]
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// The peer's version.
        theirs: u16,
    },
    /// A message kind we do not know.
    #[error("unknown message kind {0}")]
    UnknownKind(u16),
    /// A known kind, but not the one this link expects now.
    #[error("unexpected message kind {got}, expected {expected}")]
    UnexpectedKind {
        /// The kind the link expects.
        expected: u16,
        /// The kind that arrived.
        got: u16,
    },
    /// Reserved header bits are set.
    #[error("reserved header field is {0:#x}, must be 0")]
    ReservedBits(u32),
    /// The declared payload is over the limit; nothing was allocated for it.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    Oversized {
        /// Declared payload length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The checksum does not match: the frame was corrupted.
    #[error("frame checksum mismatch (got {got:#010x}, computed {computed:#010x})")]
    BadChecksum {
        /// Checksum in the header.
        got: u32,
        /// Checksum of the received bytes.
        computed: u32,
    },
    /// The payload is not a valid archive of the expected type.
    #[error("invalid payload for {kind}: {reason}")]
    InvalidPayload {
        /// The message kind.
        kind: u16,
        /// What validation found.
        reason: String,
    },
    /// A message could not be serialized.
    #[error("serialize failed: {0}")]
    Serialize(String),
    /// The listener refused our handshake.
    #[error("handshake rejected by peer: {0}")]
    Rejected(String),
    /// We refused the peer's handshake.
    #[error("handshake refused: {0}")]
    Refused(String),
    /// The peer did not answer in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The TLS handshake failed (e.g. a certificate the other side does not trust, or
    /// a peer that does not speak TLS).
    #[error("TLS: {0}")]
    Tls(String),
    /// Nothing arrived from the peer for longer than the link's timeout (see
    /// [`crate::liveness`]): it is frozen, gone, or the path between us stalled.
    #[error("peer silent for {silent_ms} ms (no frames, not even heartbeats)")]
    Silent {
        /// How long it had been silent when the link was declared dead.
        silent_ms: u64,
    },
}

impl NetError {
    /// True when the peer simply went away (not a protocol violation).
    pub fn is_disconnect(&self) -> bool {
        match self {
            Self::Closed | Self::Truncated { .. } => true,
            Self::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }
}
