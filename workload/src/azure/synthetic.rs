//! A synthetic stand-in for the Azure Functions 2019 trace, calibrated to its published
//! shape (reference §7.2/§7.3), for when the real trace is not available. It produces
//! [`AzureTrace`]s in memory and writes them in exactly the real file format, so that the
//! reader, the statistics and the replay are exercised on the same path as real data.
//!
//! Recipe, per function (seeded, independent of the others):
//! 1. **Daily total** `T`: a stratified draw from a piecewise log-linear quantile
//!    function through the published CDF points (0.33 at ≤ 1/day, 0.63 at ≤ 1/hour,
//!    0.80 at ≤ 1 per 5 min, 0.91 at ≤ 1/min, 0.99 at ≤ 1/s, max 5·10⁷/day), with the
//!    tail shaped so that the top 0.1 % / 1 % / 10 % of functions carry ≈ 68 % / 90 % /
//!    99.5 % of the invocations ([`DAILY_QUANTILE_KNOTS`]).
//! 2. **Trigger**: `timer` for ≈ 17 % (drawn among functions at ≤ 1/s, so timers carry
//!    ≈ 2 % of invocations); the others http, queue, event, orchestration, storage or
//!    others in the published proportions (by invocations for the top 1 %, by
//!    functions below).
//! 3. **Pattern**: timers fire on a cron-like period (1 min … 1 day, or several times
//!    every minute) from a random phase: CV 0. So do 13 % of the other functions at
//!    ≤ 1/s (polling clients). The rest spread their `T` invocations over the minutes
//!    multinomially, with weights = a global diurnal curve (±20 % over 24 h, three
//!    short 1.3× spikes) × per-function burstiness: functions above 2·10⁵/day and
//!    28 % of the others are Poisson-like (a Gamma-distributed rate redrawn every 10
//!    minutes); the others come in sessions of `1 + exp(N(2.5, 2.8))` invocations
//!    (at least two sessions a day), each spread over 1–10 minutes, which gives the
//!    non-timer inter-arrival CV a median ≈ 1.6 and ≈ 9 % above 10.
//! 4. **Days**: days 6, 7, 13 and 14 (weekends; the trace starts on Monday 15 July
//!    2019) scale non-periodic totals by `weekend_factor`.
//!
//! Generating 20,000 functions takes under a second in a release build.

use super::reader::TraceError;
use super::source::TraceSource;
use super::trace::{AzureTrace, FunctionTrace, MinuteCounts, Trigger, DAYS, MINUTES_PER_DAY};
use super::writer::write_day_file;
use crate::error::{positive, SpecError};
use clockwork_core::rng::Rng;
use rand::seq::SliceRandom;
use rand::RngExt;
use rand_distr::{Binomial, Distribution, Gamma};
use std::f64::consts::TAU;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Knots `(u, log10 daily invocations)` of the daily-total quantile function; linear in
/// `log10` between knots. See the module docs and `docs/workloads.md`.
pub const DAILY_QUANTILE_KNOTS: [(f64, f64); 10] = [
    (0.0, 0.0),
    (0.33, 0.176_091_259), // 1.5: rounds to 1 below, 2 above
    (0.63, 1.380_211_242), // 24/day = 1/hour
    (0.80, 2.459_392_488), // 288/day = 1 per 5 min
    (0.86, 3.0),
    (0.91, 3.158_362_492), // 1440/day = 1/min
    (0.95, 4.2),
    (0.99, 4.936_513_742), // 86400/day = 1/s
    (0.999, 6.2),
    (1.0, 7.7),
];

/// Timer periods, minutes, that a timer's period snaps to.
const TIMER_PERIODS: [u32; 14] = [1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440];

/// Functions at or above this daily total are smooth (steady, high-volume services).
const SMOOTH_ABOVE: f64 = 200_000.0;

/// Up to this many invocations are placed one by one; above, minute by minute.
const PLACE_ONE_BY_ONE: u64 = 2048;

