//! The Rust client library: talks to the controller over the native rkyv protocol.
//!
//! It runs on a glommio executor (build one with `clockwork_net::runtime`). A
//! [`Client`] is one connection; [`Client::register`], [`Client::list_models`] and
//! [`Client::infer`] send a request and wait for its answer (answers to other requests
//! that arrive meanwhile are kept for [`Client::next_response`]). Load generators that
//! keep many requests in flight split the client with [`Client::into_split`]: one task
//! sends on the [`ClientSender`], another collects on the [`ClientReceiver`].
//!
//! It owns nothing of the server: a client user compiles neither the scheduler nor the
//! HTTP front end.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

use clockwork_core::client::{
    ArchivedClientResponse, ClientRequest, ClientResponse, InferRequest, InferResponse, ModelInfo,
    Slo,
};
use clockwork_core::wire::PeerRole;
use clockwork_core::{ModelId, ModelProfile, RequestId};
use clockwork_net::LinkStream;
use clockwork_net::{connect, FrameReader, FrameWriter, LinkConfig, NetError};
use rkyv::rancor::BoxedError;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The transport failed (connection lost, handshake refused, bad frame).
    #[error(transparent)]
    Net(#[from] NetError),
    /// The controller refused a non-inference request.
    #[error("controller refused request {id:?}: {message} ({status})")]
    Refused {
        /// The request.
        id: RequestId,
        /// Its status.
        status: clockwork_core::ClientStatus,
        /// Why.
        message: String,
    },
    /// The controller answered with something this call did not ask for.
    #[error("unexpected answer from the controller: {0}")]
    Unexpected(String),
}

impl ClientError {
    /// The error for an answer a call did not ask for: the controller's refusal, or
    /// an unexpected message.
    fn from_answer(answer: ClientResponse) -> Self {
        match answer {
            ClientResponse::Error {
                id,
                status,
                message,
            } => Self::Refused {
                id,
                status,
                message,
            },
            other => Self::Unexpected(format!("{other:?}")),
        }
    }
}

/// The sending half of a client connection.
#[derive(Debug)]
pub struct ClientSender {
    writer: FrameWriter<LinkStream>,
    next_id: u64,
}

/// The receiving half of a client connection.
#[derive(Debug)]
pub struct ClientReceiver {
    reader: FrameReader<LinkStream>,
}

/// A connection to the controller.
#[derive(Debug)]
pub struct Client {
    tx: ClientSender,
    rx: ClientReceiver,
    /// Answers that arrived while a call waited for another.
    stash: VecDeque<ClientResponse>,
    controller: String,
}

fn response_id(r: &ClientResponse) -> RequestId {
    match r {
        ClientResponse::Registered { id, .. }
        | ClientResponse::Models { id, .. }
        | ClientResponse::Error { id, .. } => *id,
        ClientResponse::Inferred(i) => i.id,
    }
}

impl ClientSender {
    /// A fresh request id (unique on this connection).
    pub fn next_id(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }

    /// Send a request.
    pub async fn send(&mut self, req: &ClientRequest) -> Result<(), ClientError> {
        Ok(self.writer.send(req).await?)
    }

    /// Send an inference request; returns its id.
    pub async fn send_infer(
        &mut self,
        model: ModelId,
        slo: Slo,
        input: Vec<u8>,
    ) -> Result<RequestId, ClientError> {
        let id = self.next_id();
        self.send(&ClientRequest::Infer(InferRequest {
            id,
            model,
            slo,
            input: input.into(),
        }))
        .await?;
        Ok(id)
    }
}

impl ClientReceiver {
    /// The next answer, in arrival order.
    pub async fn recv(&mut self) -> Result<ClientResponse, ClientError> {
        let archived: &ArchivedClientResponse = self.reader.recv_msg::<ClientResponse>().await?;
        rkyv::deserialize::<ClientResponse, BoxedError>(archived)
            .map_err(|e| ClientError::Unexpected(e.to_string()))
    }
}

impl Client {
    /// Connect to the controller's client port and complete the handshake.
    pub async fn connect(addr: SocketAddr, token: &str, name: &str) -> Result<Self, ClientError> {
        let (conn, controller) =
            connect(addr, PeerRole::Client, &LinkConfig::new(token, name)).await?;
        let (reader, writer) = conn.into_split();
        Ok(Self {
            tx: ClientSender { writer, next_id: 0 },
            rx: ClientReceiver { reader },
            stash: VecDeque::new(),
            controller,
        })
    }

    /// The controller's name from the handshake.
    pub fn controller_name(&self) -> &str {
        &self.controller
    }

    async fn call(
        &mut self,
        req: ClientRequest,
        id: RequestId,
    ) -> Result<ClientResponse, ClientError> {
        self.tx.send(&req).await?;
        loop {
            let r = self.rx.recv().await?;
            if response_id(&r) == id {
                return Ok(r);
            }
            self.stash.push_back(r);
        }
    }

    /// Register `copies` instances of a model; returns the first id (the others follow).
    pub async fn register(
        &mut self,
        profile: ModelProfile,
        copies: u32,
    ) -> Result<(ModelId, u32), ClientError> {
        let id = self.tx.next_id();
        match self
            .call(
                ClientRequest::RegisterModel {
                    id,
                    profile,
                    copies,
                },
                id,
            )
            .await?
        {
            ClientResponse::Registered {
                first_model,
                copies,
                ..
            } => Ok((first_model, copies)),
            other => Err(ClientError::from_answer(other)),
        }
    }

    /// List the registered models.
    pub async fn list_models(&mut self) -> Result<Vec<ModelInfo>, ClientError> {
        let id = self.tx.next_id();
        match self.call(ClientRequest::ListModels { id }, id).await? {
            ClientResponse::Models { models, .. } => Ok(models),
            other => Err(ClientError::from_answer(other)),
        }
    }

    /// Run one inference and wait for its answer (whatever its status). `input` is
    /// the model's `input_bytes` long, or empty to let the worker generate one; any
    /// other length is answered `InvalidRequest`. On success the answer's `output` is
    /// this request's own slice of its batch's outputs (empty when the worker returns
    /// none).
    pub async fn infer(
        &mut self,
        model: ModelId,
        slo: Slo,
        input: Vec<u8>,
    ) -> Result<InferResponse, ClientError> {
        let id = self.tx.next_id();
        let req = ClientRequest::Infer(InferRequest {
            id,
            model,
            slo,
            input: input.into(),
        });
        match self.call(req, id).await? {
            ClientResponse::Inferred(r) => Ok(r),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// The next answer not yet returned by a call.
    pub async fn next_response(&mut self) -> Result<ClientResponse, ClientError> {
        if let Some(r) = self.stash.pop_front() {
            return Ok(r);
        }
        self.rx.recv().await
    }

    /// Split into a sender and a receiver for pipelined use. Answers stashed by earlier
    /// calls are returned first.
    pub fn into_split(self) -> (ClientSender, ClientReceiver, Vec<ClientResponse>) {
        (self.tx, self.rx, self.stash.into())
    }
}
