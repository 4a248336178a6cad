//! The emulated backend through the public API, with real engine threads and the real
//! clock. Timing assertions are logical (`begin >= earliest`, `end - begin >= duration`),
//! never tight wall-clock bounds; lateness figures are printed, not asserted.

use clockwork_core::model::{resnet152, resnet18, resnet50};
use clockwork_core::{
    ActionId, GpuId, ModelId, MonotonicClock, Nanos, Window, WorkerStatus, DEFAULT_PAGE_SIZE,
};
use clockwork_gpu::{
    Backend, Completion, Completions, DeviceAction, DeviceConfig, DeviceOp, DeviceSet, GpuError,
    NoiseModel, OpKind, RecvTimeoutError, SubmitError, TryRecvError,
};
use std::collections::HashMap;
use std::time::Duration;

const R18: ModelId = ModelId(18);
const R50: ModelId = ModelId(50);
const R152: ModelId = ModelId(152);
const WAIT: Duration = Duration::from_secs(20);

fn config(devices: u32, engine_threads: usize, pages: u64) -> DeviceConfig {
    let mut c = DeviceConfig::emulated(devices);
    c.backend = Backend::Emulated {
        devices,
        engine_threads,
        noise: NoiseModel::None,
        seed: 1,
    };
    c.cache_bytes = pages * DEFAULT_PAGE_SIZE;
    c
}

fn start(devices: u32, engine_threads: usize, pages: u64) -> (DeviceSet, Completions) {
    let (mut set, done) = DeviceSet::start(config(devices, engine_threads, pages)).expect("start");
    set.register_model(R18, resnet18()).expect("register");
    set.register_model(R50, resnet50()).expect("register");
    set.register_model(R152, resnet152()).expect("register");
    (set, done)
}

fn now() -> Nanos {
    MonotonicClock::read()
}

fn any() -> Window {
    Window::ANY
}

fn submit(set: &mut DeviceSet, id: u64, gpu: u32, window: Window, op: DeviceOp) -> ActionId {
    let action = ActionId(id);
    set.submit(DeviceAction {
        action,
        gpu: GpuId(gpu),
        window,
        op,
    })
    .expect("submitted");
    action
}

/// Receive until every id in `ids` has completed; each must complete exactly once.
fn collect(done: &mut Completions, ids: &[ActionId]) -> HashMap<ActionId, Completion> {
    let mut got = HashMap::new();
    while got.len() < ids.len() {
        let c = done.recv_timeout(WAIT).expect("a completion in time");
        assert!(ids.contains(&c.action), "unexpected completion {c:?}");
        let id = c.action;
        assert!(got.insert(id, c).is_none(), "two completions for {id}");
    }
    got
}

fn one(done: &mut Completions, id: ActionId) -> Completion {
    collect(done, &[id]).remove(&id).expect("collected")
}

fn load(model: ModelId) -> DeviceOp {
    DeviceOp::Load { model }
}

fn infer(model: ModelId, batch_size: u32) -> DeviceOp {
    DeviceOp::infer(model, batch_size)
}

#[test]
fn early_action_waits_for_earliest() {
    let (mut set, mut done) = start(1, 1, 100);
    let l = submit(&mut set, 1, 0, any(), load(R50));
    assert_eq!(one(&mut done, l).status, WorkerStatus::Success);
    let earliest = now() + Nanos::from_millis(30);
    let window = Window::new(earliest, earliest + Nanos::from_secs(5));
    let i = submit(&mut set, 2, 0, window, infer(R50, 2));
    let c = one(&mut done, i);
    assert_eq!(c.status, WorkerStatus::Success);
    assert!(
        c.timing.begin >= earliest,
        "started {} before earliest",
        earliest - c.timing.begin
    );
    assert!(c.timing.begin <= window.latest);
    assert_eq!(c.timing.duration, resnet50().exec_time(2).expect("b2"));
    assert!(c.timing.end - c.timing.begin >= c.timing.duration);
    assert_eq!(
        (c.padded_batch, c.kind, c.emulated),
        (2, OpKind::Infer, true)
    );
    println!(
        "start lateness after earliest: {}",
        c.timing.begin - earliest
    );
}