/// Parameters of the synthetic trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticConfig {
    /// Seed: the same seed and parameters give the same files, byte for byte.
    pub seed: u64,
    /// Number of functions (rows).
    pub functions: usize,
    /// Fraction of functions with a `timer` trigger.
    pub timer_fraction: f64,
    /// Half the peak-to-trough swing of the diurnal curve (0.2: 0.8× to 1.2×).
    pub diurnal_amplitude: f64,
    /// Short load spikes per day.
    pub spikes_per_day: usize,
    /// Multiplier of the diurnal curve during a spike.
    pub spike_height: f64,
    /// Multiplier of non-timer totals on weekend days (6, 7, 13, 14).
    pub weekend_factor: f64,
    /// Fraction of non-timer functions (at ≤ 1/s) that are nonetheless periodic, like
    /// polling clients (the ATC paper finds ≈ 12 % of apps without timers with CV ≈ 0).
    pub regular_fraction: f64,
    /// Fraction of the other non-timer functions that are Poisson-like (Gamma-modulated
    /// per minute) rather than sessions of invocations.
    pub poisson_fraction: f64,
    /// Range of the per-minute Gamma shape of Poisson-like functions (log-uniform).
    pub gamma_shape: (f64, f64),
    /// Session functions: invocations per session is `1 + exp(N(mu, sigma))`.
    pub session_size_log: (f64, f64),
    /// Range of a session's length, minutes (log-uniform per function).
    pub session_minutes: (f64, f64),
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            seed: 2019,
            functions: 20_000,
            timer_fraction: 0.17,
            diurnal_amplitude: 0.2,
            spikes_per_day: 3,
            spike_height: 1.3,
            weekend_factor: 0.9,
            regular_fraction: 0.13,
            poisson_fraction: 0.28,
            gamma_shape: (1.0, 10.0),
            session_size_log: (2.5, 2.8),
            session_minutes: (1.0, 10.0),
        }
    }
}

impl SyntheticConfig {
    /// The defaults with this seed and function count.
    pub fn new(seed: u64, functions: usize) -> Self {
        Self {
            seed,
            functions,
            ..Self::default()
        }
    }
}

/// How one function's invocations are laid out over the day.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pattern {
    /// `per_fire` invocations every `period` minutes from minute `phase`.
    Timer {
        period: u32,
        per_fire: u32,
        phase: u32,
    },
    /// Weights Gamma(shape, 1/shape), redrawn every [`GAMMA_BLOCK`] minutes, times the
    /// diurnal curve.
    Smooth { shape: f64 },
    /// Sessions of `size` invocations on average, each spread over `minutes` minutes,
    /// starting at times drawn from the diurnal curve.
    Sessions { size: f64, minutes: usize },
}

#[derive(Clone, Debug)]
struct Function {
    owner: String,
    app: String,
    function: String,
    trigger: Trigger,
    daily: f64,
    pattern: Pattern,
}

/// A synthetic trace: the per-function parameters, from which any day can be drawn.
#[derive(Clone, Debug)]
pub struct SyntheticTrace {
    config: SyntheticConfig,
    functions: Vec<Function>,
}

