//! Clockwork-RS transport: how bytes move between clients, the controller and workers.
//!
//! This crate owns the frame format (a fixed little-endian header followed by an
//! aligned rkyv archive), validation of received frames at the trust boundary, the
//! connection handshake (protocol version and cluster token), per-link clock offset and
//! RTT estimation, link liveness (heartbeat timing and silence detection), the bounds
//! on what a connection may cost (connection limits, a small frame limit before the
//! handshake, a deadline on partial frames, giving closed connections' memory back:
//! `memory`), TLS set-up for links and front ends (`tls`; a link's stream is plain
//! TCP or TLS, `link_stream`), and the glommio executor set-up every service uses
//! (including the guard against glommio's executor-park race). It does not own the
//! message types (they
//! are in `clockwork-core`) nor what a service does with a message.

#![warn(missing_docs, missing_debug_implementations)]
#![deny(unused_must_use)]

pub mod clock_sync;
pub mod conn;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod link_stream;
pub mod liveness;
pub mod memory;
pub mod runtime;
pub mod tcp;
pub mod timer;
pub mod tls;
pub mod wakes;

pub use clock_sync::ClockSync;
pub use conn::{Connection, FrameReader, FrameWriter, ReadNow};
pub use error::NetError;
pub use frame::{Decode, Encode, Frame, DEFAULT_MAX_FRAME};
pub use handshake::{LinkConfig, PeerInfo, HANDSHAKE_MAX_FRAME};
pub use link_stream::LinkStream;
pub use liveness::{Activity, Liveness};
pub use tcp::{bind_exclusive, connect, connect_named, Incoming, Listener, TcpConnection};
