//! Simulated runs: invariants over seeded randomized clusters and workloads, plus
//! scenarios (overload, thousands of models on one GPU, worker loss, registration
//! while serving). Every run must answer every request exactly once, never answer a
//! success after its deadline, never emit an action whose window already closed,
//! never over-commit a GPU's pages, and never send an INFER to a GPU without the
//! model ([`clockwork_sim::Violations`]).

use clockwork_core::model::{resnet152, resnet18, resnet50};
use clockwork_core::rng::Rng;
use clockwork_core::{ClientStatus, ModelId, Nanos, Slo};
use clockwork_scheduler::{Config, ModelRange};
use clockwork_sim::{NoiseModel, SimConfig, SimReport, Simulation};
use clockwork_workload::{
    Arrival, AzureLike, AzureLikeConfig, OpenLoop, OpenLoopSpec, RateSplit, Scripted, SloPlan,
};

/// Uniform timing noise of half-width `rel`, as the simulator's tests always used.
fn uniform(rel: f64) -> NoiseModel {
    NoiseModel::Uniform { rel }
}

fn sim(workers: u32, gpus: u32, pages: u32, noise: f64, seed: u64) -> Simulation {
    Simulation::new(
        SimConfig {
            workers,
            gpus_per_worker: gpus,
            total_pages: pages,
            noise: uniform(noise),
            seed,
            ..SimConfig::default()
        },
        Config {
            seed,
            ..Config::default()
        },
    )
    .unwrap()
}

/// `copies` ResNet50s on `s`, uniform Poisson at `rate` for `secs`, drained: the report.
fn resnet50_poisson(mut s: Simulation, copies: u32, rate: f64, secs: u64, seed: u64) -> SimReport {
    let models = s.register(resnet50(), copies).unwrap();
    s.start();
    let end = Nanos::from_secs(secs);
    poisson(&mut s, models, rate, 0.0, Slo::Default, seed);
    s.run_until(end);
    s.drain(Nanos::from_secs(1));
    s.report()
}

/// Poisson arrivals at `rate` r/s over `models`, Zipf-skewed by `zipf` (0: uniform), as
/// the workload of `s`.
fn poisson(s: &mut Simulation, models: ModelRange, rate: f64, zipf: f64, slo: Slo, seed: u64) {
    let spec = OpenLoopSpec {
        split: if zipf > 0.0 {
            RateSplit::Zipf(zipf)
        } else {
            RateSplit::Even
        },
        slo: SloPlan::Fixed(slo),
        ..OpenLoopSpec::poisson(models.count as usize, rate)
    };
    let source = OpenLoop::new(&spec, seed).unwrap();
    s.set_workload(Box::new(source), models).unwrap();
}

fn assert_clean(r: &SimReport) {
    assert_eq!(r.violations.total(), 0, "{:#?}", r.violations);
    assert_eq!(r.offered, r.answered, "every request answered");
    assert_eq!(r.stats.offered, r.offered);
    assert_eq!(r.stats.answered, r.offered);
    assert_eq!(r.success, r.stats.success);
}

#[test]
fn light_load_on_one_gpu_all_succeed() {
    // Seed 3: no model's second request lands during its first LOAD, so each model
    // has exactly one cold start (the count depends on the arrivals drawn).
    let r = resnet50_poisson(sim(1, 1, 1376, 0.0, 3), 4, 100.0, 2, 3);
    assert_clean(&r);
    assert!(r.offered > 150);
    assert_eq!(r.success, r.offered);
    assert_eq!(r.stats.loads, 4);
    assert_eq!(r.stats.cold_starts, 4);
    // Without noise the estimates are exact.
    assert_eq!(r.stats.exec_error.sum_abs, 0);
    assert!(r.latency_max < Nanos::from_millis(20));
}

