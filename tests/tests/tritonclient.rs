//! The unmodified Triton HTTP and gRPC clients against a real model on a CPU worker.
//!
//! Starts a controller serving a model repository (a generated small CNN) over HTTP and
//! gRPC (`--grpc`, with an admin token) and one worker with a CPU device (real compute, tract), as separate processes through
//! `clockwork-bench`'s hidden `_controller` / `_worker` subcommands (the binaries' own
//! flags), then runs `tests/python/test_tritonclient.py`: `tritonclient[http]` checks
//! live, ready, metadata and FP32 inference (JSON and binary) against onnxruntime's
//! output for the same `model.onnx`, with the controller's API token sent as
//! tritonclient's `headers=` (and a request without it refused), and the statistics
//! extension; and `tests/python/test_tritonclient_grpc.py`: `tritonclient[grpc]` checks
//! the same over gRPC (raw and typed tensor contents), the repository index,
//! admin-guarded load and unload, and NOT_FOUND answers. Then it runs the example
//! `examples/tritonclient_http.py` against the same controller (JSON and binary), so
//! that the example cannot rot.
//!
//! The Python packages are pinned in `tests/python/requirements.txt` and installed by
//! `.ci/run`, which sets `CLOCKWORK_REQUIRE_PYTHON=1`: there a missing package fails the
//! test. Elsewhere the test says what is missing and passes without running it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The controller's API token (`--api-token-file`).
const API_TOKEN: &str = "tritonclient-api-token";

