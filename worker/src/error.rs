//! The worker's one error type: why it could not start or stopped.

use clockwork_gpu::GpuError;
use clockwork_net::runtime::RuntimeError;
use clockwork_net::NetError;
use thiserror::Error;

/// Why the worker could not start, or why it stopped with a failure. Problems with one
/// controller connection or one action are not errors of the worker: they close that
/// connection or fail that action.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The devices could not be started (no CUDA, bad ordinal, bad device config).
    #[error("devices: {0}")]
    Gpu(#[from] GpuError),
    /// The controller listener could not be set up (e.g. the address is in use).
    #[error("listener: {0}")]
    Net(#[from] NetError),
    /// The glommio executor could not be started or failed.
    #[error("executor: {0}")]
    Runtime(#[from] RuntimeError),
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The registration thread (which measures real models) could not be spawned.
    #[error("registration thread: {0}")]
    RegistrationThread(#[source] std::io::Error),
    /// The executor stopped before it reported that it was serving.
    #[error("the worker executor stopped during start-up")]
    StartupFailed,
}
