//! [`VirtualDevice`]: one emulated device driven on a caller's clock, for simulators.
//!
//! It is the very device logic the engine threads run ([`crate::device`]: the two
//! timelines, the queues ordered by `earliest`, the `[earliest, latest]` window rule,
//! the page cache and weights versioning) on the emulated backend, with `now` passed
//! in instead of read from `CLOCK_MONOTONIC`. Nothing here decides timing, windows,
//! pages or statuses; this type only exposes the calls an engine thread makes:
//!
//! * [`VirtualDevice::submit`] is an action taken from the ring, followed by a poll
//!   (an engine drains its ring, then polls the devices it touched);
//! * [`VirtualDevice::next_event`] is the engine's timer for the device;
//! * [`VirtualDevice::advance`] is the poll when that timer fires.
//!
//! A caller that submits and advances at the times this type asks for sees exactly the
//! completions an engine thread would produce for the same arrivals, with no timer
//! lateness. Profiles come from a [`ModelRegistry`] the caller owns and may share
//! across any number of devices (the emulated backend keeps nothing per model), so a
//! device's memory grows with the models it has touched, not with those registered.
//!
//! ```
//! use clockwork_core::{model::resnet50, ActionId, GpuId, ModelId, Nanos, Window, WorkerStatus};
//! use clockwork_core::DEFAULT_PAGE_SIZE;
//! use clockwork_gpu::{DeviceAction, DeviceOp, ModelRegistry, NoiseModel, VirtualDevice};
//!
//! let mut models = ModelRegistry::new();
//! models.register(ModelId(7), &resnet50())?;
//! let mut gpu = VirtualDevice::emulated(GpuId(0), 1376, DEFAULT_PAGE_SIZE, NoiseModel::None, 1);
//! let mut done = Vec::new();
//! let load = DeviceAction {
//!     action: ActionId(1),
//!     gpu: GpuId(0),
//!     window: Window::new(Nanos::ZERO, Nanos::MAX),
//!     op: DeviceOp::Load { model: ModelId(7) },
//! };
//! gpu.submit(load, Nanos::ZERO, &models, &mut done);
//! let t = gpu.next_event(Nanos::ZERO).expect("the copy ends");
//! assert_eq!(t, resnet50().load_time);
//! gpu.advance(t, &models, &mut done);
//! assert_eq!(done[0].status, WorkerStatus::Success);
//! assert_eq!(gpu.state().loaded, vec![ModelId(7)]);
//! assert!(gpu.state().emulated);
//! # Ok::<(), clockwork_gpu::GpuError>(())
//! ```

use crate::action::{Completion, DeviceAction};
use crate::device::Device;
use crate::emulated::EmulatedDevice;
use crate::noise::NoiseModel;
use crate::registry::ModelRegistry;
use clockwork_core::{GpuId, GpuState, ModelId, Nanos};

/// One emulated device in virtual time. Always emulated: its state says so.
#[derive(Debug)]
pub struct VirtualDevice {
    device: Device<EmulatedDevice>,
    id: GpuId,
}

impl VirtualDevice {
    /// An emulated device `id` with an empty cache of `total_pages` pages of
    /// `page_size` bytes, whose durations are jittered by `noise` from its own stream of
    /// `seed` (devices given the same `id` and `seed` draw the same stream).
    pub fn emulated(
        id: GpuId,
        total_pages: u32,
        page_size: u64,
        noise: NoiseModel,
        seed: u64,
    ) -> Self {
        let backend = EmulatedDevice::new(id.0, noise, seed);
        Self {
            device: Device::new(id, backend, total_pages, page_size),
            id,
        }
    }

    /// The device's id, echoed by its completions.
    pub const fn id(&self) -> GpuId {
        self.id
    }

    /// `action` arrives at `now`: it is refused at once if malformed (invalid window,
    /// unregistered model, bad batch size), else queued; then everything due at `now`
    /// happens. Completions go to `out`. `now` must not go back in time.
    pub fn submit(
        &mut self,
        action: DeviceAction,
        now: Nanos,
        models: &ModelRegistry,
        out: &mut Vec<Completion>,
    ) {
        self.device.accept(action, now, models.profiles(), out);
        self.device.poll(now, models.profiles(), out);
    }

