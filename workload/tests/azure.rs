//! The Azure Functions 2019 trace tooling: the synthetic generator's calibration (read
//! back through the real reader), reader errors, the rank-to-instance mapping, and the
//! replay's arrival counts.

use clockwork_core::time::Nanos;
use clockwork_workload::azure::reader::{parse, read_day, TraceError};
use clockwork_workload::azure::replay::{assignment, instance_of, scale_for_rate};
use clockwork_workload::azure::stats::{interarrival_cv, CDF_TARGETS, TOP_TARGETS};
use clockwork_workload::azure::trace::file_name;
use clockwork_workload::azure::{
    AzureReplay, AzureTrace, FunctionTrace, Mapping, MinuteCounts, ReplayConfig, SyntheticConfig,
    SyntheticTrace, TraceSource, TraceStats, Trigger, MINUTES_PER_DAY,
};
use clockwork_workload::{
    collect_until, AzureSpec, Level, Step, StepSchedule, Workload, WorkloadSpec,
};
use std::io::Cursor;

/// Functions in the calibration test's traces: small enough for a debug build, large
/// enough that the top 0.1 % is a few functions. The bands below hold for seeds 1–60
/// at this size (checked once, in release); a generator without the diurnal curve,
/// the session burstiness or the heavy tail fails them.
const F: usize = 2500;

fn within(name: &str, v: f64, lo: f64, hi: f64, seed: u64) {
    assert!(
        (lo..=hi).contains(&v),
        "seed {seed}: {name} = {v:.4}, outside [{lo}, {hi}]"
    );
}

#[test]
fn synthetic_trace_read_back_matches_the_published_shape() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [1, 2, 3] {
        let synth = SyntheticTrace::new(SyntheticConfig::new(seed, F)).unwrap();
        let written = synth.day(1).unwrap();
        let sub = dir.path().join(format!("s{seed}"));
        std::fs::create_dir(&sub).unwrap();
        let path = synth.write_day(&sub, 1).unwrap();
        assert_eq!(path, sub.join("invocations_per_function_md.anon.d01.csv"));
        let trace = read_day(&sub, 1).unwrap();
        assert_eq!(
            trace.functions, written.functions,
            "round trip changed the rows"
        );
        assert!(trace.source.is_real(), "read from a file: {}", trace.source);
        let s = TraceStats::compute(&trace);
        println!("seed {seed}:\n{s}");
        assert_eq!(s.functions, F);

        // Fig 5a: CDF of daily invocations per function.
        let bands = [
            (0.27, 0.38),
            (0.58, 0.68),
            (0.75, 0.85),
            (0.88, 0.95),
            (0.975, 0.998),
        ];
        for (i, (lo, hi)) in bands.into_iter().enumerate() {
            assert!((lo..=hi).contains(&CDF_TARGETS[i]));
            within(&format!("CDF point {i}"), s.daily_cdf[i], lo, hi, seed);
        }
        // Fig 5b: concentration.
        let bands = [(0.50, 0.85), (0.82, 0.96), (0.98, 0.999)];
        for (i, (lo, hi)) in bands.into_iter().enumerate() {
            assert!((lo..=hi).contains(&TOP_TARGETS[i]));
            within(&format!("top share {i}"), s.top_share[i], lo, hi, seed);
        }
        // ~8 orders of magnitude between the busiest and the idlest function.
        within(
            "log10 max daily",
            (s.max_daily as f64).log10(),
            6.5,
            8.5,
            seed,
        );
        // Triggers: ~16 % timers, carrying ~2 % of invocations, periodic.
        within("timer fraction", s.timer_fraction, 0.13, 0.21, seed);
        within(
            "timer invocation share",
            s.timer_invocation_share,
            0.002,
            0.06,
            seed,
        );
        assert!(s.cv_timers.functions > 50, "seed {seed}");
        within("timers with CV ~ 0", s.cv_timers.zero, 0.95, 1.0, seed);
        // Fig 6: non-timer burstiness.
        assert!(s.cv_non_timers.functions > 500, "seed {seed}");
        within(
            "non-timer median CV",
            s.cv_non_timers.median,
            1.3,
            2.2,
            seed,
        );
        within("non-timer CV <= 1", s.cv_non_timers.le_1, 0.2, 0.45, seed);
        within("non-timer CV <= 2", s.cv_non_timers.le_2, 0.45, 0.68, seed);
        within("non-timer CV > 10", s.cv_non_timers.gt_10, 0.04, 0.16, seed);
        // Fig 4: diurnal swing of the total.
        within("hourly min/mean", s.hourly_min_over_mean, 0.6, 0.9, seed);
        within("hourly max/mean", s.hourly_max_over_mean, 1.1, 1.6, seed);
        within("minute max/mean", s.minute_max_over_mean, 1.25, 2.5, seed);
    }
}

