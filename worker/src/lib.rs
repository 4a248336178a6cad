//! Clockwork-RS worker (placeholder until the worker issue lands).
//!
//! This crate will own the passive executor process: it listens for the controller,
//! answers GET STATE, hands actions to `clockwork-gpu`'s device executors and returns
//! each result as soon as it completes, converting times between its clock and the
//! controller's. It makes no decisions of its own: it never evicts, never reorders
//! beyond each action's window, never retries.
//!
//! Today it holds nothing but this statement of scope.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
