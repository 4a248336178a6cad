//! glommio executor set-up: the one place where Clockwork-RS builds executors.
//!
//! Every service (controller, worker, client library) starts its executors through
//! [`spawn`] (a new thread) or [`run_here`] (the current thread). Both run [`preflight`]
//! first, build a [`glommio::LocalExecutorBuilder`] from an [`ExecutorConfig`], and start
//! the **tick guard** on the executor before the caller's future runs. The reasons, the
//! choice of glommio crate and the upstream fix to adopt are in
//! `docs/adr/0001-glommio.md`.
//!
//! # The park race and the tick guard
//!
//! Every published glommio (0.9.0 and glommio-ng 0.12.0, which we use under the name
//! `glommio`) can park an executor in `io_uring_enter` while task queues are still
//! runnable: when `need_preempt()` is already true as `LocalExecutor::run_task_queues`
//! starts, it returns "nothing ran" and the run loop parks. Nothing is left to wake it,
//! so without help the executor hangs for good. When glommio parks it still arms the
//! next pending *user* timer, so the tick guard keeps user timers armed at all times and
//! turns a permanent hang into a stall of at most one tick. (It keeps a ladder of
//! timers rather than one sleeping task: a sleeper whose timer has just fired holds no
//! timer, and a wrong park in that moment is permanent again; the stress test hit it.)
//!
//! **Why the default tick is 1 ms.** A wrong park then costs at most about 1 ms, which
//! is inside the controller's 1 ms `future` slack and far inside the 5–10 ms
//! schedule-ahead windows, so a stall never turns into a missed action by itself. The
//! cost is about 1000 timer wake-ups per second per idle executor; on the 2-core dev VM
//! a glommio wake-up costs tens of µs (an idle release controller used 5.2 % of a
//! core).
//!
//! **Postponed while awake.** A busy executor does not need the tick to wake it, but a
//! timer fires whether or not the executor was woken by other work in between: at the
//! main job's ≈ 700 requests/s the controller's work comes in bursts with gaps of
//! about a millisecond, and a third of its wake-ups were the tick's
//! (`CLOCKWORK_WAKE_STATS`, [`crate::wakes`]). So services call [`awake`] where a
//! wake-up's work starts (every frame read does, in `conn`): it re-arms the guard's
//! timers a full period from now, so the tick fires only after 7/8 of a tick without
//! such work. That keeps the bound: no guard timer is ever more than its period ahead,
//! so a wrong park still ends within one tick.
//!
//! **Stretched where deadlines allow.** [`set_tick`] changes a running guard's period.
//! The controller uses it to follow its tightest SLO (a twentieth of it, between its
//! `--tick-us` and `--tick-max-us`). At 100 ms SLOs a 5 ms bound on a wrong park costs
//! nothing, and an idle controller then wakes a fifth as often.
//!
//! **Interaction with `spin_before_park`.** After every wake-up an executor spins for
//! `spin_before_park` before it parks again, and the tick wakes it every `tick`. An idle
//! executor with spin `S` and tick `T` therefore burns about `S / T` of a core (all of
//! it once `S >= T`): `S = 200 µs, T = 1 ms` costs ≈ 20 % of a core while idle. That is
//! the latency/CPU trade the operator chooses; leave `spin_before_park` unset where
//! wake-up latency does not matter.
//!
//! The guard cannot cover the first scheduling round of a fresh executor: its timers
//! are armed when the executor first polls our root task, and glommio offers no way to
//! arm one earlier. With the default preempt timer a wrong park there needs a ~100 ms
//! stall of the starting thread; with a 50 µs timer it hit ~2 % of starts in a debug
//! build, and with 1–10 µs nearly all (see rule 2).
//!
//! # Rules
//!
//! 1. **No task spins on `yield_now`** in production code: a `yield_now` loop starves the
//!    other task queues and is the measured trigger of the park race. Use
//!    [`glommio::yield_if_needed`] in long loops, and wake-ups (channels, wakers, timers)
//!    for waiting.
//! 2. **Keep the default preempt timer** (100 ms): leave
//!    [`ExecutorConfig::preempt_timer`] at `None`, and do not give task queues short
//!    `Latency::Matters` durations (they lower the preempt timer while active). Shorter
//!    timers make the race frequent and the unguarded start-up window real; only tests
//!    shorten them.
//! 3. **Every executor gets the tick guard**: build executors only through this module,
//!    never with `LocalExecutorBuilder` directly, and do not disable the tick outside
//!    tests.
//! 4. **Sleep with [`crate::timer::sleep`]**, not `glommio::timer::sleep`: glommio's
//!    timer registers again on every poll, and past 255 live timers its wheel fires
//!    timers early and the executor spins to each deadline (`timer`'s module docs).
//! 5. **Call [`awake`] where a wake-up's work starts** in a service's own event sources
//!    (frame reads already do), so that the tick guard does not wake a busy executor.
//!
//! # Host requirements
//!
//! glommio needs io_uring and a soft `RLIMIT_MEMLOCK` of at least
//! [`MIN_MEMLOCK_BYTES`]. On a host that lacks them glommio fails in ways that are hard
//! to read, or (glommio 0.9) exits the process, so [`preflight`] checks both first and
//! says what to change. It cannot see a seccomp policy that blocks `io_uring_setup`
//! (container runtimes often ship one); glommio-ng then reports a start-up error, which
//! [`spawn`] and [`run_here`] return as [`RuntimeError::Executor`].

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Once;
use std::task::{Context, Poll, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use glommio::timer::Timer;
use glommio::{
    BuilderErrorKind, ExecutorJoinHandle, GlommioError, LocalExecutorBuilder, Placement,
};
use nix::sys::resource::{getrlimit, Resource};

/// Default period of the tick guard, in microseconds (see the module docs).
pub const DEFAULT_TICK_US: u64 = 1_000;

/// The tick periods a service's command line accepts, in microseconds: at least
/// 100 µs (a shorter tick is mostly wake-ups) and at most 100 ms (glommio's default
/// preempt timer; a longer tick would bound nothing useful).
pub const TICK_US_RANGE: std::ops::RangeInclusive<u64> = 100..=100_000;

/// The smallest soft `RLIMIT_MEMLOCK` glommio accepts (its reactor refuses to start
/// below this: the memory io_uring needs for its own structures).
pub const MIN_MEMLOCK_BYTES: u64 = 512 * 1024;

/// The `CAP_SYS_ADMIN` bit in the capability sets of `/proc/self/status`.
const CAP_SYS_ADMIN_BIT: u32 = 21;

const IO_URING_DISABLED_PATH: &str = "/proc/sys/kernel/io_uring_disabled";
const IO_URING_GROUP_PATH: &str = "/proc/sys/kernel/io_uring_group";
const PROC_SELF_STATUS_PATH: &str = "/proc/self/status";

/// How to build one executor.
///
/// Build it with struct-update syntax (`ExecutorConfig { cpu: Some(2),
/// ..ExecutorConfig::default() }`) or with the `with_*` helpers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorConfig {
    /// Executor name; glommio names the thread `<name>-<executor id>`. Must not
    /// contain NUL bytes.
    pub name: String,
    /// Pin the executor to this CPU (`Placement::Fixed`); `None` leaves it unbound.
    pub cpu: Option<usize>,
    /// Period of the tick guard, the bound on a wrong park (see the module docs for
    /// why the default is 1 ms).
    ///
    /// `Duration::ZERO` disables the guard. **Test-only**: it exists so a test can show
    /// the park race; production executors must keep a non-zero tick.
    pub tick: Duration,
    /// Busy-spin this long before parking (trades CPU for wake-up latency; see the
    /// module docs for its cost together with the tick). `None`: park at once.
    pub spin_before_park: Option<Duration>,
    /// Bytes of io_uring registered-buffer memory (glommio's default is 10 MiB; network
    /// I/O does not use it, so keep it small). glommio rounds it up to at least 64 KiB.
    pub io_memory: usize,
    /// glommio's preempt timer. `None` keeps glommio's default (100 ms); only tests
    /// should shorten it, because a short timer widens the park race.
    pub preempt_timer: Option<Duration>,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            name: String::from("clockwork"),
            cpu: None,
            tick: Duration::from_micros(DEFAULT_TICK_US),
            spin_before_park: None,
            io_memory: 512 * 1024,
            preempt_timer: None,
        }
    }
}

