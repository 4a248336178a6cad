//! The margins of the plan, measured from the link rather than fixed (reference 2.4 and
//! 3.3 fix them at 1 ms, 5 ms and 10 ms).
//!
//! - **Completion buffer.** A request's batches are planned to complete `buffer` before
//!   its deadline: the time the result needs to reach the controller, and what the plan
//!   may be late by. Two parts, kept together between `Config::min_buffer` and
//!   `Config::buffer`: the p99 ([`IGNORED_PER`]; the maximum below 100 samples) of the
//!   *return delays* (result received at the controller − completion on the worker, in
//!   the controller's clock) of the last [`WINDOW`] INFER and LOAD results, plus a
//!   *pad* for what that p99 does not show (below); and the *plan overrun*, the p99 of
//!   how much later than planned the last [`WINDOW`] INFERs ended
//!   ([`MeasuredMargin::unpadded`]: nothing added), each measured from the later of its
//!   planned end and its arrival at the worker plus its estimate. A batch is planned to
//!   end by its head's target, so a run longer than its estimate (a V100 batch of 16
//!   varies by ±0.4 ms at 2 % noise), a run before it that
//!   ended late or a LOAD that did could end it after the deadline: a late success,
//!   answered `Timeout`. An action that reached its worker late is the lead time's
//!   business, not the buffer's: counted here, the host's stalled wake-ups on real
//!   processes widened the buffer and refused a 2.5 ms SLO for a second at a time
//!   (`docs/benchmarks.md`).
//! - **Lead time** (`future`). Nothing is planned to start before `now + lead`: the
//!   time an action needs to reach the worker. It is the p99 of the *send delays*
//!   (worker receipt − send, controller clock) of the last [`WINDOW`] results, plus
//!   the pad, kept between `Config::min_future` and `Config::future`.
//!
//! The **pad** follows the link's jitter too: the spread of the same samples, their
//! p99 less their median, kept between [`MIN_PAD`] and [`MAX_PAD`]. A link whose delays
//! scatter (a loaded host: a median of tens of µs and a p99 of hundreds) keeps the full
//! [`MAX_PAD`], the constant it was before; one whose delays barely vary (a quiet host,
//! the simulator's fixed delay) is padded by [`MIN_PAD`], so the plan does not give
//! away 160 µs of every tight SLO to a tail that is not there (in virtual time: H200
//! 5 ms 90.6 → 91.2 %, 2.5 ms 68.0 → 69.3 %, seed 1). Before any result, a seeded
//! margin is padded by [`MAX_PAD`].
//!
//! Both start low, not at their maximum: at the link's measured one-way delay (half the
//! RTT the controller measures at the handshake, [`MeasuredMargin::seed`]) plus the
//! margin, or at their minimum before any link is measured. A cold controller therefore
//! admits a 5 ms SLO on a 1 ms model from its first request; slow results widen a
//! margin at once (one is enough below 100 samples, three in a full window), and it
//! shrinks again once they have left the window or are
//! older than [`AGE`], whichever comes first. The age limit matters when results stop:
//! a margin widened past a tight SLO makes every request of it refused, so no result
//! would ever come back to shrink it (seen on real processes: one 3.7 ms return delay
//! on a loaded VM, then every 5 ms request refused for the rest of the run). Once its
//! samples are all older than [`AGE`], a margin is back at its seed; and sooner, after
//! [`QUIET`] without any new sample while requests are being refused (a whole second
//! of refusals per host stall was still too long for a 2.5 ms SLO).
//! Correctness does not depend on them: a success that arrives after its deadline is
//! answered `Timeout`, never late, and an action that reaches its worker after its
//! window is dropped there.

use clockwork_core::Nanos;

/// How long a measured delay counts ([`MeasuredMargin::age`]).
pub const AGE: Nanos = Nanos::from_secs(1);

/// While requests are being refused, a margin above its seed that has seen no sample
/// for this long forgets its samples and falls back to the seed
/// ([`MeasuredMargin::thaw`]). A margin wide enough to refuse every request of a
/// tight SLO stops the results that would narrow it: on real processes one host stall
/// that delayed three results by 1.3 ms had a 2.5 ms SLO refused for the whole second
/// of [`AGE`], again and again (attainment 4–43 % in runs where others made 58–62 %).
/// The next request after the thaw is a probe: served, or answered `Timeout` if the
/// delay is still there, which sets the margin again. Without refusals (a quiet link at
/// a low request rate) the samples keep counting for [`AGE`].
pub const QUIET: Nanos = Nanos::from_millis(100);

