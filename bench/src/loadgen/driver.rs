//! What one connection (open loop) or one client (closed loop) does: take the next
//! request, wait for its scheduled time, exchange it, retry a 429 as the policy says,
//! and record how it ended, **timed from its scheduled send time**.
//!
//! The loops are generic over the [`Clock`] and the [`Exchange`] (one HTTP request and
//! its answer), so the accounting can be checked with a fake clock and a fake server:
//! a sender that stalls, or a connection that is busy when a request falls due, still
//! charges the delay to the request.

use super::accounting::{Outcome, Tally};
use super::conn::Templates;
use super::schedule::OpenSchedule;
use clockwork_core::{MonotonicClock, Nanos};
use std::cell::{Cell, RefCell};
use std::time::Duration;

/// The head of an HTTP answer, as far as the load generator cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The status code.
    pub(crate) status: u16,
    /// `Retry-After` in seconds, when given as such.
    pub(crate) retry_after: Option<Duration>,
    /// Whether the connection stays open.
    pub(crate) keep_alive: bool,
}

/// One request and its answer over some connection.
pub(crate) trait Exchange {
    /// Send `request` (a whole HTTP request) and read the answer.
    async fn exchange(&mut self, request: &[u8]) -> Result<Answer, String>;
}

/// Time: now, and waiting until a moment.
pub(crate) trait Clock {
    /// Now.
    fn now(&self) -> Nanos;
    /// Return at `t` or later (at once if `t` has passed).
    async fn sleep_until(&self, t: Nanos);
}

/// The monotonic clock, waiting on glommio timers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GlommioClock;

impl Clock for GlommioClock {
    fn now(&self) -> Nanos {
        MonotonicClock::read()
    }

    async fn sleep_until(&self, t: Nanos) {
        let now = MonotonicClock::read();
        if t > now {
            glommio::timer::sleep(Duration::from(t - now)).await;
        }
    }
}

/// What to do with a 429.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryPolicy {
    /// A 429 ends the request as refused.
    Never,
    /// Send it again at once (until its deadline passes or `--max-retries`).
    AtOnce,
    /// Send it again after the answer's `Retry-After` seconds (1 s when absent), if
    /// that is before its deadline.
    HonourRetryAfter,
}

/// What every connection and client of a run shares.
#[derive(Debug)]
pub(crate) struct Ctx<C> {
    /// The clock.
    pub(crate) clock: C,
    /// The run's start on `clock`; jobs' offsets count from it.
    pub(crate) start: Nanos,
    /// No closed-loop request starts at or after this time (on `clock`).
    pub(crate) end: Nanos,
    /// The request bytes.
    pub(crate) templates: Templates,
    /// The SLO of each class (`None`: none sent).
    pub(crate) slos: Vec<Option<Nanos>>,
    /// 429 handling.
    pub(crate) retry: RetryPolicy,
    /// Most exchanges per request beyond the first.
    pub(crate) max_retries: u32,
    /// The open-loop arrivals (`None` for a closed loop).
    pub(crate) schedule: RefCell<Option<OpenSchedule>>,
    /// The counts.
    pub(crate) tally: RefCell<Tally>,
    /// Jobs taken from the schedule.
    pub(crate) claimed: Cell<u64>,
    /// When the latest request started (its first exchange), on `clock`.
    pub(crate) last_send: Cell<Nanos>,
}

impl<C: Clock> Ctx<C> {
    /// Exchange the request for `model` in `class`, scheduled at `at`, retrying 429s
    /// as the policy allows; how it ended and how many exchanges it took.
    pub(crate) async fn serve<E: Exchange>(
        &self,
        conn: &mut E,
        model: u32,
        class: u8,
        at: Nanos,
    ) -> (Outcome, u32) {
        let request = self.templates.get(model, class);
        let deadline = self
            .slos
            .get(usize::from(class))
            .copied()
            .flatten()
            .map(|slo| at + slo);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let answer = match conn.exchange(request).await {
                Ok(a) => a,
                Err(e) => return (Outcome::Failed(e), attempts),
            };
            match answer.status {
                200 => return (Outcome::Ok, attempts),
                429 => {
                    let now = self.clock.now();
                    let retry_at = match self.retry {
                        RetryPolicy::Never => return (Outcome::Refused, attempts),
                        RetryPolicy::AtOnce => now,
                        RetryPolicy::HonourRetryAfter => {
                            now + Nanos::from(answer.retry_after.unwrap_or(Duration::from_secs(1)))
                        }
                    };
                    if attempts > self.max_retries || deadline.is_some_and(|d| retry_at >= d) {
                        return (Outcome::Refused, attempts);
                    }
                    self.clock.sleep_until(retry_at).await;
                }
                s => return (Outcome::Status(s), attempts),
            }
        }
    }

    /// Serve one request scheduled at `at` and record it.
    async fn serve_and_record<E: Exchange>(&self, conn: &mut E, model: u32, class: u8, at: Nanos) {
        self.tally.borrow_mut().started(class);
        self.last_send
            .set(self.last_send.get().max(self.clock.now()));
        let (outcome, attempts) = self.serve(conn, model, class, at).await;
        let latency = self.clock.now().saturating_sub(at);
        self.tally
            .borrow_mut()
            .ended(class, &outcome, latency, attempts);
    }
}