impl SyntheticTrace {
    /// Draw the functions.
    pub fn new(config: SyntheticConfig) -> Result<Self, SpecError> {
        if config.functions == 0 {
            return Err(SpecError::NoModels("synthetic trace (functions)"));
        }
        for (what, v) in [
            ("timer fraction", config.timer_fraction),
            ("Poisson-like fraction", config.poisson_fraction),
            ("regular fraction", config.regular_fraction),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(SpecError::NotPositive { what, value: v });
            }
        }
        if !(0.0..1.0).contains(&config.diurnal_amplitude) {
            return Err(SpecError::NotPositive {
                what: "diurnal amplitude (below 1)",
                value: config.diurnal_amplitude,
            });
        }
        positive("spike height", config.spike_height)?;
        positive("weekend factor", config.weekend_factor)?;
        for v in [
            config.session_minutes.0,
            config.session_minutes.1,
            config.gamma_shape.0,
            config.gamma_shape.1,
            config.session_size_log.1,
        ] {
            positive(
                "session length, session size spread or Gamma shape bound",
                v,
            )?;
        }
        let mut rng = Rng::derive(config.seed, 0xA2_0000);
        let n = config.functions;
        // Stratified quantiles: one draw per 1/n slice, so the shape holds even for
        // small n; then shuffled so that file order carries no information.
        let mut daily: Vec<f64> = (0..n)
            .map(|i| quantile((i as f64 + rng.f64()) / n as f64))
            .collect();
        daily.shuffle(&mut rng);
        let mut top: Vec<f64> = daily.clone();
        top.sort_by(|a, b| b.total_cmp(a));
        let top1 = top[(n / 100).min(n - 1)];
        let ids = draw_ids(&mut rng, n);
        // Timers are drawn among functions at ≤ 1/s (timers carry ~2 % of invocations).
        let eligible = daily.iter().filter(|&&t| t <= 86_400.0).count().max(1);
        let p_timer = (config.timer_fraction * n as f64 / eligible as f64).min(1.0);
        let functions = daily
            .into_iter()
            .zip(ids)
            .map(|(t, (owner, app, function))| {
                let timer = t <= 86_400.0 && rng.f64() < p_timer;
                let (trigger, pattern) = if timer {
                    (Trigger::Timer, timer_pattern(&mut rng, t))
                } else {
                    let trigger = other_trigger(&mut rng, t > top1);
                    let regular = t <= 86_400.0 && rng.f64() < config.regular_fraction;
                    if regular {
                        (trigger, timer_pattern(&mut rng, t))
                    } else {
                        (trigger, burst_pattern(&mut rng, &config, t))
                    }
                };
                Function {
                    owner,
                    app,
                    function,
                    trigger,
                    daily: t,
                    pattern,
                }
            })
            .collect();
        Ok(Self { config, functions })
    }

    /// The parameters.
    pub fn config(&self) -> &SyntheticConfig {
        &self.config
    }

    /// The label reports must carry.
    pub fn source(&self) -> TraceSource {
        TraceSource::Synthetic {
            seed: self.config.seed,
            functions: self.config.functions,
        }
    }

    /// Day `day` (1–14) in memory.
    pub fn day(&self, day: u8) -> Result<AzureTrace, TraceError> {
        if !(1..=DAYS).contains(&day) {
            return Err(TraceError::BadDay(day));
        }
        let diurnal = self.diurnal(day);
        let weekend = matches!(day, 6 | 7 | 13 | 14);
        let day_factor = if weekend {
            self.config.weekend_factor
        } else {
            1.0
        };
        let mut weights = vec![0.0; MINUTES_PER_DAY];
        let mut dense = vec![0u32; MINUTES_PER_DAY];
        let functions = self
            .functions
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut rng = day_rng(self.config.seed, day, 0xF0_0000_0000 + i as u64);
                dense.fill(0);
                match f.pattern {
                    Pattern::Timer {
                        period,
                        per_fire,
                        phase,
                    } => {
                        let mut m = phase as usize;
                        while m < MINUTES_PER_DAY {
                            dense[m] = per_fire;
                            m += period as usize;
                        }
                    }
                    Pattern::Smooth { shape } => {
                        smooth_weights(&mut rng, shape, &diurnal, &mut weights);
                        let total = round_total(f.daily * day_factor);
                        place(&mut rng, total, &weights, &mut dense);
                    }
                    Pattern::Sessions { size, minutes } => {
                        let total = round_total(f.daily * day_factor);
                        session_weights(&mut rng, total, size, minutes, &diurnal, &mut weights);
                        place(&mut rng, total, &weights, &mut dense);
                    }
                }
                FunctionTrace {
                    owner: f.owner.clone(),
                    app: f.app.clone(),
                    function: f.function.clone(),
                    trigger: f.trigger.clone(),
                    counts: MinuteCounts::from_dense(&dense),
                }
            })
            .collect();
        Ok(AzureTrace {
            source: self.source(),
            day,
            functions,
        })
    }

    /// Write day `day` into `dir` under the public file name; returns the path.
    pub fn write_day(&self, dir: &Path, day: u8) -> Result<PathBuf, TraceError> {
        write_day_file(dir, &self.day(day)?)
    }

    /// Write each of `days` into `dir`; returns the paths.
    pub fn write_days(
        &self,
        dir: &Path,
        days: impl IntoIterator<Item = u8>,
    ) -> Result<Vec<PathBuf>, TraceError> {
        days.into_iter().map(|d| self.write_day(dir, d)).collect()
    }

    /// The global per-minute load curve of `day`: a cosine around a peak in the
    /// afternoon, times a few short spikes.
    fn diurnal(&self, day: u8) -> Vec<f64> {
        let c = &self.config;
        let mut rng = day_rng(c.seed, day, 0xD1_0000);
        let peak = 720.0 + 240.0 * rng.f64();
        let mut d: Vec<f64> = (0..MINUTES_PER_DAY)
            .map(|k| 1.0 + c.diurnal_amplitude * (TAU * (k as f64 - peak) / 1440.0).cos())
            .collect();
        for _ in 0..c.spikes_per_day {
            let start = rng.random_range(0..MINUTES_PER_DAY);
            let len = rng.random_range(5..=30);
            for x in d.iter_mut().skip(start).take(len) {
                *x *= c.spike_height;
            }
        }
        d
    }
}