impl ExecutorConfig {
    /// The default configuration with the given name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Pins the executor to `cpu`.
    #[must_use]
    pub fn with_cpu(mut self, cpu: usize) -> Self {
        self.cpu = Some(cpu);
        self
    }

    /// Sets the tick guard period (`Duration::ZERO` disables it: tests only).
    #[must_use]
    pub fn with_tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    /// Spins for `spin` before parking.
    #[must_use]
    pub fn with_spin_before_park(mut self, spin: Duration) -> Self {
        self.spin_before_park = Some(spin);
        self
    }

    /// Sets the registered-buffer memory in bytes.
    #[must_use]
    pub fn with_io_memory(mut self, bytes: usize) -> Self {
        self.io_memory = bytes;
        self
    }

    /// Overrides glommio's preempt timer (tests only; see the module rules).
    #[must_use]
    pub fn with_preempt_timer(mut self, timer: Duration) -> Self {
        self.preempt_timer = Some(timer);
        self
    }

    fn validate(&self) -> Result<(), RuntimeError> {
        if self.name.contains('\0') {
            return Err(RuntimeError::InvalidConfig(format!(
                "executor name {:?} contains a NUL byte",
                self.name
            )));
        }
        Ok(())
    }

    fn builder(&self) -> LocalExecutorBuilder {
        let placement = match self.cpu {
            Some(cpu) => Placement::Fixed(cpu),
            None => Placement::Unbound,
        };
        let mut builder = LocalExecutorBuilder::new(placement)
            .name(&self.name)
            .io_memory(self.io_memory);
        if let Some(spin) = self.spin_before_park {
            builder = builder.spin_before_park(spin);
        }
        if let Some(timer) = self.preempt_timer {
            builder = builder.preempt_timer(timer);
        }
        builder
    }
}

