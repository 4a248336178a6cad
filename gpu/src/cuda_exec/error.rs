//! Why a plan cannot be executed by the CUDA executor, or why executing it failed.

/// A plan step (or a whole plan) the executor refuses, or a library call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// A step the executor cannot run as planned, with the reason.
    #[error("step {index} ({kind}) cannot run on the CUDA executor: {reason}")]
    Unsupported {
        /// Index of the step in the plan.
        index: usize,
        /// The step's kind (`"conv"`, `"pool"`, ...).
        kind: &'static str,
        /// What is missing.
        reason: String,
    },
    /// A dimension does not fit the 32-bit integers the libraries take.
    #[error("dimension {value} of {what} does not fit a 32-bit integer")]
    TooLarge {
        /// Which dimension.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// A weight's bytes are not where the executor can read them as one run.
    #[error("weight {index}: {reason}")]
    Weight {
        /// The weight's index in the plan.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A CUDA library is not installed (or not on the loader's path).
    #[error(
        "{lib} not found (looked for {names}): install it or add its directory to \
         LD_LIBRARY_PATH"
    )]
    MissingLibrary {
        /// The library (`"cuDNN"`, `"cuBLASLt"`, ...).
        lib: &'static str,
        /// The file names tried.
        names: &'static str,
    },
    /// A library call failed.
    #[error("{call} failed: {status}")]
    Call {
        /// The call.
        call: &'static str,
        /// The status it returned.
        status: String,
    },
}
