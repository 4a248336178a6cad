//! Replay of an Azure trace day onto model instances, as the original client's `azure`
//! workloads do (reference §6.1):
//!
//! - functions are ranked by daily invocations, descending, and rank `i` of `F` goes to
//!   instance `⌊M·i/F⌋` of `M` ([`Mapping::Block`]: each instance gets a contiguous block
//!   of ranks), or `i mod M` ([`Mapping::Stripe`]);
//! - in trace minute `k` a function with count `c_k` sends Poisson arrivals at
//!   `c_k × scale` per **real** minute; each trace minute lasts `interval` (60 s by
//!   default; less compresses the day without raising the rate, as the original);
//! - the replay starts at `start_minute` and wraps after minute 1440.
//!
//! The functions of one instance are merged: a sum of Poisson processes is a Poisson
//! process at the summed rate, so the replay draws one process per trace minute at the
//! total rate and picks each arrival's instance in proportion to its count. This is
//! exactly the original's per-function replay in distribution, at a fraction of the cost.

use super::source::TraceSource;
use super::trace::{AzureTrace, MINUTES_PER_DAY};
use crate::alias::AliasTable;
use crate::arrival::{Arrival, ArrivalSource};
use crate::error::SpecError;
use crate::process::{to_nanos, PoissonClock};
use crate::slo::{BuiltSlo, SloPlan};
use crate::step::{BuiltLevel, Level};
use clockwork_core::rng::Rng;
use clockwork_core::time::Nanos;

/// How function ranks map onto model instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mapping {
    /// Rank `i` → instance `⌊M·i/F⌋` (the original's default).
    #[default]
    Block,
    /// Rank `i` → instance `i mod M`.
    Stripe,
}

/// The instance that function rank `rank` (0-based, busiest first) of `functions` maps
/// to among `instances` (`instances` must be positive).
pub fn instance_of(rank: usize, functions: usize, instances: usize, mapping: Mapping) -> usize {
    match mapping {
        Mapping::Block => {
            let v = (instances as u128 * rank as u128) / functions.max(1) as u128;
            usize::try_from(v)
                .unwrap_or(usize::MAX)
                .min(instances.saturating_sub(1))
        }
        Mapping::Stripe => rank % instances.max(1),
    }
}

/// For each function of `trace`, in file order, the instance it maps to.
pub fn assignment(trace: &AzureTrace, instances: usize, mapping: Mapping) -> Vec<usize> {
    let n = trace.functions.len();
    let mut out = vec![0; n];
    for (rank, f) in trace.ranked().into_iter().enumerate() {
        out[f] = instance_of(rank, n, instances, mapping);
    }
    out
}

/// Mean invocation rate of the whole day at scale 1, in requests per second (with the
/// default 60 s interval).
pub fn mean_rate(trace: &AzureTrace) -> f64 {
    trace.total_invocations() as f64 / (MINUTES_PER_DAY as f64 * 60.0)
}

/// The scale factor that makes the day's mean rate `target_rps` (reference §7.3 step 5:
/// calibrate to the cluster's capacity rather than the original's 0.125 per worker).
pub fn scale_for_rate(trace: &AzureTrace, target_rps: f64) -> f64 {
    let r = mean_rate(trace);
    if r > 0.0 {
        target_rps / r
    } else {
        0.0
    }
}

/// Parameters of a replay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplayConfig {
    /// Model instances `M`.
    pub instances: usize,
    /// Rank-to-instance mapping.
    pub mapping: Mapping,
    /// Scale factor of every count: constant, or stepped as `azure_scalability_exp`.
    pub scale: Level,
    /// Real time per trace minute (60 s: real time).
    pub interval: Nanos,
    /// `false` (the original): a count is per real minute, so a shorter `interval`
    /// replays fewer requests per trace minute. `true`: a count is per interval, so a
    /// shorter `interval` replays the day's counts faster.
    pub counts_per_interval: bool,
    /// Trace minute (0-based) to start at.
    pub start_minute: usize,
    /// SLO of each request.
    pub slo: SloPlan,
}

impl ReplayConfig {
    /// `instances` instances, block mapping, scale 1, 60 s minutes from minute 0,
    /// default SLO.
    pub fn new(instances: usize) -> Self {
        Self {
            instances,
            mapping: Mapping::Block,
            scale: Level::Constant(1.0),
            interval: Nanos::from_secs(60),
            counts_per_interval: false,
            start_minute: 0,
            slo: SloPlan::default(),
        }
    }
}

/// A trace replay: an [`ArrivalSource`] over `instances` models.
#[derive(Debug)]
pub struct AzureReplay {
    source: TraceSource,
    instances: usize,
    per_instance_functions: Vec<usize>,
    /// Per trace minute: (instance, summed count), instances ascending.
    minutes: Vec<Vec<(u32, u64)>>,
    minute_totals: Vec<u64>,
    scale: BuiltLevel,
    slo: BuiltSlo,
    interval: u64,
    counts_per_interval: bool,
    start_minute: usize,
    end: Nanos,
    clock: PoissonClock,
    rng: Rng,
    picker: Option<(u64, Option<AliasTable>)>,
}

