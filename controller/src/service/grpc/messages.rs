//! The protobuf messages of the Open Inference Protocol's gRPC service
//! (`inference.GRPCInferenceService`, KServe v2 / Triton) that the front end answers,
//! as `prost` structs. Field names and tags are those of the wire schema
//! (`grpc_service.proto`); the messages with no fields (`ServerLiveRequest`, ...,
//! `RepositoryModelLoadResponse`) are [`Empty`].

use std::collections::HashMap;

/// A message with no fields: every request or response the schema leaves empty.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Empty {}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ServerLiveResponse {
    #[prost(bool, tag = "1")]
    pub(super) live: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ServerReadyResponse {
    #[prost(bool, tag = "1")]
    pub(super) ready: bool,
}

/// `ModelReadyRequest`, `ModelMetadataRequest` and `ModelStatisticsRequest`: a model
/// name and version.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ModelRef {
    #[prost(string, tag = "1")]
    pub(super) name: String,
    #[prost(string, tag = "2")]
    pub(super) version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ModelReadyResponse {
    #[prost(bool, tag = "1")]
    pub(super) ready: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ServerMetadataResponse {
    #[prost(string, tag = "1")]
    pub(super) name: String,
    #[prost(string, tag = "2")]
    pub(super) version: String,
    #[prost(string, repeated, tag = "3")]
    pub(super) extensions: Vec<String>,
}

/// `ModelMetadataResponse.TensorMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct TensorMetadata {
    #[prost(string, tag = "1")]
    pub(super) name: String,
    #[prost(string, tag = "2")]
    pub(super) datatype: String,
    #[prost(int64, repeated, tag = "3")]
    pub(super) shape: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ModelMetadataResponse {
    #[prost(string, tag = "1")]
    pub(super) name: String,
    #[prost(string, repeated, tag = "2")]
    pub(super) versions: Vec<String>,
    #[prost(string, tag = "3")]
    pub(super) platform: String,
    #[prost(message, repeated, tag = "4")]
    pub(super) inputs: Vec<TensorMetadata>,
    #[prost(message, repeated, tag = "5")]
    pub(super) outputs: Vec<TensorMetadata>,
}

/// `InferParameter`: one request or response parameter.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct InferParameter {
    #[prost(oneof = "ParameterChoice", tags = "1, 2, 3, 4, 5")]
    pub(super) parameter_choice: Option<ParameterChoice>,
}

/// `InferParameter.parameter_choice`: `bool_param`, `int64_param`, `string_param`,
/// `double_param`, `uint64_param`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub(super) enum ParameterChoice {
    #[prost(bool, tag = "1")]
    Bool(bool),
    #[prost(int64, tag = "2")]
    Int64(i64),
    #[prost(string, tag = "3")]
    Str(String),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(uint64, tag = "5")]
    Uint64(u64),
}

/// `InferTensorContents`: a tensor's elements as typed protobuf fields.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct InferTensorContents {
    #[prost(bool, repeated, tag = "1")]
    pub(super) bool_contents: Vec<bool>,
    #[prost(int32, repeated, tag = "2")]
    pub(super) int_contents: Vec<i32>,
    #[prost(int64, repeated, tag = "3")]
    pub(super) int64_contents: Vec<i64>,
    #[prost(uint32, repeated, tag = "4")]
    pub(super) uint_contents: Vec<u32>,
    #[prost(uint64, repeated, tag = "5")]
    pub(super) uint64_contents: Vec<u64>,
    #[prost(float, repeated, tag = "6")]
    pub(super) fp32_contents: Vec<f32>,
    #[prost(double, repeated, tag = "7")]
    pub(super) fp64_contents: Vec<f64>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub(super) bytes_contents: Vec<Vec<u8>>,
}

/// `ModelInferRequest.InferInputTensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct InferInputTensor {
    #[prost(string, tag = "1")]
    pub(super) name: String,
    #[prost(string, tag = "2")]
    pub(super) datatype: String,
    #[prost(int64, repeated, tag = "3")]
    pub(super) shape: Vec<i64>,
    #[prost(map = "string, message", tag = "4")]
    pub(super) parameters: HashMap<String, InferParameter>,
    #[prost(message, optional, tag = "5")]
    pub(super) contents: Option<InferTensorContents>,
}

