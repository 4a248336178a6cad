//! SLO arithmetic and admission (reference 3.3, with the 3.12 fixes).
//!
//! For a request arriving at `arrival` with SLO `slo`:
//! - **deadline** = `arrival + slo`: the response must leave by then to count as met;
//! - **target** = `deadline − buffer`: batches are planned to *complete* by then
//!   (the buffer covers the result's trip back and the answer going out);
//! - **expire_at** = `target − b1_estimate − future`: the last moment at which a
//!   batch-1 dispatch could still meet the target. A request still queued after it
//!   is answered `Timeout` at once (before its deadline, never after). The scheduler
//!   arms one such timer per model, for its queue's front (queues are ordered by
//!   target, so the front always expires first), using the current estimate.
//!
//! **No exec_slo floor.** The original computed `exec_slo = max(slo − buffer,
//! schedule_ahead + buffer)` and so scheduled requests with tighter SLOs and reported
//! them late (reference 3.12). Here a request is refused up front (`Rejected`) when
//! even the optimistic plan — the earliest predicted start on any GPU that holds or
//! could load the model, plus the batch-1 estimate — misses its target. Requests that
//! pass are scheduled against their real target, however tight.

use clockwork_core::{Nanos, Slo};

/// The times that govern one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// The resolved SLO.
    pub slo: Nanos,
    /// `arrival + slo`.
    pub deadline: Nanos,
    /// `deadline − buffer`: planned completion bound.
    pub target: Nanos,
    /// `target − b1 − future`: queued past this, the request cannot be served.
    pub expire_at: Nanos,
}

/// Resolves a request's SLO: the default, an absolute value, or a factor of the
/// model's current batch-1 estimate. `None` for a zero, negative or non-finite SLO.
pub fn resolve_slo(slo: Slo, default: Nanos, b1_estimate: Nanos) -> Option<Nanos> {
    let v = match slo {
        Slo::Default => default,
        Slo::Absolute(n) => n,
        Slo::Factor(f) => {
            if !f.is_finite() || f <= 0.0 {
                return None;
            }
            let ns = (b1_estimate.get() as f64 * f64::from(f)).round();
            // Clamp into u64: absurdly large factors saturate at "forever".
            Nanos(if ns >= u64::MAX as f64 {
                u64::MAX
            } else {
                ns as u64
            })
        }
    };
    (v > Nanos::ZERO).then_some(v)
}

/// The deadlines of a request, or `None` when the SLO does not even cover the buffer
/// (no completion time could count as met).
pub fn deadlines(
    arrival: Nanos,
    slo: Nanos,
    buffer: Nanos,
    future: Nanos,
    b1_estimate: Nanos,
) -> Option<Deadlines> {
    if slo <= buffer {
        return None;
    }
    let deadline = arrival + slo;
    let target = deadline - buffer;
    Some(Deadlines {
        slo,
        deadline,
        target,
        expire_at: target - b1_estimate - future,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slo_resolution() {
        let d = Nanos::from_millis(100);
        let b1 = Nanos::from_micros(3_320);
        assert_eq!(resolve_slo(Slo::Default, d, b1), Some(d));
        assert_eq!(
            resolve_slo(Slo::Absolute(Nanos::from_millis(7)), d, b1),
            Some(Nanos::from_millis(7))
        );
        assert_eq!(
            resolve_slo(Slo::Factor(2.0), d, b1),
            Some(Nanos::from_micros(6_640))
        );
        assert_eq!(resolve_slo(Slo::Factor(0.0), d, b1), None);
        assert_eq!(resolve_slo(Slo::Factor(f32::NAN), d, b1), None);
        assert_eq!(resolve_slo(Slo::Factor(-1.0), d, b1), None);
        assert_eq!(resolve_slo(Slo::Absolute(Nanos::ZERO), d, b1), None);
        assert_eq!(resolve_slo(Slo::Factor(f32::MAX), d, b1), Some(Nanos::MAX));
    }

    #[test]
    fn deadline_arithmetic() {
        let ms = Nanos::from_millis;
        let d = deadlines(ms(1000), ms(100), ms(5), ms(1), ms(3)).unwrap();
        assert_eq!(d.deadline, ms(1100));
        assert_eq!(d.target, ms(1095));
        assert_eq!(d.expire_at, ms(1091));
        assert_eq!(deadlines(ms(0), ms(5), ms(5), ms(1), ms(3)), None);
        // Tight SLOs are kept (no floor); the expiry saturates at zero.
        let d = deadlines(ms(0), ms(6), ms(5), ms(1), ms(3)).unwrap();
        assert_eq!(d.target, ms(1));
        assert_eq!(d.expire_at, Nanos::ZERO);
    }
}
