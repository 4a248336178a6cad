//! A blocking native-protocol client for fault tests (std sockets, no executor): the
//! handshake, INFER and REGISTER requests, and answers read with a timeout; plus a
//! scrape of the controller's `/metrics`.

use clockwork_core::client::{ClientRequest, ClientResponse, InferRequest, Slo};
use clockwork_core::wire::{Hello, HelloReply, PeerRole, PROTOCOL_VERSION};
use clockwork_core::{ModelId, ModelProfile, RequestId};
use clockwork_net::frame::{Decode, Encode, FrameEncoder, RecvBuffer, DEFAULT_MAX_FRAME, NO_DELTA};
use rkyv::rancor::BoxedError;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One native client connection.
#[derive(Debug)]
pub struct NativeClient {
    stream: TcpStream,
    rb: RecvBuffer,
    enc: FrameEncoder,
}

impl NativeClient {
    /// Connect and complete the handshake with `token`.
    pub fn connect(addr: SocketAddr, token: &str) -> Result<Self, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut c = Self {
            stream,
            rb: RecvBuffer::new(DEFAULT_MAX_FRAME),
            enc: FrameEncoder::new(),
        };
        c.send(&Hello {
            protocol_version: PROTOCOL_VERSION,
            role: PeerRole::Client,
            token: token.into(),
            name: "fault-test-client".into(),
        })?;
        match c.recv::<HelloReply>(Duration::from_secs(10))? {
            Some(HelloReply::Accepted { .. }) => Ok(c),
            Some(HelloReply::Rejected { reason }) => Err(format!("rejected: {reason}")),
            None => Err("no handshake reply".into()),
        }
    }

    fn send<T: Encode>(&mut self, msg: &T) -> Result<(), String> {
        let bytes = self
            .enc
            .encode(msg, 0, NO_DELTA)
            .map_err(|e| e.to_string())?;
        self.stream.write_all(bytes).map_err(|e| e.to_string())
    }

    /// The next message, waiting at most `within`; `None` on timeout. An error when
    /// the connection ends.
    pub fn recv<T>(&mut self, within: Duration) -> Result<Option<T>, String>
    where
        T: Decode,
        T::Archived: rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<BoxedError>>,
    {
        let deadline = Instant::now() + within;
        loop {
            if let Some(f) = self.rb.next_frame().map_err(|e| e.to_string())? {
                let a = f.access::<T>().map_err(|e| e.to_string())?;
                return rkyv::deserialize::<T, BoxedError>(a)
                    .map(Some)
                    .map_err(|e| e.to_string());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            match self.stream.read(self.rb.spare()) {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => self.rb.commit(n),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Register `copies` instances of `profile`; their first id.
    pub fn register(&mut self, profile: ModelProfile, copies: u32) -> Result<ModelId, String> {
        self.send(&ClientRequest::RegisterModel {
            id: RequestId(u64::MAX),
            profile,
            copies,
        })?;
        loop {
            match self.recv::<ClientResponse>(Duration::from_secs(10))? {
                Some(ClientResponse::Registered { first_model, .. }) => return Ok(first_model),
                Some(ClientResponse::Error { message, .. }) => return Err(message),
                Some(_) => {}
                None => return Err("no answer to REGISTER".into()),
            }
        }
    }

    /// Send one INFER with an absolute SLO.
    pub fn infer(&mut self, id: u64, model: ModelId, slo: Duration) -> Result<(), String> {
        self.send(&ClientRequest::Infer(InferRequest {
            id: RequestId(id),
            model,
            slo: Slo::Absolute(clockwork_core::Nanos(slo.as_nanos() as u64)),
            input: Default::default(),
        }))
    }
}

/// The controller's `/metrics` text, fetched with a hand-written HTTP/1.1 GET.
pub fn scrape_metrics(http: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect(http).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|e| e.to_string())?;
    Ok(body)
}

/// The value of the sample `name{labels}` (labels as written, e.g. `reason="silent"`,
/// or empty) in a metrics text; 0 when absent.
pub fn metric(text: &str, name: &str, labels: &str) -> f64 {
    let key = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
