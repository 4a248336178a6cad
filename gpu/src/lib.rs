//! Clockwork-RS device executors.
//!
//! This crate owns the devices of one worker: the engine threads that drive them (one
//! pinned thread per CUDA device; emulated devices share one or a few), the lock-free
//! rings that carry actions in and completions (with host timestamps and device-measured
//! durations) out, the per-device weights page cache with its weights versioning, the
//! `[earliest, latest]` window rule, and the two backends: an emulated device with the
//! original's timing model (plus optional seeded noise), CUDA through cudarc, loaded
//! dynamically and compiled in only with the `cuda` feature, and CPU devices that run
//! real ONNX models through `clockwork-models` (one pinned engine thread per device; see
//! `cpu.rs`).
//!
//! The same device logic runs in virtual time for simulators: [`VirtualDevice`] is one
//! emulated device driven on the caller's clock, reading profiles from a shared
//! [`ModelRegistry`] (see `virtual_device.rs`).
//!
//! It does not own networking, clock translation or scheduling: the worker feeds it
//! actions whose windows are already in the local `CLOCK_MONOTONIC` domain, forwards its
//! completions, and converts their timestamps back. It depends on no async runtime:
//! [`Completions`] can be polled from any executor (glommio included) or blocked on from
//! a plain thread.
//!
//! What the worker can rely on:
//! * **One completion per accepted action.** [`DeviceSet::submit`] either refuses at once
//!   ([`SubmitError`]: bad GPU id, full ring, stopped) or the action later yields exactly
//!   one [`Completion`], including malformed ones (unknown model, bad batch size, inverted
//!   window) and those cancelled at shutdown.
//! * **Windows.** Nothing starts before `earliest`; what cannot start by `latest` is
//!   dropped with its kind's *TooLate status, never run late; both bounds inclusive;
//!   checked at start only. Per device, EXEC runs one INFER at a time and PCIe one LOAD
//!   at a time, the two overlapping; UNLOAD takes no PCIe time (see `device.rs`).
//! * **Weights versioning** as the original: 84 for an INFER whose weights changed while
//!   it ran, 54 for a LOAD superseded by an UNLOAD, 82 for an INFER without weights.
//! * **Pages.** The device never evicts: a LOAD that does not fit fails with 53.
//! * **Inputs and outputs.** An INFER carries the batch's input bytes and an output
//!   buffer, both allocated by the submitter, so the engine threads allocate nothing on
//!   the INFER path. A successful INFER comes back with that buffer filled
//!   ([`Completion::output`]); the emulated device (and the CUDA stand-in kernel that
//!   runs timing-table models) fills it with zeros: emulated outputs are zeros of the
//!   declared size. CUDA devices run ONNX models for real ([`cuda_exec`]).
//! * **Checks.** The device owns the checks of what reaches it: window (12), model
//!   registered (10, 52 or 62 by kind) and batch size (31), each answered with a
//!   completion; [`DeviceSet::submit`] owns the GPU id ([`SubmitError::InvalidGpu`]).
//!   It does not interpret input bytes or check buffer lengths: their sizes are the
//!   submitter's business.
//! * **State** ([`DeviceSet::state`]) is read from snapshots that the engines publish on
//!   every cache change, without a round trip through the rings.
//! * **Threads.** Engine threads park when idle (no CPU), sleep until shortly before the
//!   next due event and spin the rest ([`DeviceConfig::spin`]). On a small machine keep
//!   `engine_threads` below the core count so the consumer keeps a core.
//!
//! ```
//! use clockwork_core::{model::resnet50, ActionId, GpuId, ModelId, MonotonicClock, Nanos, Window};
//! use clockwork_gpu::{DeviceAction, DeviceConfig, DeviceOp, DeviceSet};
//! use std::time::Duration;
//!
//! let (mut set, mut done) = DeviceSet::start(DeviceConfig::emulated(2))?;
//! set.register_model(ModelId(7), resnet50())?;
//! let now = MonotonicClock::read();
//! set.submit(DeviceAction {
//!     action: ActionId(1),
//!     gpu: GpuId(1),
//!     window: Window::new(now, now + Nanos::from_millis(10)),
//!     op: DeviceOp::Load { model: ModelId(7) },
//! })
//! .expect("room in the ring");
//! let c = done.recv_timeout(Duration::from_secs(5)).expect("a completion");
//! assert!(c.status.is_success() && c.emulated);
//! assert_eq!(set.state()[1].loaded, vec![ModelId(7)]);
//! # Ok::<(), clockwork_gpu::GpuError>(())
//! ```

#![warn(missing_docs, missing_debug_implementations)]
#![deny(unused_must_use)]

mod action;
mod backend;
mod config;
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
pub mod cuda_exec;
pub mod cuda_plan;
mod device;
mod emulated;
mod engine;
mod error;
mod handoff;
mod id_hash;
mod noise;
mod page_cache;
mod registry;
mod set;
mod snapshot;
mod virtual_device;

pub use action::{Completion, DeviceAction, DeviceOp, OpKind};
pub use config::{Backend, DeviceConfig, DEFAULT_CACHE_BYTES, DEFAULT_RING_CAPACITY, DEFAULT_SPIN};
pub use error::{GpuError, RecvTimeoutError, SubmitError, TryRecvError};
pub use handoff::Completions;
pub use noise::{Jitter, NoiseModel};
pub use page_cache::{PageAllocation, PageCache};
pub use registry::ModelRegistry;
pub use set::DeviceSet;
pub use virtual_device::VirtualDevice;

/// Whether real CUDA devices can be used here: the number of devices, or why not
/// ([`GpuError::NotCompiledWithCuda`], [`GpuError::DriverUnavailable`],
/// [`GpuError::NoDevice`]). Never panics, even without a driver.
pub fn cuda_device_count() -> Result<usize, GpuError> {
    #[cfg(feature = "cuda")]
    {
        cuda::device_count()
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(GpuError::NotCompiledWithCuda)
    }
}