/// The devices' noise is the emulated GPUs' [`NoiseModel`], drawn per device from the
/// run's seed: a run is reproducible from its seed, another seed differs, and normal
/// noise reaches the scheduler's estimates.
#[test]
fn normal_noise_is_seeded_and_reproducible() {
    let run = |seed: u64| {
        let s = Simulation::new(
            SimConfig {
                workers: 1,
                gpus_per_worker: 2,
                noise: NoiseModel::Normal { rel_sigma: 0.05 },
                seed,
                ..SimConfig::default()
            },
            Config {
                seed: 1,
                ..Config::default()
            },
        )
        .unwrap();
        resnet50_poisson(s, 6, 400.0, 2, 1)
    };
    let (a, b, c) = (run(7), run(7), run(8));
    assert_clean(&a);
    assert_clean(&c);
    assert!(
        a.stats.exec_error.sum_abs > 0,
        "noise reaches the estimates"
    );
    assert_eq!(a.stats.exec_error.sum_abs, b.stats.exec_error.sum_abs);
    assert_eq!(a.latency_p99, b.latency_p99);
    assert_eq!(a.events, b.events);
    assert_ne!(a.stats.exec_error.sum_abs, c.stats.exec_error.sum_abs);
}

#[test]
fn overload_answers_everything_and_never_late() {
    let r = resnet50_poisson(sim(1, 1, 1376, 0.05, 2), 5, 2000.0, 2, 2);
    assert_clean(&r);
    assert!(r.success < r.offered);
    // Backlogs are served in large batches: goodput well above batch-1 throughput
    // (1 / 3.32 ms = 301 r/s).
    assert!(r.stats.mean_batch() > 4.0, "{}", r.stats.mean_batch());
    assert!(r.goodput_rps > 450.0, "{}", r.goodput_rps);
}

/// 15 models replicated over 8 GPUs at 2.5x their batch-1 capacity: backlogs stay
/// long and the batching rule must keep batches large. Its lookahead (serve heads
/// first when that drops fewer of this model's requests) is off on an overloaded GPU;
/// with it on here, batches fell from ≈ 14 to ≈ 3.6 and goodput by a quarter.
#[test]
fn overloaded_gpus_keep_large_batches() {
    let r = resnet50_poisson(sim(1, 8, 1376, 0.02, 1), 15, 2.5 * 8.0 / 3.32e-3, 3, 1);
    assert_clean(&r);
    assert!(
        r.stats.mean_batch() > 10.0,
        "mean batch {}",
        r.stats.mean_batch()
    );
    // 8 x b16 throughput (16 / 21.73 ms) is 5,890 r/s.
    assert!(r.goodput_rps > 5_000.0, "goodput {}", r.goodput_rps);
}

#[test]
fn thousands_of_models_on_one_gpu() {
    // The paper's §6.2 shape: 3,601 ResNet50 copies, one 1376-page GPU (196 fit).
    let mut s = sim(1, 1, 1376, 0.02, 3);
    let models = s.register(resnet50(), 3601).unwrap();
    s.start();
    let end = Nanos::from_secs(3);
    // 800 models active, skewed: far more than fit, so LOAD/UNLOAD churn.
    let active = ModelRange {
        first: models.first,
        count: 800,
    };
    poisson(&mut s, active, 300.0, 0.6, Slo::Default, 3);
    s.run_until(end);
    s.drain(Nanos::from_secs(1));
    let r = s.report();
    assert_clean(&r);
    assert!(r.stats.loads > 196, "loads {}", r.stats.loads);
    assert!(r.stats.unloads > 0);
    assert!(r.success > 0);
}

#[test]
fn worker_loss_mid_run_and_rejoin() {
    let mut s = sim(2, 2, 1376, 0.05, 4);
    let models = s.register(resnet50(), 20).unwrap();
    s.start();
    let end = Nanos::from_secs(3);
    poisson(&mut s, models, 800.0, 0.0, Slo::Default, 4);
    s.run_until(Nanos::from_secs(1));
    let before = s.report();
    s.lose_worker(0);
    assert_eq!(s.scheduler().live_gpus(), 2);
    s.run_until(Nanos::from_secs(2));
    s.rejoin_worker(0);
    assert_eq!(s.scheduler().live_gpus(), 4);
    s.run_until(end);
    s.drain(Nanos::from_secs(1));
    let r = s.report();
    assert_clean(&r);
    assert!(r.success > before.success);
    // After the rejoin the worker is registered again and used.
    assert!(r.stats.registrations >= 60);
}

