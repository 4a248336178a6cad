//! Running the `clockwork-bench` binary from the bench crate's tests.

#![allow(dead_code, unreachable_pub)]

use serde_json::Value;
use std::process::Command;

/// Runs `clockwork-bench <args>`: whether it succeeded, its stdout and its stderr.
pub fn bench(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clockwork-bench"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `clockwork-bench <args>`, which must succeed, and parses its JSON line (the
/// last line of stdout); returns it with the whole stdout.
pub fn bench_json(args: &[&str]) -> (Value, String) {
    let (ok, stdout, stderr) = bench(args);
    assert!(ok, "clockwork-bench {args:?} failed:\n{stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    let v =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {last}\n{stdout}"));
    (v, stdout)
}