/// `ModelInferRequest.InferRequestedOutputTensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct InferRequestedOutputTensor {
    #[prost(string, tag = "1")]
    pub(super) name: String,
    #[prost(map = "string, message", tag = "2")]
    pub(super) parameters: HashMap<String, InferParameter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ModelInferRequest {
    #[prost(string, tag = "1")]
    pub(super) model_name: String,
    #[prost(string, tag = "2")]
    pub(super) model_version: String,
    #[prost(string, tag = "3")]
    pub(super) id: String,
    #[prost(map = "string, message", tag = "4")]
    pub(super) parameters: HashMap<String, InferParameter>,
    #[prost(message, repeated, tag = "5")]
    pub(super) inputs: Vec<InferInputTensor>,
    #[prost(message, repeated, tag = "6")]
    pub(super) outputs: Vec<InferRequestedOutputTensor>,
    #[prost(bytes = "vec", repeated, tag = "7")]
    pub(super) raw_input_contents: Vec<Vec<u8>>,
}

/// `ModelInferResponse.InferOutputTensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct InferOutputTensor {
    #[prost(string, tag = "1")]
    pub(super) name: String,
    #[prost(string, tag = "2")]
    pub(super) datatype: String,
    #[prost(int64, repeated, tag = "3")]
    pub(super) shape: Vec<i64>,
    #[prost(map = "string, message", tag = "4")]
    pub(super) parameters: HashMap<String, InferParameter>,
    #[prost(message, optional, tag = "5")]
    pub(super) contents: Option<InferTensorContents>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ModelInferResponse {
    #[prost(string, tag = "1")]
    pub(super) model_name: String,
    #[prost(string, tag = "2")]
    pub(super) model_version: String,
    #[prost(string, tag = "3")]
    pub(super) id: String,
    #[prost(map = "string, message", tag = "4")]
    pub(super) parameters: HashMap<String, InferParameter>,
    #[prost(message, repeated, tag = "5")]
    pub(super) outputs: Vec<InferOutputTensor>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub(super) raw_output_contents: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct RepositoryIndexRequest {
    #[prost(string, tag = "1")]
    pub(super) repository_name: String,
    #[prost(bool, tag = "2")]
    pub(super) ready: bool,
}

/// `RepositoryIndexResponse.ModelIndex`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ModelIndex {
    #[prost(string, tag = "1")]
    pub(super) name: String,
    #[prost(string, tag = "2")]
    pub(super) version: String,
    #[prost(string, tag = "3")]
    pub(super) state: String,
    #[prost(string, tag = "4")]
    pub(super) reason: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct RepositoryIndexResponse {
    #[prost(message, repeated, tag = "1")]
    pub(super) models: Vec<ModelIndex>,
}

/// `RepositoryModelLoadRequest` and `RepositoryModelUnloadRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct RepositoryModelRequest {
    #[prost(string, tag = "1")]
    pub(super) repository_name: String,
    #[prost(string, tag = "2")]
    pub(super) model_name: String,
    #[prost(map = "string, message", tag = "3")]
    pub(super) parameters: HashMap<String, ModelRepositoryParameter>,
}

/// `ModelRepositoryParameter`: one load or unload parameter.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ModelRepositoryParameter {
    #[prost(oneof = "RepositoryParameterChoice", tags = "1, 2, 3, 4")]
    pub(super) parameter_choice: Option<RepositoryParameterChoice>,
}

/// `ModelRepositoryParameter.parameter_choice`: `bool_param`, `int64_param`,
/// `string_param`, `bytes_param`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub(super) enum RepositoryParameterChoice {
    #[prost(bool, tag = "1")]
    Bool(bool),
    #[prost(int64, tag = "2")]
    Int64(i64),
    #[prost(string, tag = "3")]
    Str(String),
    #[prost(bytes = "vec", tag = "4")]
    Bytes(Vec<u8>),
}

