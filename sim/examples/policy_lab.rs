//! Policy lab: single-GPU dispatch policies in an ideal world (every model resident,
//! no network, no margins, the devices' seeded noise) on the arrivals of issue 13's
//! tight-SLO rows, to try an idea before it goes into the scheduler. `Edf` is the
//! simple baseline (`clockwork_sim::edf_baseline`); `Rollout` scores every feasible
//! first batch of every queued model by EDF over the rest of the known queues;
//! `RolloutModel` only each model's largest feasible batch (what the scheduler's
//! dispatch does, `clockwork_scheduler::rollout`); `RolloutK3` only the three most
//! urgent models. Two more ask what knowing the future would be worth: `Clairvoyant`
//! is `Rollout` whose continuation also sees the real arrivals of the next SLO (not a
//! bound on every policy, but on what a one-batch lookahead can gain from forecasts),
//! and `Sampled(4)` the same with four sampled Poisson futures at the known rates
//! instead. Prints attainment and requests per batch.
//!
//! `cargo run --example policy_lab` (`SEED=n`, `SECS=n` change the seed and the
//! simulated seconds, default 1 and 20). Two knobs model what a networked controller
//! cannot avoid: `STALE_US=n` decides each batch n µs before the GPU is free (arrivals
//! after that wait for the next batch; an idle GPU starts a new arrival n µs late),
//! `BUFFER_US=n` plans completion n µs before each deadline.
use clockwork_core::rng::Rng;
use clockwork_core::{Nanos, Slo};
use clockwork_gpu::{Jitter, NoiseModel};
use clockwork_scheduler::rollout::{served_after, QueueView};
use clockwork_sim::presets::Case;
use clockwork_workload::ArrivalSource;

#[derive(Clone, Copy, Debug)]
enum Policy {
    Edf,
    Rollout,
    RolloutModel,
    RolloutK3,
    /// The rollout whose continuation knows the real arrivals of the next SLO.
    Clairvoyant,
    /// The rollout whose continuation averages `n` sampled Poisson futures.
    Sampled(u32),
}

struct Req {
    at: Nanos,
    model: usize,
    d: Nanos,
}

fn arrivals(c: &Case) -> Vec<Req> {
    let mut src = c.arrivals();
    let mut v = Vec::new();
    while let Some(a) = src.next_arrival() {
        if a.at >= c.duration {
            break;
        }
        let slo = match a.slo {
            Slo::Absolute(n) => n,
            _ => c.slo,
        };
        let buffer = Nanos::from_micros(
            std::env::var("BUFFER_US")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        );
        v.push(Req {
            at: a.at,
            model: a.model,
            d: a.at + slo - buffer,
        });
    }
    v
}

