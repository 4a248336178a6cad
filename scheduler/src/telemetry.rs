//! Per-request and per-action log records, buffered by the scheduler when
//! [`crate::Config::telemetry`] is on and drained by the driver
//! ([`crate::Scheduler::poll_log`]), which writes them out.
//!
//! The records and their TSV format are `clockwork_core::telemetry`'s, the one
//! definition that the controller's writer and the run report's reader share; this
//! module only names them where the scheduler produces them.

pub use clockwork_core::telemetry::{ActionLog, LogRecord, RequestLog};
