//! The gRPC variant of `clockwork-bench http`: `ModelInfer` calls (the input in
//! `raw_input_contents`, as tritonclient sends it), one in flight, on one keep-alive
//! HTTP/2 connection to the controller's `--grpc` port.
//!
//! The client is hyper's HTTP/2 client on a glommio executor, through the
//! controller's own runtime adapter (`grpc::rt`), with the controller's prost messages
//! (`grpc::messages`); no tokio runtime. Each call encodes its request, frames it (a
//! flag byte and a big-endian length), and on the answer reads the body and its
//! trailers, checks `grpc-status` 0 and decodes the `ModelInferResponse`: the work a
//! real client does.

use crate::stats::histogram;
use anyhow::{anyhow, bail, Context as _};
use clockwork_controller::service::grpc::messages::{
    InferInputTensor, ModelInferRequest, ModelInferResponse,
};
use clockwork_controller::service::grpc::rt::{Io, LocalExec};
use clockwork_net::runtime::{run_here, ExecutorConfig};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use prost::Message;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The longest one call may take before the run fails (the server is in-process and
/// unloaded: anything near this is a hang).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One `ModelInfer` request for `model`, its input as raw UINT8 bytes (none: the
/// worker generates the input, as `{"inputs": []}` over HTTP).
fn request(model: &str, input: &[u8]) -> ModelInferRequest {
    let (inputs, raw) = if input.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        (
            vec![InferInputTensor {
                name: "input".into(),
                datatype: "UINT8".into(),
                shape: vec![input.len() as i64],
                ..Default::default()
            }],
            vec![input.to_vec().into()],
        )
    };
    ModelInferRequest {
        model_name: model.to_owned(),
        inputs,
        raw_input_contents: raw,
        ..Default::default()
    }
}

/// A message with its gRPC length prefix (uncompressed).
fn frame(message: &[u8]) -> anyhow::Result<Bytes> {
    let len = u32::try_from(message.len()).context("message over 4 GiB")?;
    let mut b = Vec::with_capacity(5 + message.len());
    b.push(0);
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(message);
    Ok(Bytes::from(b))
}

/// The one message of an answer's body.
fn unframe(body: &[u8]) -> anyhow::Result<&[u8]> {
    let Some((head, rest)) = body.split_first_chunk::<5>() else {
        bail!("the answer ({} bytes) holds no gRPC message", body.len());
    };
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if head[0] != 0 || rest.len() != len {
        bail!(
            "malformed gRPC answer: flag {}, length {len}, {} bytes follow",
            head[0],
            rest.len()
        );
    }
    Ok(rest)
}

/// `warmup + n` calls to `ModelInfer` for `model` at `addr`, one at a time on one
/// connection; the last `n` round trips, in ns.
pub(super) fn grpc_run(
    addr: SocketAddr,
    model: &str,
    input: &[u8],
    warmup: u64,
    n: u64,
) -> anyhow::Result<Histogram<u64>> {
    let model = model.to_owned();
    let input = input.to_vec();
    run_here(ExecutorConfig::named("bench-grpc"), async move {
        let stream = glommio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| anyhow!("gRPC connect to {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| anyhow!("TCP_NODELAY: {e}"))?;
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(LocalExec, Io::new(stream)).await?;
        let driver = glommio::spawn_local(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "gRPC bench connection ended");
            }
        });
        let uri: hyper::Uri =
            format!("http://{addr}/inference.GRPCInferenceService/ModelInfer").parse()?;
        let mut h = histogram();
        for i in 0..warmup + n {
            let t0 = Instant::now();
            let call = async {
                let body = frame(&request(&model, &input).encode_to_vec())?;
                let req = hyper::Request::post(uri.clone())
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(Full::new(body))?;
                send.ready().await?;
                let resp = send.send_request(req).await?;
                let (parts, body) = resp.into_parts();
                if parts.status != hyper::StatusCode::OK {
                    bail!("gRPC call answered HTTP {}", parts.status);
                }
                let got = body.collect().await?;
                // A trailers-only answer (an error) carries the status in its headers.
                let status = got
                    .trailers()
                    .and_then(|t| t.get("grpc-status"))
                    .or_else(|| parts.headers.get("grpc-status"))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                if status != "0" {
                    let message = got
                        .trailers()
                        .and_then(|t| t.get("grpc-message"))
                        .or_else(|| parts.headers.get("grpc-message"))
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    bail!("gRPC inference failed: grpc-status {status}: {message}");
                }
                let bytes = got.to_bytes();
                let answer = ModelInferResponse::decode(unframe(&bytes)?)?;
                if answer.raw_output_contents.is_empty() {
                    bail!("gRPC answer without outputs");
                }
                Ok::<(), anyhow::Error>(())
            };
            let timeout = async {
                glommio::timer::sleep(CALL_TIMEOUT).await;
                Err::<(), _>(anyhow!("gRPC call not answered within {CALL_TIMEOUT:?}"))
            };
            futures_lite::future::or(call, timeout).await?;
            let ns = t0.elapsed().as_nanos() as u64;
            if i >= warmup {
                h.record(ns.max(1))?;
            }
        }
        // Dropping the connection's task closes it.
        drop(send);
        drop(driver);
        Ok(h)
    })
    .map_err(|e| anyhow!("gRPC client executor: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips_and_refuses_a_bad_length() {
        let f = frame(b"abc").unwrap();
        assert_eq!(&f[..], &[0, 0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(unframe(&f).unwrap(), b"abc");
        assert!(unframe(&f[..7]).is_err());
        assert!(unframe(&[1, 0, 0, 0, 0]).is_err());
        assert!(unframe(&[0, 0]).is_err());
    }

    #[test]
    fn an_empty_input_sends_no_tensor() {
        let r = request("m-1", &[]);
        assert!(r.inputs.is_empty() && r.raw_input_contents.is_empty());
        let r = request("m-1", &[7; 4]);
        assert_eq!(r.inputs[0].shape, [4]);
        assert_eq!(r.raw_input_contents, [vec![7u8; 4]]);
    }
}
