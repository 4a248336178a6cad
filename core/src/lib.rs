//! Clockwork-RS core: the vocabulary every other crate speaks.
//!
//! This crate owns the identifiers (models, requests, actions, workers, GPUs), the
//! [`Nanos`] time type and the one monotonic [`Clock`], the controller→worker action
//! set, the worker→controller results with per-stage timings, the worker and client
//! status codes and their one classification, model profiles, the telemetry logs'
//! records and TSV format ([`telemetry`]), and every message that crosses a socket (all
//! of them rkyv archives, see [`wire`]).
//!
//! It owns no I/O: no sockets, no threads, no executors, no files (the log parser reads
//! any `BufRead` its caller opened). Framing, handshakes and transport live in
//! `clockwork-net`; devices in `clockwork-gpu`; scheduling in `clockwork-scheduler`.
//! Everything here is plain data plus small pure functions, so the scheduler and the
//! simulator can use it with injected time.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![deny(unused_must_use)]

// Modules holding enums with struct variants: rkyv generates a public resolver enum for
// each, whose variant fields carry no docs. Every hand-written item there is documented.
#[allow(missing_docs)]
pub mod action;
#[allow(missing_docs)]
pub mod client;
pub mod ids;
pub mod input_bytes;
#[allow(missing_docs)]
pub mod model;
#[allow(missing_docs)]
pub mod result;
pub mod rng;
pub mod secret;
pub mod status;
pub mod telemetry;
pub mod time;
#[allow(missing_docs)]
pub mod wire;

pub use action::{Action, ActionKind, Window};
pub use client::{ClientRequest, ClientResponse, InferRequest, InferResponse, ModelInfo, Slo};
pub use ids::{ActionId, GpuId, ModelId, RequestId, WorkerId};
pub use input_bytes::InputBytes;
pub use model::{
    BatchProfile, MeasuredTimes, ModelProfile, ModelSource, ProfileError, TensorSpec,
    DEFAULT_PAGE_SIZE,
};
pub use result::{ActionResult, GpuState, Inferred, Outcome, RegisteredModel, Timing, WorkerState};
pub use secret::Secret;
pub use status::{ClientStatus, StatusGroup, WorkerStatus};
pub use time::{Clock, MonotonicClock, Nanos};
