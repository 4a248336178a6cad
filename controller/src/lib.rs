//! Clockwork-RS controller (placeholder until the controller issue lands).
//!
//! This crate will own every scheduling decision: admission, batching, placement,
//! LOAD/UNLOAD and the `[earliest, latest]` window of each action, as a sans-IO state
//! machine (events and `now` in, actions and client responses out), plus the glommio
//! service that drives it and the client library. It owns no device code and no wire
//! format (those are `clockwork-gpu` and `clockwork-core`/`clockwork-net`).
//!
//! Today it holds nothing but this statement of scope.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
