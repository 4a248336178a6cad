//! Which model a busy GPU runs next: a one-step rollout of earliest-deadline-first
//! over the requests already queued (issue 13, "better choices near the deadline").
//!
//! The dispatch heap hands a GPU the model whose queue head is most urgent, and the
//! batch is the largest that still meets that head's target: earliest-deadline-first
//! with batching. When everything queued fits, that order serves everything; when it
//! does not (a burst on a GPU near saturation, or SLOs a few batches long), the most
//! urgent head is not always the best next batch: a head that only just makes it can
//! cost two requests of other models their targets, where a batch of another model
//! first would have served more.
//!
//! So, under pressure, each candidate first batch — for each of the few most urgent
//! models, its largest batch from the head that meets the head's target — is scored
//! by the requests that would complete by their targets if that batch ran first and
//! earliest-deadline-first then ran the rest of the known queues
//! ([`served_after`]), and the candidate serving most wins, ties going to plain
//! earliest-deadline-first. This is a rollout of a base policy: on the requests it
//! sees it never serves fewer than the base policy would. It looks only at queued
//! requests (arrivals to come are unknown) and at the `MAX_CANDIDATES` most urgent
//! models (with no network and no margins, on issue 13's rows it serves 1-2 points more
//! than earliest-deadline-first at 5 and 2.5 ms: `sim/examples/policy_lab.rs`,
//! `docs/benchmarks.md`).
//!
//! The same machinery decides admission under pressure: a request is admitted when
//! the plan the dispatch would follow with it added (the rollout's first batch, then
//! earliest-deadline-first) serves it ([`serves`]); the batch-1 work-ahead estimate is kept for GPUs under no pressure and
//! models with several replicas.
//!
//! Pure functions over slices: the scheduler copies each candidate's live targets
//! into scratch space it reuses; a decision allocates only its small vector of views.

use clockwork_core::Nanos;

/// Most models a rollout compares (the popped one and the next most urgent).
pub const MAX_CANDIDATES: usize = 16;

/// Most queued requests of one model a rollout looks at.
pub const MAX_QUEUED: usize = 64;

/// One model's queue as a rollout sees it.
#[derive(Debug, Clone, Copy)]
pub struct QueueView<'a> {
    /// Completion targets of its live queued requests, earliest first.
    pub targets: &'a [Nanos],
    /// Usable batch sizes, ascending (the first is 1).
    pub sizes: &'a [u32],
    /// Execution estimate of each usable size.
    pub est: &'a [Nanos],
}

impl QueueView<'_> {
    /// The largest usable size index from request `from` on that starts at `t` and
    /// completes by that request's target, if any.
    fn largest_fitting(&self, from: usize, t: Nanos) -> Option<usize> {
        let head = *self.targets.get(from)?;
        let left = self.targets.len() - from;
        (0..self.sizes.len())
            .rev()
            .find(|&k| self.sizes[k] as usize <= left && t + self.est[k] <= head)
    }

    /// The batch-1 estimate.
    fn est1(&self) -> Nanos {
        self.est.first().copied().unwrap_or(Nanos::ZERO)
    }

    /// The first request from `from` on that can still make it alone from `t` (the
    /// queue's length if none can).
    fn first_fitting(&self, from: usize, t: Nanos) -> usize {
        let est1 = self.est1();
        from + self.targets[from.min(self.targets.len())..].partition_point(|&d| t + est1 > d)
    }
}

