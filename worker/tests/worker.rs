//! The worker in-process, driven over loopback TCP by a fake controller: every action
//! kind, window semantics with timings in the controller's clock, page accounting, the
//! malformed-action statuses, many devices, and controller disconnects and replacement.
//!
//! The worker and the fake controller share one host clock, so the estimated offset is
//! near zero; window assertions are still exact (`begin >= earliest`) because the
//! worker converts an action's times back with the offset it converted its window with.

mod common;

use clockwork_core::{
    ActionKind, GpuId, Inferred, ModelId, Nanos, Outcome, Timing, Window, WorkerStatus,
    DEFAULT_PAGE_SIZE,
};
use common::*;
use std::time::Duration;

fn inferred(r: &clockwork_core::ActionResult) -> &Inferred {
    match &r.outcome {
        Outcome::Inferred(i) => i,
        other => panic!("expected Inferred, got {:?} {other:?}", r.status),
    }
}

fn timing_of(r: &clockwork_core::ActionResult) -> Timing {
    match &r.outcome {
        Outcome::Loaded { timing } | Outcome::Unloaded { timing } => *timing,
        Outcome::Inferred(i) => i.exec,
        other => panic!("no timing in {:?} {other:?}", r.status),
    }
}

#[test]
fn register_and_get_state_account_pages() {
    let w = worker(2, 20);
    run(async {
        let mut c = Ctl::connect(w.local_addr()).await;
        let ids = c
            .send(vec![
                (Window::ANY, register(1, tiny())),
                (Window::ANY, register(2, big())),
            ])
            .await;
        let rs = c.wait_all(&ids).await;
        assert_eq!(
            rs[0].outcome,
            Outcome::Registered {
                model: ModelId(1),
                pages: 3,
                measured: None,
            }
        );
        assert_eq!(
            rs[1].outcome,
            Outcome::Registered {
                model: ModelId(2),
                pages: 15,
                measured: None,
            }
        );
        // Re-registering the same profile is fine.
        let again = c.call(Window::ANY, register(1, tiny())).await;
        assert_status(&again, WorkerStatus::Success);

        let s = c.state().await;
        assert_eq!(s.page_size, DEFAULT_PAGE_SIZE);
        assert_eq!(s.gpus.len(), 2);
        for (i, g) in s.gpus.iter().enumerate() {
            assert_eq!(g.id, GpuId(i as u32));
            assert!(g.emulated && g.name.contains("emulated"), "{}", g.name);
            assert_eq!((g.total_pages, g.free_pages), (20, 20));
            assert!(g.loaded.is_empty());
        }
        let models: Vec<_> = s
            .models
            .iter()
            .map(|m| (m.id, m.profile.name.as_str()))
            .collect();
        assert_eq!(models, vec![(ModelId(1), "tiny"), (ModelId(2), "big")]);
        assert_eq!(s.models[0].profile, tiny());
    });
}

