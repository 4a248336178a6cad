//! `clockwork-bench tight-slo` runs a row end to end (a controller and an emulated
//! worker as processes, load over HTTP) and prints its JSON figures. It asserts that
//! the figures are there and consistent, not how good they are (that is the
//! benchmark's job, on a quiet machine).

mod common;

#[test]
fn one_short_row_runs_and_reports_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (v, stdout) = common::bench_json(&[
        "tight-slo",
        "--rows",
        "v100-25ms",
        "--duration",
        "2s",
        "--out",
        out,
    ]);
    assert!(stdout.contains("EMULATED"), "{stdout}");
    assert_eq!(v["bench"], "tight-slo");
    assert_eq!(v["emulated"], true);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r["row"], "v100-25ms");
    assert_eq!(r["models"], 15);
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("no {k}: {r}"));
    // 211 r/s for 2 s.
    assert!(n("sent") > 300, "{r}");
    assert_eq!(n("sent"), n("ok") + n("refused") + n("errors"), "{r}");
    assert!(n("within_slo") <= n("ok"));
    // The controller logged every request the load generator sent, and no other.
    assert_eq!(n("controller_requests"), n("sent") - n("errors"), "{r}");
    for k in ["loadgen_attainment", "controller_attainment"] {
        let a = r[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&a), "{k}: {r}");
    }
    assert!(r["pass"].is_boolean());
    assert!(dir
        .path()
        .join("v100-25ms/clockwork_request_log.tsv")
        .exists());
}

#[test]
fn unknown_rows_are_refused_by_name() {
    let (ok, _, stderr) = common::bench(&["tight-slo", "--rows", "h100-1ms"]);
    assert!(!ok);
    assert!(
        stderr.contains("no row h100-1ms") && stderr.contains("v100-25ms"),
        "{stderr}"
    );
}

#[test]
fn the_simulator_refuses_scheduler_overrides_out_of_range_before_running() {
    for flags in [
        &["--late-failure-share=1.5"][..],
        &["--estimator-percentile=0"],
        &["--stalls-per-s=-1"],
        &["--stalls-per-s=2", "--stall-us=0"],
    ] {
        let mut args = vec!["sim", "--preset", "tight-slo", "--duration", "1s"];
        args.extend(flags);
        let (ok, stdout, stderr) = common::bench(&args);
        let flag = flags.last().unwrap();
        assert!(!ok, "{flag}");
        assert!(
            stderr.contains(flag.split('=').next().unwrap()),
            "{flag}: {stderr}"
        );
        assert!(!stdout.contains("h200-10ms"), "{flag}: a row ran: {stdout}");
    }
}

#[test]
fn the_simulator_takes_a_scattering_network_for_presets() {
    let (v, _) = common::bench_json(&[
        "sim",
        "--preset",
        "tight-slo",
        "--duration",
        "1s",
        "--net-jitter-us",
        "50",
    ]);
    assert_eq!(v["net_jitter_us"], 50, "{v}");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r["violations"] == 0), "{v}");
    let (ok, _, stderr) = common::bench(&["sim", "--net-jitter-us=-5"]);
    assert!(!ok && stderr.contains("--net-jitter-us"), "{stderr}");
}

#[test]
fn the_simulator_takes_a_stalling_host_for_presets() {
    let args = [
        "sim",
        "--preset",
        "tight-slo",
        "--duration",
        "2s",
        "--stalls-per-s",
        "20",
        "--stall-us",
        "2000",
    ];
    let (v, _) = common::bench_json(&args);
    assert_eq!(v["stalls_per_s"], 20.0, "{v}");
    assert_eq!(v["stall_us"], 2000, "{v}");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r["violations"] == 0), "{v}");
    // The stalls hold actions past their windows: some fail on the worker.
    let quiet = common::bench_json(&args[..5]).0;
    let attained = |v: &serde_json::Value| v["rows"][0]["slo_attainment"].as_f64().unwrap();
    assert!(attained(&v) < attained(&quiet), "{v}\n{quiet}");
}
