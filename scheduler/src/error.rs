//! The controller's errors.

use clockwork_core::ProfileError;
use thiserror::Error;

/// Why [`crate::Config`] is unusable.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field is out of range.
    #[error("invalid scheduler config: {0}")]
    Invalid(&'static str),
}

/// Why [`crate::Scheduler::register_models`] refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegisterError {
    /// The profile is malformed.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// Zero copies asked for.
    #[error("copies must be at least 1")]
    NoCopies,
    /// The registration would pass [`crate::Config::max_models`].
    #[error(
        "{asked} more instances would make {total}; this controller takes at most {max} (--max-models)"
    )]
    TooManyModels {
        /// Instances asked for.
        asked: u32,
        /// What the registry would then hold (registered so far + asked).
        total: u64,
        /// The bound.
        max: u32,
    },
    /// With the configured `max_batch` and `max_exec`, no batch size is usable (batch
    /// size 1 is missing from the profile).
    #[error("profile `{0}` has no batch size 1")]
    NoBatchOne(String),
    /// One request's input or output is more than a batch may carry over the worker
    /// link ([`crate::Config::max_batch_bytes`]).
    #[error(
        "profile `{name}`: {bytes} bytes per request of input or output exceed the {max} bytes \
         a batch may carry over the worker link"
    )]
    TooLargeForLink {
        /// The profile's name.
        name: String,
        /// The larger of its input and output bytes per request.
        bytes: u64,
        /// The bound.
        max: u64,
    },
}