/// Stream `stream` of day `day`'s draws: every day has its own seed, so generating one
/// day never depends on generating the others.
fn day_rng(seed: u64, day: u8, stream: u64) -> Rng {
    Rng::derive(Rng::derive(seed, u64::from(day)).next_u64(), stream)
}

/// The daily-total quantile function.
pub fn quantile(u: f64) -> f64 {
    let u = u.clamp(0.0, 1.0);
    let mut prev = DAILY_QUANTILE_KNOTS[0];
    for &(uk, lk) in &DAILY_QUANTILE_KNOTS[1..] {
        if u <= uk {
            let (u0, l0) = prev;
            let frac = if uk > u0 { (u - u0) / (uk - u0) } else { 1.0 };
            return 10f64.powf(l0 + (lk - l0) * frac);
        }
        prev = (uk, lk);
    }
    10f64.powf(prev.1)
}

fn round_total(t: f64) -> u64 {
    // Rounded, at least one invocation; the float is at most ~10^8.
    (t + 0.5).floor().max(1.0) as u64
}

fn hex_id(rng: &mut Rng) -> String {
    let mut s = String::with_capacity(64);
    for _ in 0..4 {
        let _ = write!(s, "{:016x}", rng.next_u64());
    }
    s
}

/// Owner, app and function hashes: apps of 1 (54 %), 2 (16 %), 3 (10 %), 4–5 (8 %),
/// 6–10 (7 %) or 11–30 (5 %) functions; owners of one to three apps.
fn draw_ids(rng: &mut Rng, n: usize) -> Vec<(String, String, String)> {
    let mut out = Vec::with_capacity(n);
    let mut owner = hex_id(rng);
    while out.len() < n {
        if rng.f64() < 0.7 {
            owner = hex_id(rng);
        }
        let app = hex_id(rng);
        let u = rng.f64();
        let size = if u < 0.54 {
            1
        } else if u < 0.70 {
            2
        } else if u < 0.80 {
            3
        } else if u < 0.88 {
            rng.random_range(4..=5)
        } else if u < 0.95 {
            rng.random_range(6..=10)
        } else {
            rng.random_range(11..=30)
        };
        for _ in 0..size {
            if out.len() == n {
                break;
            }
            out.push((owner.clone(), app.clone(), hex_id(rng)));
        }
    }
    out
}

/// A timer firing about `t` times a day: a standard period near `1440 / t` minutes, or
/// `round(t / 1440)` invocations every minute.
fn timer_pattern(rng: &mut Rng, t: f64) -> Pattern {
    if t >= 1440.0 {
        // t ≤ 86 400 here, so per_fire ≤ 60.
        let per_fire = (t / 1440.0).round().max(1.0) as u32;
        return Pattern::Timer {
            period: 1,
            per_fire,
            phase: 0,
        };
    }
    let want = (1440.0 / t).ln();
    let period = TIMER_PERIODS
        .iter()
        .copied()
        .min_by(|a, b| {
            let da = (f64::from(*a).ln() - want).abs();
            let db = (f64::from(*b).ln() - want).abs();
            da.total_cmp(&db)
        })
        .unwrap_or(1440);
    Pattern::Timer {
        period,
        per_fire: 1,
        phase: rng.random_range(0..period),
    }
}

/// Non-timer triggers: by share of invocations for the busiest functions (http 36,
/// queue 34, event 25, orchestration 2, others 1, storage 2), by share of functions
/// for the rest (http 55, queue 15, orchestration 7, others 3, storage 2, event 2).
fn other_trigger(rng: &mut Rng, busy: bool) -> Trigger {
    let table: [(Trigger, f64); 6] = if busy {
        [
            (Trigger::Http, 36.0),
            (Trigger::Queue, 34.0),
            (Trigger::Event, 25.0),
            (Trigger::Orchestration, 2.0),
            (Trigger::Storage, 2.0),
            (Trigger::Others, 1.0),
        ]
    } else {
        [
            (Trigger::Http, 55.0),
            (Trigger::Queue, 15.0),
            (Trigger::Orchestration, 7.0),
            (Trigger::Others, 3.0),
            (Trigger::Storage, 2.0),
            (Trigger::Event, 2.0),
        ]
    };
    let total: f64 = table.iter().map(|(_, w)| w).sum();
    let mut u = rng.f64() * total;
    for (trigger, w) in &table {
        if u < *w {
            return trigger.clone();
        }
        u -= w;
    }
    Trigger::Http
}

