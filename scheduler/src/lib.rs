//! Clockwork-RS scheduler: every scheduling decision of the system, as a sans-IO state
//! machine.
//!
//! This crate owns admission (including the up-front refusal of requests no plan can
//! serve in time), batching, placement of INFERs on GPU timelines, LOAD/UNLOAD
//! decisions with page accounting, and the `[earliest, latest]` window of every
//! action. The [`Scheduler`] reads like quinn-proto's `Connection`: inputs are method
//! calls that carry `now` ([`Scheduler::request`], [`Scheduler::handle_result`],
//! [`Scheduler::handle_timeout`], worker joins and losses), outputs are drained with
//! [`Scheduler::poll_output`] and [`Scheduler::poll_log`], and
//! [`Scheduler::next_deadline`] says when to call `handle_timeout`. An
//! [`Output::Send`] carries everything its driver needs to build the worker's
//! messages (the batch members of each INFER: client, request id, and the
//! [`InputRef`] the driver gave for its input), so the driver never calls back; an
//! [`Output::Respond`] carries the request's own slice of its batch's outputs. Where
//! it departs from the original's INFER4 scheduler (the batching lookahead, the
//! measured margins, rescue replicas, cold models warmed by refusals, no
//! `exec_slo` floor): `docs/adr/0002-scheduler-departures.md`.
//!
//! It reads no clock, owns no socket, spawns no thread and installs no logger: its
//! only dependencies are `clockwork-core` and small pure crates, so the glommio
//! service (`clockwork-controller`) and the virtual-time simulator (`clockwork-sim`)
//! drive the very same code. It does not own the wire format, input bytes (the
//! driver keeps them where its [`InputRef`]s point and attaches them to INFER actions),
//! or writing telemetry files (it buffers [`telemetry`] records; the driver writes
//! them).
//!
//! Modules, one idea each: [`config`], [`admission`] (SLO arithmetic), [`margins`]
//! (the completion buffer and lead time, measured), [`ahead`] (the EXEC schedule-ahead), [`estimator`], [`timeline`], [`batching`],
//! [`rollout`] (the next batch and admission under pressure), [`doubt`] (whether a doubtful request is queued), [`load_tracker`], [`eviction`], [`stats`], [`telemetry`], [`output`]; the state
//! machine in `scheduler` (split by concern).

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![deny(unused_must_use)]

pub mod admission;
pub mod ahead;
mod arena;
pub mod batching;
pub mod config;
pub mod doubt;
pub mod error;
pub mod estimator;
pub mod eviction;
mod gpu_state;
pub mod load_tracker;
pub mod margins;
mod model_state;
pub mod output;
pub mod rollout;
mod scheduler;
pub mod stats;
pub mod telemetry;
pub mod timeline;
mod timer;

pub use config::Config;
pub use error::{ConfigError, RegisterError};
pub use output::{infer_batches, BatchMember, ClientKey, InputRef, Output};
pub use scheduler::{ModelRange, Scheduler};
pub use stats::Stats;
pub use telemetry::LogRecord;
