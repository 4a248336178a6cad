//! Open-loop, closed-loop, bursty, SLO-sweep, fill-memory and ramp generators, and the
//! `Workload` driver interface.

use clockwork_core::client::Slo;
use clockwork_core::time::Nanos;
use clockwork_workload::{
    collect_until, Arrival, ArrivalSource, Bursty, BurstySpec, ClosedLoop, ClosedLoopSpec,
    FillMemorySpec, Interarrival, Level, OpenLoop, OpenLoopSpec, Ramp, RampSpec, RateSplit,
    SloPlan, SloSweepSpec, SpecError, Step, StepSchedule, Workload, WorkloadSpec,
};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

fn per_model(arrivals: &[Arrival], models: usize) -> Vec<usize> {
    let mut n = vec![0; models];
    for a in arrivals {
        n[a.model] += 1;
    }
    n
}

fn cv_of_gaps(times: &[Nanos]) -> f64 {
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).get() as f64)
        .collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
    var.sqrt() / mean
}

/// |observed - expected| within `k` Poisson standard deviations.
fn poisson_close(observed: usize, expected: f64, k: f64) -> bool {
    (observed as f64 - expected).abs() <= k * expected.sqrt()
}

#[test]
fn poisson_open_loop_splits_the_rate_evenly() {
    let spec = OpenLoopSpec::poisson(4, 2000.0);
    let mut src = OpenLoop::new(&spec, 1).unwrap();
    let a = collect_until(&mut src, Nanos::from_secs(10));
    assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(poisson_close(a.len(), 20_000.0, 5.0), "{}", a.len());
    for n in per_model(&a, 4) {
        assert!(poisson_close(n, 5_000.0, 5.0), "{n}");
    }
    // Exponential gaps: CV ~ 1 per model.
    let m0: Vec<Nanos> = a.iter().filter(|x| x.model == 0).map(|x| x.at).collect();
    let cv = cv_of_gaps(&m0);
    assert!((0.9..1.1).contains(&cv), "{cv}");
    assert!(a.iter().all(|x| x.slo == Slo::Default));
}

#[test]
fn zipf_skew_orders_the_models() {
    let spec = OpenLoopSpec {
        split: RateSplit::Zipf(1.0),
        ..OpenLoopSpec::poisson(5, 1000.0)
    };
    let shares = spec.shares().unwrap();
    // 1/(i+1) normalised by H_5 = 137/60.
    assert!((shares[0] - 60.0 / 137.0).abs() < 1e-12);
    let mut src = OpenLoop::new(&spec, 2).unwrap();
    let n = per_model(&collect_until(&mut src, Nanos::from_secs(20)), 5);
    for (i, &c) in n.iter().enumerate() {
        assert!(
            poisson_close(c, 20_000.0 * shares[i], 5.0),
            "model {i}: {c}"
        );
    }
    assert!(n[0] > n[1] && n[1] > n[2] && n[2] > n[4]);
}

#[test]
fn fixed_rate_is_evenly_spaced() {
    let mut src = OpenLoop::new(&OpenLoopSpec::fixed(4, 1000.0), 3).unwrap();
    let a = collect_until(&mut src, Nanos::from_secs(1));
    assert_eq!(a.len(), 1000);
    for w in a.windows(2) {
        let gap = (w[1].at - w[0].at).get();
        assert!((999_990..=1_000_010).contains(&gap), "{gap}");
    }
    // Each model at 250 r/s, round robin.
    assert_eq!(per_model(&a, 4), vec![250; 4]);
}

#[test]
fn stepped_rate_changes_every_period_and_ends() {
    let spec = OpenLoopSpec {
        rate: Level::Stepped(StepSchedule {
            start: 100.0,
            end: 400.0,
            step: Step::Mul(2.0),
            period: Nanos::from_secs(10),
        }),
        ..OpenLoopSpec::poisson(2, 0.0)
    };
    let mut src = OpenLoop::new(&spec, 4).unwrap();
    let a = collect_until(&mut src, Nanos::MAX);
    let in_period = |k: u64| {
        a.iter()
            .filter(|x| x.at.get() / 10_000_000_000 == k)
            .count()
    };
    assert!(poisson_close(in_period(0), 1000.0, 5.0));
    assert!(poisson_close(in_period(1), 2000.0, 5.0));
    assert!(poisson_close(in_period(2), 4000.0, 5.0));
    assert_eq!(in_period(3), 0, "100, 200, 400, then 800 > 400 ends it");
    assert!(src.next_arrival().is_none());
}