fn log_uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + rng.f64() * (hi.ln() - lo.ln())).exp()
}

fn burst_pattern(rng: &mut Rng, c: &SyntheticConfig, t: f64) -> Pattern {
    if t >= SMOOTH_ABOVE {
        return Pattern::Smooth {
            shape: log_uniform(rng, 10.0, 50.0),
        };
    }
    if rng.f64() < c.poisson_fraction {
        return Pattern::Smooth {
            shape: log_uniform(rng, c.gamma_shape.0, c.gamma_shape.1),
        };
    }
    let (mu, sigma) = c.session_size_log;
    let z = rng.normal();
    let size = 1.0 + (mu + sigma * z).exp().min(1e6);
    // At least one minute, at most the day.
    let minutes = (log_uniform(rng, c.session_minutes.0, c.session_minutes.1).round() as usize)
        .clamp(1, MINUTES_PER_DAY);
    Pattern::Sessions { size, minutes }
}

/// Minutes per Gamma draw of a Poisson-like function: its rate wanders every 10
/// minutes (and costs 144 draws a day rather than 1440).
const GAMMA_BLOCK: usize = 10;

fn smooth_weights(rng: &mut Rng, shape: f64, diurnal: &[f64], out: &mut [f64]) {
    match Gamma::new(shape, 1.0 / shape) {
        Ok(g) => {
            for (w, d) in out.chunks_mut(GAMMA_BLOCK).zip(diurnal.chunks(GAMMA_BLOCK)) {
                let level: f64 = g.sample(rng);
                for (x, y) in w.iter_mut().zip(d) {
                    *x = y * level;
                }
            }
        }
        // Unreachable for the positive shapes drawn above; fall back to the curve.
        Err(_) => out.copy_from_slice(diurnal),
    }
}

/// Weights of `round(total / size)` sessions (at least two, if `total` allows), each spreading one unit of
/// weight evenly over `minutes` minutes from a start drawn from the diurnal curve.
fn session_weights(
    rng: &mut Rng,
    total: u64,
    size: f64,
    minutes: usize,
    diurnal: &[f64],
    out: &mut [f64],
) {
    out.fill(0.0);
    // At least two sessions (one would read as a single regular burst); total ≤ ~10^8
    // and size ≥ 1, so the count fits.
    let sessions = ((total as f64 / size).round() as u64).clamp(total.clamp(1, 2), total.max(1));
    let mut cumulative = Vec::with_capacity(diurnal.len());
    let mut acc = 0.0;
    for d in diurnal {
        acc += d;
        cumulative.push(acc);
    }
    let per_minute = 1.0 / minutes as f64;
    for _ in 0..sessions {
        let x = rng.f64() * acc;
        let start = cumulative
            .partition_point(|&c| c <= x)
            .min(diurnal.len() - 1);
        for w in out.iter_mut().skip(start).take(minutes) {
            *w += per_minute;
        }
    }
}

/// Spread `total` invocations over the minutes, multinomially with `weights`.
fn place(rng: &mut Rng, total: u64, weights: &[f64], out: &mut [u32]) {
    let sum: f64 = weights.iter().sum();
    if sum <= 0.0 || !sum.is_finite() {
        return;
    }
    if total <= PLACE_ONE_BY_ONE {
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut acc = 0.0;
        for w in weights {
            acc += w;
            cumulative.push(acc);
        }
        for _ in 0..total {
            let x = rng.f64() * acc;
            let k = cumulative
                .partition_point(|&c| c <= x)
                .min(weights.len() - 1);
            out[k] = out[k].saturating_add(1);
        }
        return;
    }
    // Conditional binomials: minute k gets Binomial(left, w_k / weight left).
    let mut left = total;
    let mut weight_left = sum;
    for (k, &w) in weights.iter().enumerate() {
        if left == 0 {
            break;
        }
        if w <= 0.0 {
            continue;
        }
        let p = (w / weight_left).clamp(0.0, 1.0);
        let c = if p >= 1.0 {
            left
        } else {
            Binomial::new(left, p).map_or(0, |b| b.sample(rng))
        };
        out[k] = u32::try_from(c).unwrap_or(u32::MAX);
        left -= c;
        weight_left -= w;
    }
    if left > 0 {
        // Float round-off left some over: give them to the heaviest minute.
        if let Some((k, _)) = weights.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) {
            out[k] = out[k].saturating_add(u32::try_from(left).unwrap_or(u32::MAX));
        }
    }
}
