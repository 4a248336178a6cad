//! Tight SLOs and overload in virtual time (issues 13 and 14): a cold scheduler serves
//! a 5 ms SLO on a ~1 ms model from its first request, the H200 rows are served, and
//! under 1.5x overload refusals come at admission, not at the deadline, without
//! refusing what could be served.

use clockwork_core::{ClientStatus, ModelId, Nanos, Slo};
use clockwork_scheduler::Config;
use clockwork_sim::presets::{resnet50_fp16_h200, Case};
use clockwork_sim::{NoiseModel, SimConfig, SimReport, Simulation, Stalls};

fn assert_clean(r: &SimReport) {
    assert_eq!(r.violations.total(), 0, "{:#?}", r.violations);
    assert_eq!(r.offered, r.answered, "every request answered");
    assert_eq!(r.stats.late_successes, 0);
}

/// The first request a cold controller sees, on a model no GPU holds yet, with a 5 ms
/// SLO: LOAD 1.9 ms + batch-1 0.9 ms + the network fit, so it must be served, and so
/// must the next ones (the margins start from the link's RTT, not at 5 ms; before,
/// every one was refused).
#[test]
fn a_cold_scheduler_serves_a_5ms_slo_from_its_first_request() {
    let mut s = Simulation::new(
        SimConfig {
            net_latency: Nanos::from_micros(150),
            noise: NoiseModel::Normal { rel_sigma: 0.02 },
            seed: 3,
            ..SimConfig::default()
        },
        Config {
            seed: 3,
            ..Config::default()
        },
    )
    .unwrap();
    let models = s.register(resnet50_fp16_h200(), 4).unwrap();
    s.start();
    let slo = Slo::Absolute(Nanos::from_millis(5));
    // The very first request, on a cold model; then each other model's first, 10 ms
    // apart (one LOAD at a time fits in 5 ms; two back to back do not), then more.
    for m in 0..4 {
        s.inject(ModelId(models.first.0 + m), slo);
        let t = s.now() + Nanos::from_millis(10);
        s.run_until(t);
        let r = s.report();
        assert_eq!(r.success, u64::from(m) + 1, "{:?}", r.by_status);
    }
    for i in 0..200u32 {
        s.inject(ModelId(models.first.0 + i % 4), slo);
        let t = s.now() + Nanos::from_millis(2);
        s.run_until(t);
    }
    s.drain(Nanos::from_secs(1));
    let r = s.report();
    assert_clean(&r);
    assert_eq!(r.success, r.offered, "{:?}", r.by_status);
}

/// Issue 13's H200 rows, 3 simulated seconds each, cold start included. Before the
/// margins followed the link (5 s, seed 1): 71 % at 10 ms, 0 % at 5 and 2.5 ms (every
/// request refused); the simple EDF baseline with no network and no margins: 99.9 %,
/// 90.6 %, 72.9 %. The floors also hold the plan's fixes of 2026-12-06: with batch 2
/// estimated below batch 1 and the drifting predicted free time, these 3 s served
/// 98.36 % and 83.74 % at 10 and 5 ms (now 99.69 % and 87.47 %).
#[test]
fn h200_tight_slos_are_served() {
    let rows = Case::tight_slo_rows(Nanos::from_secs(3), Nanos::from_micros(150), 1);
    for c in rows.iter().filter(|c| c.name.starts_with("h200")) {
        let r = c.run(c.scheduler_config()).unwrap();
        assert_clean(&r);
        let floor = match c.slo.get() {
            10_000_000 => 0.99,
            5_000_000 => 0.85,
            _ => 0.6,
        };
        assert!(
            r.slo_attainment >= floor,
            "{}: {:.4} (EDF baseline {:.4}), {:?}",
            c.name,
            r.slo_attainment,
            c.run_baseline().attainment(),
            r.by_status
        );
    }
}