/// One delay in this many (of those younger than [`AGE`] in the window) is ignored:
/// the margin is their p99, not their maximum (with a full window, the third largest).
/// A stall of the host that delays one result in a thousand by milliseconds no longer
/// refuses every tight request for the next 256 results; the few requests such a
/// stall delays are answered `Timeout` at their deadline, never late.
pub const IGNORED_PER: usize = 100;

/// Delays that ended within this of each other count as one when the p99 ignores the
/// largest ([`IGNORED_PER`]): a stall of the host holds every message sent during it
/// and lets them all through together, so one stall of 3 ms gave four or five samples
/// of 0.4–4 ms that arrived within 25 µs of each other. Counted one by one they filled
/// the two that a full window ignores, and the third set the lead time to 1.5–2 ms
/// for the next 256 results: a quarter of a second in which every batch left a
/// millisecond early and a 10 ms row lost 30–40 requests on real processes
/// (`docs/benchmarks.md`, session 14). Counted as one, such a stall is ignored like
/// one slow result. Delays that end apart (a slow link, a host slow for a while) still
/// count one by one.
pub const ONE_STALL: Nanos = Nanos::from_micros(100);

/// Results a margin looks back over.
pub const WINDOW: usize = 256;
/// The most a padded margin adds to its p99 (the whole pad before any result, and
/// while its samples scatter by this much or more).
pub const MAX_PAD: Nanos = Nanos::from_micros(100);
/// The least a padded margin adds to its p99: the room for what a window of
/// [`WINDOW`] steady samples cannot show.
pub const MIN_PAD: Nanos = Nanos::from_micros(20);

/// An INFER carrying at least this many input bytes measures the link's transfer
/// time ([`transfer_time`]) instead of the lead time: its trip out is mostly its
/// bytes, and one such sample in the lead's window would set the lead of every small
/// action to its cap.
pub const BIG_ACTION_BYTES: u64 = 1 << 20;

/// Transfer cost before any measurement, per MiB of input (a 1 GB/s link).
pub const TRANSFER_SEED_PER_MIB: Nanos = Nanos::from_millis(1);

/// Bounds of the measured transfer cost per MiB (100 GB/s .. 10 MB/s).
pub const TRANSFER_MIN_PER_MIB: Nanos = Nanos::from_micros(10);
/// See [`TRANSFER_MIN_PER_MIB`].
pub const TRANSFER_MAX_PER_MIB: Nanos = Nanos::from_millis(100);

/// How long `bytes` of inputs take from send to the worker beyond the lead time, at
/// `per_mib` (the measured p99 per MiB): zero below [`BIG_ACTION_BYTES`], where the
/// lead time covers the trip.
pub fn transfer_time(bytes: u64, per_mib: Nanos) -> Nanos {
    if bytes < BIG_ACTION_BYTES {
        return Nanos::ZERO;
    }
    Nanos(((u128::from(bytes) * u128::from(per_mib.get())) >> 20).min(u128::from(u64::MAX)) as u64)
}

/// What `beyond` (the part of a trip out past the lead time) costs per MiB of the
/// `bytes` that made it: a sample of the rate [`transfer_time`] applies.
pub fn cost_per_mib(beyond: Nanos, bytes: u64) -> Nanos {
    let per_mib = (u128::from(beyond.get()) << 20) / u128::from(bytes.max(1));
    Nanos(per_mib.min(u128::from(u64::MAX)) as u64)
}

/// One measured delay, ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    delay: u64,
    /// When it was recorded (its age counts from here).
    at: u64,
    /// When the delayed message arrived (samples from one source that end within
    /// [`ONE_STALL`] of each other are one stall).
    ended: u64,
    /// The link it came from (a worker): one host's stall holds only its own
    /// messages. `None` (overrun, transfer, reaction: no link's trip) never groups.
    source: Option<u32>,
}

/// A sliding maximum of delays and the margin derived from it.
#[derive(Debug, Clone)]
pub struct MeasuredMargin {
    delays: Vec<Sample>,
    next: usize,
    min: Nanos,
    max: Nanos,
    /// What the margin falls back to with no sample younger than [`AGE`].
    seeded: Nanos,
    current: Nanos,
    /// When a sample at or above `current` gets older than [`AGE`].
    expires: Nanos,
    /// Reused by [`MeasuredMargin::recompute`].
    scratch: Vec<Sample>,
    /// The most added to the sample that sets the margin ([`MAX_PAD`], or zero for an
    /// unpadded margin).
    max_pad: Nanos,
    /// Added to the sample that sets the margin now: the samples' spread between
    /// [`MIN_PAD`] and `max_pad`, or `max_pad` with no sample.
    pad: Nanos,
    /// When the last sample was recorded.
    last_sample: Nanos,
}

