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
//! - Unlike INFER4, heads are skipped only when that drops fewer requests: when the
//!   most pressing strategy would skip heads, a short lookahead (this model's batches
//!   back to back by INFER4's rule, until the pressing batch's last member is
//!   decided) counts the drops of opening with it and of opening with each batch from
//!   the head, and the fewest wins (ties keep the pressing batch). The original
//!   dropped requests it could have served, e.g. one head whose b16 misses by a hair
//!   where a b8 and another b8 serve everyone; under overload the large batch still
//!   wins.

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
/// `target(i)`, are non-decreasing; `start` is the predicted start. `lookahead`: `None`
/// for INFER4's rule alone (no lookahead, for an overloaded GPU), or the times the
/// model's other replicas' GPUs come free. `None` when no request can complete in
/// time even alone.
pub fn choose_batch(
    sizes: &[u32],
    estimate: impl Fn(usize) -> Nanos,
    n: usize,
    target: impl Fn(usize) -> Nanos,
    start: Nanos,
    lookahead: Option<&[Nanos]>,
) -> Option<Choice> {
    let q = Queue {
        sizes,
        estimate: &estimate,
        target: &target,
        n,
    };
    let pressing = q.most_pressing(0, start)?;
    let Some(others) = lookahead.filter(|_| pressing.skip > 0) else {
        return Some(pressing);
    };
    // The pressing batch would drop heads. Look ahead (this model alone, each later
    // batch by the INFER4 rule on whichever of its GPUs comes free first) until the
    // pressing batch's last member is decided, and count what each opening drops
    // among those requests: the pressing batch, or a batch from the head. Fewest drops
    // wins; ties keep the pressing batch.
    let horizon = pressing.skip + sizes[pressing.size_index] as usize;
    let mut free: Vec<Nanos> = Vec::with_capacity(others.len() + 1);
    let mut drops_after = |from: usize, done: Nanos| {
        free.clear();
        free.push(done);
        free.extend_from_slice(others);
        q.drops(from, horizon, &mut free)
    };
    let after_pressing = start + estimate(pressing.size_index);
    let mut best = (
        pressing.skip + drops_after(horizon, after_pressing),
        pressing,
    );
    for (k, &b) in sizes.iter().enumerate() {
        let b = b as usize;
        if b > n || best.0 == 0 {
            break;
        }
        let done = start + estimate(k);
        if done > target(0) {
            continue;
        }
        let drops = drops_after(b, done);
        // `<=`: among head batches, the larger one (less GPU time per request).
        if drops < best.0 || (drops == best.0 && best.1.skip == 0) {
            best = (
                drops,
                Choice {
                    size_index: k,
                    skip: 0,
                },
            );
        }
    }
    Some(best.1)
}

/// A model's queue as [`choose_batch`] sees it.
struct Queue<'a, E, T> {
    sizes: &'a [u32],
    estimate: &'a E,
    target: &'a T,
    n: usize,
}

