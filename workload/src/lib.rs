//! Clockwork-RS workloads: when requests arrive, for which model instance, with which
//! SLO.
//!
//! This crate owns the arrival processes (open loop, bursty, ramp, stepped rates, SLO
//! sweeps, fill-memory), the client models (closed loop), the Azure Functions 2019
//! trace (reader, calibrated synthetic generator, replay) and model profiles from
//! JSON. It is pure: it does not send requests, owns no I/O runtime (no executor, no
//! sockets; it only reads and writes trace and profile files) and does no scheduling.
//! The drivers live elsewhere: the main job's network client in `clockwork-bench`, the
//! virtual-time simulator in `clockwork-sim`.
//!
//! Everything is deterministic given a seed, and time is an offset from the start of
//! the workload, so the same workload can drive a real client (sleeping until each
//! arrival) or a virtual-time simulator (jumping to it).
//!
//! - Open loop ([`ArrivalSource`]: arrivals in time order, independent of responses):
//!   [`OpenLoop`] (Poisson or fixed rate, split evenly, Zipf-skewed or by weights,
//!   optionally with a stepped rate), [`Bursty`] (ON/OFF), SLO sweep
//!   ([`SloSweepSpec`]), fill memory ([`FillMemorySpec`]), the many-models [`Ramp`],
//!   and the Azure trace replay ([`azure::AzureReplay`]).
//! - Closed loop ([`ClosedLoop`]): `N` outstanding per model; each response triggers
//!   the next request.
//! - [`Workload`] runs any mix of them behind one interface; [`WorkloadSpec`]
//!   describes one.
//! - [`azure`]: the Azure Functions 2019 trace reader, a calibrated synthetic generator
//!   writing the same format, and statistics of a trace's shape.
//! - [`profiles`]: model profiles from a JSON file; instances spread over profiles.
//! - [`AzureLike`]: a cheap heavy-tailed, bursty stand-in for the trace at simulator
//!   scale; [`Scripted`]: a fixed list of arrivals, for tests.
//! - [`AliasTable`]: O(1) weighted draws, the one weighted sampler.
//!
//! Every generator draws from `clockwork_core::rng::Rng`, the project's one PRNG, each
//! from its own stream derived from the seed; `rand` and `rand_distr` supply only what
//! that generator lacks (shuffles, integer ranges, binomial and gamma variates).

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![deny(unused_must_use)]

pub mod alias;
pub mod arrival;
pub mod azure;
pub mod azure_like;
pub mod bursty;
pub mod closed_loop;
pub mod driver;
pub mod error;
pub mod fill_memory;
pub mod open_loop;
mod process;
pub mod profiles;
pub mod ramp;
pub mod scripted;
pub mod slo;
pub mod slo_sweep;
pub mod spec;
pub mod step;

pub use alias::AliasTable;
pub use arrival::{collect_until, Arrival, ArrivalSource, Merged};
pub use azure_like::{AzureLike, AzureLikeConfig};
pub use bursty::{Bursty, BurstySpec};
pub use closed_loop::{ClosedLoop, ClosedLoopSpec};
pub use driver::{Part, Workload};
pub use error::{SpecError, WorkloadError};
pub use fill_memory::{FillMemorySpec, RateGroup};
pub use open_loop::{Interarrival, OpenLoop, OpenLoopSpec, RateSplit};
pub use profiles::{load_profiles, models_spread, parse_profiles, Spread};
pub use ramp::{Ramp, RampSpec};
pub use scripted::Scripted;
pub use slo::SloPlan;
pub use slo_sweep::SloSweepSpec;
pub use spec::{AzureSpec, WorkloadSpec};
pub use step::{Level, Step, StepSchedule};
