//! The run report: log readers, the summary's arithmetic, the outputs.

use clockwork_bench::report::{
    self, figure_title, logs, read_action_log, read_request_log, status_name, ClientSample,
    LogError, Progress, RunData, RunLogs, RunMeta, RunReport, ACTION_LOG_FILE, BATCH_SIZES_SVG,
    COLD_STARTS_SVG, LATENCY_CDF_SVG, PREDICTION_ERROR_CDF_SVG, REQUEST_LOG_FILE, TIMELINE_SVG,
};
use clockwork_core::telemetry::{ActionLog, RequestLog, TsvRecord};
use clockwork_core::{ClientStatus, Nanos, WorkerStatus};
use std::path::Path;
use std::time::{Duration, Instant};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
/// Controller-clock time of the first arrival in the synthetic logs.
const T0: u64 = 5 * S;

fn req(
    i: u64,
    arrival: u64,
    latency: u64,
    status: ClientStatus,
    met: bool,
    cold: bool,
) -> RequestLog {
    let slo = 100 * MS;
    RequestLog {
        t: Nanos(arrival + latency),
        request_id: i,
        result: status.code(),
        user_id: 7,
        model_id: (i % 3) as u32,
        slo: Nanos(slo),
        latency: Nanos(latency),
        deadline: Nanos(arrival + slo),
        deadline_met: met,
        arrival_count: i + 1,
        departure_count: i + 1,
        is_coldstart: cold,
    }
}

fn action(
    id: u64,
    t: u64,
    ty: u8,
    status: u8,
    batch: u32,
    expected: u64,
    actual: u64,
) -> ActionLog {
    ActionLog {
        t: Nanos(t),
        action_id: id,
        action_type: ty,
        status,
        model_id: 1,
        batch_size: batch,
        expected_exec_duration: Nanos(expected),
        worker_exec_duration: Nanos(if status == 0 { actual } else { 0 }),
        expected_exec_complete: Nanos(t - 100_000),
        worker_exec_complete: Nanos(if status == 0 {
            (t - 100_000 + actual).wrapping_sub(expected)
        } else {
            0
        }),
        controller_action_duration: Nanos(2 * MS),
        ..ActionLog::default()
    }
}

/// 1000 requests over 10 s (100 per second from T0): 985 successes in time, 5 late
/// successes, 4 timeouts, 3 rejections, 3 worker failures; 20 cold starts. Latency of
/// request i: 1 + (i % 10) ms (late ones 150 ms).
fn synthetic_requests() -> Vec<RequestLog> {
    (0..1000u64)
        .map(|i| {
            let arrival = T0 + i * 10 * MS;
            let lat = (1 + i % 10) * MS;
            match i {
                0..=4 => req(i, arrival, 150 * MS, ClientStatus::Success, false, false),
                5..=8 => req(i, arrival, 100 * MS, ClientStatus::Timeout, false, false),
                9..=11 => req(i, arrival, MS / 10, ClientStatus::Rejected, false, false),
                12..=14 => req(
                    i,
                    arrival,
                    lat,
                    ClientStatus::WorkerFailed(WorkerStatus::ExecTooLate),
                    false,
                    false,
                ),
                _ => req(
                    i,
                    arrival,
                    lat,
                    ClientStatus::Success,
                    true,
                    i % 50 == 0 || i < 20,
                ),
            }
        })
        .collect()
}

/// 10 LOADs (1 failed; each 1 ms slower than expected), 4 UNLOADs, 100 INFERs (2 failed;
/// batch 4; errors −49 .. +49 µs), spread over the 10 s.
fn synthetic_actions() -> Vec<ActionLog> {
    let mut v = Vec::new();
    let mut id = 0;
    for k in 0..10u64 {
        id += 1;
        let status = if k == 3 {
            WorkerStatus::LoadTooLate.code()
        } else {
            0
        };
        v.push(action(
            id,
            T0 + k * S + 50 * MS,
            1,
            status,
            0,
            8 * MS,
            9 * MS,
        ));
    }
    for k in 0..4u64 {
        id += 1;
        v.push(action(id, T0 + k * 2 * S + 60 * MS, 3, 0, 0, MS, MS));
    }
    for k in 0..100u64 {
        id += 1;
        let status = if k < 2 {
            WorkerStatus::ExecTooLate.code()
        } else {
            0
        };
        // errors in µs: (k − 50) for k = 2..100 → −48 ..= +49
        let expected = 5 * MS;
        let actual = (expected as i64 + (k as i64 - 50) * 1_000) as u64;
        v.push(action(
            id,
            T0 + k * 100 * MS + 70 * MS,
            2,
            status,
            4,
            expected,
            actual,
        ));
    }
    v
}

