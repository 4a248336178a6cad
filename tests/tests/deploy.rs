//! The deployment files in `deploy/` checked against the things that consume them.
//!
//! - The Grafana dashboard asks only for metric families a live controller exposes (its
//!   `/metrics`, read from a controller process started for the test).
//! - The Kubernetes manifests pass `kubernetes-validate --strict` (pinned in
//!   `tests/python/requirements.txt`; required where `.ci/run` sets
//!   `CLOCKWORK_REQUIRE_PYTHON=1`), and the kustomization lists every manifest.
//! - The systemd units pass `systemd-analyze verify` where systemd is installed.
//! - The seccomp profile leaves io_uring allowed and refuses what it says it refuses.

use clockwork_tests::procs::{free_addr, Proc};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn required() -> bool {
    std::env::var_os("CLOCKWORK_REQUIRE_PYTHON").is_some()
}

/// `GET path` on a local HTTP/1.1 server, the body.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_owned()
}

/// The metric families (`# TYPE` lines) of a controller process started for the test.
fn live_metric_families() -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let http = free_addr();
    let _controller = Proc::start(
        "clockwork-controller",
        &[
            "--workers".into(),
            "127.0.0.1:1".into(),
            "--listen".into(),
            free_addr().to_string(),
            "--http".into(),
            http.to_string(),
            "--log".into(),
            "warn".into(),
        ],
        &dir.path().join("controller.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        match TcpStream::connect(http) {
            Ok(_) => break http_get(http, "/metrics"),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("no HTTP front end: {e}"),
        }
    };
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Every `clockwork_*` name in a PromQL text, with a histogram's `_bucket`, `_sum` and
/// `_count` series mapped to their family.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("clockwork_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(family.to_owned());
        rest = &tail[end..];
    }
    names
}

fn dashboard_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn grafana_dashboard_asks_only_for_metrics_the_controller_exposes() {
    let path = deploy_dir().join("grafana/clockwork-dashboard.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("dashboard JSON");
    let mut exprs = Vec::new();
    dashboard_exprs(&dash, &mut exprs);
    let wanted: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(
        wanted.len() >= 10,
        "the dashboard shows too little: {wanted:?}"
    );
    let exposed = live_metric_families();
    let missing: Vec<_> = wanted.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "the dashboard asks for metrics the controller does not expose: {missing:?}"
    );
}

#[test]
fn metric_names_are_read_from_promql() {
    let n = metric_names(
        "histogram_quantile(0.9, sum by (le) (rate(clockwork_a_seconds_bucket{x=\"clockwork_no\"}[1m]))) / clockwork_b_total",
    );
    let n: Vec<_> = n.into_iter().collect();
    assert_eq!(
        n,
        ["clockwork_a_seconds", "clockwork_b_total", "clockwork_no"]
    );
}

fn manifests() -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(deploy_dir().join("kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn kustomization_lists_every_manifest() {
    let k = std::fs::read_to_string(deploy_dir().join("kubernetes/kustomization.yaml")).unwrap();
    let listed: BTreeSet<&str> = k
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .collect();
    for m in manifests() {
        let name = m.file_name().unwrap().to_str().unwrap();
        assert!(listed.contains(name), "{name} is not in kustomization.yaml");
    }
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    let probe = Command::new("kubernetes-validate")
        .arg("--version")
        .output();
    if probe.is_err() {
        assert!(
            !required(),
            "kubernetes-validate is not installed (pip install -r tests/python/requirements.txt)"
        );
        eprintln!("kubernetes-validate not installed: skipped");
        return;
    }
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(manifests())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubernetes-validate failed:\n{text}");
    assert!(!text.contains("ERROR"), "{text}");
    // Every resource was checked against a schema, none skipped for want of one.
    assert!(!text.contains("Couldn't find schema"), "{text}");
    assert!(text.matches("passed").count() >= 7, "{text}");
}

#[test]
fn kubernetes_validate_refuses_a_broken_manifest() {
    if Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(!required(), "kubernetes-validate is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let worker = std::fs::read_to_string(deploy_dir().join("kubernetes/worker.yaml")).unwrap();
    let broken = worker.replace("replicas: 2", "replicas: two");
    assert_ne!(broken, worker);
    let p = dir.path().join("worker.yaml");
    std::fs::write(&p, broken).unwrap();
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a string replica count passed validation"
    );
}

#[test]
fn systemd_units_verify() {
    let Ok(v) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze not installed: skipped");
        return;
    };
    assert!(v.status.success());
    // A root with the host's unit library and stand-ins for the binaries, so that
    // `verify` checks the units themselves.
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("usr/local/bin")).unwrap();
    std::fs::create_dir_all(r.join("etc/systemd/system")).unwrap();
    std::fs::create_dir_all(r.join("usr/lib/systemd")).unwrap();
    let lib = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .find(|p| Path::new(p).join("sysinit.target").exists());
    let Some(lib) = lib else {
        eprintln!("no systemd unit library on this machine: skipped");
        return;
    };
    let cp = Command::new("cp")
        .args(["-r", lib])
        .arg(r.join("usr/lib/systemd/"))
        .status()
        .unwrap();
    assert!(cp.success());
    for b in ["clockwork-controller", "clockwork-worker"] {
        let p = r.join("usr/local/bin").join(b);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        Command::new("chmod").arg("+x").arg(&p).status().unwrap();
    }
    let mut units = Vec::new();
    for u in ["clockwork-controller.service", "clockwork-worker.service"] {
        let dst = r.join("etc/systemd/system").join(u);
        std::fs::copy(deploy_dir().join("systemd").join(u), &dst).unwrap();
        units.push(dst);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", r.display()))
        .args(&units)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{text}"
    );
    // verify only warns about unknown keys and bad values: any word from it is a defect.
    assert!(text.trim().is_empty(), "systemd-analyze verify:\n{text}");
}

#[test]
fn seccomp_profile_allows_io_uring_and_refuses_escapes() {
    let p = deploy_dir().join("seccomp/clockwork.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).expect("profile JSON");
    assert_eq!(v["defaultAction"], "SCMP_ACT_ALLOW");
    let mut refused = BTreeSet::new();
    for rule in v["syscalls"].as_array().unwrap() {
        assert_ne!(
            rule["action"], "SCMP_ACT_ALLOW",
            "a deny-list has only refusals"
        );
        if rule.get("args").is_none() {
            for n in rule["names"].as_array().unwrap() {
                refused.insert(n.as_str().unwrap().to_owned());
            }
        }
    }
    for s in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(!refused.contains(s), "{s} is refused: glommio cannot start");
    }
    for s in [
        "ptrace",
        "bpf",
        "mount",
        "unshare",
        "setns",
        "kexec_load",
        "init_module",
    ] {
        assert!(refused.contains(s), "{s} is allowed");
    }
}