#[test]
fn load_then_infer_runs_inside_the_window_in_controller_time() {
    let w = worker(2, 20);
    run(async {
        let mut c = Ctl::connect(w.local_addr()).await;
        c.call(Window::ANY, register(1, tiny())).await;
        let lw = window(0, 1_000);
        let l = c.call(lw, load(1, 1)).await;
        assert_status(&l, WorkerStatus::Success);
        let t = timing_of(&l);
        assert!(
            t.begin >= lw.earliest && t.begin <= lw.latest,
            "{t:?} {lw:?}"
        );
        assert_eq!(t.duration, tiny().load_time, "no noise: the profile's time");
        assert!(t.end >= t.begin + t.duration);
        assert!(l.received <= t.begin && t.end <= l.sent, "{l:?}");

        let s = c.state().await;
        assert_eq!(
            (gpu(&s, 1).free_pages, &gpu(&s, 1).loaded[..]),
            (17, &[ModelId(1)][..])
        );
        assert_eq!(gpu(&s, 0).free_pages, 20);

        let iw = window(5, 1_000);
        let kind = ActionKind::Infer {
            model: ModelId(1),
            gpu: GpuId(1),
            batch_size: 3,
            expected_duration: Nanos::ZERO,
            input_sizes: vec![2, 3, 1],
            inputs: vec![7; 6].into(),
        };
        let r = c.call(iw, kind).await;
        assert_status(&r, WorkerStatus::Success);
        let i = inferred(&r);
        assert_eq!((i.gpu, i.padded_batch), (GpuId(1), 4));
        assert!(
            i.exec.begin >= iw.earliest,
            "begin {:?} < earliest {:?}",
            i.exec.begin,
            iw.earliest
        );
        assert!(i.exec.begin <= iw.latest);
        assert_eq!(
            i.exec.duration,
            Nanos::from_micros(2_000),
            "batch 3 pads to 4"
        );
        assert!(i.exec.end >= i.exec.begin + i.exec.duration);
        assert_eq!(i.copy_input.begin, i.exec.begin);
        assert_eq!(i.copy_output.end, i.exec.end);
        assert_eq!((i.gpu_clock_before_mhz, i.gpu_clock_mhz), (0, 0));
        assert_eq!(
            i.outputs,
            vec![0; 3 * tiny().output_bytes as usize],
            "emulated outputs: zeros, one output_bytes slice per request"
        );
        assert!(r.received <= i.exec.begin && i.exec.end <= r.sent);
        eprintln!(
            "infer: start {} after earliest, completion seen {} after start + duration",
            i.exec.begin - iw.earliest,
            i.exec.end - (i.exec.begin + i.exec.duration)
        );
    });
}

#[test]
fn too_early_infer_waits_for_earliest() {
    let w = worker(1, 20);
    run(async {
        let mut c = Ctl::connect(w.local_addr()).await;
        c.call(Window::ANY, register(1, tiny())).await;
        assert_status(
            &c.call(Window::ANY, load(1, 0)).await,
            WorkerStatus::Success,
        );
        let iw = window(40, 1_000);
        let r = c.call(iw, infer(1, 0, 1)).await;
        assert_status(&r, WorkerStatus::Success);
        assert!(inferred(&r).exec.begin >= iw.earliest);
        assert!(
            now() >= iw.earliest + Nanos::from_micros(1_000),
            "result came after the run"
        );
        // A LOAD that must wait too.
        assert_status(
            &c.call(Window::ANY, unload(1, 0)).await,
            WorkerStatus::Success,
        );
        let lw = window(30, 1_000);
        let l = c.call(lw, load(1, 0)).await;
        assert!(timing_of(&l).begin >= lw.earliest);
    });
}

#[test]
fn infer_whose_window_has_passed_is_too_late_and_never_runs() {
    let w = worker(1, 20);
    run(async {
        let mut c = Ctl::connect(w.local_addr()).await;
        c.call(Window::ANY, register(1, tiny())).await;
        assert_status(
            &c.call(Window::ANY, load(1, 0)).await,
            WorkerStatus::Success,
        );
        let past = Window::new(now() - ms(20), now() - ms(10));
        let r = c.call(past, infer(1, 0, 1)).await;
        assert_status(&r, WorkerStatus::ExecTooLate);
        // A LOAD too late is LoadTooLate and leaves the cache alone.
        let r = c.call(past, load(1, 0)).await;
        assert_status(&r, WorkerStatus::LoadTooLate);
        // The device is idle: a due INFER right after it starts at once and succeeds.
        let r = c.call(window(0, 1_000), infer(1, 0, 1)).await;
        assert_status(&r, WorkerStatus::Success);
    });
}

#[test]
fn load_beyond_the_cache_fails_and_leaves_pages_unchanged() {
    let w = worker(1, 20);
    run(async {
        let mut c = Ctl::connect(w.local_addr()).await;
        let ids = c
            .send(vec![
                (Window::ANY, register(1, tiny())),
                (Window::ANY, register(2, big())),
                (Window::ANY, register(3, mid())),
            ])
            .await;
        c.wait_all(&ids).await;
        assert_status(
            &c.call(Window::ANY, load(2, 0)).await,
            WorkerStatus::Success,
        );
        let before = c.state().await;
        assert_eq!(gpu(&before, 0).free_pages, 5);
        let r = c.call(Window::ANY, load(3, 0)).await;
        assert_status(&r, WorkerStatus::LoadInsufficientCache);
        let after = c.state().await;
        assert_eq!(gpu(&after, 0), gpu(&before, 0), "nothing changed");
        // 3 pages still fit.
        assert_status(
            &c.call(Window::ANY, load(1, 0)).await,
            WorkerStatus::Success,
        );
        assert_eq!(gpu(&c.state().await, 0).free_pages, 2);
        // Loading what is resident is refused too.
        let r = c.call(Window::ANY, load(1, 0)).await;
        assert_status(&r, WorkerStatus::WeightsAlreadyLoaded);
    });
}