/// Why an executor could not be started or did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// `kernel.io_uring_disabled` is 2: io_uring is off for every process.
    #[error(
        "io_uring is disabled on this host ({IO_URING_DISABLED_PATH} = 2); glommio needs it: \
         run `sysctl -w kernel.io_uring_disabled=0` (or 1 plus `kernel.io_uring_group`)"
    )]
    IoUringDisabled,
    /// `kernel.io_uring_disabled` is 1 and this process is neither `CAP_SYS_ADMIN` nor a
    /// member of `kernel.io_uring_group`.
    #[error(
        "io_uring is restricted on this host ({IO_URING_DISABLED_PATH} = 1) and this process \
         has neither CAP_SYS_ADMIN nor membership of kernel.io_uring_group ({}): add the \
         service user to that group, or run `sysctl -w kernel.io_uring_disabled=0`",
        match .group { Some(gid) => format!("gid {gid}"), None => String::from("unset") }
    )]
    IoUringRestricted {
        /// The value of `kernel.io_uring_group`, `None` when unset (-1) or absent.
        group: Option<u32>,
    },
    /// The soft `RLIMIT_MEMLOCK` is below what glommio's reactor requires.
    #[error(
        "the soft RLIMIT_MEMLOCK is {soft} bytes but glommio needs at least {needed} bytes: \
         raise it before starting, e.g. `ulimit -l {}` in the launching shell, \
         `LimitMEMLOCK=` in the systemd unit, or `--ulimit memlock=` for containers",
        needed.div_ceil(1024)
    )]
    MemlockTooLow {
        /// The current soft limit, bytes.
        soft: u64,
        /// The minimum glommio accepts, bytes ([`MIN_MEMLOCK_BYTES`]).
        needed: u64,
    },
    /// A host check could not read what it needs.
    #[error("preflight could not read {what}: {source}")]
    Probe {
        /// What was being read.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The [`ExecutorConfig`] cannot be used.
    #[error("invalid executor configuration: {0}")]
    InvalidConfig(String),
    /// glommio failed to build or run the executor (bad placement, io_uring set-up,
    /// memlock, thread creation, ...). The text names the executor and carries
    /// glommio's message.
    #[error("glommio executor failed: {0}")]
    Executor(String),
    /// The executor thread panicked (the future or the executor itself); carries the
    /// panic message.
    #[error("executor thread panicked: {0}")]
    Panicked(String),
}