/// A virtual-time closed-loop driver: every request is served after a pseudo-random
/// delay; checks the outstanding count after every event.
#[test]
fn closed_loop_keeps_exactly_n_outstanding() {
    let (models, n) = (5, 3);
    let mut cl = ClosedLoop::new(&ClosedLoopSpec::new(models, n)).unwrap();
    let initial = cl.initial();
    assert_eq!(initial.len(), models * n);
    assert!(initial.iter().all(|a| a.at == Nanos::ZERO));
    assert!(cl.initial().is_empty(), "initial requests are issued once");
    let mut pending: BinaryHeap<Reverse<(Nanos, usize)>> = BinaryHeap::new();
    let mut x: u64 = 12345;
    let mut delay = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Nanos::from_micros(100 + (x >> 33) % 5000)
    };
    for a in initial {
        pending.push(Reverse((a.at + delay(), a.model)));
    }
    for _ in 0..5000 {
        let Reverse((now, m)) = pending.pop().unwrap();
        let next = cl
            .on_response(m, now)
            .expect("closed loop replaces every response");
        assert_eq!((next.model, next.at), (m, now));
        pending.push(Reverse((now + delay(), m)));
        for model in 0..models {
            assert_eq!(cl.outstanding(model), n);
        }
    }
    // A spurious response for an idle model does not underflow or issue.
    let mut idle = ClosedLoop::new(&ClosedLoopSpec::new(1, 1)).unwrap();
    assert!(idle.on_response(0, Nanos::ZERO).is_none());
    assert!(idle.on_response(9, Nanos::ZERO).is_none());
    // A request limit drains the loop.
    let spec = ClosedLoopSpec {
        requests_per_model: Some(4),
        ..ClosedLoopSpec::new(1, 2)
    };
    let mut lim = ClosedLoop::new(&spec).unwrap();
    assert_eq!(lim.initial().len(), 2);
    let replies: Vec<_> = (0..4).map(|i| lim.on_response(0, Nanos(i))).collect();
    assert_eq!(replies.iter().filter(|r| r.is_some()).count(), 2);
    assert_eq!(lim.issued(0), 4);
    assert_eq!(lim.outstanding(0), 0);
}

#[test]
fn refused_clients_wait_for_their_deadline_when_held() {
    let ms = Nanos::from_millis;
    // Held: the replacement of a refused request is due at that request's deadline;
    // a success is replaced at once.
    let spec = ClosedLoopSpec {
        hold_refused: true,
        ..ClosedLoopSpec::new(2, 1)
    };
    let mut held = ClosedLoop::new(&spec).unwrap();
    held.set_end(ms(1_000));
    assert_eq!(held.initial().len(), 2);
    let next = held.on_refused(0, ms(3), ms(100)).unwrap();
    assert_eq!((next.model, next.at), (0, ms(100)));
    assert_eq!(held.outstanding(0), 1);
    assert_eq!(held.on_response(1, ms(3)).unwrap().at, ms(3));
    // A refusal answered after its deadline (a timeout) is replaced at once.
    assert_eq!(held.on_refused(0, ms(150), ms(120)).unwrap().at, ms(150));
    // No replacement due at or after the end.
    assert!(held.on_refused(0, ms(990), ms(1_010)).is_none());
    assert_eq!(held.outstanding(0), 0);
    // Not held: at once.
    let mut eager = ClosedLoop::new(&ClosedLoopSpec::new(1, 1)).unwrap();
    eager.initial();
    assert_eq!(eager.on_refused(0, ms(3), ms(100)).unwrap().at, ms(3));
}

#[test]
fn slo_sweep_steps_the_slo_factor_every_period() {
    let sweep = SloSweepSpec {
        models: 3,
        interarrival: Interarrival::Poisson,
        rate: 300.0,
        slo_start: 1.0,
        slo_end: 4.0,
        step: Step::Mul(1.5),
        period: Nanos::from_secs(2),
    };
    let mut w = Workload::new(&WorkloadSpec::SloSweep(sweep), 5).unwrap();
    let mut a = Vec::new();
    while let Some(x) = w.next_open() {
        a.push(x);
    }
    // Factors 1, 1.5, 2.25, 3.375 (5.06 > 4 ends it): 4 periods of 2 s.
    let factors = [1.0f32, 1.5, 2.25, 3.375];
    assert!(a.last().unwrap().at < Nanos::from_secs(8));
    for (k, f) in factors.iter().enumerate() {
        let in_k: Vec<_> = a
            .iter()
            .filter(|x| x.at.get() / 2_000_000_000 == k as u64)
            .collect();
        assert!(
            poisson_close(in_k.len(), 600.0, 5.0),
            "period {k}: {}",
            in_k.len()
        );
        assert!(in_k.iter().all(|x| x.slo == Slo::Factor(*f)), "period {k}");
    }
    assert!(w.is_finished());
    // The §6.3 sweep: 1 × 1.5^k up to 150: 13 steps (1.5^12 = 129.7).
    let paper = SloSweepSpec::paper(12, 600.0).schedule().build().unwrap();
    assert_eq!(paper.values().len(), 13);
    assert_eq!(paper.end(), Nanos::from_secs(13 * 30));
    // A sweep that never reaches its end is refused.
    let bad = SloSweepSpec {
        step: Step::Mul(0.5),
        ..sweep
    };
    assert!(matches!(
        Workload::new(&WorkloadSpec::SloSweep(bad), 1),
        Err(clockwork_workload::WorkloadError::Spec(
            SpecError::BadSchedule { .. }
        ))
    ));
    let add = StepSchedule {
        start: 10.0,
        end: 2.0,
        step: Step::Add(-4.0),
        period: Nanos::from_secs(1),
    };
    assert_eq!(add.build().unwrap().values(), &[10.0, 6.0, 2.0]);
}

