//! Every message that crosses a socket, grouped by link and numbered by
//! [`MessageKind`]. The byte framing (header, alignment, limits) belongs to
//! `clockwork-net`; this module only says which archived type a frame of each kind
//! holds.
//!
//! Links:
//! - handshake (both links): [`Hello`] from the connecting side, [`HelloReply`] back;
//! - controller→worker: [`ToWorker`]; worker→controller: [`FromWorker`];
//! - client→controller: [`ClientRequest`]; controller→client: [`ClientResponse`].

use crate::action::Action;
use crate::client::{ClientRequest, ClientResponse};
use crate::result::ActionResult;
use rkyv::{Archive, Deserialize, Serialize};

/// Version of the wire protocol: the frame header and every archived message type.
/// Bump it on any change to a type in this crate that is sent over the wire; peers with
/// different versions are refused at the handshake.
pub const PROTOCOL_VERSION: u16 = 4;

/// Kind of a frame's payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u16)]
pub enum MessageKind {
    /// [`Hello`].
    Hello = 1,
    /// [`HelloReply`].
    HelloReply = 2,
    /// [`ToWorker`].
    ToWorker = 10,
    /// [`FromWorker`].
    FromWorker = 11,
    /// [`ClientRequest`].
    ClientRequest = 20,
    /// [`ClientResponse`].
    ClientResponse = 21,
}

impl MessageKind {
    /// The kind with this number, if any.
    pub const fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Hello,
            2 => Self::HelloReply,
            10 => Self::ToWorker,
            11 => Self::FromWorker,
            20 => Self::ClientRequest,
            21 => Self::ClientResponse,
            _ => return None,
        })
    }
}

/// A type that is sent as the payload of a frame of kind [`WireMessage::KIND`].
pub trait WireMessage {
    /// The frame kind that carries it.
    const KIND: MessageKind;
}

/// What role the connecting peer plays.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub enum PeerRole {
    /// The controller, connecting to a worker.
    Controller,
    /// A client, connecting to the controller.
    Client,
}

/// First message on every connection, from the side that connected.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct Hello {
    /// The sender's [`PROTOCOL_VERSION`] (also in every frame header).
    pub protocol_version: u16,
    /// What the sender is.
    pub role: PeerRole,
    /// The cluster token; must equal the listener's.
    pub token: String,
    /// The sender's name, for logs.
    pub name: String,
}

/// Answer to a [`Hello`].
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub enum HelloReply {
    /// The connection is open.
    Accepted {
        /// The listener's name, for logs.
        name: String,
    },
    /// Refused; the listener closes the connection after sending this.
    Rejected {
        /// Why, in words.
        reason: String,
    },
}

/// Controller→worker.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub enum ToWorker {
    /// A batch of actions, in the order the controller wants them considered.
    Actions(Vec<Action>),
    /// "Still here": sent on an otherwise idle link so that the worker can tell a
    /// silent controller from an idle one (see `clockwork_net::liveness`).
    Heartbeat,
}

/// Worker→controller.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub enum FromWorker {
    /// The result of one action.
    Result(ActionResult),
    /// "Still here", the worker's side of the link's liveness.
    Heartbeat,
}

impl WireMessage for Hello {
    const KIND: MessageKind = MessageKind::Hello;
}
impl WireMessage for HelloReply {
    const KIND: MessageKind = MessageKind::HelloReply;
}
impl WireMessage for ToWorker {
    const KIND: MessageKind = MessageKind::ToWorker;
}
impl WireMessage for FromWorker {
    const KIND: MessageKind = MessageKind::FromWorker;
}
impl WireMessage for ClientRequest {
    const KIND: MessageKind = MessageKind::ClientRequest;
}
impl WireMessage for ClientResponse {
    const KIND: MessageKind = MessageKind::ClientResponse;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_numbers() {
        for k in [
            MessageKind::Hello,
            MessageKind::HelloReply,
            MessageKind::ToWorker,
            MessageKind::FromWorker,
            MessageKind::ClientRequest,
            MessageKind::ClientResponse,
        ] {
            assert_eq!(MessageKind::from_u16(k as u16), Some(k));
        }
        assert_eq!(MessageKind::from_u16(0), None);
        assert_eq!(MessageKind::from_u16(999), None);
    }
}