    /// When something next happens on this device (an operation ends, a queued action's
    /// `earliest` comes, or one passes its `latest`), if anything is pending. Call
    /// [`VirtualDevice::advance`] then.
    pub fn next_event(&self, now: Nanos) -> Option<Nanos> {
        self.device.next_due(now)
    }

    /// Move the device to `now`: finish what has finished, drop what missed its window,
    /// start what is due. Completions go to `out`. Idempotent for a given `now`.
    pub fn advance(&mut self, now: Nanos, models: &ModelRegistry, out: &mut Vec<Completion>) {
        self.device.poll(now, models.profiles(), out);
    }

    /// The device's state as a worker reports it (pages, resident models; a LOAD in
    /// flight holds its pages but is not listed as loaded).
    pub fn state(&self) -> GpuState {
        self.device.snapshot().read()
    }

    /// Whether `model` is resident, being loaded, or has a LOAD waiting for the link.
    pub fn holds_or_loads(&self, model: ModelId) -> bool {
        self.device.holds_or_loads(model)
    }

    /// Abandon what runs and cancel what is queued (each gets a `Cancelled` completion),
    /// as a stopping worker does; the cache is emptied of LOADs in flight.
    pub fn cancel_all(&mut self, now: Nanos, out: &mut Vec<Completion>) {
        self.device.cancel_all(now, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::DeviceOp;
    use clockwork_core::model::resnet50;
    use clockwork_core::{ActionId, Window, WorkerStatus, DEFAULT_PAGE_SIZE};

    const M: ModelId = ModelId(3);

    fn action(id: u64, earliest: u64, latest: u64, op: DeviceOp) -> DeviceAction {
        DeviceAction {
            action: ActionId(id),
            gpu: GpuId(0),
            window: Window::new(Nanos(earliest), Nanos(latest)),
            op,
        }
    }

    /// Step the device through its own events up to `until`, as a simulator would.
    fn run(gpu: &mut VirtualDevice, models: &ModelRegistry, until: Nanos) -> Vec<Completion> {
        let mut out = Vec::new();
        let mut now = Nanos::ZERO;
        while let Some(t) = gpu.next_event(now) {
            if t > until {
                break;
            }
            now = t;
            gpu.advance(now, models, &mut out);
        }
        out
    }

    #[test]
    fn actions_run_in_earliest_order_whatever_their_arrival_order() {
        let mut models = ModelRegistry::new();
        models.register(M, &resnet50()).unwrap();
        let mut gpu =
            VirtualDevice::emulated(GpuId(0), 100, DEFAULT_PAGE_SIZE, NoiseModel::None, 0);
        let mut out = Vec::new();
        gpu.submit(
            action(1, 0, 0, DeviceOp::Load { model: M }),
            Nanos::ZERO,
            &models,
            &mut out,
        );
        out.extend(run(&mut gpu, &models, Nanos::from_millis(10)));
        assert_eq!(out[0].status, WorkerStatus::Success);
        let infer = || DeviceOp::infer(M, 1);
        let t = Nanos::from_millis(10);
        // Delivered late-first: the one due at 30 ms arrives before the one due at 20 ms.
        gpu.submit(
            action(2, 30_000_000, u64::MAX, infer()),
            t,
            &models,
            &mut out,
        );
        gpu.submit(
            action(3, 20_000_000, u64::MAX, infer()),
            t,
            &models,
            &mut out,
        );
        let mut later = Vec::new();
        let mut now = t;
        while let Some(next) = gpu.next_event(now) {
            now = next;
            gpu.advance(now, &models, &mut later);
        }
        let order: Vec<_> = later.iter().map(|c| (c.action, c.timing.begin)).collect();
        assert_eq!(
            order,
            vec![
                (ActionId(3), Nanos::from_millis(20)),
                (ActionId(2), Nanos::from_millis(30))
            ]
        );
        assert!(gpu.holds_or_loads(M));
        assert_eq!(gpu.state().free_pages, 93);
    }
}