#[test]
fn unload_frees_pages() {
    let w = worker(1, 20);
    run(async {
        let mut c = Ctl::connect(w.local_addr()).await;
        c.call(Window::ANY, register(1, tiny())).await;
        assert_status(
            &c.call(Window::ANY, load(1, 0)).await,
            WorkerStatus::Success,
        );
        assert_eq!(gpu(&c.state().await, 0).free_pages, 17);
        let r = c.call(Window::ANY, unload(1, 0)).await;
        assert_status(&r, WorkerStatus::Success);
        assert!(matches!(r.outcome, Outcome::Unloaded { .. }));
        let s = c.state().await;
        assert_eq!((gpu(&s, 0).free_pages, gpu(&s, 0).loaded.len()), (20, 0));
        assert_status(
            &c.call(Window::ANY, unload(1, 0)).await,
            WorkerStatus::UnloadNotInCache,
        );
        assert_status(
            &c.call(window(0, 1_000), infer(1, 0, 1)).await,
            WorkerStatus::ExecWeightsMissing,
        );
    });
}

#[test]
fn malformed_actions_get_the_right_status_and_change_nothing() {
    let w = worker(2, 20);
    run(async {
        let mut c = Ctl::connect(w.local_addr()).await;
        c.call(Window::ANY, register(1, tiny())).await;
        assert_status(
            &c.call(Window::ANY, load(1, 0)).await,
            WorkerStatus::Success,
        );
        let before = c.state().await;

        let ok = window(0, 1_000);
        let inverted = Window::new(now() + ms(10), now());
        let bad_inputs = |sizes: Vec<u32>, bytes: usize, batch: u32| ActionKind::Infer {
            model: ModelId(1),
            gpu: GpuId(0),
            batch_size: batch,
            expected_duration: Nanos::ZERO,
            input_sizes: sizes,
            inputs: vec![0; bytes].into(),
        };
        let mut no_batches = tiny();
        no_batches.batches.clear();
        let cases = vec![
            ((ok, load(9, 0)), WorkerStatus::LoadUnknownModel),
            ((ok, unload(9, 0)), WorkerStatus::UnloadUnknownModel),
            ((ok, infer(9, 0, 1)), WorkerStatus::UnknownModel),
            ((ok, infer(1, 0, 0)), WorkerStatus::InvalidBatchSize),
            ((ok, infer(1, 0, 5)), WorkerStatus::InvalidBatchSize),
            ((ok, infer(1, 7, 1)), WorkerStatus::InvalidGpu),
            ((ok, load(1, 2)), WorkerStatus::InvalidGpu),
            ((ok, unload(1, 99)), WorkerStatus::InvalidGpu),
            (
                (ok, bad_inputs(vec![1, 1], 5, 2)),
                WorkerStatus::InvalidInput,
            ),
            ((ok, bad_inputs(vec![4], 4, 2)), WorkerStatus::InvalidInput),
            ((ok, bad_inputs(vec![], 3, 1)), WorkerStatus::InvalidInput),
            ((inverted, load(1, 1)), WorkerStatus::InvalidAction),
            ((inverted, infer(1, 0, 1)), WorkerStatus::InvalidAction),
            ((ok, register(1, mid())), WorkerStatus::InvalidModelId),
            ((ok, register(5, no_batches)), WorkerStatus::InvalidAction),
        ];
        let (actions, expected): (Vec<_>, Vec<_>) = cases.into_iter().unzip();
        let ids = c.send(actions).await;
        let rs = c.wait_all(&ids).await;
        for (r, want) in rs.iter().zip(expected) {
            assert_status(r, want);
            assert!(r.received <= r.sent);
        }
        // Nothing else arrives, and nothing changed.
        assert!(c.drain_for(Duration::from_millis(30)).await.is_empty());
        let after = c.state().await;
        assert_eq!(after.gpus, before.gpus);
        assert_eq!(after.models, before.models);
        // Well-formed inputs are accepted.
        let r = c.call(ok, bad_inputs(vec![2, 0], 2, 2)).await;
        assert_status(&r, WorkerStatus::Success);
    });
}