impl MeasuredMargin {
    /// A margin between `min` and `max` (equal: constant), starting at `min`.
    pub fn new(min: Nanos, max: Nanos) -> Self {
        let min = min.min(max);
        Self {
            delays: Vec::with_capacity(WINDOW),
            next: 0,
            min,
            max,
            seeded: min,
            current: min,
            expires: Nanos::MAX,
            scratch: Vec::with_capacity(WINDOW),
            max_pad: MAX_PAD,
            pad: MAX_PAD,
            last_sample: Nanos::ZERO,
        }
    }

    /// A margin from zero up to `max` that is the p99 of the samples younger than
    /// [`AGE`] among the last [`WINDOW`] (the maximum below 100), with nothing added
    /// (for [`crate::Scheduler`]'s plan overrun).
    pub fn unpadded(max: Nanos) -> Self {
        Self::unpadded_between(Nanos::ZERO, max)
    }

    /// [`MeasuredMargin::unpadded`] kept between `min` (where it starts) and `max`
    /// (for [`crate::Scheduler`]'s reaction slack, [`crate::ahead`]).
    pub fn unpadded_between(min: Nanos, max: Nanos) -> Self {
        Self {
            max_pad: Nanos::ZERO,
            pad: Nanos::ZERO,
            ..Self::new(min, max)
        }
    }

    /// The margin now.
    pub const fn get(&self) -> Nanos {
        self.current
    }

    /// A link's one-way delay was measured (half its RTT) before any result: the
    /// margin covers it until results say more, and again whenever every result it saw
    /// is older than [`AGE`], padded by the most ([`MAX_PAD`]). Never lowers the margin.
    pub fn seed(&mut self, one_way: Nanos) {
        let v = (one_way + self.max_pad).clamp(self.min, self.max);
        self.seeded = self.seeded.max(v);
        self.current = self.current.max(v);
    }

    /// One delay, measured at `now`, that is not a link's trip: it is never grouped
    /// with another into one stall ([`ONE_STALL`]).
    pub fn record(&mut self, delay: Nanos, now: Nanos) {
        self.push(None, delay, now, now);
    }

    /// One delay, measured at `now`, of a message on `source`'s link (a worker) that
    /// arrived at `ended`: a result's trip back arrives at `now`, an action's trip out
    /// at its receipt on the worker.
    pub fn record_from(&mut self, source: u32, delay: Nanos, ended: Nanos, now: Nanos) {
        self.push(Some(source), delay, ended, now);
    }

    fn push(&mut self, source: Option<u32>, delay: Nanos, ended: Nanos, now: Nanos) {
        if self.min == self.max {
            return;
        }
        self.last_sample = now;
        let d = delay.get();
        let sample = Sample {
            delay: d,
            at: now.get(),
            ended: ended.get(),
            source,
        };
        if self.delays.len() < WINDOW {
            self.delays.push(sample);
        } else {
            // Overwrites the oldest (next < WINDOW).
            self.delays[self.next] = sample;
        }
        self.next = (self.next + 1) % WINDOW;
        if Nanos(d) + self.pad > self.current
            || self.delays.len() <= 32
            || self.next.is_multiple_of(32)
            || now >= self.expires
        {
            // Grows at once with a delay above it (when that moves the percentile);
            // shrinks with each of the first results, then every 32nd (O(WINDOW) per
            // 32 results), or when a sample that sets it got too old.
            self.recompute(now);
        }
    }

    /// Forgets samples older than [`AGE`] if one that sets the margin is among them.
    /// O(1) unless it is, then O([`WINDOW`] log [`WINDOW`]).
    pub fn age(&mut self, now: Nanos) {
        if now >= self.expires {
            self.recompute(now);
        }
    }

    /// The margin may be what stops its own samples (requests are refused and no
    /// result has come back since): if it is above its seed and has seen no sample for
    /// [`QUIET`], it forgets every sample and falls back to the seed. O(1).
    pub fn thaw(&mut self, now: Nanos) {
        if self.current > self.seeded && now >= self.last_sample + QUIET {
            self.delays.clear();
            self.next = 0;
            // With no sample left: the seed.
            self.recompute(now);
        }
    }

