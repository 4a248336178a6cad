//! [`AzureLike`]: a cheap, heavy-tailed and bursty open loop in the manner of the Azure
//! Functions trace, for simulations with many models (§6.6 runs 20,000 on 500 GPUs).
//!
//! Per-model mean rates are lognormal (a few models carry most of the load); a fraction
//! of the models is bursty, switching ON and OFF with exponential period lengths
//! sampled once per one-second slot, its rate while ON scaled so that the mean holds;
//! within a slot arrivals are Poisson at the slot's total rate, each for a model drawn
//! by its rate. A draw costs O(1); a slot boundary costs O(models).
//!
//! Unlike [`AzureReplay`](crate::azure::AzureReplay), which replays a trace (real or
//! the calibrated synthetic one), nothing here is calibrated against the published
//! trace; unlike [`Bursty`](crate::Bursty), every model keeps its own mean rate.

use crate::alias::AliasTable;
use crate::arrival::{Arrival, ArrivalSource};
use crate::error::{positive, SpecError};
use clockwork_core::client::Slo;
use clockwork_core::rng::Rng;
use clockwork_core::time::Nanos;

/// Parameters of [`AzureLike`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AzureLikeConfig {
    /// Model instances addressed (`0..models`).
    pub models: usize,
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
    /// Defaults: sigma 2, half the models bursty with 5 s on / 15 s off, from time 0.
    pub fn new(models: usize, rate: f64, slo: Slo, end: Nanos, seed: u64) -> Self {
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

    /// Whether [`AzureLike::new`] accepts these parameters: at least one model, a
    /// positive rate and ON/OFF periods, a finite non-negative sigma, a bursty fraction
    /// in `[0, 1]`.
    pub fn check(&self) -> Result<(), SpecError> {
        if self.models == 0 {
            return Err(SpecError::NoModels("azure-like"));
        }
        positive("azure-like rate", self.rate)?;
        positive("azure-like mean ON period", self.mean_on_s)?;
        positive("azure-like mean OFF period", self.mean_off_s)?;
        if !(self.sigma.is_finite() && self.sigma >= 0.0) {
            return Err(SpecError::NotPositive {
                what: "azure-like sigma",
                value: self.sigma,
            });
        }
        if !(0.0..=1.0).contains(&self.bursty_fraction) {
            return Err(SpecError::NotPositive {
                what: "azure-like bursty fraction (at most 1)",
                value: self.bursty_fraction,
            });
        }
        Ok(())
    }
}

/// The generator of an [`AzureLikeConfig`] (see the module docs).
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
    /// The generator of `cfg` (refused unless [`AzureLikeConfig::check`] passes);
    /// `cfg.seed` fixes every arrival.
    pub fn new(cfg: AzureLikeConfig) -> Result<Self, SpecError> {
        cfg.check()?;
        let mut rng = Rng::derive(cfg.seed, 2);
        let n = cfg.models;
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
        Ok(me)
    }

    /// Per-model mean rates (requests per second), in model order.
    pub fn mean_rates(&self) -> &[f64] {
        &self.base
    }

    fn new_slot(&mut self) {
        let cfg = &self.cfg;
        let duty = cfg.mean_on_s / (cfg.mean_on_s + cfg.mean_off_s);
        let slot_s = SLOT.get() as f64 / 1e9;
        let p_off = 1.0 - (-slot_s / cfg.mean_on_s).exp();
        let p_on = 1.0 - (-slot_s / cfg.mean_off_s).exp();
        for i in 0..self.base.len() {
            self.weights[i] = if self.bursty[i] {
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
        }
        // A slot with every model OFF has no table and no arrivals.
        match AliasTable::new(&self.weights) {
            Ok(table) => {
                self.slot_rate = self.weights.iter().sum();
                self.table = table;
            }
            Err(_) => self.slot_rate = 0.0,
        }
        self.t = self.slot_end.get() as f64;
        self.slot_end = self.slot_end + SLOT;
    }
}

impl ArrivalSource for AzureLike {
    fn next_arrival(&mut self) -> Option<Arrival> {
        loop {
            if Nanos(self.t as u64) >= self.cfg.end {
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
            return Some(Arrival {
                at,
                model: self.table.sample(&mut self.rng),
                slo: self.cfg.slo,
            });
        }
    }

    fn models(&self) -> usize {
        self.cfg.models
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_mean_rate_and_is_heavy_tailed() {
        let end = Nanos::from_secs(30);
        let mut w =
            AzureLike::new(AzureLikeConfig::new(2000, 2000.0, Slo::Default, end, 3)).unwrap();
        let mut rates: Vec<f64> = w.mean_rates().to_vec();
        rates.sort_by(|a, b| b.total_cmp(a));
        let top1: f64 = rates[..20].iter().sum::<f64>() / rates.iter().sum::<f64>();
        assert!(top1 > 0.1, "top 1% share {top1}");
        let mut n = 0u64;
        let mut last = Nanos::ZERO;
        while let Some(a) = w.next_arrival() {
            assert!(a.at >= last && a.at < end);
            assert!(a.model < 2000);
            last = a.at;
            n += 1;
        }
        let rate = n as f64 / 30.0;
        // Bursty on/off makes the total noisy; the mean holds loosely.
        assert!((1000.0..3000.0).contains(&rate), "{rate}");
    }

    #[test]
    fn starts_at_its_start_and_the_same_seed_repeats_itself() {
        let mut cfg = AzureLikeConfig::new(50, 500.0, Slo::Default, Nanos::from_secs(12), 9);
        cfg.start = Nanos::from_secs(10);
        let run = || {
            let mut w = AzureLike::new(cfg).unwrap();
            std::iter::from_fn(move || w.next_arrival()).collect::<Vec<_>>()
        };
        let a = run();
        assert!(a.len() > 500, "{}", a.len());
        assert!(a.iter().all(|x| x.at >= Nanos::from_secs(10)));
        assert_eq!(a, run());
    }

    #[test]
    fn bad_parameters_are_errors() {
        let ok = AzureLikeConfig::new(10, 100.0, Slo::Default, Nanos::from_secs(1), 1);
        assert!(AzureLike::new(AzureLikeConfig { models: 0, ..ok }).is_err());
        assert!(AzureLike::new(AzureLikeConfig { rate: -1.0, ..ok }).is_err());
        assert!(AzureLike::new(AzureLikeConfig {
            rate: f64::NAN,
            ..ok
        })
        .is_err());
        assert!(AzureLike::new(AzureLikeConfig {
            bursty_fraction: 1.5,
            ..ok
        })
        .is_err());
        assert!(AzureLike::new(AzureLikeConfig {
            mean_on_s: 0.0,
            ..ok
        })
        .is_err());
    }
}
