//! `clockwork-bench http` measures the native protocol and both HTTP engines (native
//! and hyper) in one run and reports hyper over native HTTP. It asserts that every
//! variant was measured and the ratios are there, not what they are (that is the
//! benchmark's job, in a release build on a quiet machine).

mod common;

#[test]
fn one_http_run_measures_both_engines_and_reports_their_ratios() {
    let (v, stdout) = common::bench_json(&[
        "http",
        "--round-trips",
        "30",
        "--warmup",
        "5",
        "--repeats",
        "2",
    ]);
    assert_eq!(v["bench"], "http");
    for row in [
        "hyper engine, ureq",
        "hyper engine, raw",
        "HTTP, raw client",
    ] {
        assert!(stdout.contains(row), "no row {row}: {stdout}");
    }
    let f = |k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| panic!("no {k} in the JSON line: {v}"))
    };
    for k in [
        "native_p50_us",
        "http_p50_us",
        "raw_p50_us",
        "hyper_p50_us",
        "hyper_p99_us",
        "hyper_raw_p50_us",
        "hyper_raw_p99_us",
    ] {
        assert!(f(k) > 0.0, "{k}: {v}");
    }
    // The ratios are the latencies' quotients, measured in this run.
    let close = |a: f64, b: f64| (a - b).abs() <= 0.01 * b.max(1e-9) + 1e-6;
    assert!(close(
        f("hyper_vs_http_p50_ratio"),
        f("hyper_p50_us") / f("http_p50_us")
    ));
    assert!(close(
        f("hyper_vs_http_p99_ratio"),
        f("hyper_p99_us") / f("http_p99_us")
    ));
    assert!(close(
        f("hyper_vs_http_raw_p50_ratio"),
        f("hyper_raw_p50_us") / f("raw_p50_us")
    ));
    assert!(f("hyper_vs_http_raw_p99_ratio") > 0.0, "{v}");
}