/// Under pressure below overload, the rollout's "no" is only a doubt: at 10 ms on the
/// H200 row, where nearly every admitted request is served, the requests it doubts are
/// queued, not refused, and most of them are served (before, 58 of 29,976 in 20 s were
/// refused on that doubt; queued, the row went from 99.80 % to 99.91 %). Under 1.5x
/// overload, where many admitted requests fail, the doubt is followed: doubtful
/// requests are refused, save a few admitted before the failures were measured. With
/// `late_failure_share` 0 every doubt is refused, as before.
#[test]
fn doubtful_requests_are_queued_while_admitted_ones_are_served_and_refused_under_overload() {
    let rows = Case::tight_slo_rows(Nanos::from_secs(5), Nanos::from_micros(150), 1);
    let c = rows.iter().find(|c| c.name == "h200-10ms").unwrap();
    let r = c.run(c.scheduler_config()).unwrap();
    assert_clean(&r);
    assert!(r.stats.doubtful_admitted > 0, "{:?}", r.stats);
    assert_eq!(r.stats.doubtful_refused, 0);
    assert_eq!(r.stats.rejected, 0, "{:?}", r.by_status);
    let failed = r.offered - r.success;
    assert!(
        failed < r.stats.doubtful_admitted,
        "{failed} failed, {} doubtful admitted",
        r.stats.doubtful_admitted
    );
    // With no late failures allowed, the same doubts are refused, and more fail.
    let strict = c
        .run(Config {
            late_failure_share: 0.0,
            ..c.scheduler_config()
        })
        .unwrap();
    assert_clean(&strict);
    assert_eq!(strict.stats.doubtful_admitted, 0);
    assert!(strict.stats.doubtful_refused > 0);
    assert_eq!(strict.stats.rejected, strict.stats.doubtful_refused);
    assert!(
        strict.success < r.success,
        "{} against {}",
        strict.success,
        r.success
    );

    let c = Case::overload_row(Nanos::from_secs(4), Nanos::from_micros(150), 2);
    let r = c.run(c.scheduler_config()).unwrap();
    assert_clean(&r);
    assert!(
        r.stats.doubtful_refused > 10 * r.stats.doubtful_admitted,
        "refused {}, admitted {}",
        r.stats.doubtful_refused,
        r.stats.doubtful_admitted
    );
}

/// 1.5x overload (V100 ResNet-50, 15 models, one GPU, 100 ms SLO): most refusals come
/// at admission (p50 under a tenth of the SLO), and no more is refused than must be:
/// the scheduler serves at least nine tenths of what the EDF baseline serves.
#[test]
fn overload_is_refused_at_admission_not_at_the_deadline() {
    let c = Case::overload_row(Nanos::from_secs(4), Nanos::from_micros(150), 2);
    let r = c.run(c.scheduler_config()).unwrap();
    assert_clean(&r);
    let rejected = r
        .by_status
        .iter()
        .find(|(s, _)| *s == ClientStatus::Rejected)
        .map_or(0, |(_, n)| *n);
    let failed = r.offered - r.success;
    assert!(
        failed > r.offered / 5,
        "overloaded: {failed} of {}",
        r.offered
    );
    assert!(
        rejected * 2 > failed,
        "{rejected} of {failed} refused at admission"
    );
    assert!(
        r.failure_latency_p50.get() * 10 < c.slo.get(),
        "refusal p50 {}",
        r.failure_latency_p50
    );
    let base = c.run_baseline();
    assert!(
        r.success * 10 >= base.served * 9,
        "served {} against the baseline's {}",
        r.success,
        base.served
    );
}

/// The same overload on two GPUs (twice the rate): a model that one GPU holds could in
/// principle be loaded on the other, but the load policy adds replicas only on GPUs
/// with spare capacity, which under overload none has. Admission must not count that
/// replica (before, it did, and every failure was a timeout at ~0.96 of the SLO).
#[test]
fn overload_on_two_gpus_is_refused_at_admission_too() {
    let mut c = Case::overload_row(Nanos::from_secs(4), Nanos::from_micros(150), 2);
    c.rate *= 2.0;
    let r = c.run_on(2, c.scheduler_config()).unwrap();
    assert_clean(&r);
    let rejected = r
        .by_status
        .iter()
        .find(|(s, _)| *s == ClientStatus::Rejected)
        .map_or(0, |(_, n)| *n);
    let failed = r.offered - r.success;
    eprintln!(
        "two GPUs: offered {}, served {}, rejected {rejected}, failure p50 {}",
        r.offered, r.success, r.failure_latency_p50
    );
    assert!(
        failed > r.offered / 5,
        "overloaded: {failed} of {}",
        r.offered
    );
    assert!(
        rejected * 2 > failed,
        "{rejected} of {failed} refused at admission"
    );
    assert!(
        r.failure_latency_p50.get() * 10 < c.slo.get(),
        "refusal p50 {}",
        r.failure_latency_p50
    );
    // Refusing early does not give up what two GPUs can serve: at least a third of
    // the offered 1.5x (two thirds of capacity; one GPU at 1.5x serves about 42 %).
    assert!(
        r.success * 3 >= r.offered,
        "served {} of {}",
        r.success,
        r.offered
    );
}