fn write_tsv(path: &Path, header: &str, rows: impl IntoIterator<Item = String>) {
    let mut s = String::from(header);
    s.push('\n');
    for r in rows {
        s.push_str(&r);
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

fn write_synthetic_logs(dir: &Path) {
    write_tsv(
        &dir.join(REQUEST_LOG_FILE),
        RequestLog::TSV_HEADER,
        synthetic_requests().iter().map(RequestLog::to_tsv),
    );
    write_tsv(
        &dir.join(ACTION_LOG_FILE),
        ActionLog::TSV_HEADER,
        synthetic_actions().iter().map(ActionLog::to_tsv),
    );
}

fn meta(emulated: bool) -> RunMeta {
    RunMeta {
        workload: "synthetic-test".into(),
        trace_source: "unit test".into(),
        emulated,
        duration_s: Some(10.0),
        config: serde_json::json!({ "gpus": 2 }),
        controller_cpu_s_per_request: Some(12e-6),
        log_origin_ns: None,
    }
}

fn logs_report() -> (RunReport, RunData) {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_logs(dir.path());
    let data = RunData {
        client: None,
        logs: Some(RunLogs::read_dir(dir.path()).unwrap()),
    };
    (RunReport::compute(&meta(true), &data), data)
}

#[test]
fn logs_in_the_existing_on_disk_format_still_parse() {
    // Files as the controller has always written them (header and one row each).
    let requests = "t\trequest_id\tresult\tuser_id\tmodel_id\tslo\tlatency\tdeadline\tdeadline_met\tarrival_count\tdeparture_count\tis_coldstart\n\
                    5012000000\t17\t181\t3\t2\t100000000\t12000000\t5100000000\t0\t18\t17\t1\n";
    let actions = "t\taction_id\taction_type\tstatus\tworker_id\tgpu_id\tmodel_id\tbatch_size\texpected_exec_duration\tworker_exec_duration\texpected_exec_complete\tworker_exec_complete\texpected_gpu_clock\tworker_gpu_clock_before\tworker_gpu_clock\tworker_copy_output_complete\tworker_action_received\tworker_result_sent\tcontroller_result_enqueue\tcontroller_action_duration\tgoodput\trequests_queued\tcopies_loaded\n\
                   6000000000\t9\t2\t0\t1\t0\t2\t4\t5000000\t5100000\t5990000000\t5990100000\t0\t0\t0\t0\t5993000000\t5999000000\t6000000000\t7000000\t4\t3\t1\n";
    let r = logs::parse_request_log(requests.as_bytes(), Path::new("r.tsv")).unwrap();
    assert_eq!(
        r,
        [RequestLog {
            t: Nanos(5_012_000_000),
            request_id: 17,
            result: ClientStatus::WorkerFailed(WorkerStatus::ExecTooLate).code(),
            user_id: 3,
            model_id: 2,
            slo: Nanos(100 * MS),
            latency: Nanos(12 * MS),
            deadline: Nanos(5_100_000_000),
            deadline_met: false,
            arrival_count: 18,
            departure_count: 17,
            is_coldstart: true,
        }]
    );
    let a = logs::parse_action_log(actions.as_bytes(), Path::new("a.tsv")).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].action_type, ActionLog::INFER);
    assert_eq!(a[0].batch_size, 4);
    assert_eq!(a[0].prediction_error_ns(), Some(100_000));
    assert_eq!(a[0].completion_error_ns(), Some(100_000));
    assert_eq!(a[0].sent(), Nanos(5_993_000_000));
    assert_eq!(a[0].copies_loaded, 1);
}

#[test]
fn logs_round_trip_through_the_controller_writer() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_logs(dir.path());
    let reqs = read_request_log(&dir.path().join(REQUEST_LOG_FILE)).unwrap();
    let acts = read_action_log(&dir.path().join(ACTION_LOG_FILE)).unwrap();
    let want_r = synthetic_requests();
    let want_a = synthetic_actions();
    // The reader gives back exactly what the writer wrote, field for field.
    assert_eq!(reqs, want_r);
    assert_eq!(acts, want_a);
}

