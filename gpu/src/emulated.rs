//! The emulated device (the original's `worker_dummy`): no GPU and no weights in memory,
//! only the timing model. An INFER completes at start + the profile's execution time of
//! the padded batch, a LOAD at start + the profile's load time, each optionally jittered
//! by a seeded [`NoiseModel`]. Page accounting is real (it lives in
//! [`crate::device`], shared with the CUDA backend), so the controller cannot tell the
//! difference except by the device name and `GpuState::emulated`.

use crate::backend::{batch_exec_time, DeviceBackend, Timeline};
use crate::error::GpuError;
use crate::noise::{Jitter, NoiseModel};
use clockwork_core::{ModelId, ModelProfile, Nanos};

/// One emulated device.
#[derive(Debug)]
pub(crate) struct EmulatedDevice {
    index: u32,
    jitter: Jitter,
    /// Per timeline: (due time, emulated duration) of the running operation.
    exec: Option<(Nanos, Nanos)>,
    pcie: Option<(Nanos, Nanos)>,
}

impl EmulatedDevice {
    /// Emulated device number `index`, with its own noise stream.
    pub(crate) fn new(index: u32, noise: NoiseModel, seed: u64) -> Self {
        Self {
            index,
            jitter: Jitter::new(noise, seed, index),
            exec: None,
            pcie: None,
        }
    }

    fn slot(&mut self, timeline: Timeline) -> &mut Option<(Nanos, Nanos)> {
        match timeline {
            Timeline::Exec => &mut self.exec,
            Timeline::Pcie => &mut self.pcie,
        }
    }

    fn start(&mut self, timeline: Timeline, base: Nanos, now: Nanos) {
        let duration = self.jitter.apply(base);
        *self.slot(timeline) = Some((now + duration, duration));
    }
}

impl DeviceBackend for EmulatedDevice {
    fn name(&self) -> String {
        format!("emulated-gpu-{} (emulated)", self.index)
    }

    fn emulated(&self) -> bool {
        true
    }

    fn register(&mut self, _model: ModelId, _profile: &ModelProfile) -> Result<(), GpuError> {
        Ok(())
    }

    fn start_load(
        &mut self,
        _model: ModelId,
        profile: &ModelProfile,
        _pages: &[u32],
        now: Nanos,
    ) -> Result<(), GpuError> {
        self.start(Timeline::Pcie, profile.load_time, now);
        Ok(())
    }

    fn start_infer(
        &mut self,
        _model: ModelId,
        profile: &ModelProfile,
        batch_index: usize,
        _pages: &[u32],
        _input: &[u8],
        now: Nanos,
    ) -> Result<(), GpuError> {
        let base = batch_exec_time(profile, batch_index)?;
        self.start(Timeline::Exec, base, now);
        Ok(())
    }

    fn copy_output(&mut self, output: &mut [u8]) -> Result<(), GpuError> {
        output.fill(0);
        Ok(())
    }

    fn poll(&mut self, timeline: Timeline, now: Nanos) -> Option<Result<Nanos, GpuError>> {
        let slot = self.slot(timeline);
        match *slot {
            Some((due, duration)) if now >= due => {
                *slot = None;
                Some(Ok(duration))
            }
            _ => None,
        }
    }

    fn next_check(&self, timeline: Timeline, now: Nanos) -> Nanos {
        let slot = match timeline {
            Timeline::Exec => self.exec,
            Timeline::Pcie => self.pcie,
        };
        slot.map_or(now, |(due, _)| due)
    }

    fn abort(&mut self, timeline: Timeline) {
        *self.slot(timeline) = None;
    }
}