/// Checks that this host can run glommio executors: io_uring is allowed for this
/// process and the soft `RLIMIT_MEMLOCK` is at least [`MIN_MEMLOCK_BYTES`].
///
/// [`spawn`] and [`run_here`] call it; services may call it once at start-up to fail
/// before doing anything else. A missing `kernel.io_uring_disabled` (kernels before
/// 6.6) counts as allowed. When io_uring is restricted (value 1) but this process may
/// use it, a warning is logged once.
///
/// # Errors
///
/// [`RuntimeError::IoUringDisabled`], [`RuntimeError::IoUringRestricted`],
/// [`RuntimeError::MemlockTooLow`], or [`RuntimeError::Probe`] when a `/proc` file or
/// `getrlimit` cannot be read.
pub fn preflight() -> Result<(), RuntimeError> {
    check_io_uring()?;
    check_memlock()
}

fn check_io_uring() -> Result<(), RuntimeError> {
    let Some(disabled) = read_proc_int(IO_URING_DISABLED_PATH, "kernel.io_uring_disabled")? else {
        return Ok(());
    };
    match disabled {
        0 => Ok(()),
        1 => {
            let group = read_proc_int(IO_URING_GROUP_PATH, "kernel.io_uring_group")?
                .and_then(|gid| u32::try_from(gid).ok());
            let status = std::fs::read_to_string(PROC_SELF_STATUS_PATH).map_err(|source| {
                RuntimeError::Probe {
                    what: PROC_SELF_STATUS_PATH,
                    source,
                }
            })?;
            if restricted_io_uring_allowed(&status, group) {
                static WARN_ONCE: Once = Once::new();
                WARN_ONCE.call_once(|| {
                    tracing::warn!(
                        "io_uring is restricted on this host (kernel.io_uring_disabled = 1); \
                         this process may use it (CAP_SYS_ADMIN or kernel.io_uring_group)"
                    );
                });
                Ok(())
            } else {
                Err(RuntimeError::IoUringRestricted { group })
            }
        }
        2 => Err(RuntimeError::IoUringDisabled),
        other => Err(RuntimeError::Probe {
            what: "kernel.io_uring_disabled",
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected value {other} (expected 0, 1 or 2)"),
            ),
        }),
    }
}

/// Reads an integer sysctl; `Ok(None)` when the file does not exist.
fn read_proc_int(path: &str, what: &'static str) -> Result<Option<i64>, RuntimeError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RuntimeError::Probe { what, source }),
    };
    text.trim()
        .parse::<i64>()
        .map(Some)
        .map_err(|err| RuntimeError::Probe {
            what,
            source: io::Error::new(io::ErrorKind::InvalidData, err),
        })
}

/// Mirrors the kernel's `io_uring_allowed()` for `io_uring_disabled = 1`: allowed with
/// `CAP_SYS_ADMIN`, or when the filesystem gid or a supplementary group is
/// `io_uring_group`. Best effort: the kernel checks the capability against the initial
/// user namespace, `/proc/self/status` shows it in ours.
fn restricted_io_uring_allowed(status: &str, group: Option<u32>) -> bool {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
    };
    let cap_sys_admin = field("CapEff:")
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN_BIT) != 0);
    if cap_sys_admin {
        return true;
    }
    let Some(group) = group else {
        return false;
    };
    // "Gid:" lists real, effective, saved and filesystem gid; the kernel checks the last.
    let fsgid = field("Gid:")
        .and_then(|gids| gids.split_whitespace().nth(3))
        .and_then(|gid| gid.parse::<u32>().ok());
    let mut supplementary = field("Groups:")
        .into_iter()
        .flat_map(str::split_whitespace)
        .filter_map(|gid| gid.parse::<u32>().ok());
    fsgid == Some(group) || supplementary.any(|gid| gid == group)
}

fn check_memlock() -> Result<(), RuntimeError> {
    let (soft, _hard) =
        getrlimit(Resource::RLIMIT_MEMLOCK).map_err(|errno| RuntimeError::Probe {
            what: "RLIMIT_MEMLOCK",
            source: io::Error::from(errno),
        })?;
    // RLIM_INFINITY is u64::MAX, so it passes this comparison.
    if soft < MIN_MEMLOCK_BYTES {
        return Err(RuntimeError::MemlockTooLow {
            soft,
            needed: MIN_MEMLOCK_BYTES,
        });
    }
    Ok(())
}

/// A running executor thread started by [`spawn`].
pub struct ExecutorHandle<T: Send + 'static> {
    name: String,
    inner: ExecutorJoinHandle<T>,
}

