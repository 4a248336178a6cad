//! Clockwork-RS cross-crate integration tests.
//!
//! The tests live in `tests/tests/`; this library holds only helpers they share. It owns
//! no production code.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