#[test]
fn infer_buffers_go_in_and_the_filled_output_comes_back() {
    let (mut set, mut done) = start(1, 1, 100);
    let l = submit(&mut set, 1, 0, any(), load(R50));
    let loaded = one(&mut done, l);
    assert_eq!(loaded.status, WorkerStatus::Success);
    assert!(loaded.output.is_empty(), "a LOAD has no output");

    // A dirty buffer of 3 requests' outputs: the emulated device zeroes all of it and
    // hands back the same length (batch 3 runs padded to 4; the buffer is not padded).
    let out_len = 3 * resnet50().output_bytes as usize;
    let (input, output) = (vec![9; 3 * 16], vec![0xAB; out_len]);
    let sent = (input.as_ptr(), output.as_ptr());
    let op = DeviceOp::Infer {
        model: R50,
        batch_size: 3,
        input,
        output,
    };
    let c = one(&mut done, submit(&mut set, 2, 0, any(), op));
    assert_eq!((c.status, c.padded_batch), (WorkerStatus::Success, 4));
    assert_eq!(c.output.len(), out_len);
    assert!(
        c.output.iter().all(|&b| b == 0),
        "emulated outputs are zeros"
    );
    // Both buffers come back, the same memory, for the submitter to reuse.
    assert_eq!((c.input.as_ptr(), c.output.as_ptr()), sent);
    assert_eq!(c.input, vec![9; 3 * 16]);

    // Without a buffer nothing comes back.
    let c = one(&mut done, submit(&mut set, 3, 0, any(), infer(R50, 1)));
    assert_eq!((c.status, c.output.len()), (WorkerStatus::Success, 0));
    // An INFER refused on arrival, or dropped because it is late, hands its buffers
    // back too, the output unfilled: the device thread frees nothing.
    let t = now();
    let refused_and_late = [
        (ModelId(999), any(), WorkerStatus::UnknownModel),
        (R50, Window::new(t, t), WorkerStatus::ExecTooLate),
    ];
    for (i, (model, window, status)) in refused_and_late.into_iter().enumerate() {
        let (input, output) = (vec![3; 16], vec![1; 8]);
        let sent = (input.as_ptr(), output.as_ptr());
        let op = DeviceOp::Infer {
            model,
            batch_size: 1,
            input,
            output,
        };
        let c = one(&mut done, submit(&mut set, 4 + i as u64, 0, window, op));
        assert_eq!(c.status, status);
        assert_eq!((c.input.as_ptr(), c.output.as_ptr()), sent, "{status}");
        assert_eq!(c.output, vec![1; 8], "unfilled");
    }
}

#[test]
fn late_action_is_dropped_and_never_runs() {
    let (mut set, mut done) = start(1, 1, 100);
    let l = submit(&mut set, 1, 0, any(), load(R152));
    assert_eq!(one(&mut done, l).status, WorkerStatus::Success);
    // Already past its latest on arrival.
    let t = now();
    let past = submit(
        &mut set,
        2,
        0,
        Window::new(Nanos::ZERO, t - Nanos(1)),
        infer(R152, 1),
    );
    let c = one(&mut done, past);
    assert_eq!(c.status, WorkerStatus::ExecTooLate);
    assert_eq!((c.timing.duration, c.padded_batch), (Nanos::ZERO, 0));
    assert!(c.timing.begin > t - Nanos(1));
    // Behind a 61.55 ms batch: cannot start by its latest, so dropped when latest passes.
    let long = submit(&mut set, 3, 0, any(), infer(R152, 16));
    let latest = now() + Nanos::from_millis(10);
    let doomed = submit(
        &mut set,
        4,
        0,
        Window::new(Nanos::ZERO, latest),
        infer(R152, 1),
    );
    let got = collect(&mut done, &[long, doomed]);
    let d = &got[&doomed];
    assert_eq!(d.status, WorkerStatus::ExecTooLate);
    assert!(
        d.timing.begin > latest,
        "reported only once latest had passed"
    );
    assert!(
        d.timing.begin < got[&long].timing.end,
        "reported without waiting for the batch"
    );
    assert_eq!(got[&long].status, WorkerStatus::Success);
    // A LOAD and an UNLOAD past their windows get their own statuses.
    let old = Window::new(Nanos::ZERO, Nanos(1));
    let l2 = submit(&mut set, 5, 0, old, load(R18));
    let u2 = submit(&mut set, 6, 0, old, DeviceOp::Unload { model: R152 });
    let got = collect(&mut done, &[l2, u2]);
    assert_eq!(got[&l2].status, WorkerStatus::LoadTooLate);
    assert_eq!(got[&u2].status, WorkerStatus::UnloadTooLate);
    assert_eq!(
        set.state()[0].loaded,
        vec![R152],
        "the late UNLOAD did nothing"
    );
}

