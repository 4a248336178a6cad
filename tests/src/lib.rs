//! Clockwork-RS cross-crate integration tests.
//!
//! The tests live in `tests/tests/`; this library holds only what they share: building
//! and finding the `clockwork-bench` binary that runs a local cluster (controller and
//! emulated workers as separate processes on loopback); and for the fault tests, real
//! controller and worker processes ([`procs`]), a blocking native client ([`native`])
//! and a frame-aware TCP proxy that stalls or drops frames on command ([`proxy`]). It
//! owns no production code.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod native;
pub mod procs;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `clockwork-bench` binary of this build, built first if it is missing or stale
/// (a dev-dependency builds only the library, and a stale binary would test old code).
pub fn bench_binary() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let bin = build_binaries()?.join("clockwork-bench");
            if bin.exists() {
                Ok(bin)
            } else {
                Err(format!("{} not found after building", bin.display()))
            }
        })
        .clone()
}

/// Runs `cargo build --workspace --all-targets` and returns the directory that holds
/// the workspace's binaries (the parent of this test binary's `deps/`).
///
/// The whole workspace with every target, not just the binary a test needs: that is
/// the feature set `cargo test --workspace` resolves, so after it this build is a
/// no-op. `-p clockwork-bench` alone resolves dependency features differently and
/// would rebuild tract and everything above it (a quarter of an hour on a CI machine)
/// into the same binaries.
pub(crate) fn build_binaries() -> Result<PathBuf, String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let what = ["build", "--workspace", "--all-targets"];
    let status = Command::new(env!("CARGO"))
        .args(what)
        .args(["--manifest-path", manifest])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo {} failed: {status}", what.join(" ")));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| "unexpected test binary location".to_owned())
}
