//! Seeded open-loop workloads for the simulator.
//!
//! - [`Poisson`]: exponential inter-arrivals at a total rate, models chosen uniformly
//!   or Zipf-skewed.
//! - [`AzureLike`]: a simple stand-in for the Azure Functions trace (reference 7.3,
//!   simplified): heavy-tailed per-model mean rates (lognormal), a fraction of models
//!   bursty (on/off periods with exponential durations, rate scaled so the mean is
//!   kept), Poisson within each one-second slot. A later issue builds the real trace
//!   generator.
//! - [`Scripted`]: a fixed list of arrivals, for tests.

use clockwork_core::rng::Rng;
use clockwork_core::{ModelId, Nanos, Slo};
use clockwork_scheduler::ModelRange;

/// One request arrival.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// When it reaches the controller.
    pub at: Nanos,
    /// The model.
    pub model: ModelId,
    /// Its SLO.
    pub slo: Slo,
}

/// A source of arrivals in non-decreasing time order.
pub trait Workload: std::fmt::Debug {
    /// The next arrival, or `None` when the workload is exhausted.
    fn next_arrival(&mut self) -> Option<Arrival>;
}

/// Walker/Vose alias table: O(1) sampling from a discrete distribution.
#[derive(Debug, Clone, Default)]
pub struct AliasTable {
    /// Per outcome: probability of keeping it, and its alias (one cache line access).
    slots: Vec<(f64, u32)>,
}

impl AliasTable {
    /// A table over `weights` (non-negative, not all zero).
    pub fn new(weights: &[f64]) -> Self {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut prob: Vec<f64> = weights
            .iter()
            .map(|w| {
                if total > 0.0 {
                    w * n as f64 / total
                } else {
                    1.0
                }
            })
            .collect();
        // Indices fit u32: tables cover model ranges.
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<u32>, Vec<u32>) =
            (0..n as u32).partition(|&i| prob[i as usize] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s as usize] = l;
            prob[l as usize] -= 1.0 - prob[s as usize];
            if prob[l as usize] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        for i in large.into_iter().chain(small) {
            prob[i as usize] = 1.0;
        }
        Self {
            slots: prob.into_iter().zip(alias).collect(),
        }
    }

    /// Draws an index.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let i = rng.below(self.slots.len() as u64) as usize;
        let (keep, alias) = self.slots[i];
        if rng.f64() < keep {
            i
        } else {
            alias as usize
        }
    }

    /// Number of outcomes.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// No outcomes.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// How [`Poisson`] picks a model.
#[derive(Debug, Clone)]
enum Pick {
    Uniform,
    Table(AliasTable),
}

/// Poisson open loop over a range of models.
#[derive(Debug, Clone)]
pub struct Poisson {
    rng: Rng,
    models: ModelRange,
    mean_gap_ns: f64,
    t: f64,
    slo: Slo,
    pick: Pick,
    end: Nanos,
}

impl Poisson {
    /// `rate` requests per second in total, spread uniformly over `models`, from time
    /// `start` until `end`.
    pub fn uniform(
        models: ModelRange,
        rate: f64,
        slo: Slo,
        start: Nanos,
        end: Nanos,
        seed: u64,
    ) -> Self {
        Self {
            rng: Rng::derive(seed, 1),
            models,
            mean_gap_ns: 1e9 / rate.max(1e-9),
            t: start.get() as f64,
            slo,
            pick: Pick::Uniform,
            end,
        }
    }

    /// Like [`Poisson::uniform`], with model `i` (0-based within the range) drawn with
    /// probability proportional to `1 / (i + 1)^s`.
    pub fn zipf(
        models: ModelRange,
        rate: f64,
        s: f64,
        slo: Slo,
        start: Nanos,
        end: Nanos,
        seed: u64,
    ) -> Self {
        let w: Vec<f64> = (0..models.count)
            .map(|i| 1.0 / f64::from(i + 1).powf(s))
            .collect();
        Self {
            pick: Pick::Table(AliasTable::new(&w)),
            ..Self::uniform(models, rate, slo, start, end, seed)
        }
    }
}