impl<T: Send + 'static> ExecutorHandle<T> {
    /// The executor's name (from its [`ExecutorConfig`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The executor's thread.
    pub fn thread(&self) -> &Thread {
        self.inner.thread()
    }

    /// Waits for the executor's future to finish and returns its output.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Executor`] when the executor failed to start on its thread
    /// (glommio's `spawn` reports such failures only here), and
    /// [`RuntimeError::Panicked`] when the thread panicked.
    pub fn join(self) -> Result<T, RuntimeError> {
        let name = self.name;
        self.inner.join().map_err(|err| match err {
            GlommioError::BuilderError(BuilderErrorKind::ThreadPanic(message)) => {
                RuntimeError::Panicked(format!("executor `{name}`: {message}"))
            }
            other => executor_error(&name, &other),
        })
    }
}

impl<T: Send + 'static> fmt::Debug for ExecutorHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorHandle")
            .field("name", &self.name)
            .field("thread", self.inner.thread())
            .finish_non_exhaustive()
    }
}

fn executor_error(name: &str, err: &GlommioError<()>) -> RuntimeError {
    RuntimeError::Executor(format!("executor `{name}`: {err}"))
}

/// Starts an executor on a new thread and runs `fut_gen()` on it, behind the tick guard.
///
/// `fut_gen` runs on the new thread, so the future it returns need not be `Send`.
///
/// # Errors
///
/// Whatever [`preflight`] returns, [`RuntimeError::InvalidConfig`], and
/// [`RuntimeError::Executor`] when glommio rejects the configuration at once (e.g. a
/// CPU that does not exist) or cannot create the thread. Failures while the executor
/// starts on its thread (e.g. io_uring set-up) appear at [`ExecutorHandle::join`].
pub fn spawn<G, F, T>(cfg: ExecutorConfig, fut_gen: G) -> Result<ExecutorHandle<T>, RuntimeError>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    preflight()?;
    cfg.validate()?;
    let tick = cfg.tick;
    let inner = cfg
        .builder()
        .spawn(move || guarded(tick, fut_gen()))
        .map_err(|err| executor_error(&cfg.name, &err))?;
    Ok(ExecutorHandle {
        name: cfg.name,
        inner,
    })
}

/// Builds an executor on the current thread and runs `fut` on it to completion, behind
/// the tick guard.
///
/// The thread must not already run a glommio executor (glommio panics). A panic in
/// `fut` propagates to the caller.
///
/// # Errors
///
/// Whatever [`preflight`] returns, [`RuntimeError::InvalidConfig`], and
/// [`RuntimeError::Executor`] when glommio cannot build the executor.
pub fn run_here<F, T>(cfg: ExecutorConfig, fut: F) -> Result<T, RuntimeError>
where
    F: Future<Output = T>,
{
    preflight()?;
    cfg.validate()?;
    let executor = cfg
        .builder()
        .make()
        .map_err(|err| executor_error(&cfg.name, &err))?;
    Ok(executor.run(guarded(cfg.tick, fut)))
}

/// Runs `fut` with the tick guard beside it; the guard is cancelled when `fut` ends.
async fn guarded<F: Future>(tick: Duration, fut: F) -> F::Output {
    if tick.is_zero() {
        return fut.await;
    }
    // Arm the ladder here, on the root task's first poll, before the user future or
    // any other task runs: the only stretch without a timer is then the executor's
    // first scheduling round(s) before this poll, which nothing outside glommio can
    // cover. The guard task takes the ladder over on its own first poll.
    let ladder = std::future::poll_fn(|cx| Poll::Ready(Ladder::arm(tick, cx))).await;
    // Until the guard task registers its ladder, `awake` must not reach one left by an
    // earlier executor on this thread (glommio may drop a cancelled task's future late).
    unregister_guard();
    let guard = glommio::spawn_local(tick_guard(ladder));
    let output = fut.await;
    // Dropping a glommio `Task` cancels it, which drops (deregisters) its timers.
    drop(guard);
    unregister_guard();
    output
}

/// Forgets this thread's guard registration (see [`awake`]).
fn unregister_guard() {
    GUARD.with(|guard| *guard.borrow_mut() = Weak::new());
}

