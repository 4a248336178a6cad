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
//! - [`SimArrivals`]: any open-loop source as the virtual-time simulator's arrivals.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![deny(unused_must_use)]

pub mod arrival;
pub mod azure;
pub mod bursty;
pub mod closed_loop;
pub mod driver;
pub mod error;
pub mod fill_memory;
pub mod open_loop;
mod process;
pub mod profiles;
pub mod ramp;
mod sim_arrivals;
pub mod slo;
pub mod slo_sweep;
pub mod spec;
pub mod step;

pub use arrival::{collect_until, Arrival, ArrivalSource, Merged};
pub use bursty::{Bursty, BurstySpec};
pub use closed_loop::{ClosedLoop, ClosedLoopSpec};
pub use driver::{Part, Workload};
pub use error::{SpecError, WorkloadError};
pub use fill_memory::{FillMemorySpec, RateGroup};
pub use open_loop::{Interarrival, OpenLoop, OpenLoopSpec, RateSplit};
pub use profiles::{load_profiles, models_spread, parse_profiles, Spread};
pub use ramp::{Ramp, RampSpec};
pub use sim_arrivals::SimArrivals;
pub use slo::SloPlan;
pub use slo_sweep::SloSweepSpec;
pub use spec::{AzureSpec, WorkloadSpec};
pub use step::{Level, Step, StepSchedule};
