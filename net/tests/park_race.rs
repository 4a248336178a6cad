//! Stress tests for glommio's executor-park race and the tick guard that
//! `clockwork_net::runtime` puts on every executor (see `docs/adr/0001-glommio.md`).
//!
//! The unguarded failure mode is a permanent hang, so every scenario runs behind a
//! watchdog (`recv_timeout`) that turns a hang into a test failure instead of a stuck CI
//! job. Timing bounds are deliberately generous: CI VMs are noisy, and a real failure is
//! a hang, not a slow run.
//!
//! One window is outside the guard's reach: an executor whose preempt timer expires
//! before its first task has run can park for good before the guard exists (glommio-ng
//! 0.12 offers no way to arm a timer earlier). With the default 100 ms preempt timer
//! that needs a ~100 ms stall of a starting thread; with the 50–200 µs timers used here
//! to provoke the race it happens in a few percent of starts in a debug build. The
//! stress tests therefore count such start-up hangs separately and tolerate a few;
//! every executor that got going must finish.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clockwork_net::runtime::{self, ExecutorConfig, RuntimeError};

/// How long a started scenario may run before it counts as hung.
const WATCHDOG: Duration = Duration::from_secs(10);
/// How long an executor may take to poll its first task.
const START_WATCHDOG: Duration = Duration::from_secs(2);
/// Generous bound on the gap between consecutive firings of a 200 µs timer. With a
/// 2 ms tick a wrong park costs at most ~2 ms; alone on the 2-core dev VM the worst gap
/// in 400 runs was 13 ms, but with two spinning stress executors sharing it one gap in
/// 1000 runs reached 113 ms. The rest is headroom for noisy CI VMs: the unguarded
/// failure is a permanent hang, which the watchdog catches.
const MAX_TIMER_GAP: Duration = Duration::from_millis(250);
/// Tick used by the stress scenarios.
const STRESS_TICK: Duration = Duration::from_millis(2);
/// Runs per stress test: unguarded, 1 run in 30 to 26 in 60 hang (notes; this test
/// file's ignored `unguarded_stress_hangs`). Set `PARK_RACE_RUNS` to soak longer.
const STRESS_RUNS: usize = 40;

fn stress_runs() -> usize {
    std::env::var("PARK_RACE_RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(STRESS_RUNS)
}

/// The measured trigger of the park race: a short preempt timer, timer tasks sleeping
/// ~200 µs in a loop, and a task that yields with `yield_now` (bounded by a deadline).
#[derive(Clone, Copy, Debug)]
struct Scenario {
    preempt: Duration,
    tick: Duration,
    run_for: Duration,
    timer_period: Duration,
    timer_tasks: usize,
    /// Every task calls `runtime::awake()` on each turn, so the guard's timers are
    /// always being pushed back (the worst case for the guard's bound).
    awake: bool,
}

impl Scenario {
    fn stress(preempt: Duration) -> Self {
        Self {
            preempt,
            tick: STRESS_TICK,
            run_for: Duration::from_millis(60),
            timer_period: Duration::from_micros(200),
            timer_tasks: 2,
            awake: false,
        }
    }
}

#[derive(Debug)]
struct Report {
    yields: u64,
    firings: u64,
    max_gap: Duration,
}

#[derive(Debug)]
enum Outcome {
    Done(Report),
    /// The executor never polled its first task: the start-up window (module docs).
    HungAtStart,
    /// The executor started and then stopped making progress; the counters say where.
    Hung {
        yields: u64,
        firings: u64,
    },
}

/// Runs one scenario on an executor built by `runtime::spawn`, behind the watchdogs.
fn run_scenario(s: Scenario, run: usize, watchdog: Duration) -> Outcome {
    let yields = Arc::new(AtomicU64::new(0));
    let firings = Arc::new(AtomicU64::new(0));
    let cfg = ExecutorConfig::named(format!("park-race-{run}"))
        .with_tick(s.tick)
        .with_preempt_timer(s.preempt);

    let (started_tx, started_rx) = mpsc::channel();
    let (y, f) = (Arc::clone(&yields), Arc::clone(&firings));
    let handle = runtime::spawn(cfg, move || async move {
        let _ = started_tx.send(());
        stress_body(s, y, f).await
    })
    .expect("spawn executor");

    // Join on a helper thread so that a hung executor cannot hang the test thread.
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = done_tx.send(handle.join());
    });
    if started_rx.recv_timeout(START_WATCHDOG).is_err() {
        // A start-up failure is reported by join; only a silent executor is a hang.
        return match done_rx.try_recv() {
            Ok(result) => panic!("executor ended without starting: {result:?}"),
            Err(_) => Outcome::HungAtStart,
        };
    }
    match done_rx.recv_timeout(watchdog) {
        Ok(result) => Outcome::Done(result.expect("executor finished with an error")),
        Err(mpsc::RecvTimeoutError::Timeout) => Outcome::Hung {
            yields: yields.load(Ordering::Relaxed),
            firings: firings.load(Ordering::Relaxed),
        },
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("join thread vanished"),
    }
}