impl AzureReplay {
    /// Build a replay of `trace`; `seed` fixes every arrival.
    pub fn new(trace: &AzureTrace, config: &ReplayConfig, seed: u64) -> Result<Self, SpecError> {
        if config.instances == 0 {
            return Err(SpecError::NoModels("azure replay"));
        }
        if u32::try_from(config.instances).is_err() {
            return Err(SpecError::NotPositive {
                what: "azure replay instances (below 2^32)",
                value: config.instances as f64,
            });
        }
        if config.interval == Nanos::ZERO {
            return Err(SpecError::NotPositive {
                what: "azure replay interval",
                value: 0.0,
            });
        }
        if config.start_minute >= MINUTES_PER_DAY {
            return Err(SpecError::StartMinute(config.start_minute));
        }
        let scale = config.scale.build("azure scale factor")?;
        let slo = config.slo.build()?;
        let end = match &scale {
            BuiltLevel::Constant(_) => slo.end(),
            BuiltLevel::Stepped(s) => s.end().min(slo.end()),
        };
        let owner = assignment(trace, config.instances, config.mapping);
        let mut per_instance_functions = vec![0; config.instances];
        let mut minutes: Vec<Vec<(u32, u64)>> = vec![Vec::new(); MINUTES_PER_DAY];
        for (f, &inst) in trace.functions.iter().zip(&owner) {
            per_instance_functions[inst] += 1;
            // inst < instances < 2^32, checked above.
            let inst = inst as u32;
            for (m, c) in f.counts.nonzero() {
                minutes[m].push((inst, u64::from(c)));
            }
        }
        let mut minute_totals = vec![0; MINUTES_PER_DAY];
        for (m, list) in minutes.iter_mut().enumerate() {
            list.sort_unstable_by_key(|&(i, _)| i);
            let mut merged: Vec<(u32, u64)> = Vec::with_capacity(list.len());
            for &(i, c) in list.iter() {
                match merged.last_mut() {
                    Some((j, acc)) if *j == i => *acc += c,
                    _ => merged.push((i, c)),
                }
            }
            minute_totals[m] = merged.iter().map(|&(_, c)| c).sum();
            *list = merged;
        }
        if minute_totals.iter().all(|&t| t == 0) {
            return Err(SpecError::EmptyTrace);
        }
        Ok(Self {
            source: trace.source.clone(),
            instances: config.instances,
            per_instance_functions,
            minutes,
            minute_totals,
            scale,
            slo,
            interval: config.interval.get(),
            counts_per_interval: config.counts_per_interval,
            start_minute: config.start_minute,
            end,
            clock: PoissonClock::new(Nanos::ZERO),
            rng: Rng::derive(seed, 0xA2_5EED),
            picker: None,
        })
    }

    /// Where the trace came from.
    pub fn source(&self) -> &TraceSource {
        &self.source
    }

    /// Functions mapped to each instance.
    pub fn functions_per_instance(&self) -> &[usize] {
        &self.per_instance_functions
    }

    /// The trace minute replayed during real interval `segment` (0-based).
    pub fn trace_minute(&self, segment: u64) -> usize {
        // The remainder is below 1440.
        ((self.start_minute as u64 + segment) % MINUTES_PER_DAY as u64) as usize
    }

    /// Invocations of trace minute `minute` per instance, instances ascending.
    pub fn minute_counts(&self, minute: usize) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.minutes
            .get(minute)
            .into_iter()
            .flatten()
            .map(|&(i, c)| (i as usize, c))
    }

    /// Expected arrivals of `instance` during real interval `segment`, at scale `scale`.
    pub fn expected(&self, instance: usize, segment: u64, scale: f64) -> f64 {
        let minute = self.trace_minute(segment);
        let count = self
            .minute_counts(minute)
            .find(|&(i, _)| i == instance)
            .map_or(0, |(_, c)| c);
        count as f64 * scale * self.interval_fraction()
    }

    /// Expected arrivals per count per interval: `interval / 60 s`, or 1 when counts are
    /// per interval.
    fn interval_fraction(&self) -> f64 {
        if self.counts_per_interval {
            1.0
        } else {
            self.interval as f64 / 60e9
        }
    }

    fn pick(&mut self, segment: u64) -> Option<usize> {
        if self.picker.as_ref().is_none_or(|(s, _)| *s != segment) {
            let minute = self.trace_minute(segment);
            let counts: Vec<f64> = self.minutes[minute]
                .iter()
                .map(|&(_, c)| c as f64)
                .collect();
            // A minute without invocations has no table (and no arrivals to pick for).
            self.picker = Some((segment, AliasTable::new(&counts).ok()));
        }
        let (_, w) = self.picker.as_ref()?;
        let k = w.as_ref()?.sample(&mut self.rng);
        let minute = self.trace_minute(segment);
        self.minutes[minute].get(k).map(|&(i, _)| i as usize)
    }
}

impl ArrivalSource for AzureReplay {
    fn next_arrival(&mut self) -> Option<Arrival> {
        let interval = self.interval;
        let per_sec = self.interval_fraction() * 1e9 / interval as f64;
        let (scale, totals, start, end) = (
            &self.scale,
            &self.minute_totals,
            self.start_minute,
            self.end,
        );
        let t = self.clock.next(&mut self.rng, |now| {
            if now >= end {
                return None;
            }
            let segment = now.get() / interval;
            let minute = ((start as u64 + segment) % MINUTES_PER_DAY as u64) as usize;
            let (s, change) = scale.at(now)?;
            let seg_end = Nanos((segment + 1).saturating_mul(interval));
            // Arrivals per second: count × scale per (interval × fraction).
            let rate = totals[minute] as f64 * s * per_sec;
            Some((rate, seg_end.min(change).min(end)))
        })?;
        let at = to_nanos(t);
        let model = self.pick(at.get() / interval)?;
        let slo = self.slo.at(at)?;
        Some(Arrival { at, model, slo })
    }

    fn models(&self) -> usize {
        self.instances
    }
}