/// Tells the tick guard of this thread's executor that the executor is awake and
/// running tasks: its timers are pushed back (rung 0 to a full tick from now, when it
/// was armed more than an eighth of a tick ago), so that the guard does not wake an
/// executor that other work keeps awake.
///
/// Call it where a wake-up's work starts (a frame read, a timer of the service's own):
/// while such events come at least every 7/8 tick, the guard then costs no wake-ups
/// of its own, and the bound on a wrong park stays one tick (module docs, "Postponed
/// while awake"). Cheap: a thread-local look-up and a clock read, and at most about
/// ten timer re-arms per tick. Does nothing on a thread without a guarded executor.
pub fn awake() {
    GUARD.with(|guard| {
        let Some(ladder) = guard.borrow().upgrade() else {
            return;
        };
        // Busy only if called from inside the guard's own poll, which never happens;
        // skipping is safe either way (the guard re-arms on its own).
        if let Ok(mut ladder) = ladder.try_borrow_mut() {
            ladder.postpone(Instant::now());
        };
    });
}

/// Sets the period of this thread's tick guard from now on (the bound on a wrong park,
/// and one wake-up per period while idle): every timer of the guard is armed again at
/// the new period. A service whose deadlines are loose can afford a longer bound than
/// its command line's tick, which is chosen for its tightest work (the controller
/// follows its tightest SLO: `docs/operations.md`, "Idle CPU and the tick guard").
/// Does nothing for a zero period, for the period already set, or on a thread without
/// a guarded executor (also before the guard's first poll).
pub fn set_tick(tick: Duration) {
    if tick.is_zero() {
        return;
    }
    GUARD.with(|guard| {
        let Some(ladder) = guard.borrow().upgrade() else {
            return;
        };
        // Busy only from inside the guard's own poll, which never calls this.
        if let Ok(mut ladder) = ladder.try_borrow_mut() {
            ladder.set_tick(tick);
        };
    });
}

/// The period of this thread's tick guard, if it has one (and has been polled).
pub fn tick() -> Option<Duration> {
    GUARD.with(|guard| {
        let ladder = guard.borrow().upgrade()?;
        let tick = ladder.try_borrow().ok()?.tick;
        Some(tick)
    })
}

/// How many times a tick guard on this thread has run since the thread started (after
/// its first poll): each is a wake-up by one of its timers, unless the executor was
/// awake anyway when the timer fired.
pub fn tick_wakeups() -> u64 {
    TICKS.with(Cell::get)
}

thread_local! {
    /// The ladder of the guard on this thread's executor, for [`awake`].
    static GUARD: RefCell<Weak<RefCell<Ladder>>> = const { RefCell::new(Weak::new()) };
    /// See [`tick_wakeups`].
    static TICKS: Cell<u64> = const { Cell::new(0) };
}

/// Number of timers the tick guard keeps armed; see [`tick_guard`].
const GUARD_RUNGS: u32 = 16;

/// One timer of the tick guard.
struct Rung {
    period: Duration,
    /// From when on this rung is re-armed (a fresh timer `period` ahead) when the guard
    /// runs or [`awake`] is called.
    rearm_at: Instant,
    /// Held for its registration only: dropping a glommio `Timer` deregisters it.
    _timer: Timer,
}

impl Rung {
    /// Arms a fresh timer `period` from `now`, registered with `cx`'s waker (a glommio
    /// `Timer` registers on its first poll, and every further poll of a pending one
    /// registers it again, so each timer is polled exactly once). It may be re-armed
    /// `refresh` after `now`.
    fn arm(period: Duration, refresh: Duration, now: Instant, cx: &mut Context<'_>) -> Self {
        let mut timer = Timer::new(period);
        // Pending unless `period` is zero, which `guarded` rules out; either way the
        // timer is registered or done, which is all this poll is for.
        let _ = Pin::new(&mut timer).poll(cx);
        Self {
            period,
            rearm_at: now + refresh,
            _timer: timer,
        }
    }
}

/// The tick guard's timers: rung `i` has period `tick * 2^i`.
struct Ladder {
    tick: Duration,
    rungs: Vec<Rung>,
    /// The guard task's waker, which every rung is registered with (also when
    /// [`awake`] re-arms one from another task).
    waker: Waker,
    /// The earliest `Rung::rearm_at`: before it, [`Ladder::postpone`] has nothing to do.
    next_rearm: Instant,
}

