//! The `clockwork-worker` binary: bad flags fail with a clear message and a non-zero
//! exit code (never a panic), and a good command line serves a controller.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_clockwork-worker");

fn fails(args: &[&str], code: i32, says: &str) {
    let out = Command::new(BIN).args(args).output().expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(
        stderr.contains(says),
        "{args:?}: expected `{says}` in: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
}

#[test]
fn bad_flags_exit_with_a_clear_message() {
    fails(&[], 2, "--emulate");
    fails(&["--emulate", "0"], 2, "--emulate");
    fails(&["--emulate", "x"], 2, "invalid value");
    fails(&["--emulate", "2", "--cuda"], 2, "cannot be used with");
    fails(
        &["--emulate", "1", "--page-size", "0"],
        2,
        "--page-size must be at least",
    );
    fails(&["--emulate", "1", "--page-size", "16MB"], 2, "ambiguous");
    fails(
        &["--emulate", "1", "--cache-size", "1MiB"],
        2,
        "smaller than one page",
    );
    fails(
        &["--emulate", "1", "--noise", "gauss:1"],
        2,
        "unknown noise model",
    );
    fails(
        &["--emulate", "1", "--engine-threads", "0"],
        2,
        "--engine-threads",
    );
    fails(&["--emulate", "1", "--listen", "nowhere"], 2, "--listen");
    fails(
        &["--emulate", "1", "--net-cpu", "4096"],
        2,
        "CPU 4096 does not exist",
    );
    fails(&["--cuda", "--seed", "3"], 2, "only to --emulate");
    fails(&["--emulate", "1", "--log", "loud"], 2, "--log");
    fails(&["--bogus"], 2, "unexpected argument");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_cuda_is_a_clear_error() {
    fails(&["--cuda"], 2, "cuda");
    fails(&["--cuda-devices", "0"], 2, "cuda");
}

/// Built with CUDA, on a machine without the driver (CI) or without cuDNN/cuBLASLt,
/// `--cuda` fails at start naming what is missing (exit 2, no panic); the executor's
/// libraries are checked before any of them is called.
#[cfg(feature = "cuda")]
#[test]
fn cuda_without_its_libraries_is_a_clear_error() {
    if clockwork_gpu::cuda_device_count().is_ok() && clockwork_gpu::cuda_exec::libs::check().is_ok()
    {
        println!("a CUDA device and its libraries are here: nothing to refuse");
        return;
    }
    fails(&["--cuda"], 2, "found");
}

#[test]
fn address_in_use_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    fails(&["--emulate", "1", "--listen", &addr], 1, "listener");
}

#[test]
fn binary_serves_a_controller() {
    let mut child = Command::new(BIN)
        .args([
            "--emulate",
            "3",
            "--listen",
            "127.0.0.1:0",
            "--token",
            TOKEN,
            "--log",
            "warn",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a banner").expect("utf-8");
    let addr = first
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .expect("address in the banner");
    let devices = lines.next().expect("banner line").expect("utf-8");
    assert!(devices.contains("3 EMULATED"), "{devices}");
    let state = run(async move {
        let mut c = Ctl::connect(addr).await;
        c.state().await
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(state.gpus.len(), 3);
    assert!(state
        .gpus
        .iter()
        .all(|g| g.emulated && g.total_pages == 1376));
}