async fn stress_body(s: Scenario, yields: Arc<AtomicU64>, firings: Arc<AtomicU64>) -> Report {
    let deadline = Instant::now() + s.run_for;
    let max_gap = Rc::new(Cell::new(Duration::ZERO));

    let timers: Vec<_> = (0..s.timer_tasks)
        .map(|_| {
            let (firings, max_gap) = (Arc::clone(&firings), Rc::clone(&max_gap));
            glommio::spawn_local(async move {
                let mut last = Instant::now();
                while last < deadline {
                    glommio::timer::sleep(s.timer_period).await;
                    if s.awake {
                        runtime::awake();
                    }
                    let now = Instant::now();
                    max_gap.set(max_gap.get().max(now - last));
                    last = now;
                    firings.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // The trigger, on purpose: a `yield_now` spin (forbidden in production code).
    let yielder = glommio::spawn_local({
        let yields = Arc::clone(&yields);
        async move {
            while Instant::now() < deadline {
                futures_lite::future::yield_now().await;
                if s.awake {
                    runtime::awake();
                }
                yields.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    for timer in timers {
        timer.await;
    }
    yielder.await;
    Report {
        yields: yields.load(Ordering::Relaxed),
        firings: firings.load(Ordering::Relaxed),
        max_gap: max_gap.get(),
    }
}

/// Serialises the stress tests of this file: each keeps a core busy, and two at once on
/// a 2-core machine make the timer-gap numbers mostly about CPU contention.
static STRESS_LOCK: Mutex<()> = Mutex::new(());

fn assert_guarded_runs(preempt: Duration, runs: usize) {
    assert_guarded_scenario(Scenario::stress(preempt), runs);
}

fn assert_guarded_scenario(scenario: Scenario, runs: usize) {
    let preempt = scenario.preempt;
    // A poisoned lock only means another stress test failed; this one can still run.
    let _serial = STRESS_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut hung_at_start = 0;
    let mut worst_gap = Duration::ZERO;
    for run in 0..runs {
        match run_scenario(scenario, run, WATCHDOG) {
            Outcome::Done(report) => {
                assert!(
                    report.yields > 0,
                    "run {run}: yielding task made no progress: {report:?}"
                );
                assert!(
                    report.firings > 0,
                    "run {run}: timers never fired: {report:?}"
                );
                assert!(
                    report.max_gap <= MAX_TIMER_GAP,
                    "run {run} (preempt {preempt:?}): timer stalled for {:?}: {report:?}",
                    report.max_gap
                );
                worst_gap = worst_gap.max(report.max_gap);
            }
            Outcome::HungAtStart => hung_at_start += 1,
            Outcome::Hung { yields, firings } => panic!(
                "run {run} (preempt {preempt:?}): executor hung despite the tick guard \
                 (yields {yields}, timer firings {firings})"
            ),
        }
    }
    eprintln!(
        "preempt {preempt:?}: {runs} runs, {hung_at_start} hung at start-up (outside the \
         guard), worst timer gap {worst_gap:?}"
    );
    assert!(
        hung_at_start * 4 <= runs,
        "{hung_at_start} of {runs} executors never started: too few runs exercised the guard"
    );
}

/// The trigger measured in the notes (`preempt_timer(50 µs)`), behind the tick guard.
#[test]
fn guarded_stress_preempt_50us() {
    assert_guarded_runs(Duration::from_micros(50), stress_runs());
}

/// The same trigger with every task calling `runtime::awake()` on each turn: the
/// guard's timers are pushed back all the time, and a wrong park must still end
/// within about a tick.
#[test]
fn guarded_stress_preempt_50us_awake() {
    let scenario = Scenario {
        awake: true,
        ..Scenario::stress(Duration::from_micros(50))
    };
    assert_guarded_scenario(scenario, stress_runs());
}

/// A less aggressive preempt timer: fewer wrong parks per run, more rounds per run.
#[test]
fn guarded_stress_preempt_200us() {
    assert_guarded_runs(Duration::from_micros(200), stress_runs());
}

/// The reviewer's reproducer shape (upstream PR #53) with the preempt timer we ship:
/// `run_here` on a trivial future 1,000 times in a thread, each iteration watched by a
/// 5 s `recv_timeout`.
#[test]
fn run_here_default_preempt_x1000() {
    reviewer_reproducer(None);
}

/// The reviewer's exact reproducer: `preempt_timer(1 ns)`. On glommio-ng 0.12.0 it
/// hangs in the first iteration: the 1 ns timer expires before the executor's first
/// task runs, which the tick guard cannot cover. Enable once a glommio release with
/// PR #53 is adopted (see the ADR).
#[test]
#[ignore = "hangs on glommio-ng 0.12.0 until a release carries glommio/glommio PR #53"]
fn run_here_preempt_1ns_x1000_needs_upstream_fix() {
    reviewer_reproducer(Some(Duration::from_nanos(1)));
}

fn reviewer_reproducer(preempt: Option<Duration>) {
    const ITERATIONS: usize = 1_000;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for i in 0..ITERATIONS {
            let mut cfg = ExecutorConfig::named("reproducer");
            cfg.preempt_timer = preempt;
            let result = runtime::run_here(cfg, async move { i });
            if tx.send(result).is_err() {
                return;
            }
        }
    });
    for i in 0..ITERATIONS {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(result) => assert_eq!(result.expect("run_here"), i),
            Err(err) => panic!("iteration {i} did not finish within 5 s ({err:?}): executor hung"),
        }
    }
}

#[test]
fn preflight_passes_on_this_host() {
    runtime::preflight().expect("preflight (tests run as root with io_uring enabled)");
}

#[test]
fn impossible_cpu_is_an_error_not_a_panic() {
    let cfg = ExecutorConfig::named("no-such-cpu").with_cpu(4096);
    let err = match runtime::spawn(cfg.clone(), || async {}) {
        Err(err) => err,
        Ok(handle) => handle.join().expect_err("CPU 4096 cannot exist"),
    };
    assert!(matches!(err, RuntimeError::Executor(_)), "{err:?}");
    assert!(err.to_string().contains("4096"), "{err}");

    let err = runtime::run_here(cfg, async {}).expect_err("CPU 4096 cannot exist");
    assert!(matches!(err, RuntimeError::Executor(_)), "{err:?}");
}

#[test]
fn spawn_returns_the_output_and_reports_panics() {
    let handle =
        runtime::spawn(ExecutorConfig::named("output"), || async { 41 + 1 }).expect("spawn");
    assert_eq!(handle.name(), "output");
    assert_eq!(handle.join().expect("join"), 42);

    let handle = runtime::spawn(ExecutorConfig::named("panics"), || async {
        panic!("boom");
    })
    .expect("spawn");
    let err = handle.join().expect_err("the future panicked");
    assert!(
        matches!(err, RuntimeError::Panicked(ref msg) if msg.contains("boom")),
        "{err:?}"
    );
}

#[test]
fn name_with_nul_is_rejected() {
    let err = runtime::spawn(ExecutorConfig::named("bad\0name"), || async {}).expect_err("NUL");
    assert!(matches!(err, RuntimeError::InvalidConfig(_)), "{err:?}");
}

/// Shows the race exists: the same stress with the tick guard disabled
/// (`tick: Duration::ZERO`, a test-only setting) hangs after start-up in some runs.
/// Ignored by default: hung executor threads are left behind, and whether the race is
/// hit depends on the machine. Run with
/// `cargo test -p clockwork-net --test park_race -- --ignored unguarded`.
#[test]
#[ignore = "demonstrates the unguarded hang; leaves hung threads behind"]
fn unguarded_stress_hangs() {
    const RUNS: usize = 60;
    let _serial = STRESS_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut hung = 0;
    for run in 0..RUNS {
        let s = Scenario {
            tick: Duration::ZERO,
            ..Scenario::stress(Duration::from_micros(50))
        };
        // A short watchdog is enough here: a run takes ~60 ms.
        if let Outcome::Hung { yields, firings } = run_scenario(s, run, Duration::from_secs(2)) {
            eprintln!("run {run}: hung (yields {yields}, timer firings {firings})");
            hung += 1;
        }
    }
    eprintln!("{hung} of {RUNS} unguarded runs hung after start-up");
    assert!(
        hung > 0,
        "no unguarded run hung on this machine; the race was not hit"
    );
}