    /// The margin from the samples younger than [`AGE`] (the seed without any): the
    /// largest after ignoring one in [`IGNORED_PER`] of them, a stall's samples together
    /// counting as one ([`ONE_STALL`]), plus the pad (their spread from the median to
    /// that one, between [`MIN_PAD`] and the most).
    fn recompute(&mut self, now: Nanos) {
        self.scratch.clear();
        self.scratch.extend(
            self.delays
                .iter()
                .copied()
                .filter(|s| Nanos(s.at) + AGE > now),
        );
        if self.scratch.is_empty() {
            self.current = self.seeded;
            self.pad = self.max_pad;
            self.expires = Nanos::MAX;
            return;
        }
        let budget = self.scratch.len() / IGNORED_PER;
        self.scratch
            .sort_unstable_by_key(|s| std::cmp::Reverse((s.delay, s.at)));
        let mid = self.scratch.len() / 2;
        let median = self.scratch[mid].delay;
        // Walk down from the largest: each sample that ended apart from the stalls
        // already ignored is a stall of its own, ignored while the budget lasts; the
        // first one past it sets the margin, never one below the median.
        let mut stalls: [(Option<u32>, u64); WINDOW / IGNORED_PER] = Default::default();
        let mut ignored = 0;
        let mut at = mid;
        for (i, s) in self.scratch[..mid].iter().enumerate() {
            if stalls[..ignored].iter().any(|&(from, end)| {
                from.is_some() && from == s.source && end.abs_diff(s.ended) <= ONE_STALL.get()
            }) {
                continue;
            }
            if ignored < budget {
                stalls[ignored] = (s.source, s.ended);
                ignored += 1;
                continue;
            }
            at = i;
            break;
        }
        let top = &self.scratch[..=at];
        let d = top[at].delay;
        self.pad = Nanos(d - median).clamp(MIN_PAD.min(self.max_pad), self.max_pad);
        self.current = (Nanos(d) + self.pad).clamp(self.min, self.max);
        // The margin changes when any of the samples at or above it gets too old.
        self.expires = top
            .iter()
            .map(|s| Nanos(s.at) + AGE)
            .min()
            .unwrap_or(Nanos::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: u64) -> Nanos {
        Nanos::from_micros(v)
    }

    /// The times of results that come one at a time, each after the last has ended
    /// by more than [`ONE_STALL`] (so none is part of another's stall).
    #[derive(Default)]
    struct Apart(Nanos);

    impl Apart {
        fn next(&mut self) -> Nanos {
            self.0 = self.0 + ONE_STALL + us(50);
            self.0
        }
    }

    #[test]
    fn starts_low_follows_the_measured_delay_and_grows_at_once() {
        let mut r = Apart::default();
        let mut b = MeasuredMargin::new(us(200), us(5_000));
        // Cold: the minimum, not the maximum.
        assert_eq!(b.get(), us(200));
        // A measured RTT of 600 µs: 300 µs one way plus the margin.
        b.seed(us(300));
        assert_eq!(b.get(), us(400));
        // The first result sets it (one sample has no spread: the least pad).
        b.record(us(2_000), r.next());
        assert_eq!(b.get(), us(2_000) + MIN_PAD);
        // Once that result has left the window (and a shrink check came round).
        for _ in 0..(WINDOW + 32) {
            b.record(us(50), r.next());
        }
        // 50 µs + the pad, floored at the 200 µs minimum.
        assert_eq!(b.get(), us(200));
        for _ in 0..(WINDOW + 32) {
            b.record(us(900), r.next());
        }
        assert_eq!(b.get(), us(900) + MIN_PAD);
        // In a full window one slow result (a stall of the host) is ignored...
        b.record(us(3_000), r.next());
        b.record(us(3_000), r.next());
        assert_eq!(b.get(), us(900) + MIN_PAD);
        // ...three (more than one in a hundred) widen it at once, with the full pad
        // (they are 2.1 ms above the median).
        b.record(us(3_000), r.next());
        assert_eq!(b.get(), us(3_100));
        // And it stays while they are in the window...
        for _ in 0..(WINDOW - 3) {
            b.record(us(100), r.next());
        }
        assert_eq!(b.get(), us(3_100));
        // ...and shrinks once they have left.
        for _ in 0..64 {
            b.record(us(100), r.next());
        }
        assert_eq!(b.get(), us(200));
        // Never above the maximum.
        for _ in 0..3 {
            b.record(us(60_000), r.next());
        }
        assert_eq!(b.get(), us(5_000));
        // A seed never lowers it.
        b.seed(us(10));
        assert_eq!(b.get(), us(5_000));
    }

    #[test]
    fn the_delays_of_one_stall_count_as_one() {
        let mut r = Apart::default();
        let steady = |b: &mut MeasuredMargin, r: &mut Apart| {
            for _ in 0..WINDOW {
                b.record_from(0, us(300), r.next(), r.next());
            }
        };
        // A stall of the host: the actions sent during it (every ms for 3 ms) all
        // reach the worker when it ends, within 25 µs; their results come back later,
        // one by one.
        let stall = |b: &mut MeasuredMargin, r: &mut Apart| {
            let end = r.next();
            for (k, d) in [3_400, 2_500, 1_500, 700].into_iter().enumerate() {
                b.record_from(0, us(d), end + us(8 * k as u64), r.next() + ms(1));
            }
        };
        let mut b = MeasuredMargin::new(Nanos::ZERO, ms(5));
        steady(&mut b, &mut r);
        let quiet = b.get();
        assert_eq!(quiet, us(300) + MIN_PAD);
        // Two stalls in a full window are ignored like two slow results...
        stall(&mut b, &mut r);
        assert_eq!(b.get(), quiet, "one stall, four late actions");
        stall(&mut b, &mut r);
        assert_eq!(b.get(), quiet, "two stalls");
        // ...a third widens it, to its largest delay and the full pad.
        stall(&mut b, &mut r);
        assert_eq!(b.get(), us(3_500));

        // Late arrivals from different workers at the same time are not one stall:
        // each worker's host stalled on its own.
        let mut b = MeasuredMargin::new(Nanos::ZERO, ms(5));
        steady(&mut b, &mut r);
        let end = r.next();
        for (worker, d) in [3_400, 2_500, 1_500, 700].into_iter().enumerate() {
            b.record_from(worker as u32, us(d), end, r.next());
        }
        assert_eq!(b.get(), us(1_600));

        // The same delays ending apart are four slow results: the third largest of
        // them sets the margin at once, as before.
        let mut b = MeasuredMargin::new(Nanos::ZERO, ms(5));
        steady(&mut b, &mut r);
        for d in [3_400, 2_500, 1_500, 700] {
            let t = r.next();
            b.record_from(0, us(d), t, t);
        }
        assert_eq!(b.get(), us(1_600));
    }

    #[test]
    fn the_pad_is_the_spread_of_the_delays_within_its_bounds() {
        // A full window of delays spread evenly over [base, base + width): the p99
        // ignores the two largest, the median is the middle one.
        let mut r = Apart::default();
        let mut fill = |b: &mut MeasuredMargin, base: u64, width: u64| {
            let mut v: Vec<u64> = (0..WINDOW as u64)
                .map(|i| base * 1_000 + i * width * 1_000 / WINDOW as u64)
                .collect();
            for &d in &v {
                b.record(Nanos(d), r.next());
            }
            v.sort_unstable_by(|a, b| b.cmp(a));
            (Nanos(v[WINDOW / IGNORED_PER]), Nanos(v[WINDOW / 2]))
        };
        let mut b = MeasuredMargin::new(Nanos::ZERO, us(5_000));
        // Steady (a fixed 150 µs): the least pad.
        fill(&mut b, 150, 0);
        assert_eq!(b.get(), us(150) + MIN_PAD);
        // Scattered by 60 µs: p99 − median of them.
        let (p99, median) = fill(&mut b, 150, 120);
        assert!(p99 - median > MIN_PAD && p99 - median < MAX_PAD);
        assert_eq!(b.get(), p99 + (p99 - median));
        // Scattered by hundreds of µs (a loaded host): the full pad, as before.
        let (p99, _) = fill(&mut b, 40, 400);
        assert_eq!(b.get(), p99 + MAX_PAD);
        // An unpadded margin adds nothing, whatever the spread.
        let mut u = MeasuredMargin::unpadded(us(5_000));
        let (p99, _) = fill(&mut u, 40, 400);
        assert_eq!(u.get(), p99);
    }

    #[test]
    fn equal_bounds_keep_it_constant() {
        let mut b = MeasuredMargin::new(us(5_000), us(5_000));
        b.seed(us(1));
        for _ in 0..100 {
            b.record(us(10), Nanos::ZERO);
        }
        assert_eq!(b.get(), us(5_000));
    }

    #[test]
    fn a_widened_margin_falls_back_once_its_samples_are_old_or_it_stops_its_own_results() {
        let mut b = MeasuredMargin::new(us(200), us(5_000));
        b.seed(us(300));
        let t0 = Nanos::from_secs(10);
        b.record(us(150), t0);
        assert_eq!(b.get(), us(200), "150 µs + the least pad, at the minimum");
        // One slow result: widened at once.
        b.record(us(3_700), t0 + us(10));
        assert_eq!(b.get(), us(3_800));
        // Results keep coming (fast ones, every 20 ms: fewer than 100, so the maximum
        // counts): the slow one sets it until it is older than AGE, then the largest
        // sample still young enough does.
        let mut t = t0 + us(10);
        while t + ms(20) < t0 + AGE + us(10) {
            t = t + ms(20);
            b.record(us(200), t);
            b.age(t);
            assert_eq!(
                b.get(),
                us(3_800),
                "at {t:?}: the slow one is younger than AGE"
            );
        }
        b.age(t0 + AGE + us(10));
        assert_eq!(b.get(), us(200) + MIN_PAD, "the fast ones, steady");

        // Now a slow result, and then none. Ageing alone keeps it for AGE (a quiet
        // link at a low request rate)...
        let t1 = t0 + AGE + ms(1);
        b.record(us(3_700), t1);
        assert_eq!(b.get(), us(3_800));
        b.age(t1 + QUIET + ms(500));
        assert_eq!(b.get(), us(3_800), "younger than AGE");
        // ...but while every request is refused because of it, a thaw after QUIET
        // without a result brings it back to the seed.
        b.thaw(t1 + QUIET - Nanos(1));
        assert_eq!(b.get(), us(3_800), "not quiet for QUIET yet");
        b.thaw(t1 + QUIET);
        assert_eq!(b.get(), us(400), "the seed (300 + 100 us)");
        // A result after the quiet spell sets it again, from that result alone.
        b.record(us(500), t1 + QUIET + ms(1));
        assert_eq!(b.get(), us(500) + MIN_PAD);
    }

    fn ms(v: u64) -> Nanos {
        Nanos::from_millis(v)
    }

    #[test]
    fn an_unpadded_margin_is_the_p99_with_nothing_added() {
        let mut r = Apart::default();
        let mut l = MeasuredMargin::unpadded(ms(5));
        assert_eq!(l.get(), Nanos::ZERO);
        l.record(us(400), r.next());
        assert_eq!(l.get(), us(400), "the maximum below 100 samples");
        for _ in 0..WINDOW {
            l.record(us(30), r.next());
        }
        assert_eq!(l.get(), us(30));
        // One late run in a full window is ignored; three are not.
        l.record(us(700), r.next());
        assert_eq!(l.get(), us(30));
        for _ in 0..3 {
            l.record(ms(9), r.next());
        }
        assert_eq!(l.get(), ms(5), "capped at its maximum");
        // Back to zero once those samples are older than AGE.
        l.age(r.next() + AGE);
        assert_eq!(l.get(), Nanos::ZERO);
        // Samples that are no link's trip never count as one stall, even when they
        // are recorded at the same instant (results handled in one wake-up).
        let mut l = MeasuredMargin::unpadded(ms(5));
        for _ in 0..WINDOW {
            l.record(us(30), r.next());
        }
        let now = r.next();
        for _ in 0..3 {
            l.record(us(700), now);
        }
        assert_eq!(l.get(), us(700));
    }

    #[test]
    fn transfer_time_is_zero_below_a_mib_and_per_mib_above() {
        let per_mib = Nanos::from_millis(2);
        assert_eq!(transfer_time(BIG_ACTION_BYTES - 1, per_mib), Nanos::ZERO);
        assert_eq!(transfer_time(BIG_ACTION_BYTES, per_mib), per_mib);
        assert_eq!(transfer_time(3 << 19, per_mib), Nanos::from_millis(3));
        assert_eq!(transfer_time(u64::MAX, Nanos::MAX), Nanos(u64::MAX));
        // The rate measured from a trip is the one it applies.
        let beyond = Nanos::from_millis(6);
        assert_eq!(cost_per_mib(beyond, 3 << 20), per_mib);
        assert_eq!(
            transfer_time(3 << 20, cost_per_mib(beyond, 3 << 20)),
            beyond
        );
    }
}
