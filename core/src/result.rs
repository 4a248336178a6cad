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

/// Registered models with consecutive ids and one profile (the copies of a
/// registration), so that a worker with 100,000 instances reports them in a few
/// entries, not a 20 MB list.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct RegisteredModel {
    /// The first id.
    pub id: ModelId,
    /// How many ids from `id` on (at least 1).
    pub count: u32,
    /// Their profile.
    pub profile: ModelProfile,
}

impl RegisteredModel {
    /// `models` (in any order) as entries of consecutive ids with equal profiles, by
    /// id.
    pub fn runs<'a>(models: impl IntoIterator<Item = (ModelId, &'a ModelProfile)>) -> Vec<Self> {
        let mut sorted: Vec<(ModelId, &ModelProfile)> = models.into_iter().collect();
        sorted.sort_unstable_by_key(|(id, _)| *id);
        let mut runs: Vec<Self> = Vec::new();
        for (id, profile) in sorted {
            if let Some(last) = runs.last_mut() {
                let next = last.id.0.checked_add(last.count);
                if next == Some(id.0) && last.profile == *profile {
                    last.count += 1;
                    continue;
                }
            }
            runs.push(Self {
                id,
                count: 1,
                profile: profile.clone(),
            });
        }
        runs
    }

    /// The ids this entry covers.
    pub fn ids(&self) -> impl Iterator<Item = ModelId> {
        let first = self.id.0;
        (first..first.saturating_add(self.count)).map(ModelId)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{resnet18, resnet50};

    #[test]
    fn registered_models_collapse_into_runs_of_one_profile() {
        let (a, b) = (resnet50(), resnet18());
        // Out of order; 0-2 and 5 are one profile, 3-4 another, with a gap at 6.
        let models = [
            (4, &b),
            (0, &a),
            (2, &a),
            (1, &a),
            (3, &b),
            (5, &a),
            (7, &a),
        ];
        let runs = RegisteredModel::runs(models.iter().map(|&(i, p)| (ModelId(i), p)));
        let shape: Vec<(u32, u32, &str)> = runs
            .iter()
            .map(|r| (r.id.0, r.count, r.profile.name.as_str()))
            .collect();
        let (na, nb) = (a.name.as_str(), b.name.as_str());
        assert_eq!(shape, [(0, 3, na), (3, 2, nb), (5, 1, na), (7, 1, na)]);
        let ids: Vec<u32> = runs
            .iter()
            .flat_map(RegisteredModel::ids)
            .map(|m| m.0)
            .collect();
        assert_eq!(ids, [0, 1, 2, 3, 4, 5, 7]);
    }
}