#[test]
fn columns_are_found_by_name_in_any_order() {
    // Reverse the columns and add an unknown one: same records.
    let rows: Vec<Vec<String>> = synthetic_requests()
        .iter()
        .map(|r| r.to_tsv().split('\t').map(str::to_owned).collect())
        .collect();
    let mut header: Vec<&str> = RequestLog::TSV_HEADER.split('\t').collect();
    header.reverse();
    header.push("extra");
    let text = std::iter::once(header.join("\t"))
        .chain(rows.iter().map(|r| {
            let mut r: Vec<&str> = r.iter().map(String::as_str).collect();
            r.reverse();
            r.push("whatever");
            r.join("\t")
        }))
        .collect::<Vec<_>>()
        .join("\n");
    let got = logs::parse_request_log(text.as_bytes(), Path::new("reordered.tsv")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_logs(dir.path());
    let want = read_request_log(&dir.path().join(REQUEST_LOG_FILE)).unwrap();
    assert_eq!(got, want);
}

#[test]
fn malformed_logs_are_errors_with_file_and_line() {
    let p = Path::new("req.tsv");
    let good = req(1, T0, MS, ClientStatus::Success, true, false).to_tsv();
    let parse = |text: String| logs::parse_request_log(text.as_bytes(), p);

    // A bad number on line 3.
    let bad = good.replacen("\t0\t", "\tzero\t", 1);
    let e = parse(format!("{}\n{good}\n{bad}\n", RequestLog::TSV_HEADER)).unwrap_err();
    assert!(
        matches!(
            e,
            LogError::BadValue {
                line: 3,
                column: "result",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with("req.tsv:3: column `result`"),
        "{e}"
    );

    // A short row on line 3 (blank lines are skipped but still counted).
    let e = parse(format!("{}\n\n1\t2\t3\n", RequestLog::TSV_HEADER)).unwrap_err();
    assert!(
        matches!(
            e,
            LogError::FieldCount {
                line: 3,
                expected: 12,
                found: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("req.tsv:3:"), "{e}");

    // A bad flag.
    let bad = {
        let mut f: Vec<&str> = good.split('\t').collect();
        f[8] = "yes";
        f.join("\t")
    };
    let e = parse(format!("{}\n{bad}\n", RequestLog::TSV_HEADER)).unwrap_err();
    assert!(
        matches!(
            e,
            LogError::BadValue {
                line: 2,
                column: "deadline_met",
                ..
            }
        ),
        "{e:?}"
    );

    // A renamed column, a repeated column, an empty file, a missing file.
    let e = parse(format!(
        "{}\n",
        RequestLog::TSV_HEADER.replace("slo", "slo_factor")
    ))
    .unwrap_err();
    assert!(
        matches!(&e, LogError::Header { column, .. } if column == "slo"),
        "{e:?}"
    );
    assert!(e.to_string().contains("has no column `slo`"), "{e}");
    let e = parse(format!("{}\tt\n", RequestLog::TSV_HEADER)).unwrap_err();
    assert!(e.to_string().contains("repeats column `t`"), "{e}");
    let e = parse(String::new()).unwrap_err();
    assert!(matches!(e, LogError::Empty { .. }), "{e:?}");
    let e = read_action_log(Path::new("/nonexistent/dir/actions.tsv")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/dir/actions.tsv: cannot open"),
        "{e}"
    );

    // Not UTF-8 on line 2.
    let mut bytes = format!("{}\n", RequestLog::TSV_HEADER).into_bytes();
    bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
    let e = logs::parse_request_log(&bytes[..], p).unwrap_err();
    assert!(matches!(e, LogError::Read { line: 2, .. }), "{e:?}");

    // An action log with a negative duration.
    let a = ActionLog::default().to_tsv();
    let bad = a.replacen("\t0\t", "\t-5\t", 1);
    let e = logs::parse_action_log(
        format!("{}\n{a}\n{a}\n{bad}\n", ActionLog::TSV_HEADER).as_bytes(),
        Path::new("a.tsv"),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            LogError::BadValue {
                line: 4,
                column: "action_id",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn summary_from_logs() {
    let (r, _) = logs_report();
    assert_eq!(r.request_source, "request_log");
    assert_eq!(r.offered, 1000);
    assert_eq!(r.answered, 1000);
    assert_eq!(r.unanswered, 0);
    assert_eq!(r.status_counts.values().sum::<u64>(), r.answered);
    assert_eq!(r.succeeded, 990);
    assert_eq!(r.late_successes, 5);
    assert_eq!(r.log_late_successes, Some(5));
    assert_eq!(r.succeeded_within_slo, 985);
    assert!((r.slo_attainment - 0.985).abs() < 1e-12);
    assert!((r.goodput_rps - 98.5).abs() < 1e-9);
    assert!((r.throughput_rps - 99.0).abs() < 1e-9);
    assert_eq!(r.timeouts, 4);
    assert_eq!(r.status_counts[&status_name(0)], 990);
    assert_eq!(r.rejections_by_cause.len(), 2);
    assert_eq!(r.rejections_by_cause["Timeout(4)"], 4);
    assert_eq!(r.rejections_by_cause["Rejected(9)"], 3);
    assert_eq!(r.failures_by_status["WorkerFailed(ExecTooLate(81))"], 3);
    assert_eq!(r.slos_ms, vec![100.0]);
    // i < 20 or i % 50 == 0 among the 985 (i >= 15): 15..20 and 50, 100, ..., 950.
    assert_eq!(r.cold_starts, Some(5 + 19));
    assert_eq!(r.loads, Some(10));
    assert_eq!(r.load_failures, Some(1));
    assert_eq!(r.unloads, Some(4));
    assert_eq!(r.infer_actions, Some(100));
    assert_eq!(r.infer_failures, Some(2));
    assert_eq!(r.mean_batch, Some(4.0));
    assert_eq!(r.controller_cpu_s_per_request, Some(12e-6));
    assert_eq!(r.config["gpus"], 2);

    let e = r.infer_prediction_error_us.unwrap();
    assert_eq!(e.count, 98);
    assert_eq!((e.min_us, e.max_us), (-48.0, 49.0));
    assert_eq!(e.p50_us, 0.0);
    assert_eq!(e.p99_us, 49.0);
    let c = r.completion_error_us.unwrap();
    assert_eq!((c.count, c.min_us, c.max_us), (98, -48.0, 49.0));
    let l = r.load_prediction_error_us.unwrap();
    assert_eq!(
        (l.count, l.p50_us, l.max_us, l.mean_abs_us),
        (9, 1000.0, 1000.0, 1000.0)
    );

    // The timeline: 10 s of 100 arrivals each from the first arrival.
    assert_eq!(r.duration_s, 10.0);
    assert!(r.timeline.len() >= 10);
    assert_eq!(r.timeline[3].offered, 100);
    assert_eq!(r.timeline.iter().map(|t| t.offered).sum::<u64>(), 1000);
    assert_eq!(r.timeline.iter().map(|t| t.answered).sum::<u64>(), 1000);
    assert_eq!(r.timeline.iter().map(|t| t.goodput).sum::<u64>(), 985);
    assert_eq!(r.timeline.iter().map(|t| t.loads).sum::<u64>(), 10);
    assert_eq!(r.timeline.iter().map(|t| t.infers).sum::<u64>(), 98);
    assert_eq!(r.timeline.iter().map(|t| t.cold_starts).sum::<u64>(), 24);
    // Second 5: successes with latencies 1..=10 ms, ten each.
    assert_eq!(r.timeline[5].p50_ms, 5.0);
    assert_eq!(r.timeline[5].p99_ms, 10.0);
    assert_eq!(r.timeline[5].mean_batch, 4.0);
}

#[test]
fn summary_from_client_samples() {
    let slo = 50 * MS;
    let mut samples = Vec::new();
    for i in 0..200u64 {
        let sent = i * 10 * MS; // 2 s
        let s = match i % 20 {
            0 => ClientSample::answered(sent, 60 * MS, ClientStatus::Success, 1, slo), // late
            1 => ClientSample::answered(sent, slo, ClientStatus::Success, 1, slo), // exactly on time
            2 => ClientSample::answered(sent, MS, ClientStatus::Timeout, 1, slo),
            3 => ClientSample::unanswered(sent, 1, slo),
            _ => ClientSample::answered(sent, 10 * MS, ClientStatus::Success, 2, slo),
        };
        samples.push(s);
    }
    let data = RunData {
        client: Some(samples),
        logs: None,
    };
    let m = RunMeta {
        duration_s: None,
        ..meta(false)
    };
    let r = RunReport::compute(&m, &data);
    assert_eq!(r.request_source, "client");
    assert_eq!(r.offered, 200);
    assert_eq!(r.unanswered, 10);
    assert_eq!(r.answered, 190);
    assert_eq!(r.status_counts.values().sum::<u64>(), r.answered);
    assert_eq!(r.succeeded, 180);
    assert_eq!(r.late_successes, 10);
    assert_eq!(r.succeeded_within_slo, 170);
    assert!((r.slo_attainment - 170.0 / 200.0).abs() < 1e-12);
    assert_eq!(r.timeouts, 10);
    assert_eq!(r.cold_starts, None);
    assert_eq!(r.loads, None);
    assert_eq!(r.infer_prediction_error_us, None);
    // Duration from the data: the last answer, 1.99 s + 10 ms.
    assert!((r.duration_s - 2.0).abs() < 1e-9, "{}", r.duration_s);
    assert!((r.goodput_rps - 85.0).abs() < 1e-6);
    assert_eq!(r.max_ms, 60.0);
}

#[test]
fn percentiles_on_a_known_distribution() {
    // Successes with latencies 1, 2, ..., 100000 µs; errors do not count.
    let mut samples: Vec<ClientSample> = (1..=100_000u64)
        .map(|i| ClientSample::answered(i * 10_000, i * 1_000, ClientStatus::Success, 0, 200 * MS))
        .collect();
    samples.push(ClientSample::answered(
        0,
        900 * MS,
        ClientStatus::Rejected,
        0,
        200 * MS,
    ));
    let data = RunData {
        client: Some(samples),
        logs: None,
    };
    let r = RunReport::compute(&meta(false), &data);
    let close = |got: f64, want: f64| {
        assert!((got - want).abs() <= want * 0.002, "got {got}, want {want}");
    };
    close(r.p50_ms, 50.0);
    close(r.p99_ms, 99.0);
    close(r.p999_ms, 99.9);
    close(r.p9999_ms, 99.99);
    assert_eq!(r.max_ms, 100.0);
    close(r.mean_ms, 50.0005);
    assert!(r.p9999_ms <= r.max_ms);
    assert_eq!(r.all_latency.count, 100_001);
    assert_eq!(r.all_latency.max_ms, 900.0);
    assert_eq!(r.late_successes, 0);
}

#[test]
fn plots_and_report_json_are_written() {
    let (r, data) = logs_report();
    let out = tempfile::tempdir().unwrap();
    let files = report::write_outputs(out.path(), &r, &data).unwrap();
    // To look at the figures: CLOCKWORK_REPORT_TEST_OUT=/some/dir cargo test ...
    if let Some(keep) = std::env::var_os("CLOCKWORK_REPORT_TEST_OUT") {
        report::write_outputs(Path::new(&keep), &r, &data).unwrap();
    }
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "report.json",
        LATENCY_CDF_SVG,
        TIMELINE_SVG,
        COLD_STARTS_SVG,
        BATCH_SIZES_SVG,
        PREDICTION_ERROR_CDF_SVG,
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    let titles = [
        (LATENCY_CDF_SVG, "Latency CDF"),
        (TIMELINE_SVG, "Throughput and latency over time"),
        (COLD_STARTS_SVG, "Cold starts and LOADs over time"),
        (BATCH_SIZES_SVG, "Batch sizes over time"),
        (PREDICTION_ERROR_CDF_SVG, "Prediction error CDF (Fig 10)"),
    ];
    for (file, what) in titles {
        let svg = std::fs::read_to_string(out.path().join(file)).unwrap();
        assert!(svg.len() > 1000, "{file}: {} bytes", svg.len());
        let head = svg.trim_start();
        assert!(
            head.starts_with("<svg") || head.starts_with("<?xml"),
            "{file}"
        );
        assert!(svg.trim_end().ends_with("</svg>"), "{file}");
        let title = figure_title(what, &r);
        assert!(title.ends_with("synthetic-test (emulated GPUs)"), "{title}");
        assert!(svg.contains(&title), "{file} lacks its title {title:?}");
        assert!(svg.contains("<text"), "{file}");
    }
    let cdf = std::fs::read_to_string(out.path().join(LATENCY_CDF_SVG)).unwrap();
    assert!(cdf.contains("SLO 100 ms"));

    let json = std::fs::read_to_string(out.path().join("report.json")).unwrap();
    let back: RunReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back.offered, r.offered);
    assert_eq!(back.late_successes, r.late_successes);
    assert_eq!(back.status_counts, r.status_counts);
    assert_eq!(back.timeline.len(), r.timeline.len());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for key in [
        "offered",
        "answered",
        "succeeded",
        "late_successes",
        "slo_attainment",
        "goodput_rps",
        "throughput_rps",
        "p50_ms",
        "p99_ms",
        "p999_ms",
        "p9999_ms",
        "max_ms",
        "rejections_by_cause",
        "failures_by_status",
        "timeouts",
        "cold_starts",
        "loads",
        "unloads",
        "infer_actions",
        "mean_batch",
        "infer_prediction_error_us",
        "load_prediction_error_us",
        "completion_error_us",
        "controller_cpu_s_per_request",
        "emulated",
        "workload",
        "trace_source",
        "duration_s",
        "config",
    ] {
        assert!(v.get(key).is_some(), "report.json lacks {key}");
    }
}

#[test]
fn client_only_run_writes_what_it_can() {
    let samples = (0..100u64)
        .map(|i| ClientSample::answered(i * MS, MS, ClientStatus::Success, 0, 10 * MS))
        .collect();
    let data = RunData {
        client: Some(samples),
        logs: None,
    };
    let r = RunReport::compute(&meta(false), &data);
    let out = tempfile::tempdir().unwrap();
    let files = report::write_outputs(&out.path().join("nested"), &r, &data).unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["report.json", LATENCY_CDF_SVG, TIMELINE_SVG]);
    let svg = std::fs::read_to_string(&files[1]).unwrap();
    assert!(svg.contains("Latency CDF: synthetic-test"));
    assert!(!svg.contains("emulated"));
}

#[test]
fn empty_run_does_not_panic() {
    let r = RunReport::compute(&RunMeta::default(), &RunData::default());
    assert_eq!((r.offered, r.answered, r.duration_s), (0, 0, 0.0));
    assert_eq!(r.slo_attainment, 0.0);
    assert_eq!(r.request_source, "none");
    let out = tempfile::tempdir().unwrap();
    let files = report::write_outputs(out.path(), &r, &RunData::default()).unwrap();
    assert_eq!(files.len(), 1);
    let text = report::format_report(&r);
    assert!(text.contains("late successes"));

    let empty_logs = RunData {
        client: None,
        logs: Some(RunLogs::default()),
    };
    let r = RunReport::compute(&RunMeta::default(), &empty_logs);
    assert_eq!(r.loads, Some(0));
    report::write_outputs(out.path(), &r, &empty_logs).unwrap();
}

#[test]
fn printed_report_has_the_key_lines() {
    let (r, _) = logs_report();
    let text = report::format_report(&r);
    for want in [
        "EMULATED GPUs",
        "requests offered",
        "requests answered",
        "goodput",
        "98.5 r/s",
        "SLO attainment",
        "98.5000%",
        "late successes         5 (target 0)",
        "p99.99",
        "Timeout(4): 4",
        "Rejected(9): 3",
        "WorkerFailed(ExecTooLate(81)): 3",
        "cold starts            24",
        "10 (1 failed) / 4",
        "mean batch 4.00",
        "prediction error INFER",
        "12.00 us/request",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    report::print_report(&r);
}

#[test]
fn progress_line() {
    let mut p = Progress::new(Duration::from_secs(60));
    p.sent(10);
    for i in 0..8u64 {
        p.answered((i + 1) * MS, true, i < 7);
    }
    p.record(&ClientSample::answered(0, MS, ClientStatus::Timeout, 0, MS));
    p.record(&ClientSample::unanswered(0, 0, MS));
    let line = p.line(Duration::from_secs(12));
    assert!(
        line.starts_with(
            "[   12/60 s] sent 10  answered 9  success 88.89%  in SLO 77.78%  p99 8.0"
        ),
        "{line}"
    );
    assert!(line.ends_with("ms (last 1 s)"), "{line}");
    // The p99 window starts over.
    assert!(p.line(Duration::from_secs(13)).contains("p99 - "));
    let mut later =
        Progress::starting_at(Instant::now() + Duration::from_secs(3600), Duration::ZERO);
    assert!(!later.tick());
    let mut due = Progress::starting_at(Instant::now() - Duration::from_secs(2), Duration::ZERO);
    assert!(due.tick());
    assert!(!due.tick());
}
