//! A fake controller for driving a worker in tests, and small model profiles that run in
//! a few milliseconds.

#![allow(dead_code, unreachable_pub)]

use clockwork_core::wire::{FromWorker, PeerRole, ToWorker};
use clockwork_core::{
    Action, ActionId, ActionKind, ActionResult, BatchProfile, GpuId, GpuState, ModelId,
    ModelProfile, MonotonicClock, Nanos, Outcome, Window, WorkerState, WorkerStatus,
    DEFAULT_PAGE_SIZE,
};
use clockwork_gpu::{Backend, DeviceConfig, NoiseModel};
use clockwork_net::runtime::{run_here, ExecutorConfig};
use clockwork_net::{connect, LinkConfig, Liveness, NetError, TcpConnection};
use clockwork_worker::{Worker, WorkerConfig, WorkerHandle};
use rkyv::rancor::BoxedError;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

pub const TOKEN: &str = "worker-test-token";
pub const WAIT: Duration = Duration::from_secs(10);

/// 3 pages; LOAD 2 ms; batches 1, 2, 4 at 1, 1.5, 2 ms.
pub fn tiny() -> ModelProfile {
    profile(
        "tiny",
        3 * DEFAULT_PAGE_SIZE - 1,
        2_000,
        &[(1, 1_000), (2, 1_500), (4, 2_000)],
    )
}

/// 7 pages; LOAD 3 ms; batch 1 at 1 ms.
pub fn mid() -> ModelProfile {
    profile("mid", 7 * DEFAULT_PAGE_SIZE, 3_000, &[(1, 1_000)])
}

/// 15 pages; LOAD 40 ms (long enough to be caught in flight); batch 1 at 2 ms.
pub fn big() -> ModelProfile {
    profile("big", 15 * DEFAULT_PAGE_SIZE, 40_000, &[(1, 2_000)])
}

pub fn profile(name: &str, bytes: u64, load_us: u64, batches: &[(u32, u64)]) -> ModelProfile {
    ModelProfile {
        name: name.into(),
        weights_bytes: bytes,
        input_bytes: 16,
        output_bytes: 8,
        load_time: Nanos::from_micros(load_us),
        batches: batches
            .iter()
            .map(|&(batch_size, us)| BatchProfile {
                batch_size,
                exec_time: Nanos::from_micros(us),
            })
            .collect(),
        source: clockwork_core::ModelSource::Emulated,
        inputs: Default::default(),
        outputs: Vec::new(),
    }
}

/// A worker with `devices` emulated GPUs of `pages` pages each, on a free port.
pub fn worker(devices: u32, pages: u64) -> WorkerHandle {
    let mut d = DeviceConfig::emulated(devices);
    d.backend = Backend::Emulated {
        devices,
        engine_threads: 1,
        noise: NoiseModel::None,
        seed: 1,
    };
    d.cache_bytes = pages * DEFAULT_PAGE_SIZE;
    let mut c = WorkerConfig::with_devices(d);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.link = LinkConfig::new(TOKEN, "test-worker");
    c.liveness = patient();
    Worker::serve(c).expect("worker starts")
}

/// Like [`worker`], with the given link liveness.
pub fn worker_with_liveness(devices: u32, pages: u64, liveness: Liveness) -> WorkerHandle {
    let mut d = DeviceConfig::emulated(devices);
    d.backend = Backend::Emulated {
        devices,
        engine_threads: 1,
        noise: NoiseModel::None,
        seed: 1,
    };
    d.cache_bytes = pages * DEFAULT_PAGE_SIZE;
    let mut c = WorkerConfig::with_devices(d);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.link = LinkConfig::new(TOKEN, "test-worker");
    c.liveness = liveness;
    Worker::serve(c).expect("worker starts")
}

/// Liveness for a worker driven by a test controller that sends no heartbeats: the
/// worker never declares it silent during a test.
pub fn patient() -> Liveness {
    Liveness {
        heartbeat: Duration::from_millis(100),
        timeout: Duration::from_secs(3600),
    }
}

/// Run a fake controller on an executor on this thread.
pub fn run<T>(f: impl Future<Output = T>) -> T {
    run_here(ExecutorConfig::named("test-ctl"), f).expect("executor runs")
}

pub fn now() -> Nanos {
    MonotonicClock::read()
}

pub fn ms(n: u64) -> Nanos {
    Nanos::from_millis(n)
}

/// A window opening `from_now_ms` from now, `len_ms` long.
pub fn window(from_now_ms: u64, len_ms: u64) -> Window {
    let e = now() + ms(from_now_ms);
    Window::new(e, e + ms(len_ms))
}

pub fn load(model: u32, gpu: u32) -> ActionKind {
    ActionKind::LoadWeights {
        model: ModelId(model),
        gpu: GpuId(gpu),
        expected_duration: Nanos::ZERO,
    }
}

