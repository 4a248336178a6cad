//! Clockwork-RS device executors (placeholder until the GPU issue lands).
//!
//! This crate will own the per-device executor threads (one pinned thread per CUDA
//! device; emulated devices may share one), the lock-free rings that carry actions in
//! and completions (with timestamps) out, the per-device weights page cache, and the two
//! backends: an emulated device with a deterministic timing model and CUDA through
//! cudarc, loaded dynamically. It does not own networking or scheduling: the worker
//! feeds it actions and forwards its completions.
//!
//! Today it holds nothing but this statement of scope.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