#[test]
fn registration_while_running() {
    let mut s = sim(1, 2, 1376, 0.0, 5);
    let first = s.register(resnet50(), 4).unwrap();
    s.start();
    poisson(&mut s, first, 200.0, 0.0, Slo::Default, 5);
    s.run_until(Nanos::from_millis(500));
    let late = s.register(resnet18(), 3).unwrap();
    assert_eq!(late.first, ModelId(4));
    s.run_until(Nanos::from_millis(600));
    let mut ids = Vec::new();
    for m in late.iter() {
        ids.push(s.inject(m, Slo::Default));
    }
    s.run_until(Nanos::from_secs(2));
    s.drain(Nanos::from_secs(1));
    let r = s.report();
    assert_clean(&r);
    assert_eq!(r.success, r.offered, "{:?}", r.by_status);
    assert!(ids.len() == 3);
}

#[test]
fn tight_slos_are_rejected_up_front_or_met() {
    let mut s = sim(1, 1, 1376, 0.0, 6);
    let models = s.register(resnet50(), 2).unwrap();
    s.start();
    let end = Nanos::from_secs(1);
    let mut rng = Rng::new(6);
    let arrivals: Vec<Arrival> = (0..400)
        .map(|i| Arrival {
            at: Nanos::from_micros(i * 2_500),
            model: (i % 2) as usize,
            slo: Slo::Absolute(Nanos::from_micros(6_000 + rng.below(20_000))),
        })
        .collect();
    s.set_workload(Box::new(Scripted::new(arrivals)), models)
        .unwrap();
    s.run_until(end);
    s.drain(Nanos::from_secs(1));
    let r = s.report();
    assert_clean(&r);
    let rejected = r.stats.rejected;
    assert!(rejected > 0);
    assert!(r.success > 100);
    assert!(r
        .by_status
        .iter()
        .any(|(s, _)| *s == ClientStatus::Rejected));
}

/// A seed gives the same run: the library's arrivals and the devices' noise are both
/// drawn from seeded streams.
#[test]
fn the_same_seed_gives_the_same_run() {
    let run = |seed: u64| {
        let mut s = sim(2, 1, 1376, 0.05, seed);
        let models = s.register(resnet50(), 30).unwrap();
        s.start();
        let end = Nanos::from_secs(2);
        let cfg = AzureLikeConfig::new(30, 400.0, Slo::Default, end, seed);
        s.set_workload(Box::new(AzureLike::new(cfg).unwrap()), models)
            .unwrap();
        s.run_until(end);
        s.drain(Nanos::from_secs(1));
        let r = s.report();
        assert_clean(&r);
        (
            r.offered,
            r.success,
            r.latency_p50,
            r.latency_max,
            r.stats.loads,
        )
    };
    assert_eq!(run(21), run(21));
    assert_ne!(run(21), run(22));
}

/// A workload that addresses more models than its range is refused with a clear error,
/// and the workload in place keeps running.
#[test]
fn a_workload_wider_than_its_model_range_is_refused() {
    let mut s = sim(1, 1, 1376, 0.0, 8);
    let models = s.register(resnet50(), 2).unwrap();
    s.start();
    let at = |ms, model| Arrival {
        at: Nanos::from_millis(ms),
        model,
        slo: Slo::Default,
    };
    s.set_workload(Box::new(Scripted::new(vec![at(1, 0), at(2, 1)])), models)
        .unwrap();
    let e = s
        .set_workload(Box::new(Scripted::new(vec![at(3, 2)])), models)
        .unwrap_err();
    assert_eq!((e.addressed, e.registered), (3, 2));
    assert!(e.to_string().contains("addresses 3 models"), "{e}");
    s.run_until(Nanos::from_secs(1));
    s.drain(Nanos::from_secs(1));
    let r = s.report();
    assert_clean(&r);
    assert_eq!(r.offered, 2);
}

/// A 7 ms SLO on a cold ResNet50 (LOAD 8.4 ms + b1 3.3 ms): no request can wait for
/// the LOAD, so the first ones are refused, but the refusals must still get the model
/// loaded; once warm, the measured completion buffer (≈ 0.1 ms of simulated network,
/// floored at 1 ms) leaves room for the 3.3 ms batch, where the original's constant
/// 5 ms left 2 ms.
fn tight_slo_on_a_cold_model(cfg: Config) -> SimReport {
    let mut s = Simulation::new(
        SimConfig {
            noise: uniform(0.02),
            seed: 9,
            ..SimConfig::default()
        },
        cfg,
    )
    .unwrap();
    let models = s.register(resnet50(), 1).unwrap();
    s.start();
    let arrivals: Vec<Arrival> = (0..200u64)
        .map(|i| Arrival {
            at: Nanos::from_millis(10 * i),
            model: 0,
            slo: Slo::Absolute(Nanos::from_millis(7)),
        })
        .collect();
    s.set_workload(Box::new(Scripted::new(arrivals)), models)
        .unwrap();
    s.run_until(Nanos::from_secs(2));
    s.drain(Nanos::from_secs(1));
    let r = s.report();
    assert_clean(&r);
    r
}

