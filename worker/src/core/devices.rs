//! What the core needs of the devices, as a small trait: `clockwork_gpu::DeviceSet`
//! implements it for the real worker, a fake for the core's tests. Every call answers
//! at once (registration, submission, state reads); completions come back separately,
//! through [`super::WorkerCore::completion`].

use clockwork_core::{GpuState, ModelId, ModelProfile, RegisteredModel};
use clockwork_gpu::{DeviceAction, DeviceSet, GpuError, SubmitError};

/// The devices of one worker, as the core drives them.
pub(crate) trait Devices {
    /// Register (or re-register identically) a model; the pages its weights take. Owns
    /// the checks of the profile and of conflicting re-registration.
    fn register_model(&mut self, model: ModelId, profile: ModelProfile) -> Result<u32, GpuError>;

    /// Hand an action to its device: `Ok` means exactly one completion will follow,
    /// `Err` that none will (bad GPU id, full ring, stopped).
    fn submit(&mut self, action: DeviceAction) -> Result<(), SubmitError>;

    /// The profile of a registered model.
    fn profile(&self, model: ModelId) -> Option<&ModelProfile>;

    /// Every registered model, by id, in runs of consecutive ids with one profile.
    fn registered(&self) -> Vec<RegisteredModel>;

    /// Every device's cache state, by GPU id.
    fn state(&self) -> Vec<GpuState>;

    /// Weights-cache page size in bytes.
    fn page_size(&self) -> u64;

    /// Whether the devices really compute (CPU devices): then real models are measured
    /// at registration.
    fn computes(&self) -> bool {
        false
    }
}

impl Devices for DeviceSet {
    fn register_model(&mut self, model: ModelId, profile: ModelProfile) -> Result<u32, GpuError> {
        Self::register_model(self, model, profile)
    }

    fn submit(&mut self, action: DeviceAction) -> Result<(), SubmitError> {
        Self::submit(self, action)
    }

    fn profile(&self, model: ModelId) -> Option<&ModelProfile> {
        Self::profile(self, model)
    }

    fn registered(&self) -> Vec<RegisteredModel> {
        RegisteredModel::runs(self.models())
    }

    fn state(&self) -> Vec<GpuState> {
        Self::state(self)
    }

    fn page_size(&self) -> u64 {
        Self::page_size(self)
    }

    fn computes(&self) -> bool {
        Self::computes(self)
    }
}