#[test]
fn page_accounting_through_state() {
    let (mut set, mut done) = start(2, 1, 20);
    assert_eq!(set.total_pages(), 20);
    let a = submit(&mut set, 1, 1, any(), load(R152)); // 15 pages
    let b = submit(&mut set, 2, 1, any(), load(R50)); // 7 pages
    let c = submit(&mut set, 3, 1, any(), load(R18)); // 3 pages
    let got = collect(&mut done, &[a, b, c]);
    assert_eq!(got[&a].status, WorkerStatus::Success);
    assert_eq!(got[&b].status, WorkerStatus::LoadInsufficientCache);
    assert_eq!(got[&c].status, WorkerStatus::Success);
    let s = set.state();
    assert_eq!((s[0].free_pages, s[0].total_pages), (20, 20));
    assert_eq!(s[1].free_pages, 2);
    assert_eq!(s[1].loaded, vec![R18, R152]);
    assert!(
        s[1].emulated && s[1].name.contains("(emulated)"),
        "{}",
        s[1].name
    );
    let dup = submit(&mut set, 4, 1, any(), load(R18));
    assert_eq!(
        one(&mut done, dup).status,
        WorkerStatus::WeightsAlreadyLoaded
    );
    let u = submit(&mut set, 5, 1, any(), DeviceOp::Unload { model: R152 });
    assert_eq!(one(&mut done, u).status, WorkerStatus::Success);
    let u = submit(&mut set, 6, 1, any(), DeviceOp::Unload { model: R152 });
    assert_eq!(one(&mut done, u).status, WorkerStatus::UnloadNotInCache);
    assert_eq!(set.state()[1].free_pages, 17);
}

#[test]
fn weights_versioning() {
    let (mut set, mut done) = start(1, 1, 100);
    let l = submit(&mut set, 1, 0, any(), load(R50));
    assert_eq!(one(&mut done, l).status, WorkerStatus::Success);
    // A 21.73 ms batch; the UNLOAD starts 5 ms into it.
    let i = submit(&mut set, 2, 0, any(), infer(R50, 16));
    let at = now() + Nanos::from_millis(5);
    let u = submit(
        &mut set,
        3,
        0,
        Window::new(at, Nanos::MAX),
        DeviceOp::Unload { model: R50 },
    );
    let got = collect(&mut done, &[i, u]);
    assert_eq!(got[&u].status, WorkerStatus::Success);
    assert!(got[&u].timing.begin >= at);
    assert!(
        got[&u].timing.begin < got[&i].timing.end,
        "the UNLOAD ran during the INFER"
    );
    assert_eq!(
        got[&i].status,
        WorkerStatus::ExecConcurrentWeightsModification
    );
    assert_eq!(got[&i].status.code(), 84);
    let again = submit(&mut set, 4, 0, any(), infer(R50, 1));
    let c = one(&mut done, again);
    assert_eq!(
        (c.status, c.status.code()),
        (WorkerStatus::ExecWeightsMissing, 82)
    );
    // A LOAD superseded by an UNLOAD of the same model while its copy runs.
    let l = submit(&mut set, 5, 0, any(), load(R152)); // 19.68 ms
    let at = now() + Nanos::from_millis(2);
    let u = submit(
        &mut set,
        6,
        0,
        Window::new(at, Nanos::MAX),
        DeviceOp::Unload { model: R152 },
    );
    let got = collect(&mut done, &[l, u]);
    assert_eq!(got[&l].status, WorkerStatus::LoadConcurrentModification);
    assert_eq!(got[&u].status, WorkerStatus::UnloadNotInCache);
    let s = set.state();
    assert_eq!((s[0].free_pages, s[0].loaded.len()), (100, 0));
}

