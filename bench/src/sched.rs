//! `clockwork-bench sched`: the scheduler core alone, on one core, under a saturating
//! request stream.
//!
//! Set-up: `--models` ResNet50 instances, already resident (hot) on `--gpus` GPUs
//! (model `i` on GPU `i mod G`). The stream: Poisson arrivals in virtual time at
//! `--load` × the GPUs' batch-16 capacity, models uniform or Zipf-skewed. Completions
//! are synthetic: each INFER "runs" back to back on its GPU for exactly its expected
//! duration, and its result is fed back when virtual time passes its end. Only the
//! scheduler's own calls are timed (request, result, handle_timeout, output drain);
//! the driver's bookkeeping is excluded.
//!
//! Reports ns of scheduler work per request, actions per second of scheduler time,
//! the latency of one `request()` call (enqueue → action, p50/p99/p99.9) and where the
//! time goes; the last line is JSON.

use crate::stats::{histogram, Summary};
use anyhow::bail;
use clockwork_core::model::resnet50;
use clockwork_core::rng::Rng;
use clockwork_core::{
    Action, ActionKind, ActionResult, GpuId, GpuState, Inferred, ModelId, Nanos, Outcome,
    RegisteredModel, RequestId, Slo, Timing, WorkerId, WorkerState, WorkerStatus,
    DEFAULT_PAGE_SIZE,
};
use clockwork_scheduler::{ClientKey, Config, InputRef, Output, Scheduler};
use clockwork_workload::AliasTable;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Arguments of `sched`.
#[derive(clap::Args, Debug)]
pub(crate) struct SchedArgs {
    /// ResNet50 instances, all hot.
    #[arg(long, default_value_t = 4000)]
    models: u32,
    /// GPUs.
    #[arg(long, default_value_t = 150)]
    gpus: u32,
    /// GPUs per worker.
    #[arg(long, default_value_t = 1)]
    gpus_per_worker: u32,
    /// Requests to time (after the warm-up).
    #[arg(long, default_value_t = 2_000_000)]
    requests: u64,
    /// Offered load as a multiple of the GPUs' batch-16 capacity.
    #[arg(long, default_value_t = 1.5)]
    load: f64,
    /// Zipf exponent of model popularity (0: uniform).
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// SLO, ms.
    #[arg(long, default_value_t = 100.0)]
    slo_ms: f64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// One synthetic result waiting for virtual time to reach it.
struct Pending {
    at: Nanos,
    worker: WorkerId,
    result: ActionResult,
}

#[derive(Default)]
struct Timers {
    request: u64,
    result: u64,
    timeout: u64,
    drain: u64,
}

pub(crate) fn run(a: &SchedArgs) -> anyhow::Result<()> {
    if a.gpus == 0 || a.models == 0 || a.gpus_per_worker == 0 {
        bail!("--gpus, --models and --gpus-per-worker must be positive");
    }
    let profile = resnet50();
    let pages = profile.pages(DEFAULT_PAGE_SIZE);
    let per_gpu = a.models.div_ceil(a.gpus);
    if per_gpu * pages > 1376 {
        bail!("{per_gpu} models per GPU do not fit 1376 pages");
    }
    let slo = Nanos((a.slo_ms * 1e6) as u64);
    let mut sched = Scheduler::new(Config {
        default_slo: slo,
        load_capacity: slo,
        seed: a.seed,
        ..Config::default()
    })?;
    let range = sched.register_models(Nanos::ZERO, profile.clone(), a.models)?;
    let registered = vec![RegisteredModel {
        id: range.first,
        count: range.count,
        profile: profile.clone(),
    }];
    let workers = a.gpus.div_ceil(a.gpus_per_worker);
    let mut gpu_of_worker = Vec::new();
    for w in 0..workers {
        let gpus = (0..a.gpus_per_worker)
            .map(|j| {
                let g = w * a.gpus_per_worker + j;
                let loaded: Vec<ModelId> = range.iter().filter(|m| m.0 % a.gpus == g).collect();
                GpuState {
                    id: GpuId(j),
                    name: "synthetic".to_owned(),
                    emulated: true,
                    total_pages: 1376,
                    free_pages: 1376 - loaded.len() as u32 * pages,
                    loaded,
                }
            })
            .collect();
        gpu_of_worker.push(w * a.gpus_per_worker);
        sched.worker_joined(
            Nanos::ZERO,
            WorkerId(w),
            &WorkerState {
                page_size: DEFAULT_PAGE_SIZE,
                gpus,
                models: registered.clone(),
            },
        );
    }
    while sched.poll_output().is_some() {}

    let b16 = profile.batches.last().map_or(Nanos(1), |b| b.exec_time);
    let capacity = f64::from(workers * a.gpus_per_worker) * 16.0 / (b16.get() as f64 / 1e9);
    let rate = a.load * capacity;
    println!(
        "sched: {} hot ResNet50 models on {} GPUs ({} workers), Poisson {rate:.0} r/s \
         ({:.2} x batch-16 capacity), zipf {}, SLO {} ms, {} timed requests",
        a.models,
        workers * a.gpus_per_worker,
        workers,
        a.load,
        a.zipf,
        a.slo_ms,
        a.requests
    );

    let mut rng = Rng::new(a.seed);
    let weights: Vec<f64> = (0..a.models)
        .map(|i| {
            if a.zipf > 0.0 {
                1.0 / f64::from(i + 1).powf(a.zipf)
            } else {
                1.0
            }
        })
        .collect();
    let table = AliasTable::new(&weights)?;
    let gap_ns = 1e9 / rate;
    let mut t = 1e9;
    // Per (worker, gpu) the synthetic device's free time.
    let mut free: Vec<Nanos> = vec![Nanos::ZERO; (workers * a.gpus_per_worker) as usize];
    let mut pending: BinaryHeap<Reverse<(Nanos, u64)>> = BinaryHeap::new();
    let mut store: Vec<Option<Pending>> = Vec::new();
    let mut free_slots: Vec<u64> = Vec::new();
    let mut decisions = histogram();
    let mut timers = Timers::default();
    let warmup = a.requests / 10;
    let total = a.requests + warmup;
    let mut actions_emitted = 0u64;
    let mut measured_from = None;
    let mut out_buf: Vec<Output> = Vec::new();
    for n in 0..total {
        if n == warmup {
            timers = Timers::default();
            decisions.reset();
            actions_emitted = 0;
            measured_from = Some(sched.stats().clone());
        }
        t += rng.exp(gap_ns);
        let now = Nanos(t as u64);
        // Results and timers due, in time order.
        loop {
            let r_at = pending
                .peek()
                .map(|Reverse((at, _))| *at)
                .filter(|&at| at <= now);
            let d_at = sched.next_deadline().filter(|&d| d <= now);
            match (r_at, d_at) {
                (Some(r), d) if d.is_none_or(|d| r < d) => {
                    let Some(Reverse((_, slot))) = pending.pop() else {
                        break;
                    };
                    free_slots.push(slot);
                    let Some(p) = store[slot as usize].take() else {
                        continue;
                    };
                    let c = Instant::now();
                    sched.handle_result(p.at, p.worker, &p.result);
                    timers.result += c.elapsed().as_nanos() as u64;
                }
                (_, Some(d)) => {
                    let c = Instant::now();
                    sched.handle_timeout(d);
                    timers.timeout += c.elapsed().as_nanos() as u64;
                }
                _ => break,
            }
            drain(&mut sched, &mut out_buf, &mut timers);
            feed(
                &mut out_buf,
                &mut actions_emitted,
                now,
                a.gpus_per_worker,
                &mut free,
                &mut pending,
                &mut store,
                &mut free_slots,
            );
        }
        let model = ModelId(range.first.0 + table.sample(&mut rng) as u32);
        let c = Instant::now();
        sched.request(
            now,
            ClientKey(0),
            RequestId(n),
            model,
            Slo::Default,
            InputRef::NONE,
        );
        let d = c.elapsed().as_nanos() as u64;
        timers.request += d;
        decisions.saturating_record(d.max(1));
        drain(&mut sched, &mut out_buf, &mut timers);
        feed(
            &mut out_buf,
            &mut actions_emitted,
            now,
            a.gpus_per_worker,
            &mut free,
            &mut pending,
            &mut store,
            &mut free_slots,
        );
    }

    let st = sched.stats();
    let base = measured_from.unwrap_or_default();
    let sched_ns = timers.request + timers.result + timers.timeout + timers.drain;
    let reqs = st.offered - base.offered;
    let ns_per_request = sched_ns as f64 / reqs as f64;
    let d = Summary::of(&decisions);
    let actions_per_s = actions_emitted as f64 / (sched_ns as f64 / 1e9);
    let pct = |x: u64| 100.0 * x as f64 / sched_ns as f64;
    println!(
        "scheduler work: {ns_per_request:.0} ns/request over {reqs} requests; \
         {actions_per_s:.0} actions/s of scheduler time ({} actions, mean batch {:.2})",
        actions_emitted,
        (st.batched_requests - base.batched_requests) as f64
            / (st.infers - base.infers).max(1) as f64
    );
    println!(
        "request() call (enqueue -> action): p50 {} ns  p99 {} ns  p99.9 {} ns  max {} ns",
        d.p50, d.p99, d.p999, d.max
    );
    println!(
        "time split: request() {:.1}%  handle_result() {:.1}%  handle_timeout() {:.1}%  poll_output() {:.1}%",
        pct(timers.request),
        pct(timers.result),
        pct(timers.timeout),
        pct(timers.drain)
    );
    println!(
        "outcomes: success {}  timeout {}  could-not-start {}  skipped {}  rejected {}  (virtual {:.1} s)",
        st.success - base.success,
        (st.timeout_queued - base.timeout_queued) + (st.timeout_in_flight - base.timeout_in_flight),
        st.could_not_start - base.could_not_start,
        st.skipped - base.skipped,
        st.rejected - base.rejected,
        (t - 1e9) / 1e9
    );
    let json = serde_json::json!({
        "bench": "sched",
        "models": a.models,
        "gpus": workers * a.gpus_per_worker,
        "requests": reqs,
        "ns_per_request": ns_per_request,
        "p50_decision_ns": d.p50,
        "p99_decision_ns": d.p99,
        "p999_decision_ns": d.p999,
        "actions_per_s": actions_per_s,
        "load": a.load,
        "zipf": a.zipf,
    });
    println!("{json}");
    Ok(())
}

/// Synthetic devices (outside the timed region): turns drained actions into pending
/// results.
#[allow(clippy::too_many_arguments)] // the driver's loose state, one call site pattern
fn feed(
    out_buf: &mut Vec<Output>,
    actions_emitted: &mut u64,
    now: Nanos,
    per_worker: u32,
    free: &mut [Nanos],
    pending: &mut BinaryHeap<Reverse<(Nanos, u64)>>,
    store: &mut Vec<Option<Pending>>,
    free_slots: &mut Vec<u64>,
) {
    for out in out_buf.drain(..) {
        let (worker, actions) = match out {
            // The synthetic devices generate inputs: batch members are not needed.
            Output::Send {
                worker, actions, ..
            } => (worker, actions),
            // Answers are counted by the scheduler's stats.
            Output::Respond { .. } => continue,
        };
        *actions_emitted += actions.len() as u64;
        for act in actions {
            let Some(res) = complete(&act, worker, now, per_worker, free) else {
                continue;
            };
            let slot = free_slots.pop().unwrap_or_else(|| {
                store.push(None);
                store.len() as u64 - 1
            });
            pending.push(Reverse((res.at, slot)));
            store[slot as usize] = Some(res);
        }
    }
}

/// Drains the scheduler's outputs into `buf` (timed: the copy out is scheduler work).
fn drain(sched: &mut Scheduler, buf: &mut Vec<Output>, timers: &mut Timers) {
    let c = Instant::now();
    while let Some(o) = sched.poll_output() {
        buf.push(o);
    }
    timers.drain += c.elapsed().as_nanos() as u64;
}

/// The synthetic device's answer to an action: INFERs run back to back on their GPU
/// for exactly their expected duration; LOAD/UNLOAD succeed at once.
fn complete(
    act: &Action,
    worker: WorkerId,
    now: Nanos,
    per_worker: u32,
    free: &mut [Nanos],
) -> Option<Pending> {
    let ok = |outcome| ActionResult {
        action_id: act.id,
        status: WorkerStatus::Success,
        received: now,
        sent: now,
        outcome,
    };
    let (at, result) = match &act.kind {
        ActionKind::Infer {
            gpu,
            batch_size,
            expected_duration,
            ..
        } => {
            let g = (worker.0 * per_worker + gpu.0) as usize;
            let begin = free[g].max(now).max(act.window.earliest);
            let end = begin + *expected_duration;
            free[g] = end;
            let t = |b: Nanos, e: Nanos| Timing {
                begin: b,
                end: e,
                duration: e - b,
            };
            (
                end,
                ok(Outcome::Inferred(Inferred {
                    gpu: *gpu,
                    padded_batch: *batch_size,
                    copy_input: t(begin, begin),
                    exec: t(begin, end),
                    copy_output: t(end, end),
                    gpu_clock_before_mhz: 0,
                    gpu_clock_mhz: 0,
                    outputs: Vec::new(),
                })),
            )
        }
        ActionKind::LoadWeights {
            expected_duration, ..
        } => {
            let t = Timing {
                begin: now,
                end: now + *expected_duration,
                duration: *expected_duration,
            };
            (now + *expected_duration, ok(Outcome::Loaded { timing: t }))
        }
        ActionKind::Unload { .. } => {
            let t = Timing {
                begin: now,
                end: now,
                duration: Nanos::ZERO,
            };
            (now, ok(Outcome::Unloaded { timing: t }))
        }
        _ => return None,
    };
    Some(Pending { at, worker, result })
}
