//! The report's parts for real devices: prediction error as sizes and ratios
//! ([`PredictionStats`]), the devices' name in the printed header, and the output check.

use clockwork_bench::report::{
    format_report, OutputCheck, PredictionStats, RunData, RunMeta, RunReport,
};

#[test]
fn prediction_stats_are_nearest_rank_sizes_and_ratios() {
    // (predicted, actual) in ns: errors 0, 100, 200, ..., 9900 ns; ratios 1.00 .. 1.99.
    let pairs: Vec<(u64, u64)> = (0..100).map(|i| (10_000, 10_000 + 100 * i)).collect();
    let s = PredictionStats::of(&pairs).unwrap();
    assert_eq!(s.count, 100);
    assert!((s.abs_p50_us - 4.9).abs() < 1e-9, "{s:?}");
    assert!((s.abs_p99_us - 9.8).abs() < 1e-9, "{s:?}");
    assert!((s.ratio_p50 - 1.49).abs() < 1e-9, "{s:?}");
    assert!((s.ratio_p99 - 1.98).abs() < 1e-9, "{s:?}");
    // Faster than predicted counts as a size too; a zero prediction has no ratio.
    let s = PredictionStats::of(&[(1_000, 500), (0, 300)]).unwrap();
    assert_eq!(s.count, 2);
    assert!((s.abs_p99_us - 0.5).abs() < 1e-9, "{s:?}");
    assert!((s.ratio_p50 - 0.5).abs() < 1e-9, "{s:?}");
    assert_eq!(PredictionStats::of(&[]), None);
}

#[test]
fn a_real_run_is_named_by_its_devices_and_shows_its_output_check() {
    let meta = RunMeta {
        workload: "poisson".into(),
        emulated: false,
        duration_s: Some(1.0),
        ..RunMeta::default()
    };
    let mut r = RunReport::compute(&meta, &RunData::default());
    assert_eq!(r.devices, "real GPUs");
    r.devices = "real (CPU, tract)".into();
    r.output_check = Some(OutputCheck {
        checked: 12,
        mismatches: 1,
        against: "a direct run".into(),
    });
    let text = format_report(&r);
    assert!(
        text.lines().next().unwrap().contains("real (CPU, tract)"),
        "{text}"
    );
    assert!(!text.contains("EMULATED"), "{text}");
    assert!(text.contains("12 answers, 1 mismatches  <-- !"), "{text}");
    let emulated = RunReport::compute(
        &RunMeta {
            emulated: true,
            ..meta
        },
        &RunData::default(),
    );
    assert_eq!(emulated.devices, "EMULATED GPUs");
    assert!(format_report(&emulated).contains("EMULATED GPUs"));
}
