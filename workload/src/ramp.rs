//! The many-models ramp (`bursty_experiment`, implemented in the original as
//! `bursty_experiment2`; §6.2, Fig 6): one "minor" model at a constant Poisson rate,
//! plus `majors` models that share a constant total Poisson rate evenly among those
//! active. No major is active during the lead-in; then `increment` more majors become
//! active at the start of every interval until all are. Majors are models
//! `0..majors`; the minor is model `majors`.

use super::arrival::{Arrival, ArrivalSource};
use super::error::{positive, SpecError};
use super::process::{to_nanos, PoissonClock};
use super::slo::{BuiltSlo, SloPlan};
use clockwork_core::rng::Rng;
use clockwork_core::time::Nanos;
use rand::RngExt;

/// A many-models ramp.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RampSpec {
    /// Number of major models (3600 in the paper).
    pub majors: usize,
    /// Total rate shared by the active majors, r/s (1000).
    pub major_rate: f64,
    /// Rate of the minor model, r/s (200).
    pub minor_rate: f64,
    /// Time before the first major becomes active (300 s; the README says 15 min).
    pub lead_in: Nanos,
    /// How often more majors become active (1 s).
    pub interval: Nanos,
    /// Majors added per interval (1).
    pub increment: usize,
    /// SLO of each request (the paper: 100 ms).
    pub slo: SloPlan,
}

impl Default for RampSpec {
    /// The paper's configuration with a 100 ms SLO.
    fn default() -> Self {
        Self {
            majors: 3600,
            major_rate: 1000.0,
            minor_rate: 200.0,
            lead_in: Nanos::from_secs(300),
            interval: Nanos::from_secs(1),
            increment: 1,
            slo: SloPlan::Fixed(clockwork_core::client::Slo::Absolute(Nanos::from_millis(
                100,
            ))),
        }
    }
}

impl RampSpec {
    /// Majors active at `t`.
    pub fn active_majors(&self, t: Nanos) -> usize {
        if t < self.lead_in || self.interval == Nanos::ZERO {
            return 0;
        }
        let k = (t - self.lead_in).get() / self.interval.get();
        let steps = usize::try_from(k).unwrap_or(usize::MAX).saturating_add(1);
        steps.saturating_mul(self.increment).min(self.majors)
    }

    /// When the last major becomes active.
    pub fn fully_active_at(&self) -> Nanos {
        let steps = self
            .majors
            .div_ceil(self.increment.max(1))
            .saturating_sub(1);
        self.lead_in + Nanos(self.interval.get().saturating_mul(steps as u64))
    }
}

/// The generator of a [`RampSpec`].
#[derive(Debug)]
pub struct Ramp {
    spec: RampSpec,
    slo: BuiltSlo,
    major_rng: Rng,
    minor_rng: Rng,
    major: PoissonClock,
    minor: PoissonClock,
    next_major: Option<f64>,
    next_minor: Option<f64>,
}

impl Ramp {
    /// Build the generator; `seed` fixes every arrival.
    pub fn new(spec: &RampSpec, seed: u64) -> Result<Self, SpecError> {
        if spec.majors == 0 {
            return Err(SpecError::NoModels("ramp"));
        }
        positive("ramp major rate", spec.major_rate)?;
        positive("ramp minor rate", spec.minor_rate)?;
        positive("ramp interval", spec.interval.get() as f64)?;
        positive("ramp increment", spec.increment as f64)?;
        let mut this = Self {
            spec: *spec,
            slo: spec.slo.build()?,
            major_rng: Rng::derive(seed, 0x4A_0001),
            minor_rng: Rng::derive(seed, 0x4A_0002),
            major: PoissonClock::new(Nanos::ZERO),
            minor: PoissonClock::new(Nanos::ZERO),
            next_major: None,
            next_minor: None,
        };
        this.next_major = this.draw_major();
        this.next_minor = this.draw_minor();
        Ok(this)
    }

    fn draw_major(&mut self) -> Option<f64> {
        let (lead_in, rate) = (self.spec.lead_in, self.spec.major_rate);
        self.major.next(&mut self.major_rng, |t| {
            Some(if t < lead_in {
                (0.0, lead_in)
            } else {
                (rate, Nanos::MAX)
            })
        })
    }

    fn draw_minor(&mut self) -> Option<f64> {
        let rate = self.spec.minor_rate;
        self.minor
            .next(&mut self.minor_rng, |_| Some((rate, Nanos::MAX)))
    }
}

impl ArrivalSource for Ramp {
    fn next_arrival(&mut self) -> Option<Arrival> {
        let major_first = match (self.next_major, self.next_minor) {
            (Some(a), Some(b)) => a <= b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let (t, model) = if major_first {
            let t = self.next_major?;
            let at = to_nanos(t);
            // Splitting a Poisson process uniformly over the active majors gives each an
            // independent Poisson process at `major_rate / active`.
            let active = self.spec.active_majors(at).max(1);
            let model = self.major_rng.random_range(0..active);
            self.next_major = self.draw_major();
            (at, model)
        } else {
            let t = self.next_minor?;
            self.next_minor = self.draw_minor();
            (to_nanos(t), self.spec.majors)
        };
        let slo = self.slo.at(t)?;
        Some(Arrival { at: t, model, slo })
    }

    fn models(&self) -> usize {
        self.spec.majors + 1
    }
}