/// One step of earliest-deadline-first with batching at `t`: every queue's heads that
/// can no longer make it even alone are dropped (`from` moves past them; their count
/// is returned), then the queue with the most urgent head (latest start at batch 1)
/// runs its largest batch that meets that head's target: `(queue, size index)`, or
/// `None` when nothing is left.
fn edf_step(
    t: Nanos,
    queues: &[QueueView<'_>],
    from: &mut [usize],
) -> (usize, Option<(usize, usize)>) {
    let mut dropped = 0;
    let mut pick: Option<(Nanos, usize)> = None;
    for (q, view) in queues.iter().enumerate() {
        let first = view.first_fitting(from[q], t);
        dropped += first - from[q];
        from[q] = first;
        let Some(&head) = view.targets.get(first) else {
            continue;
        };
        let u = head.saturating_sub(view.est1());
        if pick.is_none_or(|(best, _)| u < best) {
            pick = Some((u, q));
        }
    }
    let batch = pick.and_then(|(_, q)| Some((q, queues[q].largest_fitting(from[q], t)?)));
    (dropped, batch)
}

/// Whether request `target.1` of queue `target.0` completes by its target when the
/// dispatch runs the queues from `start`: its first batch chosen as [`best_first`]
/// chooses it (from the most urgent head that can still make it), then
/// earliest-deadline-first with batching as in [`served_after`]. The admission test of
/// a request under pressure: admitted when the plan the GPU would follow serves it.
pub fn serves(
    start: Nanos,
    queues: &[QueueView<'_>],
    target: (usize, usize),
    from: &mut [usize],
) -> bool {
    // The most urgent queue whose head (after the doomed ones) can still make it.
    from.iter_mut().for_each(|f| *f = 0);
    let (_, first_batch) = edf_step(start, queues, from);
    if from[target.0] > target.1 {
        // Doomed already.
        return false;
    }
    let Some((base, _)) = first_batch else {
        return false;
    };
    // `best_first` scores from each queue's front; doomed heads are dropped by its
    // rollouts, and the chosen queue's head can make it.
    let Some((q, k)) = best_first(start, queues, base, from) else {
        return false;
    };
    from.iter_mut().for_each(|f| *f = 0);
    // The chosen batch starts at the first request of `q` that can make it.
    let first = queues[q].first_fitting(0, start);
    let b = queues[q].sizes[k] as usize;
    if q == target.0 && (first..first + b).contains(&target.1) {
        return true;
    }
    from[q] = first + b;
    edf_serves(start + queues[q].est[k], queues, target, from)
}

/// [`serves`] after the first batch: earliest-deadline-first from `t` with the queues
/// at positions `from`.
fn edf_serves(
    mut t: Nanos,
    queues: &[QueueView<'_>],
    target: (usize, usize),
    from: &mut [usize],
) -> bool {
    loop {
        let (_, batch) = edf_step(t, queues, from);
        if from[target.0] > target.1 {
            // Dropped: it could no longer make it even alone.
            return false;
        }
        let Some((q, k)) = batch else {
            return false;
        };
        let b = queues[q].sizes[k] as usize;
        if q == target.0 && from[q] + b > target.1 {
            return true;
        }
        from[q] += b;
        t = t + queues[q].est[k];
    }
}

/// Requests served when, from `start`, earliest-deadline-first with batching runs the
/// queues from positions `from` on: repeatedly the model with the most urgent head
/// runs its largest batch that meets that head's target; heads that can no longer
/// make it even alone are dropped. `from` is left at the end positions.
pub fn served_after(start: Nanos, queues: &[QueueView<'_>], from: &mut [usize]) -> usize {
    served_beyond(start, queues, from, 0)
}

/// [`served_after`], giving up (with a count of at most `floor`) as soon as the requests
/// served so far plus all those left could not exceed `floor`.
fn served_beyond(
    start: Nanos,
    queues: &[QueueView<'_>],
    from: &mut [usize],
    floor: usize,
) -> usize {
    let mut t = start;
    let mut served = 0;
    let mut left: usize = queues
        .iter()
        .zip(from.iter())
        .map(|(v, &f)| v.targets.len().saturating_sub(f))
        .sum();
    loop {
        if floor > 0 && served + left <= floor {
            return served;
        }
        let (dropped, batch) = edf_step(t, queues, from);
        left -= dropped;
        let Some((q, k)) = batch else {
            return served;
        };
        let b = queues[q].sizes[k] as usize;
        from[q] += b;
        served += b;
        left -= b;
        t = t + queues[q].est[k];
    }
}

/// The first batch to run from `start`: `(queue, size index)`. `base` is the queue
/// earliest-deadline-first would run (its head is the most urgent and can still make
/// it). Returns `base` with its largest fitting size when that plan serves every
/// queued request or no other candidate serves more. `from` is scratch, one entry per
/// queue.
pub fn best_first(
    start: Nanos,
    queues: &[QueueView<'_>],
    base: usize,
    from: &mut [usize],
) -> Option<(usize, usize)> {
    // A candidate's rollout gives up once it cannot beat the best so far.
    let score = |q: usize, k: usize, from: &mut [usize], beat: usize| {
        from.iter_mut().for_each(|f| *f = 0);
        let b = queues[q].sizes[k] as usize;
        from[q] = b;
        b + served_beyond(
            start + queues[q].est[k],
            queues,
            from,
            beat.saturating_sub(b),
        )
    };
    let base_k = queues.get(base)?.largest_fitting(0, start)?;
    let mut best = (score(base, base_k, from, 0), base, base_k);
    let total: usize = queues.iter().map(|v| v.targets.len()).sum();
    for (q, view) in queues.iter().enumerate() {
        if best.0 == total {
            break;
        }
        if q == base {
            continue;
        }
        let Some(k) = view.largest_fitting(0, start) else {
            continue;
        };
        let s = score(q, k, from, best.0);
        if s > best.0 {
            best = (s, q, k);
        }
    }
    Some((best.1, best.2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn us(v: u64) -> Nanos {
        Nanos::from_micros(v)
    }

    const SIZES: [u32; 3] = [1, 2, 4];

    fn view<'a>(targets: &'a [Nanos], est: &'a [Nanos]) -> QueueView<'a> {
        QueueView {
            targets,
            sizes: &SIZES[..est.len()],
            est,
        }
    }

    #[test]
    fn everything_fits_keeps_the_most_urgent_head() {
        let est = [us(1_000), us(1_100), us(1_300)];
        let a = [us(5_000)];
        let b = [us(9_000), us(9_500)];
        let qs = [view(&a, &est), view(&b, &est)];
        let mut from = [0; 2];
        assert_eq!(best_first(Nanos::ZERO, &qs, 0, &mut from), Some((0, 0)));
        from = [0; 2];
        assert_eq!(served_after(Nanos::ZERO, &qs, &mut from), 3);
    }

    #[test]
    fn a_head_that_costs_two_others_gives_way() {
        // A's head only just fits (target 1.0 ms, b1 1.0 ms); B has two requests due
        // at 1.2 ms that fit together as a b2 (1.1 ms). EDF runs A, then B's two miss:
        // 1 served. B first serves 2 and A misses: 2 served.
        let est = [us(1_000), us(1_100)];
        let a = [us(1_000)];
        let b = [us(1_200), us(1_200)];
        let qs = [view(&a, &est), view(&b, &est)];
        let mut from = [0; 2];
        assert_eq!(best_first(Nanos::ZERO, &qs, 0, &mut from), Some((1, 1)));
        from = [0; 2];
        assert_eq!(served_after(Nanos::ZERO, &qs, &mut from), 1, "EDF alone");
    }

    #[test]
    fn admission_follows_the_plan_the_dispatch_would_choose() {
        // The queues of the test above: the dispatch runs B's pair first, so B's
        // second request is served (EDF alone would drop it) and A's head is not.
        let est = [us(1_000), us(1_100)];
        let a = [us(1_000)];
        let b = [us(1_200), us(1_200)];
        let qs = [view(&a, &est), view(&b, &est)];
        let mut from = [0; 2];
        assert!(serves(Nanos::ZERO, &qs, (1, 1), &mut from));
        assert!(!serves(Nanos::ZERO, &qs, (0, 0), &mut from));
        // Behind the pair, a third B request due later: EDF after the first batch.
        let b = [us(1_200), us(1_200), us(2_100)];
        let qs = [view(&a, &est), view(&b, &est)];
        assert!(serves(Nanos::ZERO, &qs, (1, 2), &mut from));
        // A request that cannot make it even alone is never served.
        let late = [us(500)];
        let qs = [view(&late, &est), view(&b, &est)];
        assert!(!serves(Nanos::ZERO, &qs, (0, 0), &mut from));
    }

    #[test]
    fn nothing_fitting_at_the_base_is_none() {
        let est = [us(1_000)];
        let a = [us(500)];
        let qs = [view(&a, &est)];
        assert_eq!(best_first(Nanos::ZERO, &qs, 0, &mut [0]), None);
    }

    /// Served count of a fixed first batch then EDF, by brute-force simulation.
    fn brute_edf(start: Nanos, qs: &[Vec<Nanos>], est: &[Nanos]) -> usize {
        let mut qs: Vec<Vec<Nanos>> = qs.to_vec();
        let mut t = start;
        let mut served = 0;
        loop {
            for q in qs.iter_mut() {
                while q.first().is_some_and(|&d| t + est[0] > d) {
                    q.remove(0);
                }
            }
            let Some((qi, _)) = qs
                .iter()
                .enumerate()
                .filter(|(_, q)| !q.is_empty())
                .min_by_key(|(i, q)| (q[0], *i))
            else {
                return served;
            };
            let q = &mut qs[qi];
            let k = (0..est.len())
                .rev()
                .find(|&k| SIZES[k] as usize <= q.len() && t + est[k] <= q[0])
                .unwrap_or(0);
            let b = SIZES[k] as usize;
            q.drain(..b);
            served += b;
            t = t + est[k];
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn never_worse_than_edf_and_scores_are_real(
            raw in proptest::collection::vec(proptest::collection::vec(0u64..8_000, 0..6), 1..5),
        ) {
            let est = [us(1_000), us(1_100), us(1_300)];
            let qs: Vec<Vec<Nanos>> = raw
                .into_iter()
                .map(|mut q| { q.sort_unstable(); q.into_iter().map(us).collect() })
                .collect();
            let views: Vec<QueueView<'_>> = qs.iter().map(|q| view(q, &est)).collect();
            let mut from = vec![0; qs.len()];
            let edf = brute_edf(Nanos::ZERO, &qs, &est);
            prop_assert_eq!(served_after(Nanos::ZERO, &views, &mut from), edf);
            // The EDF base: the most urgent head that fits alone.
            let base = qs
                .iter()
                .enumerate()
                .filter(|(_, q)| q.iter().any(|&d| est[0] <= d))
                .map(|(i, q)| (*q.iter().find(|&&d| est[0] <= d).unwrap_or(&q[0]), i))
                .min();
            let Some((_, base)) = base else { return Ok(()); };
            // Views from the base's first feasible request (as the scheduler drops
            // doomed heads before asking).
            let trimmed: Vec<Vec<Nanos>> = qs
                .iter()
                .map(|q| q.iter().copied().skip_while(|&d| est[0] > d).collect())
                .collect();
            let views: Vec<QueueView<'_>> = trimmed.iter().map(|q| view(q, &est)).collect();
            let (q, k) = best_first(Nanos::ZERO, &views, base, &mut from).unwrap();
            // The choice is feasible and serves at least what EDF serves.
            prop_assert!(est[k] <= trimmed[q][0]);
            let mut rest = trimmed.clone();
            rest[q].drain(..SIZES[k] as usize);
            let chosen = SIZES[k] as usize + brute_edf(est[k], &rest, &est);
            prop_assert!(chosen >= brute_edf(Nanos::ZERO, &trimmed, &est));
        }
    }
}
