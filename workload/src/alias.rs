//! [`AliasTable`]: Walker/Vose alias sampling, O(1) draws from a discrete distribution.
//! The one weighted sampler of the workload library (open-loop splits, the Azure
//! replay's per-minute picks, [`AzureLike`](crate::AzureLike)'s per-second rates) and of
//! the scheduler benchmark's request stream.

use crate::error::SpecError;
use clockwork_core::rng::Rng;

/// An alias table over a fixed list of outcome weights.
#[derive(Debug, Clone, Default)]
pub struct AliasTable {
    /// Per outcome: probability of keeping it, and its alias (one cache line access).
    slots: Vec<(f64, u32)>,
}

impl AliasTable {
    /// A table over `weights`: at least one, fewer than 2^32, each finite and
    /// non-negative, summing to more than zero.
    pub fn new(weights: &[f64]) -> Result<Self, SpecError> {
        if weights.is_empty() {
            return Err(SpecError::NoModels("weighted choice"));
        }
        let Ok(n) = u32::try_from(weights.len()) else {
            return Err(SpecError::NotPositive {
                what: "weighted choice outcomes (below 2^32)",
                value: weights.len() as f64,
            });
        };
        if let Some(&bad) = weights.iter().find(|w| !w.is_finite() || **w < 0.0) {
            return Err(SpecError::NotPositive {
                what: "weight",
                value: bad,
            });
        }
        let total: f64 = weights.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            return Err(SpecError::NotPositive {
                what: "sum of weights",
                value: total,
            });
        }
        let mut prob: Vec<f64> = weights.iter().map(|w| w * f64::from(n) / total).collect();
        let mut alias: Vec<u32> = (0..n).collect();
        let (mut small, mut large): (Vec<u32>, Vec<u32>) =
            (0..n).partition(|&i| prob[i as usize] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s as usize] = l;
            prob[l as usize] -= 1.0 - prob[s as usize];
            if prob[l as usize] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Left over by round-off: certain outcomes.
        for i in large.into_iter().chain(small) {
            prob[i as usize] = 1.0;
        }
        Ok(Self {
            slots: prob.into_iter().zip(alias).collect(),
        })
    }

    /// Draws an outcome's index (0 for an empty, default table).
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let i = rng.below(self.slots.len() as u64) as usize;
        match self.slots.get(i) {
            Some(&(keep, alias)) if rng.f64() >= keep => alias as usize,
            _ => i,
        }
    }

    /// Number of outcomes.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// No outcomes (only a default table).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_follow_the_weights() {
        let t = AliasTable::new(&[1.0, 0.0, 3.0]).unwrap();
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
    fn unusable_weights_are_errors() {
        assert!(AliasTable::new(&[]).is_err());
        assert!(AliasTable::new(&[0.0, 0.0]).is_err());
        assert!(AliasTable::new(&[1.0, -1.0]).is_err());
        assert!(AliasTable::new(&[1.0, f64::NAN]).is_err());
        assert!(AliasTable::new(&[f64::MAX, f64::MAX]).is_err());
    }

    #[test]
    fn a_default_table_draws_zero() {
        let t = AliasTable::default();
        assert!(t.is_empty());
        assert_eq!(t.sample(&mut Rng::new(1)), 0);
    }
}