#[test]
fn clear_cache_unloads_everything_including_a_pending_load() {
    let w = worker(2, 20);
    run(async {
        let mut c = Ctl::connect(w.local_addr()).await;
        let ids = c
            .send(vec![
                (Window::ANY, register(1, tiny())),
                (Window::ANY, register(2, big())),
            ])
            .await;
        c.wait_all(&ids).await;
        let ids = c
            .send(vec![(Window::ANY, load(1, 0)), (Window::ANY, load(1, 1))])
            .await;
        for r in c.wait_all(&ids).await {
            assert_status(&r, WorkerStatus::Success);
        }
        // A LOAD planned 30 ms ahead, then CLEAR CACHE at once: the LOAD starts at its
        // earliest, is superseded, and the cache is empty when CacheCleared arrives.
        let ids = c
            .send(vec![
                (window(30, 1_000), load(2, 1)),
                (Window::ANY, ActionKind::ClearCache),
            ])
            .await;
        let rs = c.wait_all(&ids).await;
        assert_status(&rs[0], WorkerStatus::LoadConcurrentModification);
        assert_eq!(rs[1].outcome, Outcome::CacheCleared);
        let s = c.state().await;
        for g in &s.gpus {
            assert_eq!((g.free_pages, g.loaded.len()), (20, 0), "{g:?}");
        }
        assert_eq!(s.models.len(), 2, "host copies (registrations) stay");
        // Clearing an empty cache answers at once; the models load again.
        let r = c.call(Window::ANY, ActionKind::ClearCache).await;
        assert_eq!(r.outcome, Outcome::CacheCleared);
        assert_status(
            &c.call(Window::ANY, load(2, 0)).await,
            WorkerStatus::Success,
        );
    });
}

#[test]
fn a_hundred_devices_each_run_actions() {
    const N: u32 = 100;
    let w = worker(N, 20);
    assert_eq!(w.gpus().len(), N as usize);
    run(async {
        let mut c = Ctl::connect(w.local_addr()).await;
        c.call(Window::ANY, register(1, tiny())).await;
        let loads = c
            .send((0..N).map(|g| (window(0, 5_000), load(1, g))).collect())
            .await;
        for r in c.wait_all(&loads).await {
            assert_status(&r, WorkerStatus::Success);
        }
        let iw = window(5, 5_000);
        let infers = c.send((0..N).map(|g| (iw, infer(1, g, 2))).collect()).await;
        let rs = c.wait_all(&infers).await;
        for (g, r) in rs.iter().enumerate() {
            assert_status(r, WorkerStatus::Success);
            let i = inferred(r);
            assert_eq!(i.gpu, GpuId(g as u32));
            assert!(i.exec.begin >= iw.earliest);
        }
        let s = c.state().await;
        assert!(s
            .gpus
            .iter()
            .all(|g| g.loaded == [ModelId(1)] && g.free_pages == 17));
    });
}

#[test]
fn reconnect_keeps_device_state_and_never_delivers_old_results() {
    let w = worker(2, 20);
    let addr = w.local_addr();
    run(async {
        let mut a = Ctl::connect(addr).await;
        a.call(Window::ANY, register(1, tiny())).await;
        assert_status(
            &a.call(Window::ANY, load(1, 0)).await,
            WorkerStatus::Success,
        );
        // Hand the worker actions that finish after A is gone, then go.
        a.ids_from(100);
        a.send(vec![
            (window(60, 1_000), infer(1, 0, 1)),
            (window(60, 1_000), load(1, 1)),
        ])
        .await;
        drop(a);
        glommio::timer::sleep(Duration::from_millis(10)).await;

        let mut b = Ctl::connect(addr).await;
        b.ids_from(100); // the same ids as A's
        let s = b.state().await;
        assert_eq!(gpu(&s, 0).loaded, vec![ModelId(1)], "state survived");
        assert_eq!(s.models.len(), 1);
        // A's actions complete meanwhile; none of their results reach B.
        let stray = b.drain_for(Duration::from_millis(150)).await;
        assert!(
            stray.is_empty(),
            "results of A's actions reached B: {stray:?}"
        );
        // A's LOAD was already on its device, so it ran.
        let s = b.state().await;
        assert_eq!(gpu(&s, 1).loaded, vec![ModelId(1)]);
        assert_status(
            &b.call(window(0, 1_000), infer(1, 1, 4)).await,
            WorkerStatus::Success,
        );
    });
}