#[test]
fn ramp_activates_majors_on_schedule() {
    let spec = RampSpec {
        majors: 8,
        major_rate: 800.0,
        minor_rate: 100.0,
        lead_in: Nanos::from_secs(3),
        interval: Nanos::from_secs(1),
        increment: 2,
        slo: SloPlan::Fixed(Slo::Absolute(Nanos::from_millis(100))),
    };
    assert_eq!(spec.active_majors(Nanos::from_millis(2999)), 0);
    assert_eq!(spec.active_majors(Nanos::from_secs(3)), 2);
    assert_eq!(spec.active_majors(Nanos::from_millis(4500)), 4);
    assert_eq!(spec.active_majors(Nanos::from_secs(100)), 8);
    assert_eq!(spec.fully_active_at(), Nanos::from_secs(6));
    let mut src = Ramp::new(&spec, 6).unwrap();
    assert_eq!(src.models(), 9);
    let a = collect_until(&mut src, Nanos::from_secs(10));
    let minor = 8;
    for x in &a {
        if x.model != minor {
            assert!(x.at >= spec.lead_in, "a major before the lead-in ends");
            assert!(
                x.model < spec.active_majors(x.at),
                "inactive major at {:?}",
                x.at
            );
        }
    }
    let minors = a.iter().filter(|x| x.model == minor).count();
    assert!(poisson_close(minors, 1000.0, 5.0), "{minors}");
    let majors = a.len() - minors;
    assert!(poisson_close(majors, 800.0 * 7.0, 5.0), "{majors}");
    // Once all are active the majors share the rate evenly.
    let late: Vec<_> = a
        .iter()
        .filter(|x| x.at >= Nanos::from_secs(6) && x.model != minor)
        .cloned()
        .collect();
    for (m, n) in per_model(&late, 9).into_iter().take(8).enumerate() {
        assert!(poisson_close(n, 400.0, 5.0), "major {m}: {n}");
    }
    let paper = RampSpec::default();
    assert_eq!(paper.fully_active_at(), Nanos::from_secs(300 + 3599));
}

#[test]
fn fill_memory_gives_hot_warm_and_cold_models() {
    let spec = FillMemorySpec::default();
    assert_eq!(spec.models(), 411);
    let mut w = Workload::new(&WorkloadSpec::FillMemory(spec.clone()), 7).unwrap();
    let mut a = Vec::new();
    w.poll(Nanos::from_secs(10), &mut a);
    let n = per_model(&a, 411);
    assert!(poisson_close(n[0], 10_000.0, 5.0), "{}", n[0]);
    assert!(poisson_close(n[1..11].iter().sum(), 1_000.0, 5.0));
    assert!(poisson_close(n[11..].iter().sum(), 4_000.0, 5.0));
    // Scaled by 0.1.
    let scaled = FillMemorySpec { scale: 0.1, ..spec };
    let mut w = Workload::new(&WorkloadSpec::FillMemory(scaled), 7).unwrap();
    let mut a = Vec::new();
    w.poll(Nanos::from_secs(10), &mut a);
    assert!(poisson_close(a.len(), 1_510.0, 5.0), "{}", a.len());
}

#[test]
fn bursty_models_alternate_on_and_off() {
    let spec = BurstySpec {
        models: 4,
        rate: 200.0,
        mean_on: Nanos::from_secs(1),
        mean_off: Nanos::from_secs(3),
        slo: SloPlan::default(),
    };
    assert!((spec.mean_rate() - 50.0).abs() < 1e-9);
    let mut src = Bursty::new(&spec, 8).unwrap();
    let a = collect_until(&mut src, Nanos::from_secs(400));
    assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
    // Long-run mean 4 × 50 r/s; ON/OFF variance is large, so a loose bound.
    let rate = a.len() as f64 / 400.0;
    assert!((150.0..250.0).contains(&rate), "{rate}");
    let m0: Vec<Nanos> = a.iter().filter(|x| x.model == 0).map(|x| x.at).collect();
    let cv = cv_of_gaps(&m0);
    assert!(
        cv > 2.0,
        "ON/OFF gaps should be burstier than Poisson: {cv}"
    );
}

