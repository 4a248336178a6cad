//! Ready-made virtual-time cases: the tight-SLO rows of issue 13 and the overload row
//! of issue 14, each runnable against the real scheduler ([`Case::run`]) and, where it
//! makes sense, against the simple EDF baseline ([`Case::run_baseline`]) on the very
//! same arrivals.
//!
//! Every case is one simulated (emulated) GPU holding `instances` copies of one
//! profile, Poisson arrivals split evenly over them, one absolute SLO (as an HTTP
//! client's `timeout`), 2 % normal timing noise on the devices and a one-way network
//! delay between controller and worker in each direction (default 150 µs, the middle
//! of the 100–300 µs measured on this project's loopback runs).

use crate::edf_baseline::{run_edf_baseline, BaselineReport};
use crate::{NoiseModel, SimConfig, SimReport, Simulation};
use clockwork_core::model::{BatchProfile, ModelSource};
use clockwork_core::{ModelProfile, Nanos, Slo};
use clockwork_scheduler::Config;
use clockwork_workload::{OpenLoop, OpenLoopSpec, SloPlan};

/// ResNet-50 fp16 with CUDA graphs on an H200, as measured for issue 13: batch 1, 2,
/// 4, 8, 16 in 0.904, 0.916, 1.012, 1.141, 1.495 ms; LOAD of its 102 MB in 1.9 ms.
/// (Built here until `clockwork-core` has it as a built-in profile.)
pub fn resnet50_fp16_h200() -> ModelProfile {
    let sizes = [1u32, 2, 4, 8, 16];
    let us = [904u64, 916, 1_012, 1_141, 1_495];
    ModelProfile {
        name: "resnet50_fp16_h200".into(),
        weights_bytes: 102_160_300,
        input_bytes: 301_056,
        output_bytes: 2_000,
        load_time: Nanos::from_micros(1_900),
        batches: sizes
            .iter()
            .zip(us)
            .map(|(&batch_size, us)| BatchProfile {
                batch_size,
                exec_time: Nanos::from_micros(us),
            })
            .collect(),
        source: ModelSource::Emulated,
        inputs: Vec::new(),
        outputs: Vec::new(),
    }
}

/// One virtual-time case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Short label, e.g. `h200-10ms`.
    pub name: String,
    /// The model of every instance.
    pub profile: ModelProfile,
    /// Model instances (all on the one GPU).
    pub instances: u32,
    /// Total Poisson rate, r/s.
    pub rate: f64,
    /// Every request's SLO.
    pub slo: Nanos,
    /// Simulated time with arrivals (all measured: a cold start is part of the case).
    pub duration: Nanos,
    /// One-way controller↔worker delay.
    pub net_latency: Nanos,
    /// Mean of a random extra one-way delay per message ([`crate::SimConfig::net_jitter`];
    /// zero in the presets).
    pub net_jitter: Nanos,
    /// Pauses of the host ([`crate::SimConfig::host_stalls`]; none in the presets).
    pub host_stalls: Option<crate::Stalls>,
    /// Normal timing noise of the device (sigma, fraction).
    pub noise: f64,
    /// Seed of arrivals, noise and scheduler.
    pub seed: u64,
}

impl Case {
    /// Issue 13's rows: the H200 profile, 10 instances, 1,500 r/s, SLO 10 / 5 / 2.5 ms;
    /// the V100 `resnet50_v2` profile, 15 instances, 211 r/s, SLO 10 / 25 ms.
    pub fn tight_slo_rows(duration: Nanos, net_latency: Nanos, seed: u64) -> Vec<Self> {
        let h200 = |ms: f64| Self {
            name: format!("h200-{ms}ms"),
            profile: resnet50_fp16_h200(),
            instances: 10,
            rate: 1_500.0,
            slo: Nanos((ms * 1e6) as u64),
            duration,
            net_latency,
            net_jitter: Nanos::ZERO,
            host_stalls: None,
            noise: 0.02,
            seed,
        };
        let v100 = |ms: f64| Self {
            name: format!("v100-{ms}ms"),
            profile: clockwork_core::model::resnet50(),
            instances: 15,
            rate: 211.0,
            slo: Nanos((ms * 1e6) as u64),
            duration,
            net_latency,
            net_jitter: Nanos::ZERO,
            host_stalls: None,
            noise: 0.02,
            seed,
        };
        vec![h200(10.0), h200(5.0), h200(2.5), v100(10.0), v100(25.0)]
    }

