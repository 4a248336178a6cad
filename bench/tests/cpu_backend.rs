//! The CPU backend end to end through the `clockwork-bench` binary: `local --backend
//! cpu` serves a generated model on a real (tract) CPU device, says so in its report,
//! answers requests, and its sampled answers equal a direct run bit for bit;
//! `cpu-infer` reports its figures in its JSON line with the device's and the HTTP
//! answers' outputs equal to a direct run.

use std::process::Command;
use std::sync::Mutex;

/// Both tests pin a real CPU device to the same core (the last one); run side by side,
/// each one's device would share that core with the other's, miss its windows, and
/// have its requests refused. So they take turns.
static PINNED_CORE: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    PINNED_CORE.lock().unwrap_or_else(|e| e.into_inner())
}

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clockwork-bench"))
}

fn last_json_line(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in:\n{stdout}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn local_on_a_cpu_device_serves_real_outputs() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let out = bench()
        .args([
            "local",
            "--backend",
            "cpu",
            "--model-kind",
            "small_cnn",
            "--duration",
            "4s",
            "--no-http",
            "--check-outputs",
            "24",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("real (CPU, tract)"), "{stdout}");
    assert!(!stdout.contains("EMULATED"), "{stdout}");
    assert!(stderr.contains("CPU device(s), real compute"), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["devices"], "real (CPU, tract)");
    assert_eq!(report["emulated"], false);
    assert!(report["succeeded"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["unanswered"], 0, "{report}");
    let check = &report["output_check"];
    assert!(check["checked"].as_u64().unwrap() > 0, "{check}");
    assert_eq!(check["mismatches"], 0, "{check}");
    // Prediction error of real execution, overall and per batch size.
    let p = &report["infer_prediction"];
    assert!(p["count"].as_u64().unwrap() > 0, "{report}");
    assert!(p["ratio_p50"].as_f64().unwrap() > 0.0, "{p}");
    assert!(
        report["infer_prediction_by_batch"]["1"]["count"]
            .as_u64()
            .unwrap()
            > 0
    );
    // The model was generated into the run's folder and measured there.
    assert!(dir.path().join("models/small_cnn/1/model.onnx").is_file());
    let resolved = &report["config"]["resolved"];
    assert_eq!(resolved["model"], "small_cnn");
    assert!(resolved["measured_b1_p50_ms"].as_f64().unwrap() > 0.0);
    assert!(resolved["rate"].as_f64().unwrap() > 0.0);
}

#[test]
fn cpu_infer_reports_equal_outputs_on_the_identity_model() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let made = bench()
        .args(["make-model", "identity", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(made.status.success());
    let out = bench()
        .args([
            "cpu-infer",
            "--runs",
            "20",
            "--warmup",
            "2",
            "--requests",
            "20",
            "--model",
        ])
        .arg(dir.path().join("identity"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = last_json_line(&stdout);
    assert_eq!(j["bench"], "cpu-infer");
    assert_eq!(j["model"], "identity");
    let batches = j["batches"].as_array().unwrap();
    let sizes: Vec<u64> = batches
        .iter()
        .map(|b| b["batch_size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [1, 2, 4, 8, 16]);
    for b in batches {
        for path in ["device", "direct"] {
            for field in ["p50_us", "p99_us", "p99_over_p50", "cv"] {
                assert!(b[path][field].as_f64().is_some(), "{path}.{field} in {b}");
            }
        }
        assert_eq!(b["outputs_compared"], 20, "{b}");
        assert_eq!(b["outputs_equal"], 20, "{b}");
        assert_eq!(b["rows_independent"], true, "{b}");
    }
    let s = &j["serving"];
    assert_eq!(s["requests"], 20);
    assert_eq!(s["outputs_compared"], 20, "{s}");
    assert_eq!(s["outputs_equal"], 20, "{s}");
    assert!(s["overhead_p50_us"].as_f64().is_some(), "{s}");
    assert!(s["exec_source"].as_str().is_some(), "{s}");
    assert_eq!(j["goals"]["outputs_bitwise_equal"], true);
    for k in ["p99_over_p50_pass", "overhead_p50_pass"] {
        assert!(j["goals"][k].is_boolean(), "{k}");
    }
}