#[test]
fn workloads_are_deterministic_and_mix_parts_keep_their_streams() {
    let open = WorkloadSpec::OpenLoop(OpenLoopSpec::poisson(3, 500.0));
    let run = |spec: &WorkloadSpec, seed| {
        let mut w = Workload::new(spec, seed)
            .unwrap()
            .with_end(Nanos::from_secs(5));
        let mut a = Vec::new();
        while let Some(x) = w.next_open() {
            a.push(x);
        }
        a
    };
    let (a, b, c) = (run(&open, 11), run(&open, 11), run(&open, 12));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.iter().all(|x| x.at < Nanos::from_secs(5)));
    // Appending a part to a mix leaves the first part's arrivals unchanged.
    let mix = WorkloadSpec::Mix(vec![
        open.clone(),
        WorkloadSpec::OpenLoop(OpenLoopSpec::fixed(2, 10.0)),
    ]);
    let m = run(&mix, 11);
    let first: Vec<_> = m.iter().filter(|x| x.model < 3).cloned().collect();
    let alone = run(&WorkloadSpec::Mix(vec![open]), 11);
    assert_eq!(first, alone);
    assert_eq!(m.iter().filter(|x| x.model >= 3).count(), 50);
}

#[test]
fn workload_routes_open_and_closed_models() {
    // slo-exp-2 shape: a foreground open loop (models 0..2), closed-loop background (2..5).
    let spec = WorkloadSpec::Mix(vec![
        WorkloadSpec::OpenLoop(OpenLoopSpec::poisson(2, 100.0)),
        WorkloadSpec::ClosedLoop(ClosedLoopSpec {
            slo: SloPlan::Fixed(Slo::Absolute(Nanos::from_secs(86_400))),
            ..ClosedLoopSpec::new(3, 2)
        }),
    ]);
    assert_eq!(spec.models(), 5);
    let mut w = Workload::new(&spec, 1)
        .unwrap()
        .with_end(Nanos::from_secs(2));
    assert_eq!(w.models(), 5);
    let initial = w.start();
    assert_eq!(initial.len(), 6);
    assert!(initial.iter().all(|a| (2..5).contains(&a.model)));
    assert_eq!(w.outstanding(), 6);
    assert!(
        w.on_response(0, Nanos::from_millis(5)).is_none(),
        "open-loop model"
    );
    let next = w.on_response(3, Nanos::from_millis(5)).unwrap();
    assert_eq!((next.model, next.at), (3, Nanos::from_millis(5)));
    assert_eq!(next.slo, Slo::Absolute(Nanos::from_secs(86_400)));
    let mut due = Vec::new();
    w.poll(Nanos::from_secs(1), &mut due);
    assert!(due
        .iter()
        .all(|a| a.model < 2 && a.at <= Nanos::from_secs(1)));
    assert!(poisson_close(due.len(), 100.0, 5.0), "{}", due.len());
    assert!(w.next_open_at().is_some_and(|t| t > Nanos::from_secs(1)));
    // After the end: no replacement, and the loop drains.
    for m in 2..5 {
        for _ in 0..2 {
            assert!(w.on_response(m, Nanos::from_secs(3)).is_none());
        }
    }
    assert_eq!(w.outstanding(), 0);
    w.poll(Nanos::MAX, &mut due);
    assert!(due.iter().all(|a| a.at < Nanos::from_secs(2)));
    assert!(w.is_finished());
}

#[test]
fn bad_parameters_are_errors() {
    assert!(matches!(
        OpenLoop::new(&OpenLoopSpec::poisson(0, 10.0), 1),
        Err(SpecError::NoModels(_))
    ));
    assert!(matches!(
        OpenLoop::new(&OpenLoopSpec::poisson(2, -1.0), 1),
        Err(SpecError::NotPositive { .. })
    ));
    let weights = OpenLoopSpec {
        split: RateSplit::Weights(vec![1.0]),
        ..OpenLoopSpec::poisson(2, 1.0)
    };
    assert!(matches!(
        OpenLoop::new(&weights, 1),
        Err(SpecError::WeightCount { .. })
    ));
    assert!(ClosedLoop::new(&ClosedLoopSpec::new(1, 0)).is_err());
    let ramp = RampSpec {
        increment: 0,
        ..RampSpec::default()
    };
    assert!(Ramp::new(&ramp, 1).is_err());
    let e = StepSchedule {
        start: 1.0,
        end: 2.0,
        step: Step::Add(0.0),
        period: Nanos::from_secs(1),
    }
    .build()
    .unwrap_err();
    assert!(
        e.to_string().contains("does not move towards the end"),
        "{e}"
    );
}
