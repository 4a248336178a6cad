//! The CUDA backend on a real GPU (feature `cuda`). Without a driver or a device every
//! test prints why and returns: the build machine and CI have no GPU;
//! `scripts/gpu-check.sh` runs these on one. Prints LOAD bandwidth and INFER timings.

#![cfg(feature = "cuda")]

use clockwork_core::model::{resnet152, resnet18, resnet50};
use clockwork_core::{
    ActionId, GpuId, ModelId, MonotonicClock, Nanos, Window, WorkerStatus, DEFAULT_PAGE_SIZE,
};
use clockwork_gpu::{Completion, Completions, DeviceAction, DeviceConfig, DeviceOp, DeviceSet};
use std::collections::HashMap;
use std::time::Duration;

const R18: ModelId = ModelId(18);
const R50: ModelId = ModelId(50);
const R152: ModelId = ModelId(152);
const WAIT: Duration = Duration::from_secs(30);

/// A one-GPU set with a 64-page (1 GiB) cache, or `None` (printed) without CUDA.
fn start() -> Option<(DeviceSet, Completions)> {
    if let Err(e) = clockwork_gpu::cuda_device_count() {
        println!("skipping CUDA test: {e}");
        return None;
    }
    let mut config = DeviceConfig::cuda(vec![0]);
    config.cache_bytes = 64 * DEFAULT_PAGE_SIZE;
    let (mut set, done) = DeviceSet::start(config).expect("CUDA device 0 starts");
    set.register_model(R18, resnet18()).expect("register");
    set.register_model(R50, resnet50()).expect("register");
    set.register_model(R152, resnet152()).expect("register");
    Some((set, done))
}

struct Ids(u64);

impl Ids {
    fn submit(&mut self, set: &mut DeviceSet, window: Window, op: DeviceOp) -> ActionId {
        self.0 += 1;
        set.submit(DeviceAction {
            action: ActionId(self.0),
            gpu: GpuId(0),
            window,
            op,
        })
        .expect("submitted");
        ActionId(self.0)
    }
}

fn collect(done: &mut Completions, ids: &[ActionId]) -> HashMap<ActionId, Completion> {
    let mut got = HashMap::new();
    while got.len() < ids.len() {
        let c = done.recv_timeout(WAIT).expect("a completion in time");
        assert!(ids.contains(&c.action), "unexpected {c:?}");
        got.insert(c.action, c);
    }
    got
}

fn one(done: &mut Completions, id: ActionId) -> Completion {
    collect(done, &[id]).remove(&id).expect("collected")
}

#[test]
fn load_bandwidth_and_infer_timings() {
    let Some((mut set, mut done)) = start() else {
        return;
    };
    let mut ids = Ids(0);
    let state = &set.state()[0];
    assert!(!state.emulated && !state.name.contains("emulated"));
    println!(
        "device 0: {} ({} pages of 16 MiB)",
        state.name, state.total_pages
    );

    for (model, profile) in [(R18, resnet18()), (R50, resnet50()), (R152, resnet152())] {
        let mut durations = Vec::new();
        for _ in 0..3 {
            let l = ids.submit(&mut set, Window::ANY, DeviceOp::Load { model });
            let c = one(&mut done, l);
            assert_eq!(c.status, WorkerStatus::Success, "{c:?}");
            assert!(!c.emulated);
            durations.push(c.timing.duration);
            let u = ids.submit(&mut set, Window::ANY, DeviceOp::Unload { model });
            assert_eq!(one(&mut done, u).status, WorkerStatus::Success);
        }
        let best = durations.iter().min().copied().unwrap_or(Nanos(1));
        println!(
            "LOAD {:>13} {:>5.1} MB: device {:?} -> {:.2} GB/s (V100 profile {})",
            profile.name,
            profile.weights_bytes as f64 / 1e6,
            durations.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            profile.weights_bytes as f64 / best.get().max(1) as f64,
            profile.load_time
        );
    }

    let l = ids.submit(&mut set, Window::ANY, DeviceOp::Load { model: R50 });
    assert_eq!(one(&mut done, l).status, WorkerStatus::Success);
    let profile = resnet50();
    for b in &profile.batches {
        let mut runs = Vec::new();
        for _ in 0..5 {
            let out_len = (profile.output_bytes * b.batch_size) as usize;
            let op = DeviceOp::Infer {
                model: R50,
                batch_size: b.batch_size,
                input: Vec::new(),
                output: vec![0xAB; out_len],
            };
            let i = ids.submit(&mut set, Window::ANY, op);
            let c = one(&mut done, i);
            assert_eq!(c.status, WorkerStatus::Success, "{c:?}");
            assert_eq!(c.padded_batch, b.batch_size);
            // The stand-in kernel computes nothing: zeros of the declared size.
            assert_eq!(c.output.len(), out_len);
            assert!(c.output.iter().all(|&x| x == 0));
            // The kernel spins for the profile time on the GPU's global timer.
            assert!(c.timing.duration.get() as f64 >= 0.95 * b.exec_time.get() as f64);
            runs.push((c.timing.duration, c.timing.end - c.timing.begin));
        }
        let overhead: Vec<_> = runs
            .iter()
            .map(|(d, host)| format!("{}", *host - *d))
            .collect();
        println!(
            "INFER resnet50 b{:<2} profile {}: device {:?}; host end-begin minus device {:?}",
            b.batch_size,
            b.exec_time,
            runs.iter().map(|(d, _)| d.to_string()).collect::<Vec<_>>(),
            overhead
        );
    }
}

