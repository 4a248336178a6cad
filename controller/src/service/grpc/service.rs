//! The RPCs of `inference.GRPCInferenceService`: each request message decoded, answered
//! by the HTTP front end's logic (`http::bridge`), and the answer encoded, or the
//! HTTP answer's failure mapped to a gRPC status ([`Code::of_http`]).

use super::super::http::bridge::{Answer, Bridge};
use super::super::{now, SharedRef};
use super::framing::{self, Code, GrpcBody, Status};
use super::infer;
use super::messages::{
    Empty, ModelIndex, ModelMetadataResponse, ModelReadyResponse, ModelRef,
    ModelRepositoryParameter, RepositoryIndexRequest, RepositoryIndexResponse,
    RepositoryModelRequest, RepositoryParameterChoice, ServerLiveResponse, ServerMetadataResponse,
    ServerReadyResponse, TensorMetadata,
};
use super::messages::{
    InferBatchStatistics, InferStatistics, ModelStatistics, ModelStatisticsResponse,
    StatisticDuration,
};
use super::messages::{ModelInferRequest, ModelInferResponse};
use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Response};
use prost::Message;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::Duration;

/// The service's path prefix (`/<package>.<service>/<method>`).
const SERVICE: &str = "/inference.GRPCInferenceService/";

/// What a call carried besides its message.
pub(super) struct CallMeta {
    /// The `authorization` metadata.
    pub(super) authorization: Option<String>,
    /// The `grpc-timeout` header.
    pub(super) deadline: Option<Duration>,
}

impl CallMeta {
    pub(super) fn of(headers: &HeaderMap) -> Result<Self, Status> {
        let deadline = match headers.get("grpc-timeout") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(framing::parse_timeout)
                    .ok_or_else(|| {
                        Status::new(Code::InvalidArgument, "malformed grpc-timeout header")
                    })?,
            ),
        };
        Ok(Self {
            authorization: headers
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            deadline,
        })
    }
}

/// The metrics label of a method (`clockwork_http_requests_total{endpoint=...}`).
pub(super) fn endpoint(path: &str) -> &'static str {
    match path.strip_prefix(SERVICE).unwrap_or("") {
        "ServerLive" => "grpc_server_live",
        "ServerReady" => "grpc_server_ready",
        "ModelReady" => "grpc_model_ready",
        "ServerMetadata" => "grpc_server_metadata",
        "ModelMetadata" => "grpc_model_metadata",
        "ModelInfer" => "grpc_model_infer",
        "RepositoryIndex" => "grpc_repository_index",
        "RepositoryModelLoad" => "grpc_repository_load",
        "RepositoryModelUnload" => "grpc_repository_unload",
        "ModelStatistics" => "grpc_model_statistics",
        _ => "grpc_other",
    }
}

/// A unary call's HTTP/2 response: headers, then `body`.
pub(super) fn response(body: GrpcBody) -> Response<GrpcBody> {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    r
}

/// Decodes `M` from the message (its `bytes` fields become slices of it).
fn decode<M: Message + Default>(bytes: &Bytes) -> Result<M, Status> {
    M::decode(bytes.clone())
        .map_err(|e| Status::new(Code::InvalidArgument, format!("malformed message: {e}")))
}

/// A failed HTTP answer as a status; `Ok` for a successful one.
fn check(a: &Answer) -> Result<(), Status> {
    match Code::of_http(a.status) {
        Code::Ok => Ok(()),
        code => Err(Status::new(code, a.message())),
    }
}

