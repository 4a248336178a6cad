//! [`Scripted`]: a fixed list of arrivals replayed in time order, for tests and
//! hand-made scenarios.

use crate::arrival::{Arrival, ArrivalSource};

/// A fixed list of arrivals (sorted by time on construction; ties keep their order).
#[derive(Debug, Clone)]
pub struct Scripted {
    arrivals: std::vec::IntoIter<Arrival>,
    models: usize,
}

impl Scripted {
    /// Replays `arrivals` in time order. It addresses models `0..=` the largest index
    /// among them.
    pub fn new(mut arrivals: Vec<Arrival>) -> Self {
        arrivals.sort_by_key(|a| a.at);
        let models = arrivals.iter().map(|a| a.model + 1).max().unwrap_or(0);
        Self {
            arrivals: arrivals.into_iter(),
            models,
        }
    }
}

impl ArrivalSource for Scripted {
    fn next_arrival(&mut self) -> Option<Arrival> {
        self.arrivals.next()
    }

    fn models(&self) -> usize {
        self.models
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::client::Slo;
    use clockwork_core::time::Nanos;

    #[test]
    fn replays_in_time_order_and_counts_its_models() {
        let at = |ms, model| Arrival {
            at: Nanos::from_millis(ms),
            model,
            slo: Slo::Default,
        };
        let mut s = Scripted::new(vec![at(5, 0), at(1, 3), at(5, 1)]);
        assert_eq!(s.models(), 4);
        let order: Vec<_> = std::iter::from_fn(|| s.next_arrival())
            .map(|a| a.model)
            .collect();
        assert_eq!(order, [3, 0, 1]);
        assert_eq!(Scripted::new(Vec::new()).models(), 0);
    }
}
