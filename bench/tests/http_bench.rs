//! `clockwork-bench http` runs every variant (native, HTTP with two clients, gRPC)
//! against its in-process controller and emulated worker, a few round trips each, and
//! prints its JSON figures. It asserts that the figures are there and positive, not
//! how good they are (that is the benchmark's job, on a quiet machine).

mod common;

#[test]
fn a_tiny_run_reports_every_variant_including_grpc() {
    let (v, stdout) = common::bench_json(&[
        "http",
        "--round-trips",
        "20",
        "--warmup",
        "5",
        "--repeats",
        "1",
    ]);
    assert_eq!(v["bench"], "http", "{stdout}");
    assert!(stdout.contains("gRPC"), "{stdout}");
    for k in [
        "native_p50_us",
        "http_p50_us",
        "grpc_p50_us",
        "grpc_p99_us",
        "p50_ratio",
        "grpc_p50_ratio",
        "grpc_p99_ratio",
        "grpc_http_p50_ratio",
        "grpc_http_p99_ratio",
    ] {
        let x = v[k]
            .as_f64()
            .unwrap_or_else(|| panic!("no number {k}: {v}"));
        assert!(x.is_finite() && x > 0.0, "{k} = {x}: {v}");
    }
    assert!(
        v["grpc_p99_us"].as_f64() >= v["grpc_p50_us"].as_f64(),
        "{v}"
    );
}

#[test]
fn the_input_may_be_left_to_the_worker() {
    // `--input-bytes 0`: no tensor in the gRPC request either; the worker makes it.
    let (v, _) = common::bench_json(&[
        "http",
        "--round-trips",
        "5",
        "--warmup",
        "1",
        "--repeats",
        "1",
        "--input-bytes",
        "0",
    ]);
    assert!(v["grpc_p50_ratio"].as_f64().is_some_and(|x| x > 0.0), "{v}");
}