#[test]
fn refused_requests_warm_a_cold_model_and_the_measured_buffer_serves_tight_slos() {
    let r = tight_slo_on_a_cold_model(Config::default());
    assert_eq!(r.stats.loads, 1);
    assert!(r.stats.rejected >= 1);
    assert!(r.success >= 190, "success {} of {}", r.success, r.offered);
    // The original's constant buffer (min_buffer = buffer): loaded, never in time.
    let r = tight_slo_on_a_cold_model(Config {
        min_buffer: Nanos::from_millis(5),
        ..Config::default()
    });
    assert_eq!(r.stats.loads, 1);
    assert_eq!(r.success, 0);
    assert_eq!(r.stats.rejected, r.offered);
}

/// Randomized runs: cluster shape, model mix, SLO mix, rate (from idle to overload),
/// noise, schedule-ahead, worker loss/rejoin and registration while running.
#[test]
fn randomized_runs_keep_every_invariant() {
    for seed in 0..40u64 {
        let mut rng = Rng::new(seed * 7919 + 1);
        let workers = 1 + rng.below(3) as u32;
        let gpus = 1 + rng.below(3) as u32;
        let pages = [40, 200, 1376][rng.below(3) as usize];
        let noise = [0.0, 0.05, 0.2][rng.below(3) as usize];
        let cfg = Config {
            seed,
            schedule_ahead: Nanos::from_millis(2 + rng.below(12)),
            max_batch: [4, 8, 16][rng.below(3) as usize],
            ..Config::default()
        };
        let mut s = Simulation::new(
            SimConfig {
                workers,
                gpus_per_worker: gpus,
                total_pages: pages,
                noise: uniform(noise),
                seed,
                net_latency: Nanos::from_micros(20 + rng.below(500)),
                ..SimConfig::default()
            },
            cfg,
        )
        .unwrap();
        let n = 1 + rng.below(60) as u32;
        let a = s.register(resnet50(), n).unwrap();
        let b = s.register(resnet18(), 1 + rng.below(20) as u32).unwrap();
        let c = s.register(resnet152(), 1 + rng.below(5) as u32).unwrap();
        let all = ModelRange {
            first: a.first,
            count: a.count + b.count + c.count,
        };
        s.start();
        let capacity = f64::from(workers * gpus) * 250.0;
        let rate = capacity * [0.1, 0.7, 1.5, 4.0][rng.below(4) as usize];
        let end = Nanos::from_millis(1500);
        let slo = match rng.below(3) {
            0 => Slo::Default,
            1 => Slo::Absolute(Nanos::from_millis(10 + rng.below(200))),
            _ => Slo::Factor(3.0 + rng.below(30) as f32),
        };
        if rng.below(2) == 0 {
            let cfg = AzureLikeConfig::new(all.count as usize, rate, slo, end, seed);
            s.set_workload(Box::new(AzureLike::new(cfg).unwrap()), all)
                .unwrap();
        } else {
            poisson(&mut s, all, rate, 1.0, slo, seed);
        }
        s.run_until(Nanos::from_millis(400));
        if rng.below(2) == 0 {
            s.lose_worker(0);
        }
        s.run_until(Nanos::from_millis(700));
        let late = s.register(resnet50(), 1 + rng.below(3) as u32).unwrap();
        s.inject(late.first, Slo::Default);
        s.rejoin_worker(0);
        s.run_until(Nanos::from_millis(900));
        s.inject(late.first, Slo::Absolute(Nanos::from_millis(50)));
        s.run_until(end);
        s.drain(Nanos::from_secs(2));
        let r = s.report();
        assert_eq!(r.violations.total(), 0, "seed {seed}: {:#?}", r.violations);
        assert_eq!(r.offered, r.answered, "seed {seed}: all answered");
        assert_eq!(s.scheduler().pending_requests(), 0, "seed {seed}");
        assert!(r.offered > 0);
    }
}