#[test]
fn window_and_versioning_on_a_real_device() {
    let Some((mut set, mut done)) = start() else {
        return;
    };
    let mut ids = Ids(100);
    let l = ids.submit(&mut set, Window::ANY, DeviceOp::Load { model: R50 });
    assert_eq!(one(&mut done, l).status, WorkerStatus::Success);
    let s = &set.state()[0];
    assert_eq!((s.free_pages, s.loaded.clone()), (64 - 7, vec![R50]));

    let earliest = MonotonicClock::read() + Nanos::from_millis(20);
    let w = Window::new(earliest, earliest + Nanos::from_secs(5));
    let i = ids.submit(&mut set, w, DeviceOp::infer(R50, 16));
    let at = earliest + Nanos::from_millis(5);
    let u = ids.submit(
        &mut set,
        Window::new(at, Nanos::MAX),
        DeviceOp::Unload { model: R50 },
    );
    let got = collect(&mut done, &[i, u]);
    assert!(got[&i].timing.begin >= earliest);
    assert_eq!(got[&u].status, WorkerStatus::Success);
    assert_eq!(
        got[&i].status,
        WorkerStatus::ExecConcurrentWeightsModification
    );
    let again = ids.submit(&mut set, Window::ANY, DeviceOp::infer(R50, 1));
    assert_eq!(
        one(&mut done, again).status,
        WorkerStatus::ExecWeightsMissing
    );

    // Fill the cache: 4 x resnet152 (15 pages each) = 60 of 64; a fifth does not fit.
    let loads: Vec<_> = (0..5)
        .map(|k| {
            let m = ModelId(1000 + k);
            set.register_model(m, resnet152()).expect("register");
            ids.submit(&mut set, Window::ANY, DeviceOp::Load { model: m })
        })
        .collect();
    let got = collect(&mut done, &loads);
    let ok = got
        .values()
        .filter(|c| c.status == WorkerStatus::Success)
        .count();
    let full = got
        .values()
        .filter(|c| c.status == WorkerStatus::LoadInsufficientCache)
        .count();
    assert_eq!((ok, full), (4, 1));
    assert_eq!(set.state()[0].free_pages, 4);

    // Shutdown with work in flight and queued: everything is cancelled, nothing hangs.
    let busy = ids.submit(&mut set, Window::ANY, DeviceOp::infer(ModelId(1000), 16));
    let later = Window::new(MonotonicClock::read() + Nanos::from_secs(60), Nanos::MAX);
    let queued = ids.submit(&mut set, later, DeviceOp::infer(ModelId(1000), 1));
    std::thread::sleep(Duration::from_millis(5));
    drop(set);
    let got = collect(&mut done, &[busy, queued]);
    assert_eq!(got[&queued].status, WorkerStatus::Cancelled);
    assert!(matches!(
        got[&busy].status,
        WorkerStatus::Cancelled | WorkerStatus::Success
    ));
}