#[test]
fn malformed_actions() {
    let (mut set, mut done) = start(2, 1, 100);
    let bad_gpu = set.submit(DeviceAction {
        action: ActionId(1),
        gpu: GpuId(2),
        window: any(),
        op: infer(R50, 1),
    });
    match bad_gpu {
        Err(e @ SubmitError::InvalidGpu(GpuId(2))) => {
            assert_eq!(e.status(), WorkerStatus::InvalidGpu);
        }
        other => panic!("expected InvalidGpu, got {other:?}"),
    }
    let unknown = submit(&mut set, 2, 0, any(), infer(ModelId(9), 1));
    let zero = submit(&mut set, 3, 0, any(), infer(R50, 0));
    let big = submit(&mut set, 4, 1, any(), infer(R50, 17));
    let inverted = submit(&mut set, 5, 1, Window::new(Nanos(10), Nanos(9)), load(R50));
    let got = collect(&mut done, &[unknown, zero, big, inverted]);
    assert_eq!(got[&unknown].status, WorkerStatus::UnknownModel);
    assert_eq!(got[&zero].status, WorkerStatus::InvalidBatchSize);
    assert_eq!(got[&big].status, WorkerStatus::InvalidBatchSize);
    assert_eq!(got[&inverted].status, WorkerStatus::InvalidAction);
    assert_eq!(
        done.try_next(),
        Err(TryRecvError::Empty),
        "nothing else completed"
    );

    let mut bad = resnet50();
    bad.batches.clear();
    assert!(matches!(
        set.register_model(ModelId(3), bad),
        Err(GpuError::InvalidProfile { .. })
    ));
    assert_eq!(
        set.register_model(R50, resnet50()).expect("same profile"),
        7
    );
    assert!(matches!(
        set.register_model(R50, resnet18()),
        Err(GpuError::ModelConflict(R50))
    ));
}

#[test]
fn registration_is_ordered_with_actions() {
    let mut c = config(3, 2, 100);
    // Engine 0 pinned to CPU 0; engine 1's CPU does not exist: logged, runs unpinned.
    c.cpus = vec![0, 99_999];
    let (mut set, mut done) = DeviceSet::start(c).expect("start");
    // Register and immediately use: the LOAD can never overtake the registration.
    for m in 0..50u32 {
        set.register_model(ModelId(1000 + m), resnet18())
            .expect("register");
        submit(
            &mut set,
            u64::from(m),
            m % 3,
            any(),
            load(ModelId(1000 + m)),
        );
    }
    let ids: Vec<_> = (0..50).map(ActionId).collect();
    let got = collect(&mut done, &ids);
    assert!(
        got.values().all(|c| c.status == WorkerStatus::Success),
        "{got:?}"
    );
    assert_eq!(set.models().count(), 50);
}

#[test]
fn cuda_absence_is_a_clear_error() {
    let count = clockwork_gpu::cuda_device_count();
    if !cfg!(feature = "cuda") {
        assert!(matches!(count, Err(GpuError::NotCompiledWithCuda)));
    }
    if let Ok(n) = count {
        println!("{n} CUDA device(s) here: the absence path is not exercised");
        return;
    }
    // An ordinal that cannot exist, so that this also fails on a GPU machine whose
    // driver check went wrong for another reason.
    let err = DeviceSet::start(DeviceConfig::cuda(vec![0, 4096])).expect_err("no CUDA here");
    println!("Backend::Cuda here: {err}");
    if cfg!(feature = "cuda") {
        assert!(matches!(
            err,
            GpuError::DriverUnavailable | GpuError::NoDevice | GpuError::Driver(_)
        ));
    } else {
        assert!(matches!(err, GpuError::NotCompiledWithCuda));
    }
    assert!(!err.to_string().is_empty());
}

#[test]
fn drop_cancels_queued_and_running() {
    let (mut set, mut done) = start(2, 2, 100);
    // A model whose batch runs for 10 s, so it is surely still running at the drop.
    let mut slow = resnet18();
    slow.name = "slow".into();
    slow.batches[0].exec_time = Nanos::from_secs(10);
    let slow_id = ModelId(77);
    set.register_model(slow_id, slow).expect("register");
    let l = submit(&mut set, 1, 0, any(), load(slow_id));
    assert_eq!(one(&mut done, l).status, WorkerStatus::Success);
    let running = submit(&mut set, 2, 0, any(), infer(slow_id, 1));
    let later = Window::new(now() + Nanos::from_secs(60), Nanos::MAX);
    let mut queued = vec![running];
    for k in 0..20 {
        queued.push(submit(&mut set, 10 + k, (k % 2) as u32, later, load(R50)));
    }
    std::thread::sleep(Duration::from_millis(5));
    let dropped_at = std::time::Instant::now();
    drop(set);
    let got = collect(&mut done, &queued);
    assert!(
        got.values().all(|c| c.status == WorkerStatus::Cancelled),
        "{got:?}"
    );
    assert_eq!(done.recv_timeout(WAIT), Err(RecvTimeoutError::Closed));
    assert_eq!(done.try_next(), Err(TryRecvError::Closed));
    println!("shutdown took {:?}", dropped_at.elapsed());
}