impl Workload for Poisson {
    fn next_arrival(&mut self) -> Option<Arrival> {
        if self.models.count == 0 {
            return None;
        }
        self.t += self.rng.exp(self.mean_gap_ns);
        let at = Nanos(self.t as u64);
        if at >= self.end {
            return None;
        }
        let i = match &self.pick {
            // below(count) < count, a u32.
            Pick::Uniform => self.rng.below(u64::from(self.models.count)) as u32,
            Pick::Table(t) => t.sample(&mut self.rng) as u32,
        };
        Some(Arrival {
            at,
            model: ModelId(self.models.first.0 + i),
            slo: self.slo,
        })
    }
}

/// Parameters of [`AzureLike`].
#[derive(Debug, Clone)]
pub struct AzureLikeConfig {
    /// The models.
    pub models: ModelRange,
    /// Mean total rate, requests per second.
    pub rate: f64,
    /// Lognormal sigma of per-model mean rates (2.0: the top 1% of models carry
    /// about 37% of the load, and the median model gets 13.5% of the mean rate).
    pub sigma: f64,
    /// Fraction of models that are bursty.
    pub bursty_fraction: f64,
    /// Mean ON period of a bursty model, seconds.
    pub mean_on_s: f64,
    /// Mean OFF period of a bursty model, seconds.
    pub mean_off_s: f64,
    /// The SLO of every request.
    pub slo: Slo,
    /// First arrival not before this.
    pub start: Nanos,
    /// No arrival at or after this.
    pub end: Nanos,
    /// Seed.
    pub seed: u64,
}

impl AzureLikeConfig {
    /// Defaults: sigma 2, half the models bursty with 5 s on / 15 s off.
    pub fn new(models: ModelRange, rate: f64, slo: Slo, end: Nanos, seed: u64) -> Self {
        Self {
            models,
            rate,
            sigma: 2.0,
            bursty_fraction: 0.5,
            mean_on_s: 5.0,
            mean_off_s: 15.0,
            slo,
            start: Nanos::ZERO,
            end,
            seed,
        }
    }
}

/// Heavy-tailed, bursty open loop (see the module docs).
#[derive(Debug, Clone)]
pub struct AzureLike {
    cfg: AzureLikeConfig,
    rng: Rng,
    base: Vec<f64>,
    bursty: Vec<bool>,
    on: Vec<bool>,
    table: AliasTable,
    slot_rate: f64,
    slot_end: Nanos,
    t: f64,
    weights: Vec<f64>,
}

/// Length of a rate slot.
const SLOT: Nanos = Nanos::from_secs(1);

impl AzureLike {
    /// A generator for `cfg`.
    pub fn new(cfg: AzureLikeConfig) -> Self {
        let mut rng = Rng::derive(cfg.seed, 2);
        let n = cfg.models.count as usize;
        let mut base: Vec<f64> = (0..n).map(|_| (cfg.sigma * rng.normal()).exp()).collect();
        let sum: f64 = base.iter().sum();
        for b in &mut base {
            *b *= cfg.rate / sum.max(f64::MIN_POSITIVE);
        }
        let duty = cfg.mean_on_s / (cfg.mean_on_s + cfg.mean_off_s);
        let bursty: Vec<bool> = (0..n).map(|_| rng.f64() < cfg.bursty_fraction).collect();
        let on: Vec<bool> = bursty.iter().map(|&b| !b || rng.f64() < duty).collect();
        let mut me = Self {
            t: cfg.start.get() as f64,
            slot_end: cfg.start,
            rng,
            base,
            bursty,
            on,
            table: AliasTable::default(),
            slot_rate: 0.0,
            weights: vec![0.0; n],
            cfg,
        };
        me.new_slot();
        me
    }

    /// Per-model mean rates (requests per second), in range order.
    pub fn mean_rates(&self) -> &[f64] {
        &self.base
    }

    fn new_slot(&mut self) {
        let cfg = &self.cfg;
        let duty = cfg.mean_on_s / (cfg.mean_on_s + cfg.mean_off_s);
        let slot_s = SLOT.get() as f64 / 1e9;
        let p_off = 1.0 - (-slot_s / cfg.mean_on_s).exp();
        let p_on = 1.0 - (-slot_s / cfg.mean_off_s).exp();
        let mut total = 0.0;
        for i in 0..self.base.len() {
            let w = if self.bursty[i] {
                let flip = self.rng.f64() < if self.on[i] { p_off } else { p_on };
                if flip {
                    self.on[i] = !self.on[i];
                }
                if self.on[i] {
                    self.base[i] / duty
                } else {
                    0.0
                }
            } else {
                self.base[i]
            };
            self.weights[i] = w;
            total += w;
        }
        self.slot_rate = total;
        if total > 0.0 {
            self.table = AliasTable::new(&self.weights);
        }
        self.t = self.slot_end.get() as f64;
        self.slot_end = self.slot_end + SLOT;
    }
}

