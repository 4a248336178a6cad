//! Timing a model on the calling thread, for the CPU backend's measured profiles: the
//! LOAD-equivalent time (building every batch size's plan from the imported model:
//! fixing the batch axis, optimising, packing the weights) and, per batch size, the
//! median and 99th percentile of full-batch runs after a warm-up.

use std::time::{Duration, Instant};

use clockwork_core::model::{BatchProfile, MeasuredTimes};
use clockwork_core::rng::Rng;
use clockwork_core::Nanos;

use crate::datatype::DataType;
use crate::error::{ImportError, RunError};
use crate::import::ImportedModel;
use crate::runner::ModelRunner;

/// How many runs to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileOptions {
    /// Untimed runs per batch size first.
    pub warmup_runs: usize,
    /// Timed runs per batch size (at least 1).
    pub timed_runs: usize,
    /// Seed of the input values.
    pub seed: u64,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        Self {
            warmup_runs: 3,
            timed_runs: 20,
            seed: 1,
        }
    }
}

/// One batch size's measured run times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchTiming {
    /// Batch size (every request slot filled).
    pub batch_size: usize,
    /// Median run time.
    pub p50: Nanos,
    /// 99th percentile run time (nearest rank: the largest of fewer than 100 runs).
    pub p99: Nanos,
    /// Timed runs.
    pub runs: usize,
}

/// A model's measured profile on this CPU core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasuredProfile {
    /// Model name.
    pub name: String,
    /// Time to build every batch size's plan: the CPU's LOAD equivalent.
    pub load_time: Nanos,
    /// Per batch size, ascending.
    pub batches: Vec<BatchTiming>,
    /// Weights bytes (from the metadata).
    pub weight_bytes: u64,
    /// One request's input bytes.
    pub input_bytes: usize,
    /// One request's output bytes.
    pub output_bytes: usize,
}

/// Why profiling failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Building the plans failed.
    #[error(transparent)]
    Plan(#[from] ImportError),
    /// A run failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Zero timed runs asked for.
    #[error("profiling needs at least one timed run")]
    NoRuns,
}

fn nanos(d: Duration) -> Nanos {
    Nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Nearest-rank percentile `pct` of ascending `sorted` (non-empty).
fn percentile(sorted: &[Nanos], pct: usize) -> Nanos {
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Build `batch_sizes`' plans of `model` (timed: the LOAD equivalent), then time each on
/// the calling thread with seeded inputs. Returns the runner too, ready for use.
pub fn profile_plans(
    model: &ImportedModel,
    batch_sizes: &[usize],
    options: &ProfileOptions,
) -> Result<(ModelRunner, MeasuredProfile), ProfileError> {
    if options.timed_runs == 0 {
        return Err(ProfileError::NoRuns);
    }
    let start = Instant::now();
    let mut runner = model.plan(batch_sizes)?;
    let load_time = nanos(start.elapsed());
    let metadata = model.metadata();
    let mut rng = Rng::new(options.seed);
    let mut batches = Vec::new();
    let mut times = Vec::with_capacity(options.timed_runs);
    for b in runner.batch_sizes() {
        let inputs: Vec<Vec<u8>> = metadata
            .inputs
            .iter()
            .map(|spec| random_bytes(&mut rng, spec.datatype, b * spec.elements_per_request()))
            .collect();
        let mut outputs: Vec<Vec<u8>> = metadata
            .outputs
            .iter()
            .map(|spec| vec![0; b * spec.bytes_per_request()])
            .collect();
        let input_refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        times.clear();
        for run in 0..options.warmup_runs + options.timed_runs {
            let mut output_refs: Vec<&mut [u8]> =
                outputs.iter_mut().map(Vec::as_mut_slice).collect();
            let start = Instant::now();
            runner.run(b, &input_refs, &mut output_refs)?;
            if run >= options.warmup_runs {
                times.push(nanos(start.elapsed()));
            }
        }
        times.sort_unstable();
        batches.push(BatchTiming {
            batch_size: b,
            p50: percentile(&times, 50),
            p99: percentile(&times, 99),
            runs: times.len(),
        });
    }
    let profile = MeasuredProfile {
        name: metadata.name.clone(),
        load_time,
        batches,
        weight_bytes: metadata.weight_bytes,
        input_bytes: metadata.input_bytes_per_request(),
        output_bytes: metadata.output_bytes_per_request(),
    };
    Ok((runner, profile))
}

/// `elements` seeded values of `datatype`: floats in [-1, 1), integers in 0..16 (valid
/// indices for most index inputs).
fn random_bytes(rng: &mut Rng, datatype: DataType, elements: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(elements * datatype.size_bytes());
    for _ in 0..elements {
        let unit = rng.f64() * 2.0 - 1.0;
        let small = rng.below(16);
        match datatype {
            DataType::Fp32 => bytes.extend_from_slice(&(unit as f32).to_le_bytes()),
            DataType::Fp64 => bytes.extend_from_slice(&unit.to_le_bytes()),
            DataType::Fp16 => {
                bytes.extend_from_slice(&half::f16::from_f32(unit as f32).to_bits().to_le_bytes())
            }
            other => bytes.extend_from_slice(&small.to_le_bytes()[..other.size_bytes()]),
        }
    }
    bytes
}

impl MeasuredProfile {
    /// The times the scheduler plans with: each batch's execution time is its p99 (a
    /// plan that holds at p99 meets SLOs), LOAD is the plan-building time. A worker
    /// reports them when it registers the model (`Outcome::Registered`).
    pub fn measured_times(&self) -> MeasuredTimes {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        MeasuredTimes {
            load_time: self.load_time.max(Nanos(1)),
            batches: self
                .batches
                .iter()
                .map(|b| BatchProfile {
                    batch_size: clamp(b.batch_size),
                    exec_time: b.p99.max(Nanos(1)),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Nanos> = (1..=100).map(Nanos).collect();
        assert_eq!(percentile(&v, 50), Nanos(50));
        assert_eq!(percentile(&v, 99), Nanos(99));
        let few: Vec<Nanos> = (1..=10).map(Nanos).collect();
        assert_eq!(percentile(&few, 50), Nanos(5));
        assert_eq!(percentile(&few, 99), Nanos(10));
        assert_eq!(percentile(&[Nanos(7)], 99), Nanos(7));
    }

    #[test]
    fn random_half_inputs_are_halves_in_range() {
        let mut rng = Rng::new(7);
        let bytes = random_bytes(&mut rng, DataType::Fp16, 1_000);
        assert_eq!(bytes.len(), 2_000);
        let values: Vec<f32> = bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect();
        assert!(
            values.iter().all(|v| (-1.0..=1.0).contains(v)),
            "{values:?}"
        );
        assert!(values.iter().any(|&v| v < -0.5) && values.iter().any(|&v| v > 0.5));
    }
}
