//! Scenarios of the virtual-time simulator (`clockwork_sim`) built from
//! the bench workloads, so that an experiment preset, `clockwork-bench sim` and the
//! tests run the very same cluster and arrivals. Owns the scenarios' parameters and
//! their set-up; running and reporting stay with the caller.

use clockwork_core::model::{builtin_profiles, resnet50};
use clockwork_core::{ModelId, ModelProfile, Nanos, Slo};
use clockwork_scheduler::{Config, ModelRange, RegisterError};
use clockwork_sim::{NoiseModel, SimConfig, Simulation, WorkloadRangeError};
use clockwork_workload::azure::replay::scale_for_rate;
use clockwork_workload::azure::{AzureReplay, ReplayConfig, TraceSource};
use clockwork_workload::profiles::registration_runs;
use clockwork_workload::{models_spread, Level, Ramp, RampSpec, SloPlan, Spread};

/// Why a scenario could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The scheduler rejected its configuration.
    #[error("scheduler configuration: {0}")]
    Config(#[from] clockwork_scheduler::ConfigError),
    /// Registering the model instances failed.
    #[error("registering models: {0}")]
    Register(#[from] RegisterError),
    /// The trace could not be read or generated.
    #[error("azure trace: {0}")]
    Trace(String),
    /// The workload's parameters were refused.
    #[error("workload: {0}")]
    Workload(#[from] clockwork_workload::SpecError),
    /// The workload addresses more models than were registered.
    #[error("workload: {0}")]
    Range(#[from] WorkloadRangeError),
}

/// Registers `instances` instances spread over `profiles` as the main job does
/// (shuffled by `seed`), one registration per run of equal profiles, so ids follow the
/// spread: the first instance's id.
pub fn register_spread(
    sim: &mut Simulation,
    profiles: &[ModelProfile],
    instances: usize,
    seed: u64,
) -> Result<ModelId, RegisterError> {
    let spread = models_spread(instances, profiles, Spread::Shuffled { seed });
    let mut first = None;
    for (p, n) in registration_runs(&spread) {
        let r = sim.register(profiles[p].clone(), n)?;
        first.get_or_insert(r.first);
    }
    Ok(first.unwrap_or(ModelId(0)))
}

/// A simulated cluster of `workers` x `gpus_per_worker` GPUs with `noise` (normal)
/// timing noise, measured from `measure_from`, and a scheduler with `slo` as default
/// SLO and load capacity; both seeded with `seed`.
fn cluster(
    workers: u32,
    gpus_per_worker: u32,
    noise: f64,
    slo: Nanos,
    measure_from: Nanos,
    seed: u64,
) -> Result<Simulation, ScenarioError> {
    let sched = Config {
        default_slo: slo,
        load_capacity: slo,
        seed,
        ..Config::default()
    };
    let cfg = SimConfig {
        workers,
        gpus_per_worker,
        noise: NoiseModel::Normal { rel_sigma: noise },
        measure_from,
        seed,
        ..SimConfig::default()
    };
    Ok(Simulation::new(cfg, sched)?)
}

/// The main job's Azure replay: `source`'s day `day` over `instances` instances, block
/// mapping, its day-mean rate scaled to `rate` r/s, from trace minute `start_minute`,
/// default SLO.
pub fn azure_replay(
    source: &TraceSource,
    day: u8,
    instances: usize,
    rate: f64,
    start_minute: usize,
    seed: u64,
) -> Result<AzureReplay, ScenarioError> {
    let trace = source
        .load(day)
        .map_err(|e| ScenarioError::Trace(e.to_string()))?;
    let mut replay = ReplayConfig::new(instances);
    replay.scale = Level::Constant(scale_for_rate(&trace, rate));
    replay.start_minute = start_minute;
    replay.slo = SloPlan::Fixed(Slo::Default);
    AzureReplay::new(&trace, &replay, seed).map_err(|e| ScenarioError::Trace(e.to_string()))
}

/// §6.2's many-models ramp on one GPU at the paper's full length: `spec.majors`
/// ResNet50 majors plus one minor (model `majors`), 2 % normal noise, 100 ms SLO.
#[derive(Debug, Clone)]
pub struct RampScenario {
    /// The ramp (the paper's: [`RampSpec::default`]).
    pub spec: RampSpec,
    /// Seed of the arrivals, the noise and the scheduler.
    pub seed: u64,
    /// When arrivals end.
    pub end: Nanos,
}

impl RampScenario {
    /// The paper's ramp: 5 min lead-in, then one more major per second until all
    /// 3,600 are active, for 75 minutes in all.
    pub fn paper_6_2(seed: u64) -> Self {
        Self {
            spec: RampSpec::default(),
            seed,
            end: Nanos::from_secs(75 * 60),
        }
    }

    /// The cluster, started, with its models registered and the ramp as its workload.
    pub fn build(&self) -> Result<Simulation, ScenarioError> {
        let mut sim = cluster(1, 1, 0.02, Nanos::from_millis(100), Nanos::ZERO, self.seed)?;
        // The majors and the minor: majors + 1 instances < 2^32 (checked by the spec
        // via `Ramp::new`'s model count).
        let models = u32::try_from(self.spec.majors + 1).unwrap_or(u32::MAX);
        let range = sim.register(resnet50(), models)?;
        sim.start();
        let ramp = Ramp::new(&self.spec, self.seed)?;
        sim.set_workload(Box::new(ramp), range)?;
        Ok(sim)
    }
}

/// The Azure trace replay on a small cluster: §6.5's shape by default.
#[derive(Debug, Clone)]
pub struct AzureScenario {
    /// Seed of the trace, the replay, the spread of profiles and the devices' noise.
    pub seed: u64,
    /// Model instances, spread over ResNet18/50/152 (shuffled, as the main job).
    pub instances: usize,
    /// Workers.
    pub workers: u32,
    /// GPUs per worker.
    pub gpus_per_worker: u32,
    /// The trace's day-mean rate is scaled to this (r/s), as the main job's `--rate`.
    pub rate: f64,
    /// Trace day (1-14).
    pub day: u8,
    /// Trace minute the replay starts at.
    pub start_minute: usize,
    /// The trace: synthetic (default) or the real files.
    pub source: TraceSource,
    /// Normal timing noise of the devices (sigma, fraction).
    pub noise: f64,
    /// SLO of every request.
    pub slo: Nanos,
    /// Arrivals before this are served but not measured.
    pub warmup: Nanos,
    /// Measured time after the warm-up.
    pub measured: Nanos,
}

impl AzureScenario {
    /// §6.5 as `experiment 6.5` runs it with real processes: 4,026 instances on 3
    /// workers x 2 GPUs, the synthetic trace of day 1 from 10:00 scaled to a 900 r/s
    /// day mean (≈ 1,070 r/s in the replayed hours), 100 ms SLO, 2 % normal noise.
    pub fn paper_6_5(seed: u64, warmup: Nanos, measured: Nanos) -> Self {
        Self {
            seed,
            instances: 4026,
            workers: 3,
            gpus_per_worker: 2,
            rate: 900.0,
            day: 1,
            start_minute: 600,
            source: TraceSource::real_or_synthetic(None, seed),
            noise: 0.02,
            slo: Nanos::from_millis(100),
            warmup,
            measured,
        }
    }

    /// When arrivals end.
    pub fn end(&self) -> Nanos {
        self.warmup + self.measured
    }

    /// The cluster, started, with its models registered and the replay set as its
    /// workload; run it to [`AzureScenario::end`], then drain.
    pub fn build(&self) -> Result<Simulation, ScenarioError> {
        let mut sim = cluster(
            self.workers,
            self.gpus_per_worker,
            self.noise,
            self.slo,
            self.warmup,
            self.seed,
        )?;
        let first = register_spread(&mut sim, &builtin_profiles(), self.instances, self.seed)?;
        sim.start();
        let arrivals = azure_replay(
            &self.source,
            self.day,
            self.instances,
            self.rate,
            self.start_minute,
            self.seed,
        )?;
        let range = ModelRange {
            first,
            count: u32::try_from(self.instances).unwrap_or(u32::MAX),
        };
        sim.set_workload(Box::new(arrivals), range)?;
        Ok(sim)
    }
}
