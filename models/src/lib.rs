//! Real models for Clockwork-RS: ONNX import (through tract), the model repository's
//! layout and per-model config, generated test models, CPU execution and profiling.
//!
//! It owns: reading a Triton-style repository (`DIR/<name>/<version>/model.onnx` plus an
//! optional `DIR/<name>/config.json`); importing an ONNX model into checked metadata (OIP
//! datatypes, shapes with `-1` for the batch axis, per-request bytes, weight bytes) and
//! tract's decluttered typed model, refusing what cannot be served with a typed reason;
//! one runnable single-threaded plan per batch size and running a packed batch through
//! it on the calling thread; timing those plans; and generating seeded test models
//! (identity, a small CNN, ResNet-18/50-shaped networks) with no download.
//!
//! It does not own: pinning threads to cores, queueing or scheduling (the worker and the
//! scheduler do), HTTP or OIP request parsing (the controller), GPU execution (a later
//! backend in `clockwork-gpu` walks [`ImportedModel::decluttered`]), nor the emulated
//! devices' timing tables (`clockwork-core` profiles).

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![deny(unused_must_use)]

pub mod config;
pub mod core_profile;
pub mod datatype;
pub mod error;
pub mod generate;
mod import;
pub mod metadata;
mod onnx_graph;
pub mod profile;
pub mod repository;
mod runner;

pub use config::{ModelConfig, Precision};
pub use core_profile::{core_profile, CoreProfileError};
pub use datatype::DataType;
pub use error::{ImportError, RunError};
pub use generate::{make_model, write_entry, ModelKind};
pub use import::{ImportLimits, ImportedModel, DEFAULT_MAX_WEIGHT_BYTES, FILE_OVERHEAD_ALLOWANCE};
pub use metadata::{ModelMetadata, TensorSpec};
pub use profile::{profile_plans, BatchTiming, MeasuredProfile, ProfileError, ProfileOptions};
pub use repository::{EntryError, Repository, RepositoryEntry};
pub use runner::ModelRunner;
