//! The controller service end to end on loopback: real emulated workers, the glommio
//! service, and the Rust client library.

mod support;

use clockwork_client::Client;
use clockwork_core::model::resnet50;
use clockwork_core::{ClientStatus, ModelId, Nanos, Slo};
use clockwork_net::runtime::{run_here, ExecutorConfig};
use clockwork_worker::{Worker, WorkerConfig, WorkerHandle};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use support::{Controller, TOKEN};

/// An emulated worker with `gpus` GPUs on an ephemeral loopback port.
fn worker(gpus: u32) -> WorkerHandle {
    support::worker_with_gpus("127.0.0.1:0".parse().unwrap(), gpus)
}

/// The shared test controller with these workers, writing its logs to `log_dir`;
/// the tests use its native client port.
fn start(workers: Vec<SocketAddr>, log_dir: Option<PathBuf>) -> Controller {
    Controller::start_with_workers(workers, move |cfg| {
        cfg.scheduler.telemetry = log_dir.is_some();
        cfg.log_dir = log_dir;
    })
}

fn client_run<T: Send + 'static>(f: impl std::future::Future<Output = T> + 'static) -> T {
    run_here(ExecutorConfig::named("client-test"), f).unwrap()
}

async fn connect(addr: SocketAddr) -> Client {
    for _ in 0..200 {
        if let Ok(c) = Client::connect(addr, TOKEN, "test-client").await {
            return c;
        }
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    panic!("controller did not come up");
}

/// Whether `model` answers an inference with success within `within` (asked every
/// 50 ms): for workers that must join, or rejoin, first.
async fn served_within(c: &mut Client, model: ModelId, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        let r = c.infer(model, Slo::Default, Vec::new()).await.unwrap();
        if r.status == ClientStatus::Success {
            return true;
        }
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Infer until the first success (the model must be loaded and workers joined first).
async fn infer_until_success(c: &mut Client, model: ModelId) -> u32 {
    for i in 0..500 {
        let r = c.infer(model, Slo::Default, Vec::new()).await.unwrap();
        if r.status == ClientStatus::Success {
            return i;
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    panic!("no success");
}

#[test]
fn register_list_infer_and_refuse_unknown_models() {
    let w = worker(2);
    let logs = tempfile::tempdir().unwrap();
    let dir = logs.path().to_path_buf();
    let ctl = start(vec![w.local_addr()], Some(dir.clone()));
    let addr = ctl.native;
    let (statuses, listed, unknown, short) = client_run(async move {
        let mut c = connect(addr).await;
        let (first, copies) = c.register(resnet50(), 3).await.unwrap();
        assert_eq!(copies, 3);
        let listed = c.list_models().await.unwrap();
        infer_until_success(&mut c, first).await;
        let mut statuses = Vec::new();
        for i in 0..30u32 {
            let r = c
                .infer(ModelId(first.0 + i % 3), Slo::Default, Vec::new())
                .await
                .unwrap();
            assert!(
                r.controller_latency < Nanos::from_millis(100) || r.status != ClientStatus::Success
            );
            statuses.push(r.status);
        }
        let unknown = c
            .infer(ModelId(999), Slo::Default, Vec::new())
            .await
            .unwrap()
            .status;
        let short = c.infer(first, Slo::Default, vec![1, 2, 3]).await.unwrap();
        (statuses, listed, unknown, short)
    });
    assert_eq!(listed.len(), 3);
    assert!(listed
        .iter()
        .all(|m| m.name == "resnet50_v2" && m.max_batch == 16));
    let ok = statuses
        .iter()
        .filter(|s| **s == ClientStatus::Success)
        .count();
    assert!(ok >= 25, "only {ok} of 30 succeeded: {statuses:?}");
    assert_eq!(unknown, ClientStatus::UnknownModel);
    // An input that is not the model's size is refused in words, never sent.
    assert_eq!(short.status, ClientStatus::InvalidRequest);
    assert!(short.message.contains("3 bytes"), "{}", short.message);
    drop(ctl);
    let log = std::fs::read_to_string(dir.join("clockwork_request_log.tsv")).unwrap();
    assert!(
        log.lines().count() > 30,
        "request log has {} lines",
        log.lines().count()
    );
    let actions = std::fs::read_to_string(dir.join("clockwork_action_log.tsv")).unwrap();
    assert!(actions.lines().count() > 2);
}

#[test]
fn a_bad_registration_is_refused_in_words() {
    let w = worker(1);
    let ctl = start(vec![w.local_addr()], None);
    let addr = ctl.native;
    let (err, too_many, after) = client_run(async move {
        let mut c = connect(addr).await;
        let mut p = resnet50();
        p.batches.clear();
        let err = c.register(p, 1).await.err().unwrap().to_string();
        // Four billion copies: refused in words, not an allocation that aborts.
        let too_many = c.register(resnet50(), u32::MAX).await.err().unwrap();
        // Neither registered anything: the next model still gets id 0, and serves.
        let (first, n) = c.register(resnet50(), 1).await.unwrap();
        infer_until_success(&mut c, first).await;
        (err, too_many.to_string(), (first, n))
    });
    assert!(err.contains("no batch sizes"), "{err}");
    assert!(too_many.contains("--max-models"), "{too_many}");
    assert_eq!(after, (ModelId(0), 1));
}

#[test]
fn pipelined_requests_each_get_exactly_one_answer() {
    let w = worker(2);
    let ctl = start(vec![w.local_addr()], None);
    let addr = ctl.native;
    let (sent, answers) = client_run(async move {
        let mut c = connect(addr).await;
        let (first, _) = c.register(resnet50(), 4).await.unwrap();
        infer_until_success(&mut c, first).await;
        let (mut tx, mut rx, _) = c.into_split();
        let n = 400u64;
        let sender = glommio::spawn_local(async move {
            let mut ids = Vec::new();
            for i in 0..n {
                let id = tx
                    .send_infer(
                        ModelId(first.0 + (i % 4) as u32),
                        Slo::Absolute(Nanos::from_millis(50)),
                        Vec::new(),
                    )
                    .await
                    .unwrap();
                ids.push(id);
                if i % 8 == 0 {
                    glommio::timer::sleep(Duration::from_micros(500)).await;
                }
            }
            ids
        });
        let mut answers = std::collections::HashMap::new();
        for _ in 0..n {
            match rx.recv().await.unwrap() {
                clockwork_core::ClientResponse::Inferred(r) => {
                    *answers.entry(r.id).or_insert(0u32) += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        (sender.await, answers)
    });
    assert_eq!(answers.len(), sent.len());
    assert!(sent.iter().all(|id| answers.get(id) == Some(&1)));
}

#[test]
fn losing_the_only_worker_answers_requests_and_it_can_rejoin() {
    let w = worker(1);
    let waddr = w.local_addr();
    let ctl = start(vec![waddr], None);
    let addr = ctl.native;
    let (after_loss, rejoin_tries) = client_run(async move {
        let mut c = connect(addr).await;
        let (first, _) = c.register(resnet50(), 1).await.unwrap();
        infer_until_success(&mut c, first).await;
        w.stop().unwrap();
        glommio::timer::sleep(Duration::from_millis(200)).await;
        let after_loss = c
            .infer(first, Slo::Default, Vec::new())
            .await
            .unwrap()
            .status;
        // A new worker on the same address rejoins and serves again.
        let mut cfg = WorkerConfig::emulated(1);
        cfg.listen = waddr;
        cfg.link.token = TOKEN.into();
        let w2 = Worker::serve(cfg).expect("worker restarts on the same port");
        let tries = infer_until_success(&mut c, first).await;
        drop(w2);
        (after_loss, tries)
    });
    assert_eq!(after_loss, ClientStatus::Unavailable);
    assert!(rejoin_tries < 500);
}

#[test]
fn a_registration_of_110000_copies_reaches_the_worker() {
    // 110,000 copies: one RegisterModel action per instance (about 200 bytes each)
    // made 22 MB, more than one 16 MiB frame of the link holds; the worker refused it
    // and closed the link, and every reconnection sent it again. They now go as one
    // action for the range.
    let w = worker(1);
    let ctl = start(vec![w.local_addr()], None);
    let addr = ctl.native;
    let served = client_run(async move {
        let mut c = connect(addr).await;
        let (first, n) = c.register(resnet50(), 110_000).await.unwrap();
        let last = ModelId(first.0 + n - 1);
        served_within(&mut c, last, Duration::from_secs(60)).await
    });
    assert!(served, "the last instance was never served");
    // The link was never lost on the way.
    let m = support::plain(ctl.http, "GET", "/metrics", None, "");
    let lost = m
        .body
        .lines()
        .filter(|l| l.starts_with("clockwork_worker_links_lost_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert_eq!(lost, 0.0, "{}", m.body);
    drop(w);
}

#[test]
fn a_new_controller_takes_over_a_worker_that_holds_many_instances() {
    // The worker keeps the registrations of a controller that went away: its state
    // (GET STATE, the first thing a controller asks) must still fit one frame of the
    // link. Listed one by one, 110,000 instances took 22 MB: no new controller could
    // ever take the worker over.
    let w = worker(1);
    let waddr = w.local_addr();
    let old = start(vec![waddr], None);
    let addr = old.native;
    client_run(async move {
        let mut c = connect(addr).await;
        let (first, n) = c.register(resnet50(), 110_000).await.unwrap();
        infer_until_success(&mut c, ModelId(first.0 + n - 1)).await;
    });
    old.stop().unwrap();
    let new = start(vec![waddr], None);
    let addr = new.native;
    let served = client_run(async move {
        let mut c = connect(addr).await;
        let (first, _) = c.register(resnet50(), 1).await.unwrap();
        served_within(&mut c, first, Duration::from_secs(60)).await
    });
    assert!(served, "the new controller never got the worker");
    drop(w);
}

#[test]
fn a_join_that_sends_more_than_one_frame_holds_goes_in_several() {
    // 1,500 registrations of one instance each: a worker that joins gets 1,500
    // RegisterModel actions in one scheduling round, about 300 KB, over a link whose
    // frames hold 256 KiB. Sent as one frame, it was refused and the link closed.
    const FRAME: usize = 256 * 1024;
    let small_frame_worker = |listen: SocketAddr| {
        let mut cfg = WorkerConfig::emulated(1);
        cfg.listen = listen;
        cfg.link.token = TOKEN.into();
        cfg.link.max_frame = FRAME;
        Worker::serve(cfg).expect("worker starts")
    };
    let w = small_frame_worker("127.0.0.1:0".parse().unwrap());
    let waddr = w.local_addr();
    let ctl = Controller::start_with_workers(vec![waddr], |cfg| cfg.link_max_frame = FRAME);
    let addr = ctl.native;
    let (last, n) = client_run(async move {
        let mut c = connect(addr).await;
        // Small tensors, so that a batch fits the small frame.
        let profile = clockwork_core::ModelProfile {
            input_bytes: 1_000,
            output_bytes: 1_000,
            ..resnet50()
        };
        let mut last = ModelId(0);
        for _ in 0..1_500 {
            last = c.register(profile.clone(), 1).await.unwrap().0;
        }
        (last, last.0 + 1)
    });
    assert_eq!(n, 1_500);
    w.stop().unwrap();
    let w2 = small_frame_worker(waddr);
    let served = client_run(async move {
        let mut c = connect(addr).await;
        served_within(&mut c, last, Duration::from_secs(60)).await
    });
    assert!(served, "the new worker never joined");
    drop(w2);
}
