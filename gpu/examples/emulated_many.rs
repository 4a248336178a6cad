//! Load test of the emulated backend: N devices, each running a closed loop of INFERs
//! (every completion immediately schedules the next batch on that device 1 ms ahead,
//! window 10 ms), for a few seconds. Prints start lateness (begin − earliest), completion
//! lateness (observed end − (begin + emulated duration)), drops and CPU use.
//!
//! `cargo run --release -p clockwork-gpu --example emulated_many -- [devices] [engine_threads] [seconds] [spin_us]`

use clockwork_core::model::{resnet18, resnet50};
use clockwork_core::{ActionId, GpuId, ModelId, MonotonicClock, Nanos, Window, WorkerStatus};
use clockwork_gpu::{Backend, DeviceAction, DeviceConfig, DeviceOp, DeviceSet, NoiseModel, OpKind};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let devices = args.first().copied().unwrap_or(150) as u32;
    let engines = args.get(1).copied().unwrap_or(1) as usize;
    let seconds = args.get(2).copied().unwrap_or(5);
    let spin_us = args.get(3).copied();

    let mut config = DeviceConfig::emulated(devices);
    config.backend = Backend::Emulated {
        devices,
        engine_threads: engines,
        noise: NoiseModel::Normal { rel_sigma: 0.02 },
        seed: 7,
    };
    if let Some(us) = spin_us {
        config.spin = Duration::from_micros(us);
    }
    let (mut set, mut done) = DeviceSet::start(config)?;
    let models = [(ModelId(0), resnet18()), (ModelId(1), resnet50())];
    for (id, p) in &models {
        set.register_model(*id, p.clone())?;
    }
    let mut next_id = 0u64;
    let mut submit = |set: &mut DeviceSet, gpu: u32, window: Window, op: DeviceOp| {
        next_id += 1;
        set.submit(DeviceAction {
            action: ActionId(next_id),
            gpu: GpuId(gpu),
            window,
            op,
        })
        .map(|()| ActionId(next_id))
        .map_err(|e| format!("submit: {e}"))
    };
    for g in 0..devices {
        submit(
            &mut set,
            g,
            Window::ANY,
            DeviceOp::Load {
                model: ModelId(g % 2),
            },
        )?;
    }

    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let (mut start_late, mut end_late) = (Vec::new(), Vec::new());
    let (mut drops, mut errors) = (0u64, 0u64);
    let mut earliest_of = std::collections::HashMap::new();
    let mut batch = 0u32;
    while t0.elapsed() < Duration::from_secs(seconds) {
        let c = done.recv_timeout(Duration::from_secs(5))?;
        match (c.kind, c.status) {
            (OpKind::Infer, WorkerStatus::Success) => {
                let earliest: Nanos = earliest_of.remove(&c.action).unwrap_or(c.timing.begin);
                start_late.push((c.timing.begin - earliest).get());
                end_late.push((c.timing.end - (c.timing.begin + c.timing.duration)).get());
            }
            (_, WorkerStatus::ExecTooLate) => drops += 1,
            (OpKind::Load, WorkerStatus::Success) => {}
            _ => errors += 1,
        }
        let earliest = MonotonicClock::read() + Nanos::from_millis(1);
        let window = Window::new(earliest, earliest + Nanos::from_millis(10));
        batch = batch % 8 + 1;
        let op = DeviceOp::infer(ModelId(c.gpu.get() % 2), batch);
        let id = submit(&mut set, c.gpu.get(), window, op)?;
        earliest_of.insert(id, earliest);
    }
    let wall = t0.elapsed();
    let cpu = cpu_time() - cpu0;
    drop(set);

    println!(
        "{devices} emulated devices on {engines} engine thread(s), {seconds} s: {} INFERs ({:.0}/s), {drops} dropped, {errors} errors",
        end_late.len(),
        end_late.len() as f64 / wall.as_secs_f64()
    );
    report("start lateness (begin - earliest)", &mut start_late);
    report("completion lateness (end - planned end)", &mut end_late);
    println!(
        "process CPU {:.2} s over {:.2} s wall ({:.0} % of one core)",
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
    );
    Ok(())
}

fn report(what: &str, xs: &mut [u64]) {
    if xs.is_empty() {
        return;
    }
    xs.sort_unstable();
    let q = |p: f64| Nanos(xs[((xs.len() - 1) as f64 * p) as usize]);
    println!(
        "{what}: p50 {} p99 {} p99.9 {} max {}",
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0)
    );
}

fn cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000)
            };
            tv(u.user_time()) + tv(u.system_time())
        })
        .unwrap_or_default()
}
