//! Clockwork-RS controller: the network service around the sans-IO scheduler.
//!
//! This crate owns the shell: the glommio executor that drives one
//! [`clockwork_scheduler::Scheduler`] with real time, the native links to workers and
//! clients, the Open Inference Protocol (KServe v2) HTTP front end, Prometheus metrics,
//! the TSV telemetry files, graceful shutdown, the command line ([`cli`]: flags, their
//! checks, and starting the service from them) and the `clockwork-controller` binary.
//! Every decision is the scheduler's: the service feeds it events with `now` and
//! carries out what it asks for, and never calls back to ask more.
//!
//! It does not own scheduling (`clockwork-scheduler`), the simulator
//! (`clockwork-sim`), the Rust client library (`clockwork-client`), the wire format
//! (`clockwork-core`, `clockwork-net`) or devices (`clockwork-gpu`, `clockwork-worker`).

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![deny(unused_must_use)]

pub mod cli;
pub mod service;
