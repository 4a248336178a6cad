//! `clockwork-bench` as a library: the workload generators that the benchmarks, the
//! virtual-time simulator and the integration tests share, so that every driver (a real
//! client or a simulator) replays exactly the same seeded arrivals. The `clockwork-bench`
//! binary holds the benchmarks themselves.
//!
//! [`scenario`] builds the virtual-time simulator's named scenarios (§6.5) from them.
//!
//! See [`workload`] for the generators and the Azure Functions 2019 trace tooling, and
//! `docs/workloads.md` for their parameters and the synthetic trace's calibration.

#![warn(missing_docs, missing_debug_implementations)]

pub mod report;
pub mod scenario;
pub mod workload;
