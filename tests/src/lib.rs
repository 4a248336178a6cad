//! Clockwork-RS cross-crate integration tests.
//!
//! The tests live in `tests/tests/`; this library holds only what they share: finding
//! the `clockwork-bench` binary that runs a local cluster (controller and emulated
//! workers as separate processes on loopback). It owns no production code.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

use std::path::PathBuf;

/// The `clockwork-bench` binary of this build (cargo builds it for the workspace's
/// tests; it sits next to the test executables' `deps/` folder).
pub fn bench_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?;
    let bin = dir.join("clockwork-bench");
    bin.exists().then_some(bin)
}
