//! The client↔controller protocol: model registration, inference with an SLO, model
//! listing. Every request carries a client-chosen [`RequestId`] that its one response
//! echoes.

use crate::ids::{ModelId, RequestId};
use crate::input_bytes::InputBytes;
use crate::model::ModelProfile;
use crate::status::ClientStatus;
use crate::time::Nanos;
use rkyv::{Archive, Deserialize, Serialize};

/// A request's latency objective.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub enum Slo {
    /// The controller's default SLO (100 ms unless configured).
    Default,
    /// An absolute SLO, measured from arrival at the controller.
    Absolute(Nanos),
    /// A multiple of the model's current batch-1 execution estimate (the original's
    /// `slo_factor`).
    Factor(f32),
}

/// Run one inference.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub struct InferRequest {
    /// Echoed by the response.
    pub id: RequestId,
    /// The model instance.
    pub model: ModelId,
    /// The latency objective.
    pub slo: Slo,
    /// Input bytes; empty to let the worker generate an input. Archived as one byte
    /// vector; in memory the front end's buffers, shared ([`InputBytes`]).
    pub input: InputBytes,
}

/// The one answer to an [`InferRequest`].
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub struct InferResponse {
    /// The request this answers.
    pub id: RequestId,
    /// The model.
    pub model: ModelId,
    /// What happened.
    pub status: ClientStatus,
    /// Size of the batch the request ran in (0 if it did not run).
    pub batch_size: u32,
    /// Time from arrival at the controller to this response leaving it.
    pub controller_latency: Nanos,
    /// Output bytes (empty on failure or when outputs are not returned).
    pub output: Vec<u8>,
    /// Why, on failure; empty on success.
    pub message: String,
}

/// A model as listed to clients.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct ModelInfo {
    /// Its id.
    pub id: ModelId,
    /// Network name.
    pub name: String,
    /// Bytes of one input.
    pub input_bytes: u32,
    /// Bytes of one output.
    pub output_bytes: u32,
    /// Largest batch size.
    pub max_batch: u32,
}

/// Client→controller messages.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub enum ClientRequest {
    /// Register `copies` instances of a model; they get contiguous ids.
    RegisterModel {
        /// Echoed by the response.
        id: RequestId,
        /// The model's profile.
        profile: ModelProfile,
        /// Number of instances (at least 1).
        copies: u32,
    },
    /// Run one inference.
    Infer(InferRequest),
    /// List registered models.
    ListModels {
        /// Echoed by the response.
        id: RequestId,
    },
}

/// Controller→client messages.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub enum ClientResponse {
    /// Models registered.
    Registered {
        /// The request this answers.
        id: RequestId,
        /// Id of the first instance; the others follow contiguously.
        first_model: ModelId,
        /// Instances created.
        copies: u32,
    },
    /// An inference finished, failed, timed out or was refused.
    Inferred(InferResponse),
    /// The registered models.
    Models {
        /// The request this answers.
        id: RequestId,
        /// The models.
        models: Vec<ModelInfo>,
    },
    /// A request other than an inference failed.
    Error {
        /// The request this answers.
        id: RequestId,
        /// Why.
        status: ClientStatus,
        /// In words.
        message: String,
    },
}
