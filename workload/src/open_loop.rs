//! Open-loop generators: a total rate split over the models, evenly, Zipf-skewed or by
//! explicit weights, with Poisson (exponential gaps) or fixed-rate arrivals. The rate
//! may be stepped every period (the original's `scalability-exp-1`).

use super::alias::AliasTable;
use super::arrival::{Arrival, ArrivalSource};
use super::error::{positive, SpecError};
use super::process::{to_nanos, PoissonClock, NS_PER_SEC};
use super::slo::{BuiltSlo, SloPlan};
use super::step::{BuiltLevel, Level};
use clockwork_core::rng::Rng;
use clockwork_core::time::Nanos;
use rand::RngExt;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// How the gaps between one model's arrivals are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Interarrival {
    /// Exponential gaps: a Poisson process. (The original's "Poisson" drew gaps from
    /// `std::poisson_distribution` over nanoseconds, which is almost constant; this is
    /// the process the paper describes.)
    #[default]
    Poisson,
    /// Constant gaps of `1 / rate`. Models are phase-shifted so that, with an even
    /// split, the merged stream is itself evenly spaced rather than synchronised bursts.
    Fixed,
}

/// How the total rate is divided among the models.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum RateSplit {
    /// Every model gets `rate / models`.
    #[default]
    Even,
    /// Model `i` gets a share proportional to `1 / (i + 1)^s`.
    Zipf(f64),
    /// Model `i` gets a share proportional to `weights[i]` (one weight per model).
    Weights(Vec<f64>),
}

/// An open-loop workload over `models` model instances.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenLoopSpec {
    /// Model instances addressed (`0..models`).
    pub models: usize,
    /// Total rate over all models, in requests per second.
    pub rate: Level,
    /// How the rate is split.
    pub split: RateSplit,
    /// Poisson or fixed-rate gaps.
    pub interarrival: Interarrival,
    /// SLO of each request.
    pub slo: SloPlan,
}

impl OpenLoopSpec {
    /// `rate` r/s in total, Poisson, split evenly over `models`, default SLO
    /// (`poisson-open-loop`, `comparison_experiment`).
    pub fn poisson(models: usize, rate: f64) -> Self {
        Self {
            models,
            rate: Level::Constant(rate),
            split: RateSplit::Even,
            interarrival: Interarrival::Poisson,
            slo: SloPlan::default(),
        }
    }

    /// `rate` r/s in total at fixed gaps, split evenly over `models`, default SLO.
    pub fn fixed(models: usize, rate: f64) -> Self {
        Self {
            interarrival: Interarrival::Fixed,
            ..Self::poisson(models, rate)
        }
    }

    /// Each model's share of the total rate (summing to 1).
    pub fn shares(&self) -> Result<Vec<f64>, SpecError> {
        if self.models == 0 {
            return Err(SpecError::NoModels("open loop"));
        }
        let raw: Vec<f64> = match &self.split {
            RateSplit::Even => vec![1.0; self.models],
            RateSplit::Zipf(s) => {
                if !s.is_finite() || *s < 0.0 {
                    return Err(SpecError::NotPositive {
                        what: "Zipf exponent",
                        value: *s,
                    });
                }
                (0..self.models)
                    .map(|i| (i as f64 + 1.0).powf(-s))
                    .collect()
            }
            RateSplit::Weights(w) => {
                if w.len() != self.models {
                    return Err(SpecError::WeightCount {
                        what: "open-loop weights",
                        got: w.len(),
                        models: self.models,
                    });
                }
                for &x in w {
                    if !x.is_finite() || x < 0.0 {
                        return Err(SpecError::NotPositive {
                            what: "open-loop weight",
                            value: x,
                        });
                    }
                }
                w.clone()
            }
        };
        let sum = positive("sum of open-loop weights", raw.iter().sum())?;
        Ok(raw.into_iter().map(|x| x / sum).collect())
    }
}

#[derive(Debug)]
enum Mode {
    Poisson {
        clock: PoissonClock,
        pick: Option<AliasTable>,
    },
    Fixed {
        heap: BinaryHeap<Reverse<(u64, usize)>>,
    },
}

/// The generator of an [`OpenLoopSpec`].
#[derive(Debug)]
pub struct OpenLoop {
    models: usize,
    shares: Vec<f64>,
    rate: BuiltLevel,
    slo: BuiltSlo,
    end: Nanos,
    rng: Rng,
    mode: Mode,
}

impl OpenLoop {
    /// Build the generator; `seed` fixes every arrival.
    pub fn new(spec: &OpenLoopSpec, seed: u64) -> Result<Self, SpecError> {
        let shares = spec.shares()?;
        let rate = spec.rate.build("open-loop rate")?;
        let slo = spec.slo.build()?;
        let end = match &rate {
            BuiltLevel::Constant(_) => slo.end(),
            BuiltLevel::Stepped(s) => s.end().min(slo.end()),
        };
        let uneven = !matches!(spec.split, RateSplit::Even);
        let mode = match spec.interarrival {
            Interarrival::Poisson => Mode::Poisson {
                clock: PoissonClock::new(Nanos::ZERO),
                pick: if uneven {
                    Some(AliasTable::new(&shares)?)
                } else {
                    None
                },
            },
            Interarrival::Fixed => {
                let mut heap = BinaryHeap::new();
                let n = shares.len() as f64;
                if let Some((r, _)) = rate.at(Nanos::ZERO) {
                    for (m, &share) in shares.iter().enumerate() {
                        if share > 0.0 {
                            let gap = NS_PER_SEC / (r * share);
                            let first = gap * (m as f64 + 0.5) / n;
                            heap.push(Reverse((first.to_bits(), m)));
                        }
                    }
                }
                Mode::Fixed { heap }
            }
        };
        Ok(Self {
            models: spec.models,
            shares,
            rate,
            slo,
            end,
            rng: Rng::derive(seed, 0x09E7),
            mode,
        })
    }

    /// Model `m`'s share of the total rate.
    pub fn share(&self, m: usize) -> f64 {
        self.shares.get(m).copied().unwrap_or(0.0)
    }
}

impl ArrivalSource for OpenLoop {
    fn next_arrival(&mut self) -> Option<Arrival> {
        let end = self.end;
        let (t, model) = match &mut self.mode {
            Mode::Poisson { clock, pick } => {
                let rate = &self.rate;
                let t = clock.next(&mut self.rng, |now| {
                    if now >= end {
                        return None;
                    }
                    rate.at(now).map(|(r, change)| (r, change.min(end)))
                })?;
                let model = match pick {
                    Some(table) => table.sample(&mut self.rng),
                    None => self.rng.random_range(0..self.models),
                };
                (t, model)
            }
            Mode::Fixed { heap } => {
                let Reverse((bits, model)) = heap.pop()?;
                let t = f64::from_bits(bits);
                if to_nanos(t) >= end {
                    heap.clear();
                    return None;
                }
                if let Some((r, _)) = self.rate.at(to_nanos(t)) {
                    let next = t + NS_PER_SEC / (r * self.shares[model]);
                    heap.push(Reverse((next.to_bits(), model)));
                }
                (t, model)
            }
        };
        let at = to_nanos(t);
        let slo = self.slo.at(at)?;
        Some(Arrival { at, model, slo })
    }

    fn models(&self) -> usize {
        self.models
    }
}
