//! The Azure Functions 2019 trace: the file [`reader`], a calibrated [`synthetic`]
//! generator that writes the same format, [`stats`] of a trace's shape, and the
//! [`replay`] of a day onto model instances.
//!
//! The real trace is **not** shipped with Clockwork-RS. Every trace carries a
//! [`TraceSource`]; reports must print it, so that synthetic results are never
//! mistaken for real ones.

pub mod reader;
pub mod replay;
pub mod source;
pub mod stats;
pub mod synthetic;
pub mod trace;
pub mod writer;

pub use reader::{read_day, read_file, TraceError};
pub use replay::{AzureReplay, Mapping, ReplayConfig};
pub use source::TraceSource;
pub use stats::TraceStats;
pub use synthetic::{SyntheticConfig, SyntheticTrace};
pub use trace::{AzureTrace, FunctionTrace, MinuteCounts, Trigger, MINUTES_PER_DAY};
pub use writer::write_csv;

impl TraceSource {
    /// Load day `day`: read the file (for [`TraceSource::Real`], a file or a directory
    /// holding the trace) or generate it (for [`TraceSource::Synthetic`], with the
    /// default calibration).
    pub fn load(&self, day: u8) -> Result<AzureTrace, TraceError> {
        match self {
            Self::Real(path) if path.is_dir() => read_day(path, day),
            Self::Real(path) => read_file(path, day),
            Self::Synthetic { seed, functions } => {
                SyntheticTrace::new(SyntheticConfig::new(*seed, *functions))?.day(day)
            }
            Self::InMemory => Err(TraceError::NotReloadable),
        }
    }
}