/// `StatisticDuration`: how many, and their total time.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct StatisticDuration {
    #[prost(uint64, tag = "1")]
    pub(super) count: u64,
    #[prost(uint64, tag = "2")]
    pub(super) ns: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct InferStatistics {
    #[prost(message, optional, tag = "1")]
    pub(super) success: Option<StatisticDuration>,
    #[prost(message, optional, tag = "2")]
    pub(super) fail: Option<StatisticDuration>,
    #[prost(message, optional, tag = "3")]
    pub(super) queue: Option<StatisticDuration>,
    #[prost(message, optional, tag = "4")]
    pub(super) compute_input: Option<StatisticDuration>,
    #[prost(message, optional, tag = "5")]
    pub(super) compute_infer: Option<StatisticDuration>,
    #[prost(message, optional, tag = "6")]
    pub(super) compute_output: Option<StatisticDuration>,
    #[prost(message, optional, tag = "7")]
    pub(super) cache_hit: Option<StatisticDuration>,
    #[prost(message, optional, tag = "8")]
    pub(super) cache_miss: Option<StatisticDuration>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct InferBatchStatistics {
    #[prost(uint64, tag = "1")]
    pub(super) batch_size: u64,
    #[prost(message, optional, tag = "2")]
    pub(super) compute_input: Option<StatisticDuration>,
    #[prost(message, optional, tag = "3")]
    pub(super) compute_infer: Option<StatisticDuration>,
    #[prost(message, optional, tag = "4")]
    pub(super) compute_output: Option<StatisticDuration>,
}

/// `ModelStatistics` (without `memory_usage` and `response_stats`, which stay empty).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ModelStatistics {
    #[prost(string, tag = "1")]
    pub(super) name: String,
    #[prost(string, tag = "2")]
    pub(super) version: String,
    #[prost(uint64, tag = "3")]
    pub(super) last_inference: u64,
    #[prost(uint64, tag = "4")]
    pub(super) inference_count: u64,
    #[prost(uint64, tag = "5")]
    pub(super) execution_count: u64,
    #[prost(message, optional, tag = "6")]
    pub(super) inference_stats: Option<InferStatistics>,
    #[prost(message, repeated, tag = "7")]
    pub(super) batch_stats: Vec<InferBatchStatistics>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ModelStatisticsResponse {
    #[prost(message, repeated, tag = "1")]
    pub(super) model_stats: Vec<ModelStatistics>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn a_model_ready_request_has_the_schemas_bytes() {
        let m = ModelRef {
            name: "ab".into(),
            version: "1".into(),
        };
        // Field 1 (length-delimited: tag byte 0x0a), length 2, "ab"; field 2 (0x12), "1".
        let bytes = m.encode_to_vec();
        assert_eq!(bytes, [0x0a, 2, b'a', b'b', 0x12, 1, b'1']);
        assert_eq!(ModelRef::decode(&bytes[..]).unwrap(), m);
    }

    #[test]
    fn an_infer_request_round_trips() {
        let mut parameters = HashMap::new();
        parameters.insert(
            "timeout".to_owned(),
            InferParameter {
                parameter_choice: Some(ParameterChoice::Int64(25_000)),
            },
        );
        let m = ModelInferRequest {
            model_name: "small_cnn".into(),
            id: "7".into(),
            parameters,
            inputs: vec![InferInputTensor {
                name: "input".into(),
                datatype: "FP32".into(),
                shape: vec![1, 2],
                contents: Some(InferTensorContents {
                    fp32_contents: vec![1.5, -2.0],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            raw_input_contents: vec![vec![1, 2, 3]],
            ..Default::default()
        };
        let back = ModelInferRequest::decode(&m.encode_to_vec()[..]).unwrap();
        assert_eq!(back, m);
        // A server live answer: field 1, varint, true.
        let live = ServerLiveResponse { live: true }.encode_to_vec();
        assert_eq!(live, [0x08, 1]);
        assert!(ModelInferRequest::decode(&[0x0a, 5, b'a'][..]).is_err());
    }
}