/// One open-loop connection: take the next job when free, wait for its scheduled
/// time, serve it; until the schedule ends. A job taken late (every connection was
/// busy when it fell due) is sent at once and its wait is part of its latency.
pub(crate) async fn open_loop_connection<C: Clock, E: Exchange>(ctx: &Ctx<C>, mut conn: E) {
    loop {
        let Some(job) = ctx
            .schedule
            .borrow_mut()
            .as_mut()
            .and_then(|s| s.next_job())
        else {
            break;
        };
        ctx.claimed.set(ctx.claimed.get() + 1);
        let at = ctx.start + job.at;
        ctx.clock.sleep_until(at).await;
        ctx.serve_and_record(&mut conn, job.model, job.class, at)
            .await;
    }
}

/// One closed-loop client of `model` in `class`: send, wait for the end of the
/// request (retries included), send the next at once; until the run's end. Each
/// request's scheduled time is the moment the client is ready to send it.
pub(crate) async fn closed_loop_client<C: Clock, E: Exchange>(
    ctx: &Ctx<C>,
    mut conn: E,
    model: u32,
    class: u8,
) {
    loop {
        let at = ctx.clock.now();
        if at >= ctx.end {
            break;
        }
        ctx.serve_and_record(&mut conn, model, class, at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::conn::Target;
    use super::super::schedule::OpenSource;
    use super::*;
    use std::collections::VecDeque;
    use std::rc::Rc;

    /// Virtual time: sleeping jumps to the wake-up time.
    #[derive(Debug, Default)]
    struct FakeClock(Cell<Nanos>);

    impl FakeClock {
        fn advance(&self, d: Nanos) {
            self.0.set(self.0.get() + d);
        }
    }

    impl Clock for Rc<FakeClock> {
        fn now(&self) -> Nanos {
            self.0.get()
        }
        async fn sleep_until(&self, t: Nanos) {
            if t > self.0.get() {
                self.0.set(t);
            }
        }
    }

    /// A server that takes `service` per exchange (plus a one-off `stall` on the first)
    /// and answers the statuses in turn (200 when they run out).
    struct FakeServer {
        clock: Rc<FakeClock>,
        service: Nanos,
        stall: Nanos,
        statuses: VecDeque<u16>,
        exchanges: u32,
    }

    impl Exchange for FakeServer {
        async fn exchange(&mut self, _request: &[u8]) -> Result<Answer, String> {
            self.clock.advance(self.service + self.stall);
            self.stall = Nanos::ZERO;
            self.exchanges += 1;
            Ok(Answer {
                status: self.statuses.pop_front().unwrap_or(200),
                retry_after: Some(Duration::from_secs(1)),
                keep_alive: true,
            })
        }
    }

    fn ctx(clock: &Rc<FakeClock>, offsets_ms: &[u64], slo: Option<Nanos>) -> Ctx<Rc<FakeClock>> {
        let offsets = offsets_ms
            .iter()
            .map(|&ms| (Nanos::from_millis(ms), Some(0)))
            .collect();
        let target = Target::parse("http://127.0.0.1:1").unwrap();
        let templates = Templates::build(
            &target,
            &["m".into()],
            &[slo.map(Duration::from)],
            &serde_json::json!({"inputs": []}),
        )
        .unwrap();
        Ctx {
            clock: clock.clone(),
            start: clock.now(),
            end: clock.now() + Nanos::from_secs(1),
            templates,
            slos: vec![slo],
            retry: RetryPolicy::Never,
            max_retries: 1000,
            schedule: RefCell::new(Some(
                OpenSchedule::new(
                    &OpenSource::Trace { offsets },
                    1,
                    1,
                    Nanos::from_secs(10),
                    1,
                )
                .unwrap(),
            )),
            tally: RefCell::new(Tally::new(&[slo])),
            claimed: Cell::new(0),
            last_send: Cell::new(Nanos::ZERO),
        }
    }

    fn server(
        clock: &Rc<FakeClock>,
        service_ms: u64,
        stall_ms: u64,
        statuses: &[u16],
    ) -> FakeServer {
        FakeServer {
            clock: clock.clone(),
            service: Nanos::from_millis(service_ms),
            stall: Nanos::from_millis(stall_ms),
            statuses: statuses.iter().copied().collect(),
            exchanges: 0,
        }
    }

    fn latencies_ms(ctx: &Ctx<Rc<FakeClock>>) -> Vec<u64> {
        let t = ctx.tally.borrow();
        t.classes[0]
            .ok_latency
            .iter_recorded()
            .flat_map(|v| {
                // Rounded to the ms; hdrhistogram keeps 3 significant digits.
                let ms = (t.classes[0]
                    .ok_latency
                    .median_equivalent(v.value_iterated_to())
                    + 500_000)
                    / 1_000_000;
                std::iter::repeat_n(ms, v.count_at_value() as usize)
            })
            .collect()
    }

    #[test]
    fn a_busy_connection_charges_the_wait_to_the_requests_behind_it() {
        let clock = Rc::new(FakeClock(Cell::new(Nanos::from_secs(100))));
        let c = ctx(&clock, &[0, 1, 2], Some(Nanos::from_millis(10)));
        // One connection, 5 ms per answer: the requests due at 1 and 2 ms wait for it.
        futures_lite::future::block_on(open_loop_connection(&c, server(&clock, 5, 0, &[])));
        // From the scheduled times: 5, 10 - 1, 15 - 2 ms (not 5, 5, 5).
        assert_eq!(latencies_ms(&c), vec![5, 9, 13]);
        let t = c.tally.borrow();
        assert_eq!((t.classes[0].ok, t.classes[0].within_slo), (3, 2));
        assert_eq!(c.claimed.get(), 3);
        // The last request went out at 10 ms, when the connection was free again.
        assert_eq!(c.last_send.get() - c.start, Nanos::from_millis(10));
    }

    #[test]
    fn a_stalled_sender_still_charges_the_delay() {
        let clock = Rc::new(FakeClock(Cell::new(Nanos::from_secs(100))));
        let c = ctx(&clock, &[0, 20], None);
        // The first exchange stalls 50 ms before its 1 ms answer; the request due at
        // 20 ms is sent at 51 ms and answered at 52 ms: 32 ms, though its own exchange
        // took 1 ms.
        futures_lite::future::block_on(open_loop_connection(&c, server(&clock, 1, 50, &[])));
        assert_eq!(latencies_ms(&c), vec![32, 51]);
    }

    #[test]
    fn retries_follow_the_policy_and_the_deadline() {
        let slo = Some(Nanos::from_millis(10));
        let run = |policy: RetryPolicy, statuses: &[u16]| {
            let clock = Rc::new(FakeClock(Cell::new(Nanos::from_secs(100))));
            let mut c = ctx(&clock, &[0], slo);
            c.retry = policy;
            let mut s = server(&clock, 1, 0, statuses);
            let at = clock.now();
            let r = futures_lite::future::block_on(c.serve(&mut s, 0, 0, at));
            (r, s.exchanges)
        };
        assert_eq!(run(RetryPolicy::Never, &[429]), ((Outcome::Refused, 1), 1));
        assert_eq!(run(RetryPolicy::AtOnce, &[429, 429]), ((Outcome::Ok, 3), 3));
        // At once, 1 ms per exchange: the 10th 429 comes at the 10 ms deadline.
        assert_eq!(
            run(RetryPolicy::AtOnce, &[429; 20]),
            ((Outcome::Refused, 10), 10)
        );
        // Retry-After 1 s is past a 10 ms deadline: no retry.
        assert_eq!(
            run(RetryPolicy::HonourRetryAfter, &[429]),
            ((Outcome::Refused, 1), 1)
        );
        assert_eq!(
            run(RetryPolicy::Never, &[503]),
            ((Outcome::Status(503), 1), 1)
        );
    }

    #[test]
    fn honouring_retry_after_waits_it_out_without_a_deadline() {
        let clock = Rc::new(FakeClock(Cell::new(Nanos::from_secs(100))));
        let mut c = ctx(&clock, &[0], None);
        c.retry = RetryPolicy::HonourRetryAfter;
        futures_lite::future::block_on(open_loop_connection(&c, server(&clock, 1, 0, &[429])));
        // 1 ms refused, 1 s wait, 1 ms answer.
        let l = latencies_ms(&c);
        assert!(l.len() == 1 && (1001..=1003).contains(&l[0]), "{l:?}");
        assert_eq!(c.tally.borrow().classes[0].attempts, 2);
    }
}
