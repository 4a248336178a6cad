//! Batch choice (reference 3.4, INFER4's strategies).
//!
//! A model's queue is sorted by completion target. A *strategy* is a pair (request
//! `i`, batch size `b`): run `b` requests starting with request `i`. It is feasible at
//! predicted start `s` if `s + est(b) <= target_i` (request `i` is the most urgent in
//! that batch, so every member meets its target) and at least `b` requests are queued
//! from `i` on. Its priority is its latest start, `target_i − est(b)`. The chosen
//! strategy is the feasible one with the earliest latest start, ties going to the
//! larger batch; for each `b` the best `i` is the first feasible one.
//!
//! Consequences:
//! - With a short queue, every strategy starts at the head, and the rule gives the
//!   largest batch that still meets the head's target (and never a padded batch: five
//!   queued requests run as a batch of 4, the fifth waits).
//! - With a backlog, heads too close to their target to join a large batch are
//!   skipped (answered `ControllerSkipped`, original status 7) when the large batch is
//!   the more pressing strategy. This keeps throughput up under overload instead of
//!   spending the GPU on a stream of near-expiry batch-1 runs.

use clockwork_core::Nanos;

/// The chosen strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// Index into the usable sizes.
    pub size_index: usize,
    /// Queue entries before the batch to skip.
    pub skip: usize,
}

/// Picks a strategy. `sizes` are the usable batch sizes, ascending; `estimate(k)` is
/// the execution estimate of `sizes[k]`; the queue holds `n` requests whose targets,
/// `target(i)`, are non-decreasing; `start` is the predicted start. `None` when no
/// request can complete in time even alone.
pub fn choose_batch(
    sizes: &[u32],
    estimate: impl Fn(usize) -> Nanos,
    n: usize,
    target: impl Fn(usize) -> Nanos,
    start: Nanos,
) -> Option<Choice> {
    let mut best: Option<(Nanos, Choice)> = None;
    for (k, &b) in sizes.iter().enumerate() {
        let b = b as usize;
        if b > n {
            break;
        }
        let est = estimate(k);
        let need = start + est;
        // First request whose target leaves room for this batch size.
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if target(mid) < need {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if n - lo < b {
            continue;
        }
        let latest_start = target(lo) - est;
        if best.is_none_or(|(p, _)| latest_start <= p) {
            best = Some((
                latest_start,
                Choice {
                    size_index: k,
                    skip: lo,
                },
            ));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::model::resnet50;
    use proptest::prelude::*;

    fn r50() -> (Vec<u32>, Vec<Nanos>) {
        let p = resnet50();
        (
            p.batches.iter().map(|b| b.batch_size).collect(),
            p.batches.iter().map(|b| b.exec_time).collect(),
        )
    }

    fn ms(v: u64) -> Nanos {
        Nanos::from_millis(v)
    }

    #[test]
    fn short_queue_takes_the_largest_filled_batch_meeting_the_head() {
        let (sizes, est) = r50();
        let e = |i: usize| est[i];
        let start = ms(10);
        // 100 requests, all with plenty of time: 16 from the head.
        let c = choose_batch(&sizes, e, 100, |_| ms(100), start).unwrap();
        assert_eq!(
            c,
            Choice {
                size_index: 4,
                skip: 0
            }
        );
        // 5 queued: 4, never a padded 8.
        let c = choose_batch(&sizes, e, 5, |_| ms(100), start).unwrap();
        assert_eq!(
            c,
            Choice {
                size_index: 2,
                skip: 0
            }
        );
        // Head target 10 ms after start and everyone else equally tight: b4 (7.5 ms).
        let c = choose_batch(&sizes, e, 100, |_| ms(20), start).unwrap();
        assert_eq!(
            c,
            Choice {
                size_index: 2,
                skip: 0
            }
        );
        // Nothing fits.
        assert_eq!(
            choose_batch(&sizes, e, 100, |_| start + Nanos::from_micros(3_000), start),
            None
        );
    }

    #[test]
    fn backlog_skips_near_expiry_heads_for_a_more_pressing_large_batch() {
        let (sizes, est) = r50();
        let e = |i: usize| est[i];
        let start = ms(10);
        // Two heads with 4 ms of slack, then 40 requests with 25 ms of slack. The
        // heads' b1 latest start (14 - 3.32 = 10.68) precedes the b16 batch's
        // (35 - 21.73 = 13.27): the heads go first, at b1.
        let t = |i: usize| if i < 2 { ms(14) } else { ms(35) };
        let c = choose_batch(&sizes, e, 42, t, start).unwrap();
        assert_eq!(
            c,
            Choice {
                size_index: 0,
                skip: 0
            }
        );
        // Heads with 12 ms of slack (b1 latest start 18.68) vs the b16 batch behind
        // them (latest start 13.27): the batch is more pressing; heads are skipped.
        let t = |i: usize| if i < 2 { ms(22) } else { ms(35) };
        let c = choose_batch(&sizes, e, 42, t, start).unwrap();
        assert_eq!(
            c,
            Choice {
                size_index: 4,
                skip: 2
            }
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn choice_is_feasible_and_no_feasible_strategy_is_more_pressing(
            mut targets in proptest::collection::vec(0u64..80_000_000, 1..40),
            start in 0u64..30_000_000,
        ) {
            targets.sort_unstable();
            let (sizes, est) = r50();
            let start = Nanos(start);
            let t = |i: usize| Nanos(targets[i]);
            let n = targets.len();
            let got = choose_batch(&sizes, |k| est[k], n, t, start);
            // Brute force over all (i, b).
            let mut best: Option<Nanos> = None;
            for (k, &b) in sizes.iter().enumerate() {
                for i in 0..n {
                    if n - i >= b as usize && start + est[k] <= t(i) {
                        let p = t(i) - est[k];
                        best = Some(best.map_or(p, |q: Nanos| q.min(p)));
                    }
                }
            }
            match got {
                None => prop_assert!(best.is_none()),
                Some(c) => {
                    let b = sizes[c.size_index] as usize;
                    prop_assert!(n - c.skip >= b);
                    prop_assert!(start + est[c.size_index] <= t(c.skip));
                    prop_assert_eq!(Some(t(c.skip) - est[c.size_index]), best);
                }
            }
        }
    }
}