#[test]
fn async_consumer_sees_completions_and_close() {
    let (mut set, mut done) = start(1, 1, 100);
    let l = submit(&mut set, 1, 0, any(), load(R18));
    // After the 3.85 ms LOAD has certainly ended (an INFER before it would fail 82).
    let after = Window::new(now() + Nanos::from_millis(30), Nanos::MAX);
    let i = submit(&mut set, 2, 0, after, infer(R18, 1));
    let consumer = std::thread::spawn(move || {
        futures_lite::future::block_on(async {
            let mut seen = Vec::new();
            while let Some(c) = done.next().await {
                seen.push((c.action, c.status));
            }
            seen
        })
    });
    std::thread::sleep(Duration::from_millis(100));
    set.shutdown();
    let seen = consumer.join().expect("consumer");
    assert_eq!(
        seen,
        vec![(l, WorkerStatus::Success), (i, WorkerStatus::Success)]
    );
}

#[test]
fn noise_is_seeded_and_reproducible() {
    let run = |seed: u64| {
        let mut c = config(1, 1, 100);
        c.backend = Backend::Emulated {
            devices: 1,
            engine_threads: 1,
            noise: NoiseModel::Normal { rel_sigma: 0.05 },
            seed,
        };
        let (mut set, mut done) = DeviceSet::start(c).expect("start");
        set.register_model(R18, resnet18()).expect("register");
        let mut ids = vec![submit(&mut set, 0, 0, any(), load(R18))];
        for k in 1..6 {
            ids.push(submit(&mut set, k, 0, any(), infer(R18, 1)));
        }
        let got = collect(&mut done, &ids);
        ids.iter()
            .map(|id| got[id].timing.duration)
            .collect::<Vec<_>>()
    };
    let a = run(42);
    assert_eq!(a, run(42));
    assert_ne!(a, run(43));
    assert!(a[1..]
        .iter()
        .any(|d| *d != resnet18().exec_time(1).expect("b1")));
}

/// At least 100 devices on a small machine: every action completes, in its window, and
/// the completion lateness (observed end vs. begin + emulated duration) is printed.
#[test]
fn many_devices() {
    const DEVICES: u32 = 128;
    const INFERS: u64 = 8;
    // One engine thread for all of them: on a 2-core machine that leaves a core for
    // the consumer (this thread).
    let (mut set, mut done) = start(DEVICES, 1, 100);
    let mut ids = Vec::new();
    let mut id = 0;
    for g in 0..DEVICES {
        id += 1;
        ids.push(submit(&mut set, id, g, any(), load(R18)));
    }
    let got = collect(&mut done, &ids);
    assert!(got.values().all(|c| c.status == WorkerStatus::Success));
    let base = now() + Nanos::from_millis(5);
    let mut windows = HashMap::new();
    ids.clear();
    for k in 0..INFERS {
        for g in 0..DEVICES {
            id += 1;
            // Staggered starts; generous latest so every INFER runs.
            let earliest = base + Nanos::from_micros(u64::from(g) * 37 + k * 4_000);
            let w = Window::new(earliest, earliest + Nanos::from_secs(10));
            windows.insert(ActionId(id), w);
            ids.push(submit(&mut set, id, g, w, infer(R18, 1 + (k as u32 % 16))));
        }
    }
    let got = collect(&mut done, &ids);
    let mut lateness: Vec<u64> = Vec::new();
    for (a, c) in &got {
        assert_eq!(c.status, WorkerStatus::Success, "{c:?}");
        assert!(windows[a].admits(c.timing.begin));
        assert!(c.timing.end - c.timing.begin >= c.timing.duration);
        lateness.push((c.timing.end - (c.timing.begin + c.timing.duration)).get());
    }
    lateness.sort_unstable();
    let q = |p: f64| Nanos(lateness[((lateness.len() - 1) as f64 * p) as usize]);
    println!(
        "{DEVICES} devices, {} INFERs: completion lateness p50 {} p99 {} max {}",
        lateness.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
    let states = set.state();
    assert_eq!(states.len(), DEVICES as usize);
    assert!(states
        .iter()
        .all(|s| s.loaded == vec![R18] && s.free_pages == 97));
}

#[test]
fn handles_can_move_to_other_threads() {
    fn is_send<T: Send>() {}
    is_send::<DeviceSet>();
    is_send::<Completions>();
    is_send::<Completion>();
}
