//! Clockwork-RS controller: the scheduler core and a virtual-time simulator.
//!
//! This crate owns every scheduling decision of the system: admission (including
//! up-front rejection of requests no plan can serve in time), batching, placement of
//! INFERs on GPU timelines, LOAD/UNLOAD decisions with page accounting, and the
//! `[earliest, latest]` window of every action. The [`Scheduler`] is a sans-IO state
//! machine in the style of quinn's protocol core: inputs are method calls that carry
//! `now`, outputs ([`Output`]) are drained by the caller, and
//! [`Scheduler::next_deadline`] says when to call [`Scheduler::handle_timeout`]. It
//! reads no clock, owns no socket and spawns no thread, so the network service
//! ([`service`], on glommio) and the [`sim`] virtual-time simulator drive the very
//! same code. Where it departs from the original's INFER4 scheduler (the batching
//! lookahead, the measured completion buffer, rescue replicas, cold models warmed by
//! refusals, no `exec_slo` floor): `docs/adr/0002-scheduler-departures.md`.
//!
//! It does not own: device code or the worker (`clockwork-gpu`, `clockwork-worker`),
//! the wire format (`clockwork-core`, `clockwork-net`), input bytes (the driver
//! attaches them to INFER actions using [`Scheduler::batch_requests`]), or writing
//! telemetry files (it buffers [`telemetry`] records; the driver writes them).
//!
//! Modules, one idea each: [`config`], [`admission`] (SLO arithmetic), [`buffer`]
//! (the measured completion buffer), [`estimator`], [`timeline`], [`batching`],
//! [`load_tracker`], [`eviction`], [`stats`],
//! [`telemetry`], [`output`]; the state machine in `scheduler` (split by concern);
//! the simulator and its workloads in [`sim`].

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![deny(unused_must_use)]

pub mod admission;
mod arena;
pub mod batching;
pub mod buffer;
pub mod client;
pub mod config;
pub mod error;
pub mod estimator;
pub mod eviction;
mod gpu_state;
pub mod load_tracker;
mod model_state;
pub mod output;
pub mod rng;
mod scheduler;
pub mod service;
pub mod sim;
pub mod stats;
pub mod telemetry;
pub mod timeline;
mod timer;

pub use config::Config;
pub use error::{ConfigError, RegisterError};
pub use output::{ClientKey, Output};
pub use scheduler::{ModelRange, Scheduler};
pub use stats::Stats;
pub use telemetry::LogRecord;