pub fn unload(model: u32, gpu: u32) -> ActionKind {
    ActionKind::Unload {
        model: ModelId(model),
        gpu: GpuId(gpu),
    }
}

pub fn infer(model: u32, gpu: u32, batch_size: u32) -> ActionKind {
    ActionKind::Infer {
        model: ModelId(model),
        gpu: GpuId(gpu),
        batch_size,
        expected_duration: Nanos::ZERO,
        input_sizes: Vec::new(),
        inputs: Default::default(),
    }
}

pub fn register(model: u32, profile: ModelProfile) -> ActionKind {
    ActionKind::RegisterModel {
        model: ModelId(model),
        count: 1,
        profile,
    }
}

/// A fake controller: sends actions, collects results by action id.
pub struct Ctl {
    pub conn: TcpConnection,
    next: u64,
    results: HashMap<ActionId, ActionResult>,
}

impl Ctl {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::try_connect(addr, TOKEN)
            .await
            .expect("controller connects")
    }

    pub async fn try_connect(addr: SocketAddr, token: &str) -> Result<Self, NetError> {
        let (conn, _) = connect(
            addr,
            PeerRole::Controller,
            &LinkConfig::new(token, "test-ctl"),
        )
        .await?;
        Ok(Self {
            conn,
            next: 1,
            results: HashMap::new(),
        })
    }

    /// Use ids from `first` on.
    pub fn ids_from(&mut self, first: u64) {
        self.next = first;
    }

    /// Send one frame with these actions; returns their ids.
    pub async fn send(&mut self, actions: Vec<(Window, ActionKind)>) -> Vec<ActionId> {
        let mut ids = Vec::new();
        let batch = actions
            .into_iter()
            .map(|(window, kind)| {
                let id = ActionId(self.next);
                self.next += 1;
                ids.push(id);
                Action { id, window, kind }
            })
            .collect();
        self.conn
            .send(&ToWorker::Actions(batch))
            .await
            .expect("send");
        ids
    }

    /// Receive the next result (any action; heartbeats are skipped), or an error if
    /// the link ends.
    pub async fn recv(&mut self) -> Result<ActionResult, NetError> {
        loop {
            let msg = self.conn.recv_msg::<FromWorker>().await?;
            match rkyv::deserialize::<FromWorker, BoxedError>(msg).expect("result") {
                FromWorker::Result(r) => return Ok(r),
                FromWorker::Heartbeat => {}
            }
        }
    }

    /// Receive results until each of `ids` has exactly one.
    pub async fn wait_all(&mut self, ids: &[ActionId]) -> Vec<ActionResult> {
        let got = futures_lite::future::or(
            async {
                while !ids.iter().all(|id| self.results.contains_key(id)) {
                    let r = self.recv().await.expect("a result");
                    assert!(
                        self.results.insert(r.action_id, r.clone()).is_none(),
                        "two results for {}",
                        r.action_id
                    );
                }
                true
            },
            async {
                glommio::timer::sleep(WAIT).await;
                false
            },
        )
        .await;
        assert!(got, "results for {ids:?} did not all arrive in {WAIT:?}");
        ids.iter()
            .map(|id| self.results.remove(id).unwrap())
            .collect()
    }

    /// Send one action and wait for its result.
    pub async fn call(&mut self, window: Window, kind: ActionKind) -> ActionResult {
        let ids = self.send(vec![(window, kind)]).await;
        self.wait_all(&ids).await.remove(0)
    }

    pub async fn state(&mut self) -> WorkerState {
        let r = self.call(Window::ANY, ActionKind::GetState).await;
        match r.outcome {
            Outcome::State(s) => s,
            other => panic!("GET STATE failed: {:?} {other:?}", r.status),
        }
    }

    /// Results that arrive within `d` (for "nothing else arrives" checks).
    pub async fn drain_for(&mut self, d: Duration) -> Vec<ActionResult> {
        let mut out = Vec::new();
        loop {
            let r = futures_lite::future::or(async { Some(self.recv().await) }, async {
                glommio::timer::sleep(d).await;
                None
            })
            .await;
            match r {
                Some(Ok(r)) => out.push(r),
                Some(Err(_)) | None => return out,
            }
        }
    }
}

pub fn gpu(state: &WorkerState, id: u32) -> &GpuState {
    &state.gpus[id as usize]
}

#[track_caller]
pub fn assert_status(r: &ActionResult, status: WorkerStatus) {
    assert_eq!(r.status, status, "action {}: {:?}", r.action_id, r.outcome);
    if status != WorkerStatus::Success {
        assert!(
            matches!(r.outcome, Outcome::Error { .. }),
            "a failure carries an error outcome: {r:?}"
        );
    }
}