/// How long after arming rung `i` may be re-armed: rung 0 after an eighth of its
/// period (so that while the executor is awake at least every 7/8 tick, [`awake`]
/// keeps it from ever firing), the others half-way (so that they never fire while the
/// guard or [`awake`] runs at least every tick).
fn refresh(i: usize, period: Duration) -> Duration {
    if i == 0 {
        period / 8
    } else {
        period / 2
    }
}

impl Ladder {
    fn arm(tick: Duration, cx: &mut Context<'_>) -> Self {
        let now = Instant::now();
        let rungs = (0..GUARD_RUNGS)
            .map(|i| {
                let period = tick.saturating_mul(1 << i);
                Rung::arm(period, refresh(i as usize, period), now, cx)
            })
            .collect();
        let mut ladder = Self {
            tick,
            rungs,
            waker: cx.waker().clone(),
            next_rearm: now,
        };
        ladder.update_next_rearm();
        ladder
    }

    fn update_next_rearm(&mut self) {
        if let Some(at) = self.rungs.iter().map(|r| r.rearm_at).min() {
            self.next_rearm = at;
        }
    }

    /// Re-arms every rung that is due for it (see [`refresh`]; one that has fired
    /// always is), and rung 0 anyway when `fired` (the guard runs because a timer fired:
    /// rung 0's, unless the executor stalled; glommio's 1 ms timer wheel, which it uses
    /// beyond 255 timers, fires timers up to 1 ms early), registered with `cx`'s waker.
    fn rearm(&mut self, now: Instant, cx: &mut Context<'_>, fired: bool) {
        for (i, rung) in self.rungs.iter_mut().enumerate() {
            if now >= rung.rearm_at || (fired && i == 0) {
                *rung = Rung::arm(rung.period, refresh(i, rung.period), now, cx);
            }
        }
        self.update_next_rearm();
    }

    /// A new period: every rung is armed again at its new period (a shorter one must
    /// bound a wrong park from now on, and a longer one must not leave the old rungs
    /// waking the executor), with the guard's waker.
    fn set_tick(&mut self, tick: Duration) {
        if tick == self.tick {
            return;
        }
        let waker = self.waker.clone();
        *self = Self::arm(tick, &mut Context::from_waker(&waker));
    }

    /// [`Ladder::rearm`] from outside the guard task ([`awake`]), with the guard's waker.
    fn postpone(&mut self, now: Instant) {
        if now < self.next_rearm {
            return;
        }
        let waker = self.waker.clone();
        self.rearm(now, &mut Context::from_waker(&waker), false);
    }
}

/// Keeps user timers armed at all times, so that when glommio parks wrongly (see the
/// module docs) the reactor has a timer to wake up for.
///
/// A single task sleeping in a loop is not enough: once its timer has fired the task
/// is runnable but holds no timer, and a wrong park at that moment is permanent again
/// (the stress test hit this). So the guard keeps a ladder of timers: rung `i` (period
/// `tick * 2^i`) is kept between `2^(i-1)` and `2^i` ticks ahead, re-armed once it is
/// half-way; rung 0 is re-armed from an eighth of its period on, and at the latest when
/// it fires, which wakes the guard. While the executor sleeps, rung 0 fires every
/// `tick` and the guard re-arms the rest, so only rung 0 fires (one wake-up per tick);
/// while the executor is woken by other work at least every 7/8 tick, [`awake`] re-arms
/// the rungs before they fire and the guard costs no wake-ups. No rung is ever more
/// than its period ahead, so a wrong park still ends within a tick. If the guard does
/// not run for a while (a wrong park, a stalled thread) the farther rungs are still
/// armed, so a stall of length `L` is followed by a wake-up within about `L` more.
/// With 16 rungs the ladder reaches `2^15` ticks (≈ 33 s at 1 ms).
async fn tick_guard(ladder: Ladder) {
    let mut first_poll = true;
    let ladder = Rc::new(RefCell::new(ladder));
    // Unregistered when the guard ends (dropped with its executor's root future).
    let _registered = Registered::new(&ladder);
    std::future::poll_fn(move |cx| {
        let mut ladder = ladder.borrow_mut();
        if first_poll {
            // Take the timers over from the root task that armed them.
            first_poll = false;
            *ladder = Ladder::arm(ladder.tick, cx);
        } else {
            crate::wakes::note(crate::wakes::Cause::Tick);
            TICKS.with(|t| t.set(t.get() + 1));
            if !ladder.waker.will_wake(cx.waker()) {
                ladder.waker = cx.waker().clone();
            }
            ladder.rearm(Instant::now(), cx, true);
        }
        Poll::<()>::Pending
    })
    .await;
}

