//! Errors. [`GpuError`] is what can go wrong starting devices or registering models;
//! [`SubmitError`] is the immediate refusal of one action (it never reached a device, so
//! it gets no [`crate::Completion`]); the receive errors say why no completion came back.

use crate::action::DeviceAction;
use clockwork_core::{GpuId, ModelId, ProfileError, WorkerStatus};
use thiserror::Error;

/// Starting devices or registering a model failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GpuError {
    /// The CUDA driver library (`libcuda.so`) could not be loaded: no NVIDIA driver here.
    #[error("CUDA driver library (libcuda) not found: no NVIDIA driver on this machine")]
    DriverUnavailable,
    /// The driver loaded but reports no device.
    #[error("no CUDA device found")]
    NoDevice,
    /// A configured CUDA ordinal does not exist.
    #[error("CUDA device ordinal {ordinal} does not exist ({count} devices)")]
    BadOrdinal {
        /// The ordinal asked for.
        ordinal: usize,
        /// Devices the driver reports.
        count: usize,
    },
    /// `Backend::Cuda` was asked for, but this build has no `cuda` feature.
    #[error("clockwork-gpu was built without the `cuda` feature; rebuild with `--features cuda`")]
    NotCompiledWithCuda,
    /// A CUDA library the real-model executor needs (cuDNN, cuBLASLt) cannot be loaded.
    #[error("{0}")]
    MissingLibrary(String),
    /// A CUDA driver call failed.
    #[error("CUDA error: {0}")]
    Driver(String),
    /// The configuration cannot work (no devices, zero page size, ...).
    #[error("invalid device configuration: {0}")]
    InvalidConfig(String),
    /// A model profile failed validation.
    #[error("invalid profile for model {model}: {source}")]
    InvalidProfile {
        /// The model.
        model: ModelId,
        /// Why.
        #[source]
        source: ProfileError,
    },
    /// The model id is already registered with a different profile.
    #[error("model {0} is already registered with a different profile")]
    ModelConflict(ModelId),
    /// An engine's command ring is full; nothing was sent, retry later.
    #[error("an engine's command ring is full")]
    Full,
    /// An engine thread is gone (it panicked or was shut down).
    #[error("device engine stopped")]
    Stopped,
    /// A model whose source is a timing table was registered on CPU devices, which
    /// compute for real and do not emulate.
    #[error("model {0} is emulated (a timing table, no model file): CPU devices compute, they do not emulate")]
    EmulatedModelOnCpu(ModelId),
    /// A real model could not be imported, planned or run on a CPU device.
    #[error("model execution: {0}")]
    Model(String),
    /// An engine thread could not be spawned.
    #[error("could not spawn a device engine thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// An action was refused at [`crate::DeviceSet::submit`]; it reached no device and gets
/// no completion.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// No device has this id.
    #[error("no device {0}")]
    InvalidGpu(GpuId),
    /// The device's command ring is full; the action is handed back unchanged.
    #[error("command ring full for action {}", .0.action)]
    Full(DeviceAction),
    /// The device's engine is gone.
    #[error("device engine stopped")]
    Stopped,
}

impl SubmitError {
    /// The worker status that reports this refusal to the controller.
    pub fn status(&self) -> WorkerStatus {
        match self {
            Self::InvalidGpu(_) => WorkerStatus::InvalidGpu,
            Self::Full(_) => WorkerStatus::RuntimeError,
            Self::Stopped => WorkerStatus::ShuttingDown,
        }
    }
}

/// Why [`crate::Completions::try_next`] returned nothing.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing has completed yet.
    #[error("no completion ready")]
    Empty,
    /// Every engine has stopped and every completion was taken.
    #[error("all device engines stopped")]
    Closed,
}

/// Why [`crate::Completions::recv_timeout`] returned nothing.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// Nothing completed within the timeout.
    #[error("timed out waiting for a completion")]
    Timeout,
    /// Every engine has stopped and every completion was taken.
    #[error("all device engines stopped")]
    Closed,
}