#[test]
fn a_second_controller_is_refused_while_the_first_is_alive_and_admitted_once_it_is_silent() {
    let timeout = Duration::from_millis(400);
    let w = worker_with_liveness(
        1,
        20,
        clockwork_net::Liveness {
            heartbeat: Duration::from_millis(50),
            timeout,
        },
    );
    let addr = w.local_addr();
    run(async {
        let mut a = Ctl::connect(addr).await;
        a.call(Window::ANY, register(1, tiny())).await;
        // A just spoke: B is refused, in words.
        let err = match Ctl::try_connect(addr, TOKEN).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a second controller was admitted while the first was alive"),
        };
        assert!(err.contains("held by controller `test-ctl`"), "{err}");
        // A sends nothing more (no heartbeats): the worker closes its link after the
        // timeout, and B gets in.
        let ended = futures_lite::future::or(async { a.recv().await.is_err() }, async {
            glommio::timer::sleep(WAIT).await;
            false
        })
        .await;
        assert!(ended, "the silent controller's connection was not closed");
        let mut b = Ctl::connect(addr).await;
        let s = b.state().await;
        assert_eq!(
            s.models.len(),
            1,
            "device state survives the change of controller"
        );
    });
}

#[test]
fn bad_token_is_refused_and_a_good_one_still_gets_in() {
    let w = worker(1, 20);
    run(async {
        let err = match Ctl::try_connect(w.local_addr(), "wrong-token").await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a wrong token was accepted"),
        };
        assert!(err.contains("token"), "{err}");
        let mut c = Ctl::connect(w.local_addr()).await;
        assert_eq!(c.state().await.gpus.len(), 1);
    });
}

#[test]
fn stop_returns_while_actions_are_queued() {
    let w = worker(1, 20);
    let addr = w.local_addr();
    run(async {
        let mut c = Ctl::connect(addr).await;
        c.call(Window::ANY, register(1, tiny())).await;
        assert_status(
            &c.call(Window::ANY, load(1, 0)).await,
            WorkerStatus::Success,
        );
        c.send(vec![(window(10_000, 1_000), infer(1, 0, 1))]).await;
    });
    let t = std::time::Instant::now();
    w.stop().expect("clean stop");
    assert!(t.elapsed() < Duration::from_secs(5));
}

/// A controller whose clock runs 1000 s ahead of the worker's: frames carry its skewed
/// send times, so the worker's estimator sees the offset, and windows in its clock only
/// make sense once converted.
mod skewed {
    use super::*;
    use clockwork_core::wire::{
        FromWorker, Hello, HelloReply, PeerRole, ToWorker, PROTOCOL_VERSION,
    };
    use clockwork_core::{Action, ActionId, ActionResult, MonotonicClock};
    use clockwork_net::frame::{FrameEncoder, RecvBuffer, DEFAULT_MAX_FRAME, NO_DELTA};
    use clockwork_net::{Decode, Encode};
    use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
    use glommio::net::TcpStream;
    use rkyv::rancor::BoxedError;

    pub(super) const SKEW: u64 = 1_000_000_000_000;

    pub(super) struct Skewed {
        s: TcpStream,
        rb: RecvBuffer,
        enc: FrameEncoder,
        min_delta: i64,
    }

    pub(super) fn ctrl_now() -> Nanos {
        MonotonicClock::read() + Nanos(SKEW)
    }

