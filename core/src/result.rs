//! Worker→controller results. Each action gets exactly one result, sent as soon as it
//! finishes, with its status and exact timings (converted back to the controller's
//! clock by the worker).

use crate::ids::{ActionId, GpuId, ModelId};
use crate::model::{MeasuredTimes, ModelProfile};
use crate::status::WorkerStatus;
use crate::time::Nanos;
use rkyv::{Archive, Deserialize, Serialize};

/// When a stage ran. `duration` is the device-measured time (CUDA events on a real GPU,
/// the emulated time on an emulated one), not necessarily `end - begin`.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[rkyv(derive(Debug))]
pub struct Timing {
    /// Host timestamp at the start.
    pub begin: Nanos,
    /// Host timestamp when completion was seen.
    pub end: Nanos,
    /// Device-measured duration.
    pub duration: Nanos,
}

/// The result of one action.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub struct ActionResult {
    /// The action this answers.
    pub action_id: ActionId,
    /// What happened.
    pub status: WorkerStatus,
    /// When the worker received the action.
    pub received: Nanos,
    /// When the worker sent this result.
    pub sent: Nanos,
    /// Payload by action type; [`Outcome::Error`] for every failure.
    pub outcome: Outcome,
}

/// Per-action payload of a result.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub enum Outcome {
    /// The action failed; `status` says how, `message` says why in words.
    Error {
        /// Human-readable reason.
        message: String,
    },
    /// A model was registered.
    Registered {
        /// The model.
        model: ModelId,
        /// Pages its weights take at this worker's page size.
        pages: u32,
        /// For a real model: the times this worker measured on its own device (the
        /// controller plans with them). `None` for emulated models.
        measured: Option<MeasuredTimes>,
    },
    /// Weights were copied in.
    Loaded {
        /// The copy.
        timing: Timing,
    },
    /// Weights were freed.
    Unloaded {
        /// The unload.
        timing: Timing,
    },
    /// A batch ran.
    Inferred(Inferred),
    /// The worker's state.
    State(WorkerState),
    /// Every GPU's cache was cleared.
    CacheCleared,
}

/// Payload of a successful INFER.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub struct Inferred {
    /// The GPU it ran on.
    pub gpu: GpuId,
    /// The batch size actually executed (after padding).
    pub padded_batch: u32,
    /// Host→device input copy.
    pub copy_input: Timing,
    /// Kernel execution.
    pub exec: Timing,
    /// Device→host output copy.
    pub copy_output: Timing,
    /// SM clock in MHz before the batch (0 when unknown or emulated).
    pub gpu_clock_before_mhz: u32,
    /// SM clock in MHz after the batch.
    pub gpu_clock_mhz: u32,
    /// Concatenated outputs, one `output_bytes` slice per request (may be empty when
    /// outputs are not returned).
    pub outputs: Vec<u8>,
}

/// One GPU as the worker sees it.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct GpuState {
    /// Its id on this worker.
    pub id: GpuId,
    /// Device name; emulated devices say so.
    pub name: String,
    /// Whether the device is emulated.
    pub emulated: bool,
    /// Pages in the weights cache.
    pub total_pages: u32,
    /// Pages free now.
    pub free_pages: u32,
    /// Models whose weights are resident.
    pub loaded: Vec<ModelId>,
}

/// A registered model.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct RegisteredModel {
    /// Its id.
    pub id: ModelId,
    /// Its profile.
    pub profile: ModelProfile,
}

/// Answer to GET STATE.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct WorkerState {
    /// Weights-cache page size in bytes (the same on every GPU).
    pub page_size: u64,
    /// The GPUs.
    pub gpus: Vec<GpuState>,
    /// Registered models.
    pub models: Vec<RegisteredModel>,
}