#[test]
fn synthetic_generation_is_deterministic_and_days_differ() {
    let a = SyntheticTrace::new(SyntheticConfig::new(9, 400)).unwrap();
    let b = SyntheticTrace::new(SyntheticConfig::new(9, 400)).unwrap();
    let c = SyntheticTrace::new(SyntheticConfig::new(10, 400)).unwrap();
    let (a1, b1, c1) = (a.day(1).unwrap(), b.day(1).unwrap(), c.day(1).unwrap());
    assert_eq!(a1.functions, b1.functions);
    assert_ne!(a1.functions, c1.functions);
    // Same functions on another day, laid out differently; the weekend is quieter.
    let a2 = a.day(2).unwrap();
    let a6 = a.day(6).unwrap();
    for (x, y) in a1.functions.iter().zip(&a2.functions) {
        assert_eq!(
            (&x.owner, &x.function, &x.trigger),
            (&y.owner, &y.function, &y.trigger)
        );
    }
    assert_ne!(a1.functions, a2.functions);
    assert!(a6.total_invocations() < a1.total_invocations());
    assert!(matches!(a.day(0), Err(TraceError::BadDay(0))));
    assert!(matches!(a.day(15), Err(TraceError::BadDay(15))));
    assert_eq!(
        a1.source.label(),
        "azure-2019 SYNTHETIC trace (seed=9, functions=400; not the real data)"
    );
}

fn header() -> String {
    let mut h = String::from("HashOwner,HashApp,HashFunction,Trigger");
    for m in 1..=MINUTES_PER_DAY {
        h.push_str(&format!(",{m}"));
    }
    h.push('\n');
    h
}

fn row(id: &str, counts: &[u32]) -> String {
    let mut r = format!("o{id},a{id},f{id},http");
    for m in 0..MINUTES_PER_DAY {
        r.push_str(&format!(",{}", counts.get(m).copied().unwrap_or(0)));
    }
    r.push('\n');
    r
}