/// This thread's guard registration for [`awake`], undone on drop (unless a later
/// guard on this thread has registered since).
struct Registered(Weak<RefCell<Ladder>>);

impl Registered {
    fn new(ladder: &Rc<RefCell<Ladder>>) -> Self {
        let weak = Rc::downgrade(ladder);
        GUARD.with(|guard| guard.borrow_mut().clone_from(&weak));
        Self(weak)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        GUARD.with(|guard| {
            let mut guard = guard.borrow_mut();
            if guard.ptr_eq(&self.0) {
                *guard = Weak::new();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS_ROOT: &str =
        "Name:\tx\nGid:\t0\t0\t0\t0\nGroups:\t0 \nCapEff:\t000001ffffffffff\n";
    const STATUS_USER: &str =
        "Name:\tx\nGid:\t1000\t1000\t1000\t1001\nGroups:\t27 998 \nCapEff:\t0000000000000000\n";

    #[test]
    fn cap_sys_admin_allows_restricted_io_uring() {
        assert!(restricted_io_uring_allowed(STATUS_ROOT, None));
    }

    #[test]
    fn group_membership_allows_restricted_io_uring() {
        assert!(restricted_io_uring_allowed(STATUS_USER, Some(998)));
        assert!(restricted_io_uring_allowed(STATUS_USER, Some(1001)));
        // The real gid does not count; the kernel checks the filesystem gid.
        assert!(!restricted_io_uring_allowed(STATUS_USER, Some(1000)));
        assert!(!restricted_io_uring_allowed(STATUS_USER, None));
    }

    #[test]
    fn default_config_matches_the_documented_values() {
        let cfg = ExecutorConfig::default();
        assert_eq!(cfg.tick, Duration::from_millis(1));
        assert_eq!(cfg.io_memory, 512 * 1024);
        assert_eq!(cfg.cpu, None);
        assert_eq!(cfg.spin_before_park, None);
        assert_eq!(cfg.preempt_timer, None);
    }

    /// Runs an executor (tick 10 ms) for `run_for` with one task that wakes every
    /// 200 µs, calling [`awake`] on each wake-up when `awake`; returns how many times the
    /// guard ran.
    fn guard_runs(awake_calls: bool, run_for: Duration) -> u64 {
        let cfg = ExecutorConfig::named("tick-postpone").with_tick(Duration::from_millis(10));
        let before = tick_wakeups();
        run_here(cfg, async move {
            let end = Instant::now() + run_for;
            while Instant::now() < end {
                glommio::timer::sleep(Duration::from_micros(200)).await;
                if awake_calls {
                    awake();
                }
            }
        })
        .expect("executor");
        tick_wakeups() - before
    }

    #[test]
    fn awake_keeps_the_guard_from_waking_a_busy_executor() {
        let run_for = Duration::from_millis(300);
        // Without `awake` the 10 ms rung 0 fires about 30 times in 300 ms.
        let plain = guard_runs(false, run_for);
        // With it every rung is pushed back every 200 µs (or at the latest when the
        // thread was late by more than 7/8 of a tick, 8.75 ms).
        let postponed = guard_runs(true, run_for);
        assert!(
            plain >= 10,
            "the guard ran only {plain} times in {run_for:?}"
        );
        assert!(
            postponed * 4 <= plain,
            "awake() did not keep the guard quiet: {postponed} runs against {plain} without it"
        );
    }

    #[test]
    fn awake_outside_an_executor_does_nothing() {
        awake();
    }

    #[test]
    fn restricted_error_names_the_group() {
        let msg = RuntimeError::IoUringRestricted { group: Some(998) }.to_string();
        assert!(msg.contains("kernel.io_uring_group (gid 998): "), "{msg}");
        let msg = RuntimeError::IoUringRestricted { group: None }.to_string();
        assert!(msg.contains("kernel.io_uring_group (unset): "), "{msg}");
    }

    #[test]
    fn memlock_error_says_how_to_fix_it() {
        let msg = RuntimeError::MemlockTooLow {
            soft: 65536,
            needed: MIN_MEMLOCK_BYTES,
        }
        .to_string();
        assert!(msg.contains("ulimit -l 512"), "{msg}");
    }
}