/// A child process that is stopped (stdin closed, then killed) when dropped.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `clockwork-bench <args>` and waits for its `READY <addr>` line.
fn start(args: &[String], log: &Path) -> Proc {
    let bench = clockwork_tests::bench_binary().expect("clockwork-bench builds");
    let err = std::fs::File::create(log).unwrap();
    let mut child = Command::new(bench)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .expect("spawn clockwork-bench");
    let stdout = child.stdout.take().unwrap();
    let stdin = child.stdin.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("READY") {
                let _ = tx.send(());
            }
        }
    });
    let p = Proc { child, stdin };
    if rx.recv_timeout(Duration::from_secs(120)).is_err() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        panic!("{args:?} did not get ready:\n{text}");
    }
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Which of the pinned Python packages cannot be imported (empty: all there).
fn missing_python_packages() -> Vec<String> {
    [
        "pytest",
        "tritonclient.http",
        "tritonclient.grpc",
        "onnxruntime",
        "numpy",
    ]
    .iter()
    .filter(|m| {
        !Command::new("python3")
            .args(["-c", &format!("import {m}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
    .map(|m| (*m).to_owned())
    .collect()
}

#[test]
fn tritonclient_infers_a_real_model_on_a_cpu_worker() {
    let missing = missing_python_packages();
    if !missing.is_empty() {
        let required = std::env::var_os("CLOCKWORK_REQUIRE_PYTHON").is_some();
        assert!(
            !required,
            "CLOCKWORK_REQUIRE_PYTHON is set but these Python packages are missing: {missing:?} \
             (pip install -r tests/python/requirements.txt)"
        );
        eprintln!("SKIPPED: Python packages missing: {missing:?}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("models");
    clockwork_models::make_model(clockwork_models::ModelKind::SmallCnn, &repo, 1)
        .expect("generate the small CNN");
    let token = "tritonclient-test".to_owned();
    let worker_addr = format!("127.0.0.1:{}", free_port());
    let worker = start(
        &[
            "_worker".into(),
            "--cpu".into(),
            "1".into(),
            "--listen".into(),
            worker_addr.clone(),
            "--token".into(),
            token.clone(),
        ],
        &dir.path().join("worker.log"),
    );
    let http = format!("127.0.0.1:{}", free_port());
    let grpc = format!("127.0.0.1:{}", free_port());
    let admin_token = "grpc-admin-test";
    // HTTP clients need the API token (the Python side sends it as tritonclient's
    // `headers=` and checks a request without it is refused).
    let token_file = dir.path().join("api-token");
    std::fs::write(&token_file, format!("{API_TOKEN}\n")).unwrap();
    let controller = start(
        &[
            "_controller".into(),
            "--workers".into(),
            worker_addr,
            "--listen".into(),
            format!("127.0.0.1:{}", free_port()),
            "--token".into(),
            token,
            "--http".into(),
            http.clone(),
            "--grpc".into(),
            grpc.clone(),
            "--admin-token".into(),
            admin_token.into(),
            "--model-repository".into(),
            repo.display().to_string(),
            "--api-token-file".into(),
            token_file.display().to_string(),
        ],
        &dir.path().join("controller.log"),
    );
    // The worker registers (and measures) the model before the first inference can be
    // planned: wait until one succeeds.
    warm_up(&http, &repo);
    let dir_py = concat!(env!("CARGO_MANIFEST_DIR"), "/python");
    let scripts = [
        format!("{dir_py}/test_tritonclient.py"),
        format!("{dir_py}/test_tritonclient_grpc.py"),
    ];
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .args(&scripts)
        .env("CLOCKWORK_HTTP", &http)
        .env("CLOCKWORK_GRPC", &grpc)
        .env("CLOCKWORK_ADMIN_TOKEN", admin_token)
        .env("CLOCKWORK_REPO", &repo)
        .env("CLOCKWORK_API_TOKEN", API_TOKEN)
        .output()
        .expect("run pytest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let examples = [run_example(&http, false), run_example(&http, true)];
    drop(controller);
    drop(worker);
    if !out.status.success() {
        let logs = ["controller.log", "worker.log"]
            .iter()
            .map(|f| {
                let t = std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
                format!("--- {f} (last 40 lines)\n{}", tail(&t, 40))
            })
            .collect::<Vec<_>>()
            .join("\n");
        let _ = std::io::stderr().write_all(logs.as_bytes());
        panic!("tritonclient checks failed:\n{text}");
    }
    assert!(text.contains("passed"), "{text}");
    assert!(
        !text.contains("skipped"),
        "nothing may be skipped here:\n{text}"
    );
    for (ok, text) in examples {
        assert!(ok, "the example failed:\n{text}");
        for line in [
            "model small_cnn over http",
            "  input input: FP32 [-1, 3, 64, 64]",
            "inference 2:",
            "  output: shape [1, 10] float32",
            "statistics of small_cnn (version 1):",
            "  batch size 1:",
        ] {
            assert!(
                text.contains(line),
                "no {line:?} in the example's output:\n{text}"
            );
        }
        assert!(!text.contains("inference 3:"), "{text}");
    }
}

/// Runs `examples/tritonclient_http.py` (2 inferences) against `http`: whether it
/// exited 0, and what it printed.
fn run_example(http: &str, binary: bool) -> (bool, String) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/tritonclient_http.py"
    );
    let mut args = vec![
        script,
        "--url",
        http,
        "--model",
        "small_cnn",
        "--count",
        "2",
    ];
    if binary {
        args.push("--binary");
    }
    let out = Command::new("python3")
        .args(&args)
        .env("CLOCKWORK_API_TOKEN", API_TOKEN)
        .output()
        .expect("run the example");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Posts a zero image to the small CNN until it is answered 200 (two minutes at most).
fn warm_up(http: &str, repo: &Path) {
    let meta = clockwork_models::Repository::open(repo)
        .unwrap()
        .load("small_cnn", &clockwork_models::ImportLimits::default())
        .unwrap()
        .1
        .metadata()
        .clone();
    let input = &meta.inputs[0];
    let mut shape = input.shape.clone();
    shape[0] = 1;
    let n: i64 = shape.iter().product();
    let body = serde_json::json!({
        "inputs": [{
            "name": input.name,
            "shape": shape,
            "datatype": "FP32",
            "data": vec![0.0f32; n as usize],
        }]
    })
    .to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    while Instant::now() < deadline {
        match post(http, "/v2/models/small_cnn/infer", &body) {
            Ok(r) if r.starts_with("HTTP/1.1 200") => return,
            Ok(r) => last = r.lines().next().unwrap_or_default().to_owned(),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("the small CNN never answered 200: {last}");
}

/// One HTTP/1.1 POST on a fresh connection; the whole response as text.
fn post(http: &str, path: &str, body: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(http)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {API_TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
