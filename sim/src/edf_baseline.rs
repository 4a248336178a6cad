//! A simple earliest-deadline-first policy on one simulated GPU: the *baseline* the
//! tight-SLO rows compare the real scheduler against (issue 13). It is not Clockwork's
//! scheduler and shares none of its code.
//!
//! Every model is resident; there is no network, no controller and no margin: requests
//! queue per model the moment they arrive, and whenever the GPU is free the policy
//! drops the queued requests that could no longer complete by their deadline even
//! alone, takes the model whose oldest request has the earliest deadline, and runs the
//! largest supported batch of that model's queue that still completes by that
//! request's deadline (by the profile's times). The GPU's real times carry the same
//! seeded noise as the simulated devices ([`clockwork_gpu::Jitter`]). A request counts
//! as served when its batch ends by its deadline.

use clockwork_core::{ModelProfile, Nanos, Slo};
use clockwork_gpu::{Jitter, NoiseModel};
use clockwork_workload::ArrivalSource;
use std::collections::VecDeque;

/// Outcome of a baseline run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineReport {
    /// Requests offered.
    pub offered: u64,
    /// Requests whose batch ended by their deadline.
    pub served: u64,
    /// Batches run.
    pub batches: u64,
}

impl BaselineReport {
    /// `served / offered`.
    pub fn attainment(&self) -> f64 {
        self.served as f64 / self.offered.max(1) as f64
    }
}

/// Runs the EDF baseline on one GPU holding `instances` copies of `profile`, with
/// arrivals from `source` before `until` (model index `i` is instance `i`; indices at
/// or above `instances` are ignored), `Slo::Default` resolved to `default_slo` and a
/// factor SLO to that multiple of the batch-1 time.
pub fn run_edf_baseline(
    profile: &ModelProfile,
    instances: usize,
    source: &mut dyn ArrivalSource,
    until: Nanos,
    default_slo: Nanos,
    noise: NoiseModel,
    seed: u64,
) -> BaselineReport {
    let sizes: Vec<(u32, Nanos)> = profile
        .batches
        .iter()
        .map(|b| (b.batch_size, b.exec_time))
        .collect();
    let b1 = sizes.first().map_or(Nanos::ZERO, |s| s.1);
    let mut jitter = Jitter::new(noise, seed, 0);
    // Per model: deadlines, non-decreasing for a fixed SLO (kept sorted on insert).
    let mut queues: Vec<VecDeque<Nanos>> = vec![VecDeque::new(); instances];
    let mut report = BaselineReport {
        offered: 0,
        served: 0,
        batches: 0,
    };
    let mut free_at = Nanos::ZERO;
    let mut next = source.next_arrival().filter(|a| a.at < until);
    loop {
        // Admit every arrival up to the moment the GPU is free.
        while let Some(a) = next.filter(|a| a.at <= free_at) {
            admit(
                &mut queues,
                &mut report,
                a.model,
                a.at,
                a.slo,
                default_slo,
                b1,
            );
            next = source.next_arrival().filter(|a| a.at < until);
        }
        let now = free_at;
        // Drop what cannot finish even alone; find the earliest head deadline.
        let mut pick: Option<(Nanos, usize)> = None;
        for (m, q) in queues.iter_mut().enumerate() {
            while q.front().is_some_and(|&d| now + b1 > d) {
                q.pop_front();
            }
            if let Some(&d) = q.front() {
                if pick.is_none_or(|(best, _)| d < best) {
                    pick = Some((d, m));
                }
            }
        }
        let Some((head, m)) = pick else {
            // Idle until the next arrival.
            match next {
                Some(a) => {
                    free_at = free_at.max(a.at);
                    continue;
                }
                None => break,
            }
        };
        let q = &mut queues[m];
        let (size, est) = sizes
            .iter()
            .rev()
            .find(|&&(b, t)| b as usize <= q.len() && now + t <= head)
            .copied()
            .unwrap_or((1, b1));
        let end = now + jitter.apply(est);
        for _ in 0..size {
            if let Some(d) = q.pop_front() {
                if end <= d {
                    report.served += 1;
                }
            }
        }
        report.batches += 1;
        free_at = end;
    }
    report
}

fn admit(
    queues: &mut [VecDeque<Nanos>],
    report: &mut BaselineReport,
    model: usize,
    at: Nanos,
    slo: Slo,
    default_slo: Nanos,
    b1: Nanos,
) {
    let Some(q) = queues.get_mut(model) else {
        return;
    };
    report.offered += 1;
    let slo = match slo {
        Slo::Default => default_slo,
        Slo::Absolute(n) => n,
        Slo::Factor(f) => Nanos((b1.get() as f64 * f64::from(f)).max(0.0) as u64),
    };
    let d = at + slo;
    let pos = q.partition_point(|&x| x <= d);
    q.insert(pos, d);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::model::resnet50;
    use clockwork_workload::{OpenLoop, OpenLoopSpec, SloPlan};

    fn source(models: usize, rate: f64, slo: Nanos) -> OpenLoop {
        let spec = OpenLoopSpec {
            slo: SloPlan::Fixed(Slo::Absolute(slo)),
            ..OpenLoopSpec::poisson(models, rate)
        };
        OpenLoop::new(&spec, 7).unwrap()
    }

    #[test]
    fn light_load_is_all_served_and_overload_is_not() {
        let p = resnet50();
        let slo = Nanos::from_millis(100);
        let until = Nanos::from_secs(5);
        let light = run_edf_baseline(
            &p,
            4,
            &mut source(4, 50.0, slo),
            until,
            slo,
            NoiseModel::None,
            1,
        );
        assert!(light.offered > 200);
        assert_eq!(light.served, light.offered);
        // b16 runs 16 requests in 21.73 ms: about 736 r/s at most.
        let over = run_edf_baseline(
            &p,
            4,
            &mut source(4, 1500.0, slo),
            until,
            slo,
            NoiseModel::None,
            1,
        );
        // Never above the GPU's best throughput; batching keeps it above batch-1's
        // 301 r/s (EDF spends much of the GPU on near-deadline small batches).
        let served_rate = over.served as f64 / 5.0;
        assert!(served_rate < 760.0 && served_rate > 301.0, "{served_rate}");
        assert!(over.served < over.offered);
    }
}