impl<E: Fn(usize) -> Nanos, T: Fn(usize) -> Nanos> Queue<'_, E, T> {
    /// INFER4's rule over the requests from `from` on: the feasible strategy with the
    /// earliest latest start, ties to the larger batch. `skip` counts from `from`.
    fn most_pressing(&self, from: usize, start: Nanos) -> Option<Choice> {
        let (n, target) = (self.n, self.target);
        let mut best: Option<(Nanos, Choice)> = None;
        for (k, &b) in self.sizes.iter().enumerate() {
            let b = b as usize;
            if b > n - from {
                break;
            }
            let est = (self.estimate)(k);
            let need = start + est;
            // First request whose target leaves room for this batch size.
            let (mut lo, mut hi) = (from, n);
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
                        skip: lo - from,
                    },
                ));
            }
        }
        best.map(|(_, c)| c)
    }

    /// Requests among `from..horizon` dropped when batches by INFER4's rule run on
    /// the requests from `from` on, each on the GPU that comes free first (`free`:
    /// when each comes free; not empty).
    fn drops(&self, mut from: usize, horizon: usize, free: &mut [Nanos]) -> usize {
        let mut dropped = 0;
        while from < horizon {
            let Some(next) = free.iter_mut().min() else {
                return horizon - from;
            };
            let Some(c) = self.most_pressing(from, *next) else {
                return dropped + (horizon - from);
            };
            dropped += c.skip.min(horizon - from);
            from += c.skip + self.sizes[c.size_index] as usize;
            *next = *next + (self.estimate)(c.size_index);
        }
        dropped
    }
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
        let c = choose_batch(&sizes, e, 100, |_| ms(100), start, Some(&[])).unwrap();
        assert_eq!(
            c,
            Choice {
                size_index: 4,
                skip: 0
            }
        );
        // 5 queued: 4, never a padded 8.
        let c = choose_batch(&sizes, e, 5, |_| ms(100), start, Some(&[])).unwrap();
        assert_eq!(
            c,
            Choice {
                size_index: 2,
                skip: 0
            }
        );
        // Head target 10 ms after start and everyone else equally tight: b4 (7.5 ms).
        let c = choose_batch(&sizes, e, 100, |_| ms(20), start, Some(&[])).unwrap();
        assert_eq!(
            c,
            Choice {
                size_index: 2,
                skip: 0
            }
        );
        // Nothing fits.
        assert_eq!(
            choose_batch(
                &sizes,
                e,
                100,
                |_| start + Nanos::from_micros(3_000),
                start,
                Some(&[])
            ),
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
        let c = choose_batch(&sizes, e, 42, t, start, Some(&[])).unwrap();
        assert_eq!(
            c,
            Choice {
                size_index: 0,
                skip: 0
            }
        );
        // Heads with 12 ms of slack (b1 latest start 18.68) vs the b16 batch behind
        // them (latest start 13.27): the batch is more pressing, and even a b1 of the
        // heads first would end too late for it (10 + 3.32 > 13.27): heads are skipped.
        let t = |i: usize| if i < 2 { ms(22) } else { ms(35) };
        let c = choose_batch(&sizes, e, 42, t, start, Some(&[])).unwrap();
        assert_eq!(
            c,
            Choice {
                size_index: 4,
                skip: 2
            }
        );
    }

    #[test]
    fn heads_run_first_when_the_pressing_batch_still_fits_after_them() {
        let (sizes, est) = r50();
        let e = |i: usize| est[i];
        let start = ms(10);
        // Two heads due at 14, then 16 requests due at 40: the heads' b1 (latest start
        // 10.68) is more pressing than the b16 behind them (18.27): heads first, as in
        // INFER4.
        let t = |i: usize| if i < 2 { ms(14) } else { ms(40) };
        let c = choose_batch(&sizes, e, 18, t, start, Some(&[])).unwrap();
        assert_eq!(c.skip, 0);
        // Heads due at 21 (latest starts: b1 17.68, b2 15.73, b4 13.5), 16 requests
        // behind them due at 35.1 (b16 latest start 13.37): the batch is the most
        // pressing strategy and INFER4 would skip both heads. A b1 of the first head
        // ends at 13.32, before 13.37: it runs first; the b16 still makes its targets.
        let t = |i: usize| {
            if i < 2 {
                ms(21)
            } else {
                Nanos::from_micros(35_100)
            }
        };
        let c = choose_batch(&sizes, e, 18, t, start, Some(&[])).unwrap();
        assert_eq!(
            c,
            Choice {
                size_index: 0,
                skip: 0
            }
        );
        assert!(start + est[0] + est[4] <= Nanos::from_micros(35_100));
        // One millisecond tighter and the b1 would cost the batch: heads are skipped.
        let t = |i: usize| {
            if i < 2 {
                ms(21)
            } else {
                Nanos::from_micros(35_000)
            }
        };
        let c = choose_batch(&sizes, e, 18, t, start, Some(&[])).unwrap();
        assert_eq!(
            c,
            Choice {
                size_index: 4,
                skip: 2
            }
        );
    }

    #[test]
    fn a_hot_model_whose_b16_misses_its_head_by_a_hair_runs_two_b8s_instead() {
        // Taken from a simulated Azure run (ResNet152 estimates, targets relative to
        // the start, ms): b16 from the head would end at 63.18 > 62.80, so INFER4 runs
        // b16 from the second request and drops the head. A b8 (36.05) and then the
        // next b8 end at 72.11, before the 9th request's 73.66, and the 17th follows
        // as a b1: none of the b16's 17 requests is dropped (the 18th, outside the
        // lookahead, misses either way).
        let sizes = [1, 2, 4, 8, 16];
        let est = [9_401u64, 15_348, 23_258, 36_053, 63_180].map(Nanos::from_micros);
        let t = [
            62.80, 64.97, 65.34, 68.60, 69.10, 71.08, 72.91, 73.08, 73.66, 75.50, 75.77, 77.53,
            77.97, 78.97, 80.37, 81.42, 82.94, 84.52,
        ]
        .map(|ms| Nanos((ms * 1e6) as u64));
        let q = Queue {
            sizes: &sizes,
            estimate: &|k: usize| est[k],
            target: &|i: usize| t[i],
            n: t.len(),
        };
        assert_eq!(
            q.most_pressing(0, Nanos::ZERO),
            Some(Choice {
                size_index: 4,
                skip: 1
            })
        );
        let c = choose_batch(
            &sizes,
            |k| est[k],
            t.len(),
            |i| t[i],
            Nanos::ZERO,
            Some(&[]),
        )
        .unwrap();
        assert_eq!(
            c,
            Choice {
                size_index: 3,
                skip: 0
            }
        );
        assert_eq!(q.drops(8, 17, &mut [est[3]]), 0);
        assert_eq!(q.drops(17, 17, &mut [est[4]]), 0);
    }

    /// INFER4's rule by brute force over the requests from `from`: (size index, first).
    fn brute_pressing(
        sizes: &[u32],
        est: &[Nanos],
        t: &[u64],
        from: usize,
        start: Nanos,
    ) -> Option<(usize, usize)> {
        let mut best: Option<(Nanos, usize, usize)> = None;
        for (k, &b) in sizes.iter().enumerate() {
            for i in from..t.len() {
                if t.len() - i >= b as usize && start + est[k] <= Nanos(t[i]) {
                    let p = Nanos(t[i]) - est[k];
                    if best.is_none_or(|(q, _, _)| p <= q) {
                        best = Some((p, k, i));
                    }
                    break;
                }
            }
        }
        best.map(|(_, k, i)| (k, i))
    }

    fn brute_drops(
        sizes: &[u32],
        est: &[Nanos],
        t: &[u64],
        mut from: usize,
        horizon: usize,
        mut free: Vec<Nanos>,
    ) -> usize {
        let mut dropped = 0;
        while from < horizon {
            free.sort_unstable();
            match brute_pressing(sizes, est, t, from, free[0]) {
                None => return dropped + horizon - from,
                Some((k, i)) => {
                    dropped += i.min(horizon) - from;
                    from = i + sizes[k] as usize;
                    free[0] = free[0] + est[k];
                }
            }
        }
        dropped
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn choice_is_feasible_and_no_feasible_strategy_is_more_pressing(
            // Anything, or a hot model's backlog (where heads get skipped).
            mut targets in proptest::collection::vec(0u64..80_000_000, 1..40)
                .prop_union(proptest::collection::vec(40_000_000u64..90_000_000, 10..40)),
            start in 0u64..30_000_000,
            others in proptest::collection::vec(0u64..60_000_000, 0..3),
        ) {
            let others: Vec<Nanos> = others.into_iter().map(Nanos).collect();
            targets.sort_unstable();
            let (sizes, est) = r50();
            let start = Nanos(start);
            let t = |i: usize| Nanos(targets[i]);
            let n = targets.len();
            let got = choose_batch(&sizes, |k| est[k], n, t, start, Some(&others));
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
                    let pressing = t(c.skip) - est[c.size_index];
                    if c.skip > 0 {
                        prop_assert_eq!(Some(pressing), best);
                    } else if Some(pressing) != best {
                        // A head batch instead of the most pressing strategy: only when
                        // it drops fewer of the pressing batch's requests (brute force).
                        let (pk, pi) = brute_pressing(&sizes, &est, &targets, 0, start).unwrap();
                        let horizon = pi + sizes[pk] as usize;
                        let free = |done: Nanos| [done].into_iter().chain(others.iter().copied()).collect::<Vec<_>>();
                        let via_pressing = pi + brute_drops(&sizes, &est, &targets, horizon, horizon, free(start + est[pk]));
                        let via_head = brute_drops(&sizes, &est, &targets, b, horizon, free(start + est[c.size_index]));
                        prop_assert!(via_head < via_pressing, "{via_head} >= {via_pressing}");
                    }
                }
            }
        }
    }
}