fn version_ok(name: &str, version: &str) -> Result<(), Status> {
    if version.is_empty() || version == "1" {
        Ok(())
    } else {
        Err(Status::new(
            Code::NotFound,
            format!("model {name} has no version {version}; its only version is 1"),
        ))
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn tensors(v: &Value) -> Vec<TensorMetadata> {
    let text = |t: &Value, k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    v.as_array()
        .into_iter()
        .flatten()
        .map(|t| TensorMetadata {
            name: text(t, "name"),
            datatype: text(t, "datatype"),
            shape: t
                .get("shape")
                .and_then(Value::as_array)
                .map(|s| s.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default(),
        })
        .collect()
}

/// A repository load's or unload's parameters as the REST body's JSON.
fn repository_body(params: &HashMap<String, ModelRepositoryParameter>) -> Result<Vec<u8>, Status> {
    let mut m = Map::new();
    for (k, p) in params {
        let v = match &p.parameter_choice {
            None => Value::Null,
            Some(RepositoryParameterChoice::Bool(b)) => json!(b),
            Some(RepositoryParameterChoice::Int64(i)) => json!(i),
            Some(RepositoryParameterChoice::Str(s)) => json!(s),
            Some(RepositoryParameterChoice::Bytes(b)) => json!(String::from_utf8(b.clone())
                .map_err(|_| Status::new(
                    Code::InvalidArgument,
                    format!("parameter {k}: bytes_param must be UTF-8 (a profile as JSON)")
                ))?),
        };
        m.insert(k.clone(), v);
    }
    Ok(json!({ "parameters": m }).to_string().into_bytes())
}

fn duration(v: &Value) -> Option<StatisticDuration> {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    Some(StatisticDuration {
        count: n("count"),
        ns: n("ns"),
    })
}

/// The statistics extension's JSON (`{"model_stats": [...]}`, Triton's shape) as
/// protobuf.
fn statistics(j: &Value) -> ModelStatisticsResponse {
    let n = |m: &Value, k: &str| m.get(k).and_then(Value::as_u64).unwrap_or(0);
    let text = |m: &Value, k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let models = j.get("model_stats").and_then(Value::as_array);
    ModelStatisticsResponse {
        model_stats: models
            .into_iter()
            .flatten()
            .map(|m| {
                let i = &m["inference_stats"];
                ModelStatistics {
                    name: text(m, "name"),
                    version: text(m, "version"),
                    last_inference: n(m, "last_inference"),
                    inference_count: n(m, "inference_count"),
                    execution_count: n(m, "execution_count"),
                    inference_stats: Some(InferStatistics {
                        success: duration(&i["success"]),
                        fail: duration(&i["fail"]),
                        queue: duration(&i["queue"]),
                        compute_input: duration(&i["compute_input"]),
                        compute_infer: duration(&i["compute_infer"]),
                        compute_output: duration(&i["compute_output"]),
                        cache_hit: duration(&i["cache_hit"]),
                        cache_miss: duration(&i["cache_miss"]),
                    }),
                    batch_stats: m["batch_stats"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|b| InferBatchStatistics {
                            batch_size: n(b, "batch_size"),
                            compute_input: duration(&b["compute_input"]),
                            compute_infer: duration(&b["compute_infer"]),
                            compute_output: duration(&b["compute_output"]),
                        })
                        .collect(),
                }
            })
            .collect(),
    }
}

/// Answers the call to `path` with request `message`.
pub(super) async fn call(
    shared: &SharedRef,
    bridge: &Bridge,
    path: &str,
    meta: CallMeta,
    message: &Bytes,
) -> Result<Vec<u8>, Status> {
    let method = path.strip_prefix(SERVICE).unwrap_or("");
    // Health probes stay open, as over HTTP; everything else needs the API token.
    if !matches!(method, "ServerLive" | "ServerReady") {
        let mut s = shared.borrow_mut();
        bridge
            .check_api(&mut s, meta.authorization.as_deref())
            .map_err(|m| Status::new(Code::Unauthenticated, m))?;
    }
    Ok(match method {
        "ServerLive" => {
            decode::<Empty>(message)?;
            ServerLiveResponse { live: true }.encode_to_vec()
        }
        "ServerReady" => {
            decode::<Empty>(message)?;
            let a = bridge.server_ready(&shared.borrow());
            ServerReadyResponse {
                ready: a.json.get("ready").and_then(Value::as_bool) == Some(true),
            }
            .encode_to_vec()
        }
        "ModelReady" => {
            let r: ModelRef = decode(message)?;
            version_ok(&r.name, &r.version)?;
            let a = bridge.model_ready(&shared.borrow(), &r.name);
            // Not ready (503) is an answer, not a failure.
            if a.status != 503 {
                check(&a)?;
            }
            ModelReadyResponse {
                ready: a.json.get("ready").and_then(Value::as_bool) == Some(true),
            }
            .encode_to_vec()
        }
        "ServerMetadata" => {
            decode::<Empty>(message)?;
            ServerMetadataResponse {
                name: "clockwork-rs".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                extensions: vec![
                    "model_repository".into(),
                    "schedule_policy".into(),
                    "statistics".into(),
                ],
            }
            .encode_to_vec()
        }
        "ModelMetadata" => {
            let r: ModelRef = decode(message)?;
            version_ok(&r.name, &r.version)?;
            let a = bridge.model_metadata(&shared.borrow(), &r.name);
            check(&a)?;
            let j = &a.json;
            ModelMetadataResponse {
                name: j.get("name").and_then(Value::as_str).unwrap_or("").into(),
                versions: strings(&j["versions"]),
                platform: j
                    .get("platform")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
                inputs: tensors(&j["inputs"]),
                outputs: tensors(&j["outputs"]),
            }
            .encode_to_vec()
        }
        "ModelInfer" => {
            let r: ModelInferRequest = decode(message)?;
            version_ok(&r.model_name, &r.model_version)?;
            let (body, header_len) = infer::rest_body(&r, meta.deadline, bridge.limits().max_slo)
                .map_err(|e| Status::new(Code::InvalidArgument, e))?;
            let name = r.model_name;
            let a = bridge.infer(shared, &name, body, header_len).await;
            check(&a)?;
            let resp: ModelInferResponse =
                infer::response(&a.json, &a.tail).map_err(|e| Status::new(Code::Internal, e))?;
            resp.encode_to_vec()
        }
        "RepositoryIndex" => {
            let r: RepositoryIndexRequest = decode(message)?;
            let text =
                |m: &Value, k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            // The whole index, as Triton answers it (built a page at a time).
            let mut models = Vec::new();
            bridge
                .repository_index(shared, r.ready, |page| {
                    models.extend(page.iter().map(|m| ModelIndex {
                        name: text(m, "name"),
                        version: text(m, "version"),
                        state: text(m, "state"),
                        reason: text(m, "reason"),
                    }));
                })
                .await;
            RepositoryIndexResponse { models }.encode_to_vec()
        }
        "RepositoryModelLoad" | "RepositoryModelUnload" => {
            let r: RepositoryModelRequest = decode(message)?;
            let body = repository_body(&r.parameters)?;
            let mut s = shared.borrow_mut();
            let a = if method == "RepositoryModelLoad" {
                bridge.repository_load(&mut s, &r.model_name, body, meta.authorization)
            } else {
                bridge.repository_unload(&mut s, &r.model_name, body, meta.authorization)
            };
            check(&a)?;
            Empty {}.encode_to_vec()
        }
        "ModelStatistics" => {
            let r: ModelRef = decode(message)?;
            let name = Some(r.name.as_str()).filter(|n| !n.is_empty());
            if let Some(n) = name {
                version_ok(n, &r.version)?;
            }
            let a = bridge.statistics(&shared.borrow(), name);
            check(&a)?;
            statistics(&a.json).encode_to_vec()
        }
        _ => {
            return Err(Status::new(
                Code::Unimplemented,
                format!("method {path} is not served"),
            ))
        }
    })
}

/// Records one call in the metrics.
pub(super) fn count(
    shared: &SharedRef,
    endpoint: &'static str,
    code: Code,
    t0: clockwork_core::Nanos,
) {
    shared
        .borrow_mut()
        .metrics
        .http(endpoint, code.http_equivalent(), now() - t0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request's raw input bytes are slices of the message it was decoded from, not
    /// copies (a 600 KB image is then copied once, into the REST body).
    #[test]
    fn raw_input_contents_are_slices_of_the_message() {
        let req = ModelInferRequest {
            model_name: "m".into(),
            raw_input_contents: vec![vec![9u8; 100_000].into(), vec![7u8; 10].into()],
            ..Default::default()
        };
        let message = Bytes::from(req.encode_to_vec());
        let back: ModelInferRequest = decode(&message).unwrap();
        assert_eq!(back, req);
        for raw in &back.raw_input_contents {
            assert!(message.as_ptr_range().contains(&raw.as_ptr()), "copied");
        }
    }
}