/// `case` with its network's `jitter` and `stalls`, started ([`Case::start_on`]).
fn started(case: &Case, jitter: Nanos, stalls: Option<Stalls>) -> Simulation {
    let case = Case {
        net_jitter: jitter,
        host_stalls: stalls,
        ..case.clone()
    };
    case.start_on(1, case.scheduler_config()).unwrap()
}

/// A 5 ms SLO on one H200 with 150 µs each way, run for 2 s, and the scheduler's
/// margins at the end.
fn five_ms_with_jitter(jitter: Nanos) -> (SimReport, Nanos, Nanos) {
    let case = &Case::tight_slo_rows(Nanos::from_secs(2), Nanos::from_micros(150), 5)[1];
    let mut s = started(case, jitter, None);
    s.run_until(case.duration);
    let margins = (s.scheduler().lead_time(), s.scheduler().completion_buffer());
    s.drain(case.slo + Nanos::from_secs(1));
    (s.report(), margins.0, margins.1)
}

/// Delays that scatter (an exponential extra of mean 60 µs per message, in order on
/// each link) widen the lead time and the completion buffer by their p99 and their
/// spread, every request is still answered once and no success is answered after its
/// deadline; and the run is as deterministic as a fixed network.
#[test]
fn a_scattering_network_widens_the_margins_and_breaks_no_invariant() {
    let (fixed, fixed_lead, fixed_buffer) = five_ms_with_jitter(Nanos::ZERO);
    let (jittered, lead, buffer) = five_ms_with_jitter(Nanos::from_micros(60));
    assert_clean(&fixed);
    assert_eq!(jittered.violations.total(), 0, "{:#?}", jittered.violations);
    assert_eq!(jittered.offered, jittered.answered);
    // Fixed: 150 µs + the least pad. Scattered: the p99 of 150 µs + Exp(60 µs) is
    // about 430 µs, plus a pad of about 200 µs capped at 100 µs.
    assert_eq!(fixed_lead, Nanos::from_micros(170), "150 us + MIN_PAD");
    assert!(
        lead >= Nanos::from_micros(350) && lead <= Nanos::from_micros(700),
        "lead {lead:?}"
    );
    assert!(
        buffer >= fixed_buffer + Nanos::from_micros(150),
        "{buffer:?} vs {fixed_buffer:?}"
    );
    assert!(jittered.slo_attainment < fixed.slo_attainment);
    let again = five_ms_with_jitter(Nanos::from_micros(60));
    assert_eq!(
        (again.0.by_status, again.1, again.2),
        (jittered.by_status, lead, buffer)
    );
}

/// A host that stalls now and then (4 pauses a second of 2 ms on average; each holds
/// the messages due during it and lets them through together at its end): every
/// request is still answered once, none after its deadline (a result that a stall
/// holds past it is answered `Timeout`), the stalls cost requests, the lead time is
/// the quiet link's most of the time (it widens only while a window holds more stalls
/// than its p99 ignores), and the run is deterministic.
#[test]
fn a_host_that_stalls_now_and_then_breaks_no_invariant() {
    let case = &Case::tight_slo_rows(Nanos::from_secs(4), Nanos::from_micros(150), 5)[0];
    let run = |stalls: Option<Stalls>| {
        let mut s = started(case, Nanos::ZERO, stalls);
        // The lead time every 5 ms, after the first second (the cold start's).
        let mut leads = Vec::new();
        let mut t = Nanos::from_secs(1);
        while t < case.duration {
            s.run_until(t);
            leads.push(s.scheduler().lead_time());
            t = t + Nanos::from_millis(5);
        }
        s.drain(case.slo + Nanos::from_secs(1));
        leads.sort_unstable();
        (s.report(), leads[leads.len() / 2])
    };
    let (quiet, quiet_lead) = run(None);
    let stalls = Stalls {
        per_second: 4.0,
        mean: Nanos::from_millis(2),
    };
    let (stalled, lead) = run(Some(stalls));
    assert_clean(&quiet);
    assert_eq!(stalled.violations.total(), 0, "{:#?}", stalled.violations);
    assert_eq!(stalled.offered, stalled.answered, "every request answered");
    assert!(
        stalled.success < quiet.success,
        "the stalls cost requests: {} against {}",
        stalled.success,
        quiet.success
    );
    assert_eq!(quiet_lead, Nanos::from_micros(170), "150 us + MIN_PAD");
    assert_eq!(lead, quiet_lead, "the median lead time");
    assert_eq!(
        run(Some(stalls)).0.by_status,
        stalled.by_status,
        "deterministic"
    );
}