fn run(c: &Case, reqs: &[Req], policy: Policy) -> (f64, f64) {
    let sizes: Vec<(u32, Nanos)> = c
        .profile
        .batches
        .iter()
        .map(|b| (b.batch_size, b.exec_time))
        .collect();
    // The same sizes and times as the scheduler's rollout views take them.
    let (batch_sizes, est): (Vec<u32>, Vec<Nanos>) = sizes.iter().copied().unzip();
    let e1 = sizes[0].1;
    let stale = Nanos::from_micros(
        std::env::var("STALE_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let mut jitter = Jitter::new(NoiseModel::Normal { rel_sigma: c.noise }, c.seed, 0);
    let n = c.instances as usize;
    let mut q: Vec<Vec<Nanos>> = vec![Vec::new(); n];
    let mut served = 0u64;
    let mut batches = 0u64;
    let mut free = Nanos::ZERO;
    let mut next = 0;
    let mut off = vec![0usize; n];
    let mut rng = Rng::derive(c.seed, 0x1ab);
    let reqs_buffer = c
        .slo
        .saturating_sub(reqs.first().map_or(c.slo, |r| r.d - r.at));
    loop {
        let cut = free.saturating_sub(stale);
        while next < reqs.len() && reqs[next].at <= cut {
            let r = &reqs[next];
            let qq = &mut q[r.model];
            let pos = qq.partition_point(|&x| x <= r.d);
            qq.insert(pos, r.d);
            next += 1;
        }
        let now = free;
        for qq in q.iter_mut() {
            let k = qq.iter().take_while(|&&d| now + e1 > d).count();
            qq.drain(..k);
        }
        if q.iter().all(|qq| qq.is_empty()) {
            if next < reqs.len() {
                free = free.max(reqs[next].at + stale);
                continue;
            }
            break;
        }
        let choice = match policy {
            Policy::Edf => {
                off.iter_mut().for_each(|o| *o = 0);
                edf_choice(now, &q, &sizes)
            }
            Policy::Clairvoyant | Policy::Sampled(_) => {
                let horizon = now + c.slo;
                let futures: Vec<Vec<(Nanos, usize, Nanos)>> = match policy {
                    Policy::Clairvoyant => vec![reqs[next..]
                        .iter()
                        .take_while(|r| r.at <= horizon)
                        .map(|r| (r.at, r.model, r.d))
                        .collect()],
                    Policy::Sampled(k) => (0..k)
                        .map(|_| sample_future(&mut rng, cut, horizon, n, c, reqs_buffer))
                        .collect(),
                    _ => unreachable!(),
                };
                let base = edf_choice(now, &q, &sizes);
                let mut best = (0u64, base);
                for m in 0..n {
                    let qq = &q[m];
                    if qq.is_empty() {
                        continue;
                    }
                    for &(b, e) in &sizes {
                        if b as usize > qq.len() || now + e > qq[0] {
                            continue;
                        }
                        let mut s = 0u64;
                        for f in &futures {
                            s += u64::from(b)
                                + continue_edf(now + e, &q, (m, b as usize), f, &sizes, stale);
                        }
                        if s > best.0 || (s == best.0 && (m, b) == base) {
                            best = (s, (m, b));
                        }
                    }
                }
                best.1
            }
            Policy::RolloutModel | Policy::RolloutK3 | Policy::Rollout => {
                let base = edf_choice(now, &q, &sizes);
                let mut best = (0u64, base);
                let mut order: Vec<(Nanos, usize)> = q
                    .iter()
                    .enumerate()
                    .filter(|(_, qq)| !qq.is_empty())
                    .map(|(m, qq)| (qq[0], m))
                    .collect();
                order.sort();
                // EDF after each candidate is the scheduler's own rollout.
                let views: Vec<QueueView<'_>> = q
                    .iter()
                    .map(|targets| QueueView {
                        targets,
                        sizes: &batch_sizes,
                        est: &est,
                    })
                    .collect();
                let kmax = if matches!(policy, Policy::RolloutK3) {
                    3
                } else {
                    usize::MAX
                };
                for &(_, m) in order.iter().take(kmax) {
                    let qq = &q[m];
                    let largest = sizes
                        .iter()
                        .rev()
                        .find(|&&(b, e)| b as usize <= qq.len() && now + e <= qq[0])
                        .map_or(0, |s| s.0);
                    for &(b, e) in &sizes {
                        if b as usize > qq.len() || now + e > qq[0] {
                            continue;
                        }
                        if matches!(policy, Policy::RolloutModel) && b != largest {
                            continue;
                        }
                        off.iter_mut().for_each(|o| *o = 0);
                        off[m] = b as usize;
                        let s = u64::from(b) + served_after(now + e, &views, &mut off) as u64;
                        if s > best.0 || (s == best.0 && (m, b) == base) {
                            best = (s, (m, b));
                        }
                    }
                }
                best.1
            }
        };
        let (m, b) = choice;
        let e = sizes.iter().find(|s| s.0 == b).unwrap().1;
        let end = now + jitter.apply(e);
        for d in q[m].drain(..b as usize) {
            if end <= d {
                served += 1;
            }
        }
        batches += 1;
        free = end;
    }
    (
        served as f64 / reqs.len() as f64,
        served as f64 / batches.max(1) as f64,
    )
}

/// Requests served by EDF from `start`, with `taken` already drained from the known
/// queues `q`, and `future` arriving (each `stale` before it can join a batch).
fn continue_edf(
    start: Nanos,
    q: &[Vec<Nanos>],
    taken: (usize, usize),
    future: &[(Nanos, usize, Nanos)],
    sizes: &[(u32, Nanos)],
    stale: Nanos,
) -> u64 {
    let mut q: Vec<Vec<Nanos>> = q.to_vec();
    q[taken.0].drain(..taken.1);
    let e1 = sizes[0].1;
    let mut t = start;
    let mut next = 0;
    let mut served = 0;
    loop {
        while next < future.len() && future[next].0 + stale <= t {
            let (_, m, d) = future[next];
            let pos = q[m].partition_point(|&x| x <= d);
            q[m].insert(pos, d);
            next += 1;
        }
        for qq in q.iter_mut() {
            let k = qq.iter().take_while(|&&d| t + e1 > d).count();
            qq.drain(..k);
        }
        if q.iter().all(|qq| qq.is_empty()) {
            if next < future.len() {
                t = t.max(future[next].0 + stale);
                continue;
            }
            return served;
        }
        let (m, b) = edf_choice(t, &q, sizes);
        let e = sizes.iter().find(|s| s.0 == b).unwrap().1;
        q[m].drain(..b as usize);
        served += u64::from(b);
        t = t + e;
    }
}

/// Poisson arrivals of every model after `from` up to `to`, at the case's rate.
fn sample_future(
    rng: &mut Rng,
    from: Nanos,
    to: Nanos,
    n: usize,
    c: &Case,
    buffer: Nanos,
) -> Vec<(Nanos, usize, Nanos)> {
    let mut v = Vec::new();
    let mean_gap_ns = 1e9 / c.rate;
    let mut t = from.get() as f64;
    loop {
        t += rng.exp(mean_gap_ns);
        if t > to.get() as f64 {
            break;
        }
        let m = rng.below(n as u64) as usize;
        let at = Nanos(t as u64);
        v.push((at, m, at + c.slo - buffer));
    }
    v
}

fn edf_choice(now: Nanos, q: &[Vec<Nanos>], sizes: &[(u32, Nanos)]) -> (usize, u32) {
    let (_, m) = q
        .iter()
        .enumerate()
        .filter(|(_, qq)| !qq.is_empty())
        .map(|(m, qq)| (qq[0], m))
        .min()
        .unwrap();
    let len = q[m].len();
    let head = q[m][0];
    let b = sizes
        .iter()
        .rev()
        .find(|&&(b, e)| b as usize <= len && now + e <= head)
        .map_or(1, |s| s.0);
    (m, b)
}

fn main() {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let secs = std::env::var("SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let cases = Case::tight_slo_rows(Nanos::from_secs(secs), Nanos::from_micros(150), seed);
    for c in &cases {
        let reqs = arrivals(c);
        let mut line = format!("{:>12}", c.name);
        for p in [
            Policy::Edf,
            Policy::Rollout,
            Policy::RolloutModel,
            Policy::RolloutK3,
            Policy::Clairvoyant,
            Policy::Sampled(4),
        ] {
            let (a, mb) = run(c, &reqs, p);
            line += &format!("  {p:?} {:.3}% mb {:.3}", 100.0 * a, mb);
        }
        println!("{line}");
    }
}