    impl Skewed {
        pub(super) async fn connect(addr: std::net::SocketAddr) -> Self {
            let s = TcpStream::connect(addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            let mut c = Self {
                s,
                rb: RecvBuffer::new(DEFAULT_MAX_FRAME),
                enc: FrameEncoder::new(),
                min_delta: NO_DELTA,
            };
            c.send(&Hello {
                protocol_version: PROTOCOL_VERSION,
                role: PeerRole::Controller,
                token: TOKEN.into(),
                name: "skewed".into(),
            })
            .await;
            let reply: HelloReply = c.recv().await;
            assert!(matches!(reply, HelloReply::Accepted { .. }), "{reply:?}");
            c
        }

        async fn send<T: Encode>(&mut self, msg: &T) {
            let bytes = self
                .enc
                .encode(msg, ctrl_now().get(), self.min_delta)
                .unwrap();
            self.s.write_all(bytes).await.unwrap();
        }

        async fn recv<T>(&mut self) -> T
        where
            T: Decode,
            T::Archived: rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<BoxedError>>,
        {
            loop {
                if let Some(f) = self.rb.next_frame().unwrap() {
                    let d = ctrl_now().get() as i64 - f.header.send_ts as i64;
                    self.min_delta = self.min_delta.min(d);
                    return rkyv::deserialize::<T, BoxedError>(f.access::<T>().unwrap()).unwrap();
                }
                let n = self.s.read(self.rb.spare()).await.unwrap();
                assert!(n > 0, "worker closed the connection");
                self.rb.commit(n);
            }
        }

        pub(super) async fn call(
            &mut self,
            id: u64,
            window: Window,
            kind: ActionKind,
        ) -> ActionResult {
            self.send(&ToWorker::Actions(vec![Action {
                id: ActionId(id),
                window,
                kind,
            }]))
            .await;
            let r = futures_lite::future::or(
                async {
                    loop {
                        if let FromWorker::Result(r) = self.recv::<FromWorker>().await {
                            return Some(r);
                        }
                    }
                },
                async {
                    glommio::timer::sleep(WAIT).await;
                    None
                },
            )
            .await;
            let Some(r) = r else {
                panic!("no result for action {id} in {WAIT:?}");
            };
            assert_eq!(r.action_id, ActionId(id));
            r
        }
    }
}

#[test]
fn windows_and_timings_are_translated_with_the_link_clock_offset() {
    use skewed::{ctrl_now, Skewed, SKEW};
    let w = worker(1, 20);
    run(async {
        let mut c = Skewed::connect(w.local_addr()).await;
        // A few exchanges so both directions have samples.
        for id in 1..=3 {
            let r = c.call(id, Window::ANY, ActionKind::GetState).await;
            assert_status(&r, WorkerStatus::Success);
        }
        c.call(10, Window::ANY, register(1, tiny())).await;
        let lw = Window::new(ctrl_now(), ctrl_now() + ms(1_000));
        let l = c.call(11, lw, load(1, 0)).await;
        assert_status(&l, WorkerStatus::Success);
        let iw = Window::new(ctrl_now() + ms(5), ctrl_now() + ms(1_000));
        let t0 = std::time::Instant::now();
        let r = c.call(12, iw, infer(1, 0, 1)).await;
        assert_status(&r, WorkerStatus::Success);
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "the window was not translated"
        );
        let i = inferred(&r);
        assert!(
            i.exec.begin >= iw.earliest,
            "{:?} < {:?}",
            i.exec.begin,
            iw.earliest
        );
        assert!(i.exec.begin <= iw.latest);
        // Every timestamp is in the controller's (skewed) clock.
        for t in [r.received, r.sent, i.exec.begin, i.exec.end] {
            let off = t.signed_diff(ctrl_now());
            assert!(
                off.abs() < 1_000_000_000,
                "{t:?} is {off} ns from controller now"
            );
        }
        assert!(r.received > Nanos(SKEW) && r.sent >= i.exec.end);
        // A window that ended a moment ago in the controller's clock is too late.
        let past = Window::new(ctrl_now() - ms(20), ctrl_now() - ms(10));
        assert_status(
            &c.call(13, past, infer(1, 0, 1)).await,
            WorkerStatus::ExecTooLate,
        );
    });
}
