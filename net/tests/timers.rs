//! `clockwork_net::timer::sleep` against glommio-ng's timer quirks (see `net/src/timer.rs`):
//! a pending glommio `Timer` registers again on every poll, and beyond 255 live timers
//! glommio's wheel fires timers up to 1 ms early, so that the executor spins until each
//! deadline. A sleep polled over and over beside a busy future must not get there.

use clockwork_net::runtime::{run_here, ExecutorConfig};
use futures_lite::future;
use std::time::{Duration, Instant};

/// Polls a sleep of 10 s `polls` times from a task that a channel wakes each time
/// (the shape of `or(read, sleep)` on a busy link), then counts the task polls of a
/// probe: 40 sleeps of 2.5 ms while another task wakes the executor every 300 µs.
fn probe_polls(polls: usize, glommio_sleep: bool) -> u64 {
    let cfg = ExecutorConfig::named("timers").with_tick(Duration::from_secs(1));
    run_here(cfg, async move {
        let (tx, rx) = glommio::channels::local_channel::new_unbounded::<()>();
        let busy_link = glommio::spawn_local(async move {
            let long = Duration::from_secs(10);
            let sleep: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> = if glommio_sleep {
                Box::pin(glommio::timer::sleep(long))
            } else {
                Box::pin(clockwork_net::timer::sleep(long))
            };
            let reads = async {
                for _ in 0..polls {
                    rx.recv().await;
                }
            };
            future::or(reads, sleep).await;
            // Keep the sleep's registrations alive while the probe runs.
            future::pending::<()>().await;
        });
        for _ in 0..polls {
            let _ = tx.try_send(());
            future::yield_now().await;
        }
        // Let the busy task take what is queued before the probe counts.
        clockwork_net::timer::sleep(Duration::from_millis(5)).await;
        let waker = glommio::spawn_local(async {
            loop {
                clockwork_net::timer::sleep(Duration::from_micros(300)).await;
            }
        });
        let _ = glommio::executor().executor_stats();
        let start = Instant::now();
        for _ in 0..40 {
            clockwork_net::timer::sleep(Duration::from_micros(2500)).await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(100),
            "a sleep ended early"
        );
        let polls = glommio::executor().executor_stats().tasks_executed();
        drop(waker);
        drop(busy_link);
        polls
    })
    .expect("executor")
}

#[test]
fn a_sleep_polled_many_times_does_not_make_the_executor_spin() {
    let quiet = probe_polls(0, false);
    let ours = probe_polls(600, false);
    // Shown, not asserted: glommio's own sleep in the same place (the quirk itself).
    let glommio = probe_polls(600, true);
    eprintln!("probe task polls: quiet {quiet}, after clockwork_net sleep {ours}, after glommio sleep {glommio}");
    assert!(
        ours <= quiet * 2 + 50,
        "the probe took {ours} task polls after the busy sleep, {quiet} without it: the executor spins"
    );
}

/// Puts the reactor on glommio's 1 ms wheel (300 long sleeps held by other tasks), then
/// counts the task polls of 40 sleeps of 2.5 ms while another task wakes the executor
/// every 300 µs; also returns the latest end of a sleep after its deadline.
fn wheel_probe(glommio_sleep: bool) -> (u64, Duration) {
    let cfg = ExecutorConfig::named("wheel").with_tick(Duration::from_secs(1));
    run_here(cfg, async move {
        let holders: Vec<_> = (0..300)
            .map(|_| {
                glommio::spawn_local(async {
                    clockwork_net::timer::sleep(Duration::from_secs(30)).await;
                })
            })
            .collect();
        let waker = glommio::spawn_local(async {
            loop {
                clockwork_net::timer::sleep(Duration::from_micros(300)).await;
            }
        });
        clockwork_net::timer::sleep(Duration::from_millis(5)).await;
        let _ = glommio::executor().executor_stats();
        let mut latest = Duration::ZERO;
        for _ in 0..40 {
            let deadline = Instant::now() + Duration::from_micros(2500);
            if glommio_sleep {
                glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
            } else {
                clockwork_net::timer::sleep_until(deadline).await;
            }
            let now = Instant::now();
            assert!(now >= deadline, "a sleep ended before its deadline");
            latest = latest.max(now - deadline);
        }
        let polls = glommio::executor().executor_stats().tasks_executed();
        drop(waker);
        drop(holders);
        (polls, latest)
    })
    .expect("executor")
}

#[test]
fn on_glommios_timer_wheel_a_sleep_does_not_spin_to_its_deadline() {
    let quiet = probe_polls(0, false);
    let (ours, late) = wheel_probe(false);
    // Shown, not asserted: glommio's own sleep on the wheel spins.
    let (glommio, _) = wheel_probe(true);
    eprintln!(
        "task polls on the wheel: clockwork_net sleep {ours} (latest end {late:?} after the \
         deadline), glommio sleep {glommio}; off the wheel {quiet}"
    );
    assert!(
        ours <= quiet * 2 + 50,
        "{ours} task polls on the wheel against {quiet} off it: the sleeps spin"
    );
}

#[test]
fn sleep_until_ends_at_its_deadline_and_not_before() {
    let cfg = ExecutorConfig::named("sleep-until");
    run_here(cfg, async {
        let deadline = Instant::now() + Duration::from_millis(3);
        let s = clockwork_net::timer::sleep_until(deadline);
        assert_eq!(s.deadline(), deadline);
        s.await;
        assert!(Instant::now() >= deadline);
        // A deadline in the past is ready at once.
        clockwork_net::timer::sleep_until(deadline).await;
    })
    .expect("executor");
}

/// `runtime::set_tick` changes the tick guard's period from then on: `tick()` reports
/// it, and an idle executor is woken by the guard at most once per new period (with
/// the 1 ms tick it started with, the same idle spell would take one wake-up per
/// millisecond). A zero period is ignored (the guard is never switched off).
#[test]
fn set_tick_changes_the_guards_period_from_then_on() {
    use clockwork_net::runtime::{set_tick, tick, tick_wakeups};
    let cfg = ExecutorConfig::named("set-tick").with_tick(Duration::from_millis(1));
    run_here(cfg, async {
        // The guard registers on its first poll.
        clockwork_net::timer::sleep(Duration::from_millis(2)).await;
        assert_eq!(tick(), Some(Duration::from_millis(1)));
        set_tick(Duration::ZERO);
        assert_eq!(tick(), Some(Duration::from_millis(1)));
        let long = Duration::from_millis(25);
        set_tick(long);
        assert_eq!(tick(), Some(long));
        let (t0, n0) = (Instant::now(), tick_wakeups());
        clockwork_net::timer::sleep(Duration::from_millis(200)).await;
        let (spell, ticks) = (t0.elapsed(), tick_wakeups() - n0);
        let most = (spell.as_micros() / long.as_micros()) as u64 + 2;
        assert!(
            ticks <= most,
            "{ticks} ticks in {spell:?} at a {long:?} tick"
        );
        set_tick(Duration::from_millis(1));
        assert_eq!(tick(), Some(Duration::from_millis(1)));
    })
    .expect("executor");
}