fn parse_err(text: &str) -> String {
    match parse(Cursor::new(text.as_bytes()), "t.csv") {
        Ok(_) => panic!("parsed a malformed trace"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn reader_reports_malformed_files_with_line_numbers() {
    let good = format!("{}{}{}", header(), row("1", &[1, 2, 3]), row("2", &[5]));
    let rows = parse(Cursor::new(good.as_bytes()), "t.csv").unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].counts.total(), 6);
    assert_eq!(rows[0].counts.get(2), 3);
    assert_eq!(rows[0].trigger, Trigger::Http);

    // A short row on line 3: 4 ids + 1439 counts.
    let mut short = row("2", &[]);
    short.truncate(short.len() - 3);
    short.push('\n');
    let e = parse_err(&format!("{}{}{}", header(), row("1", &[1]), short));
    assert!(e.starts_with("t.csv:3: expected 1444 columns"), "{e}");
    assert!(e.contains("found 1443"), "{e}");
    // A row with an extra column.
    let mut long = row("1", &[1]);
    long.insert_str(long.len() - 1, ",7");
    let e = parse_err(&format!("{}{}", header(), long));
    assert!(e.starts_with("t.csv:2: expected 1444 columns"), "{e}");
    // A non-numeric count on line 2, minute 3 (column 7).
    let bad = row("1", &[1, 2, 3]).replacen(",3,", ",x3,", 1);
    let e = parse_err(&format!("{}{}", header(), bad));
    assert_eq!(e, "t.csv:2: minute 3 (column 7): `x3` is not a count");
    // Negative and fractional counts.
    let e = parse_err(&format!(
        "{}{}",
        header(),
        row("1", &[1]).replacen(",1,", ",-1,", 1)
    ));
    assert!(e.contains("`-1` is not a count"), "{e}");
    let e = parse_err(&format!(
        "{}{}",
        header(),
        row("1", &[1]).replacen(",1,", ",1.5,", 1)
    ));
    assert!(e.contains("`1.5` is not a count"), "{e}");
    // Header problems and empty input.
    assert!(parse_err("").contains("empty file"));
    assert!(parse_err(&header()).contains("not followed by any function row"));
    let e = parse_err(&header().replace("HashApp", "App"));
    assert!(
        e.starts_with("t.csv:1: bad header: column 2 is `App`"),
        "{e}"
    );
    let e = parse_err(&header().replace(",1440", ""));
    assert!(e.contains("expected 1444 columns"), "{e}");

    // Missing file: names the day's file; out-of-range day.
    let dir = tempfile::tempdir().unwrap();
    let e = read_day(dir.path(), 3).unwrap_err();
    assert!(matches!(e, TraceError::NotFound { day: 3, .. }));
    assert!(e.to_string().contains(&file_name(3)), "{e}");
    assert!(e.to_string().contains("not shipped"), "{e}");
    assert!(matches!(
        read_day(dir.path(), 0),
        Err(TraceError::BadDay(0))
    ));
    assert!(matches!(
        read_day(dir.path(), 15),
        Err(TraceError::BadDay(15))
    ));
    // The preview file name is accepted; CRLF line ends too.
    let crlf = good.replace('\n', "\r\n");
    std::fs::write(
        dir.path()
            .join("invocations_per_function_md.svls.anon.d03.csv"),
        crlf,
    )
    .unwrap();
    let t = read_day(dir.path(), 3).unwrap();
    assert_eq!(t.functions.len(), 2);
    assert_eq!(t.day, 3);
    assert_eq!(t.functions[1].counts.total(), 5);
}

/// A trace whose function `i` (in file order) has the given per-minute counts.
fn trace_of(rows: &[Vec<u32>]) -> AzureTrace {
    AzureTrace {
        source: TraceSource::InMemory,
        day: 1,
        functions: rows
            .iter()
            .enumerate()
            .map(|(i, counts)| FunctionTrace {
                owner: format!("o{i}"),
                app: format!("a{i}"),
                function: format!("f{i}"),
                trigger: Trigger::Http,
                counts: MinuteCounts::from_dense(counts),
            })
            .collect(),
    }
}

#[test]
fn block_mapping_follows_rank_order() {
    // Ten functions; function i has total 10 + (i * 7) % 10 * 5 (all distinct).
    let totals: Vec<u32> = (0..10).map(|i| 10 + (i * 7) % 10 * 5).collect();
    let trace = trace_of(&totals.iter().map(|&t| vec![t]).collect::<Vec<_>>());
    let ranked = trace.ranked();
    for w in ranked.windows(2) {
        assert!(trace.functions[w[0]].counts.total() > trace.functions[w[1]].counts.total());
    }
    let owner = assignment(&trace, 3, Mapping::Block);
    // ⌊3i/10⌋ over ranks 0..10: 4, 3 and 3 functions; busiest ranks on instance 0.
    let ranks_of =
        |inst: usize| -> Vec<usize> { (0..10).filter(|&r| owner[ranked[r]] == inst).collect() };
    assert_eq!(ranks_of(0), vec![0, 1, 2, 3]);
    assert_eq!(ranks_of(1), vec![4, 5, 6]);
    assert_eq!(ranks_of(2), vec![7, 8, 9]);
    let stripe = assignment(&trace, 3, Mapping::Stripe);
    for r in 0..10 {
        assert_eq!(stripe[ranked[r]], r % 3);
    }
    // Paper scale: 4026 instances over ~46k functions get 11 or 12 ranks each, in order.
    let (f, m) = (46_000, 4026);
    let mut per = vec![0usize; m];
    let mut last = 0;
    for r in 0..f {
        let i = instance_of(r, f, m, Mapping::Block);
        assert!(i >= last && i < m);
        last = i;
        per[i] += 1;
    }
    assert!(per.iter().all(|&n| n == 11 || n == 12), "{:?}", &per[..8]);
    // More instances than functions: distinct instances, spread over the range.
    assert_eq!(instance_of(1, 2, 10, Mapping::Block), 5);

    let replay = AzureReplay::new(&trace, &ReplayConfig::new(3), 1).unwrap();
    assert_eq!(replay.functions_per_instance(), &[4, 3, 3]);
}

#[test]
fn replay_counts_match_the_minute_counts_in_expectation() {
    // Three instances (stripe keeps one function each); per-minute counts vary.
    let minutes = 20;
    let rows: Vec<Vec<u32>> = (0..3u32)
        .map(|f| {
            (0..minutes)
                .map(|m| (m * 7 + f * 13) % 40 + f * 10)
                .collect()
        })
        .collect();
    let trace = trace_of(&rows);
    let mut cfg = ReplayConfig::new(3);
    cfg.mapping = Mapping::Stripe;
    cfg.scale = Level::Constant(2.0);
    let mut replay = AzureReplay::new(&trace, &cfg, 42).unwrap();
    let end = Nanos::from_secs(60 * u64::from(minutes));
    let arrivals = collect_until(&mut replay, end);
    let mut observed = vec![vec![0u32; minutes as usize]; 3];
    for a in &arrivals {
        let minute = (a.at.get() / 60_000_000_000) as usize;
        observed[a.model][minute] += 1;
    }
    // Instance of each function: stripe over rank order.
    let inst = assignment(&trace, 3, Mapping::Stripe);
    let (mut chi2, mut cells) = (0.0, 0);
    for (f, counts) in rows.iter().enumerate() {
        for (m, &c) in counts.iter().enumerate() {
            let expected = 2.0 * f64::from(c);
            assert_eq!(expected, replay.expected(inst[f], m as u64, 2.0));
            if expected > 0.0 {
                let o = f64::from(observed[inst[f]][m]);
                chi2 += (o - expected).powi(2) / expected;
                cells += 1;
            } else {
                assert_eq!(observed[inst[f]][m], 0);
            }
        }
    }
    // Chi-square with ~60 degrees of freedom: mean 60, sd 11; 6 sd of slack.
    assert!(cells > 50);
    assert!(
        chi2 < cells as f64 + 6.0 * (2.0 * cells as f64).sqrt(),
        "chi2 {chi2} over {cells}"
    );
    assert!(chi2 > 10.0, "chi2 {chi2}: too regular for Poisson");
}

#[test]
fn replay_interval_start_minute_and_wrap() {
    // Instance 0 busy only in minute 1439, instance 1 only in minute 0.
    let mut a = vec![0; MINUTES_PER_DAY];
    a[1439] = 600;
    let mut b = vec![0; MINUTES_PER_DAY];
    b[0] = 300;
    let trace = trace_of(&[a, b]);
    let mut cfg = ReplayConfig::new(2);
    cfg.start_minute = 1439;
    cfg.interval = Nanos::from_secs(1);
    let mut replay = AzureReplay::new(&trace, &cfg, 3).unwrap();
    assert_eq!(replay.trace_minute(0), 1439);
    assert_eq!(replay.trace_minute(1), 0);
    let arrivals = collect_until(&mut replay, Nanos::from_secs(2));
    let first: Vec<_> = arrivals
        .iter()
        .filter(|x| x.at < Nanos::from_secs(1))
        .collect();
    let second: Vec<_> = arrivals
        .iter()
        .filter(|x| x.at >= Nanos::from_secs(1))
        .collect();
    assert!(first.iter().all(|x| x.model == 0));
    assert!(second.iter().all(|x| x.model == 1));
    // Counts are per real minute: a 1 s interval sees 1/60 of them (10 and 5).
    assert!((1..=30).contains(&first.len()), "{}", first.len());
    assert!(second.len() <= 20, "{}", second.len());
    // Counts per interval: the whole count in one second.
    cfg.counts_per_interval = true;
    let mut replay = AzureReplay::new(&trace, &cfg, 3).unwrap();
    let n = collect_until(&mut replay, Nanos::from_secs(1)).len();
    assert!((500..=700).contains(&n), "{n}");
    // Start minutes outside the day are refused.
    cfg.start_minute = 1440;
    assert!(AzureReplay::new(&trace, &cfg, 3).is_err());
    assert!(AzureReplay::new(&trace_of(&[vec![0; 3]]), &ReplayConfig::new(1), 3).is_err());
}

#[test]
fn replay_scale_can_be_stepped_like_azure_scalability_exp() {
    let trace = trace_of(&[vec![500; MINUTES_PER_DAY]]);
    let mut cfg = ReplayConfig::new(1);
    cfg.scale = Level::Stepped(StepSchedule {
        start: 1.0,
        end: 4.0,
        step: Step::Mul(2.0),
        period: Nanos::from_secs(60),
    });
    let mut replay = AzureReplay::new(&trace, &cfg, 8).unwrap();
    let a = collect_until(&mut replay, Nanos::MAX);
    let per_minute = |k: u64| {
        a.iter()
            .filter(|x| x.at.get() / 60_000_000_000 == k)
            .count()
    };
    for (k, expected) in [(0, 500.0), (1, 1000.0), (2, 2000.0)] {
        let n = per_minute(k) as f64;
        assert!(
            (n - expected).abs() < 5.0 * f64::sqrt(expected),
            "minute {k}: {n}"
        );
    }
    assert_eq!(per_minute(3), 0, "the scale schedule ended after 4");
}

#[test]
fn replay_is_deterministic_and_scale_for_rate_hits_the_target() {
    let synth = SyntheticTrace::new(SyntheticConfig::new(5, 600)).unwrap();
    let trace = synth.day(1).unwrap();
    let mut cfg = ReplayConfig::new(40);
    cfg.scale = Level::Constant(scale_for_rate(&trace, 3.0));
    let run = |seed| {
        let mut r = AzureReplay::new(&trace, &cfg, seed).unwrap();
        collect_until(&mut r, Nanos::from_secs(86_400))
    };
    let (a, b, c) = (run(1), run(1), run(2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(a.iter().all(|x| x.model < 40));
    // A day at 3 r/s: 259,200 expected; the realised trace adds no extra noise.
    let n = a.len() as f64;
    assert!((n - 259_200.0).abs() < 5.0 * 259_200f64.sqrt(), "{n}");
}

#[test]
fn azure_workload_from_a_synthetic_source_reports_its_source() {
    let spec = WorkloadSpec::Azure(AzureSpec {
        source: TraceSource::Synthetic {
            seed: 4,
            functions: 300,
        },
        day: 2,
        replay: ReplayConfig::new(10),
    });
    let mut w = Workload::new(&spec, 1)
        .unwrap()
        .with_end(Nanos::from_secs(120));
    assert_eq!(w.models(), 10);
    assert_eq!(w.trace_sources().len(), 1);
    assert!(w.trace_sources()[0].label().contains("SYNTHETIC"));
    let mut due = Vec::new();
    w.poll(Nanos::from_secs(120), &mut due);
    assert!(!due.is_empty());
    assert!(w.is_finished());
    let bad = WorkloadSpec::Azure(AzureSpec {
        source: TraceSource::Real("/nonexistent-azure-trace".into()),
        day: 1,
        replay: ReplayConfig::new(10),
    });
    let e = Workload::new(&bad, 1).unwrap_err().to_string();
    assert!(e.contains("/nonexistent-azure-trace"), "{e}");
}

#[test]
fn cv_of_periodic_and_clustered_counts() {
    let mut periodic = vec![0; MINUTES_PER_DAY];
    for m in (3..MINUTES_PER_DAY).step_by(5) {
        periodic[m] = 1;
    }
    let cv = interarrival_cv(&MinuteCounts::from_dense(&periodic)).unwrap();
    assert!(cv < 1e-9, "{cv}");
    let steady = vec![6; MINUTES_PER_DAY];
    assert!(interarrival_cv(&MinuteCounts::from_dense(&steady)).unwrap() < 1e-9);
    // 200 invocations in each of 5 minutes spread over the day: very bursty.
    let mut bursts = vec![0; MINUTES_PER_DAY];
    for m in [10, 300, 600, 900, 1200] {
        bursts[m] = 200;
    }
    let cv = interarrival_cv(&MinuteCounts::from_dense(&bursts)).unwrap();
    assert!(cv > 10.0, "{cv}");
    assert_eq!(interarrival_cv(&MinuteCounts::from_dense(&[3, 3, 3])), None);
}

/// The full-size calibration table of `docs/workloads.md`:
/// `cargo test --release -p clockwork-workload --test azure -- --ignored --nocapture`.
#[test]
#[ignore = "full-size calibration report; run in release"]
fn calibration_report_full_size() {
    for seed in [1, 2, 3] {
        let synth = SyntheticTrace::new(SyntheticConfig::new(seed, 20_000)).unwrap();
        let s = TraceStats::compute(&synth.day(1).unwrap());
        println!("seed {seed}:\n{s}\n{:?}", s.cv_non_timers);
    }
}