    /// Issue 14's overload row: V100 `resnet50_v2`, 15 instances on one GPU, 100 ms
    /// SLO, 1.5x the GPU's best throughput (batch 16: 16 / 21.73 ms ≈ 736 r/s).
    pub fn overload_row(duration: Nanos, net_latency: Nanos, seed: u64) -> Self {
        let p = clockwork_core::model::resnet50();
        let best = p
            .batches
            .iter()
            .map(|b| f64::from(b.batch_size) / (b.exec_time.get() as f64 / 1e9))
            .fold(0.0, f64::max);
        Self {
            name: "v100-overload-1.5x".into(),
            profile: p,
            instances: 15,
            rate: 1.5 * best,
            slo: Nanos::from_millis(100),
            duration,
            net_latency,
            net_jitter: Nanos::ZERO,
            host_stalls: None,
            noise: 0.02,
            seed,
        }
    }

    /// The case's arrivals (the same for the scheduler and the baseline).
    pub fn arrivals(&self) -> OpenLoop {
        let spec = OpenLoopSpec {
            slo: SloPlan::Fixed(Slo::Absolute(self.slo)),
            ..OpenLoopSpec::poisson(self.instances as usize, self.rate)
        };
        // The spec is valid by construction (positive rate, at least one model).
        OpenLoop::new(&spec, self.seed).unwrap_or_else(|e| panic!("case {}: {e}", self.name))
    }

    /// The scheduler configuration a controller runs with by default, seeded.
    pub fn scheduler_config(&self) -> Config {
        Config {
            seed: self.seed,
            ..Config::default()
        }
    }

    /// Runs the real scheduler (configured by `cfg`) on the case, on one GPU, drained.
    pub fn run(&self, cfg: Config) -> Result<SimReport, String> {
        self.run_on(1, cfg)
    }

    /// Runs the real scheduler on the case with `workers` workers of one GPU each
    /// (the instances spread over them; the rate is the case's total), drained.
    pub fn run_on(&self, workers: u32, cfg: Config) -> Result<SimReport, String> {
        let mut sim = self.start_on(workers, cfg)?;
        sim.run_until(self.duration);
        sim.drain(self.slo + Nanos::from_secs(1));
        Ok(sim.report())
    }

    /// The simulation [`Case::run_on`] runs: started, the case's instances registered
    /// and its arrivals set, at time zero (for callers that look inside while it runs).
    pub fn start_on(&self, workers: u32, cfg: Config) -> Result<Simulation, String> {
        let sim_cfg = SimConfig {
            workers,
            gpus_per_worker: 1,
            net_latency: self.net_latency,
            net_jitter: self.net_jitter,
            host_stalls: self.host_stalls,
            noise: NoiseModel::Normal {
                rel_sigma: self.noise,
            },
            seed: self.seed,
            ..SimConfig::default()
        };
        let mut sim = Simulation::new(sim_cfg, cfg).map_err(|e| e.to_string())?;
        let range = sim
            .register(self.profile.clone(), self.instances)
            .map_err(|e| e.to_string())?;
        sim.start();
        sim.set_workload(Box::new(self.arrivals()), range)
            .map_err(|e| e.to_string())?;
        Ok(sim)
    }

    /// Runs the simple EDF baseline ([`crate::edf_baseline`]) on the same arrivals.
    pub fn run_baseline(&self) -> BaselineReport {
        let mut src = self.arrivals();
        run_edf_baseline(
            &self.profile,
            self.instances as usize,
            &mut src,
            self.duration,
            self.slo,
            NoiseModel::Normal {
                rel_sigma: self.noise,
            },
            self.seed,
        )
    }
}