impl Workload for AzureLike {
    fn next_arrival(&mut self) -> Option<Arrival> {
        loop {
            if Nanos(self.t as u64) >= self.cfg.end || self.base.is_empty() {
                return None;
            }
            if self.slot_rate > 0.0 {
                self.t += self.rng.exp(1e9 / self.slot_rate);
            } else {
                self.t = self.slot_end.get() as f64;
            }
            if self.t >= self.slot_end.get() as f64 {
                // Poisson is memoryless: restart the draw at the slot boundary.
                self.new_slot();
                continue;
            }
            let at = Nanos(self.t as u64);
            if at >= self.cfg.end {
                return None;
            }
            let i = self.table.sample(&mut self.rng) as u32;
            return Some(Arrival {
                at,
                model: ModelId(self.cfg.models.first.0 + i),
                slo: self.cfg.slo,
            });
        }
    }
}

/// A fixed list of arrivals (sorted on construction).
#[derive(Debug, Clone)]
pub struct Scripted {
    arrivals: std::vec::IntoIter<Arrival>,
}

impl Scripted {
    /// Replays `arrivals` in time order.
    pub fn new(mut arrivals: Vec<Arrival>) -> Self {
        arrivals.sort_by_key(|a| a.at);
        Self {
            arrivals: arrivals.into_iter(),
        }
    }
}

impl Workload for Scripted {
    fn next_arrival(&mut self) -> Option<Arrival> {
        self.arrivals.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(n: u32) -> ModelRange {
        ModelRange {
            first: ModelId(10),
            count: n,
        }
    }

    #[test]
    fn poisson_rate_and_range() {
        let end = Nanos::from_secs(10);
        let mut w = Poisson::uniform(range(5), 1000.0, Slo::Default, Nanos::ZERO, end, 1);
        let mut n = 0;
        let mut last = Nanos::ZERO;
        while let Some(a) = w.next_arrival() {
            assert!(a.at >= last && a.at < end);
            assert!((10..15).contains(&a.model.0));
            last = a.at;
            n += 1;
        }
        assert!((9_500..10_500).contains(&n), "{n}");
    }

    #[test]
    fn zipf_skews_towards_the_first_models() {
        let end = Nanos::from_secs(10);
        let mut w = Poisson::zipf(range(100), 1000.0, 1.2, Slo::Default, Nanos::ZERO, end, 2);
        let mut counts = [0u32; 100];
        while let Some(a) = w.next_arrival() {
            counts[(a.model.0 - 10) as usize] += 1;
        }
        assert!(counts[0] > 5 * counts[20]);
    }

    #[test]
    fn alias_table_matches_weights() {
        let t = AliasTable::new(&[1.0, 0.0, 3.0]);
        let mut r = Rng::new(5);
        let mut c = [0u32; 3];
        for _ in 0..40_000 {
            c[t.sample(&mut r)] += 1;
        }
        assert_eq!(c[1], 0);
        let ratio = f64::from(c[2]) / f64::from(c[0]);
        assert!((2.7..3.3).contains(&ratio), "{ratio}");
    }

    #[test]
    fn azure_like_keeps_the_mean_rate_and_is_heavy_tailed() {
        let cfg = AzureLikeConfig::new(range(2000), 2000.0, Slo::Default, Nanos::from_secs(30), 3);
        let mut w = AzureLike::new(cfg);
        let mut rates: Vec<f64> = w.mean_rates().to_vec();
        rates.sort_by(|a, b| b.total_cmp(a));
        let top1: f64 = rates[..20].iter().sum::<f64>() / rates.iter().sum::<f64>();
        assert!(top1 > 0.1, "top 1% share {top1}");
        let mut n = 0u64;
        while let Some(a) = w.next_arrival() {
            assert!(a.at < Nanos::from_secs(30));
            n += 1;
        }
        let rate = n as f64 / 30.0;
        // Bursty on/off makes the total noisy; the mean holds loosely.
        assert!((1000.0..3000.0).contains(&rate), "{rate}");
    }
}
