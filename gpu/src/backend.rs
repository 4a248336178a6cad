//! The seam between the backend-agnostic device logic ([`crate::device`]) and what runs
//! the work: the emulated timing model, CUDA, or a CPU that really computes. A backend runs at most one operation per
//! timeline at a time and is driven entirely from its engine thread.

use crate::error::GpuError;
use clockwork_core::{ModelId, ModelProfile, Nanos};

/// A device's two independent timelines: loads overlap execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeline {
    /// Kernel execution: one INFER at a time.
    Exec,
    /// Host-to-device weights copies: one LOAD at a time.
    Pcie,
}

/// One device as seen by its engine thread.
/// The profiled execution time of `profile.batches[batch_index]`, or an error naming
/// the missing index (the device checks batch sizes before it starts anything).
pub(crate) fn batch_exec_time(
    profile: &ModelProfile,
    batch_index: usize,
) -> Result<Nanos, GpuError> {
    profile
        .batches
        .get(batch_index)
        .map(|b| b.exec_time)
        .ok_or_else(|| GpuError::InvalidConfig(format!("no batch index {batch_index}")))
}

pub(crate) trait DeviceBackend {
    /// Device name; emulated devices say so.
    fn name(&self) -> String;

    /// Whether the device is emulated.
    fn emulated(&self) -> bool;

    /// Make a model's weights available on the host (CUDA: pinned memory). Called once
    /// per model, before any LOAD of it.
    fn register(&mut self, model: ModelId, profile: &ModelProfile) -> Result<(), GpuError>;

    /// Start copying `model`'s weights into `pages` on the PCIe timeline (idle).
    fn start_load(
        &mut self,
        model: ModelId,
        profile: &ModelProfile,
        pages: &[u32],
        now: Nanos,
    ) -> Result<(), GpuError>;

    /// Start one batch of `model` (weights resident in `pages`) at the supported batch
    /// size `profile.batches[batch_index]`, on the EXEC timeline (idle). `input` is the
    /// batch's concatenated input bytes (empty when the inputs are generated here).
    fn start_infer(
        &mut self,
        model: ModelId,
        profile: &ModelProfile,
        batch_index: usize,
        pages: &[u32],
        input: &[u8],
        now: Nanos,
    ) -> Result<(), GpuError>;

    /// Copy the outputs of the INFER that just finished successfully on EXEC into
    /// `output`, all of it (the caller chose its length). Must not allocate.
    fn copy_output(&mut self, output: &mut [u8]) -> Result<(), GpuError>;

    /// Has the operation on `timeline` finished? `Some(Ok(duration))` with its
    /// device-measured duration once it has; the timeline is then idle.
    fn poll(&mut self, timeline: Timeline, now: Nanos) -> Option<Result<Nanos, GpuError>>;

    /// When to poll `timeline` next while an operation runs on it (`now` to spin).
    fn next_check(&self, timeline: Timeline, now: Nanos) -> Nanos;

    /// Abandon the operation on `timeline` (shutdown): when this returns, the device no
    /// longer touches its memory; the timeline is idle.
    fn abort(&mut self, timeline: Timeline);

    /// `model`'s weights left the device (UNLOAD, or a LOAD that did not succeed): drop
    /// whatever the backend holds for it beyond the pages (a CPU device's runner).
    fn release(&mut self, _model: ModelId) {}
}
