//! One request path for native and HTTP clients, end to end on loopback: outputs come
//! back to the request they belong to, and the same bad input gets the same refusal
//! from both front ends.
//!
//! The worker here is a test double speaking the worker protocol: it runs each INFER
//! for 1 ms and returns outputs that are a function of each request's own input
//! (its first 8 bytes, each plus one), so a request that got another's slice, or
//! none, shows. It reports its one GPU as not emulated.

use clockwork_client::Client;
use clockwork_controller::service::{serve, ServiceConfig};
use clockwork_core::client::ClientResponse;
use clockwork_core::result::{ActionResult, GpuState, Inferred, Outcome, RegisteredModel};
use clockwork_core::wire::{FromWorker, PeerRole, ToWorker};
use clockwork_core::{
    Action, ActionKind, BatchProfile, ClientStatus, GpuId, ModelId, ModelProfile, MonotonicClock,
    Nanos, Slo, Timing, WorkerState, WorkerStatus, DEFAULT_PAGE_SIZE,
};
use clockwork_net::runtime::{self, run_here, ExecutorConfig, ExecutorHandle};
use clockwork_net::{LinkConfig, Listener, TcpConnection};
use rkyv::rancor::BoxedError;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

const TOKEN: &str = "request-path-test";
const INPUT: u32 = 16;
const OUTPUT: u32 = 8;

/// 16 input bytes, 8 output bytes, batches of 1, 2 and 4.
fn tiny() -> ModelProfile {
    ModelProfile {
        name: "tiny".into(),
        weights_bytes: 20_000_000,
        input_bytes: INPUT,
        output_bytes: OUTPUT,
        load_time: Nanos::from_millis(2),
        batches: [(1, 1_000), (2, 1_500), (4, 2_000)]
            .iter()
            .map(|&(b, us)| BatchProfile {
                batch_size: b,
                exec_time: Nanos::from_micros(us),
            })
            .collect(),
        source: clockwork_core::ModelSource::Emulated,
        inputs: Vec::new(),
        outputs: Vec::new(),
    }
}

/// What the test worker answers for one request's input.
fn output_for(input: &[u8]) -> Vec<u8> {
    if input.is_empty() {
        return vec![0xEE; OUTPUT as usize];
    }
    input[..OUTPUT as usize]
        .iter()
        .map(|b| b.wrapping_add(1))
        .collect()
}

/// The input of request `n`: 16 bytes, all different from other requests'.
fn input_of(n: u8) -> Vec<u8> {
    (0..INPUT as u8)
        .map(|i| n.wrapping_mul(17).wrapping_add(i))
        .collect()
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn now() -> Nanos {
    MonotonicClock::read()
}

/// Starts the test worker; returns its address and its executor (which ends when
/// the controller's link closes).
fn echo_worker() -> (SocketAddr, ExecutorHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let handle = runtime::spawn(ExecutorConfig::named("echo-worker"), move || async move {
        let link = LinkConfig::new(TOKEN, "echo-worker");
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), PeerRole::Controller, link)
            .expect("bind");
        tx.send(listener.local_addr().unwrap()).unwrap();
        let stream = listener.accept().await.expect("accept");
        let (conn, _) = listener.handshake(stream).await.expect("handshake");
        serve_echo(conn).await;
    })
    .unwrap();
    (rx.recv().unwrap(), handle)
}

async fn serve_echo(mut conn: TcpConnection) {
    let mut models: HashMap<ModelId, ModelProfile> = HashMap::new();
    loop {
        let msg = match conn.recv_msg::<ToWorker>().await {
            Ok(a) => rkyv::deserialize::<ToWorker, BoxedError>(a).unwrap(),
            Err(_) => return,
        };
        let actions = match msg {
            ToWorker::Actions(actions) => actions,
            // Keep the controller's liveness watchdog happy: answer in kind.
            ToWorker::Heartbeat => {
                if conn.send(&FromWorker::Heartbeat).await.is_err() {
                    return;
                }
                continue;
            }
        };
        for a in actions {
            let received = now();
            let (status, outcome) = run(&a, &mut models).await;
            let r = ActionResult {
                action_id: a.id,
                status,
                received,
                sent: now(),
                outcome,
            };
            if conn.send(&FromWorker::Result(r)).await.is_err() {
                return;
            }
        }
    }
}

async fn run(a: &Action, models: &mut HashMap<ModelId, ModelProfile>) -> (WorkerStatus, Outcome) {
    let instant = |t: Nanos| Timing {
        begin: t,
        end: t,
        duration: Nanos::ZERO,
    };
    let ok = WorkerStatus::Success;
    match &a.kind {
        ActionKind::GetState => {
            let state = WorkerState {
                page_size: DEFAULT_PAGE_SIZE,
                gpus: vec![GpuState {
                    id: GpuId(0),
                    name: "echo test double".into(),
                    emulated: false,
                    total_pages: 64,
                    free_pages: 64,
                    loaded: Vec::new(),
                }],
                models: models
                    .iter()
                    .map(|(id, p)| RegisteredModel {
                        id: *id,
                        count: 1,
                        profile: p.clone(),
                    })
                    .collect(),
            };
            (ok, Outcome::State(state))
        }
        ActionKind::RegisterModel {
            model,
            count,
            profile,
        } => {
            for id in model.0..model.0 + count {
                models.insert(ModelId(id), profile.clone());
            }
            let pages = profile.pages(DEFAULT_PAGE_SIZE);
            (
                ok,
                Outcome::Registered {
                    model: *model,
                    pages,
                    measured: None,
                },
            )
        }
        ActionKind::LoadWeights { .. } => (
            ok,
            Outcome::Loaded {
                timing: instant(now()),
            },
        ),
        ActionKind::Unload { .. } => (
            ok,
            Outcome::Unloaded {
                timing: instant(now()),
            },
        ),
        ActionKind::ClearCache => (ok, Outcome::CacheCleared),
        ActionKind::Infer {
            model,
            gpu,
            batch_size,
            input_sizes,
            inputs,
            ..
        } => {
            let begin = now();
            glommio::timer::sleep(Duration::from_millis(1)).await;
            let end = now();
            let exec = Timing {
                begin,
                end,
                duration: end - begin,
            };
            let mut outputs = Vec::new();
            let inputs = inputs.to_vec();
            let mut at = 0;
            for i in 0..*batch_size as usize {
                let len = input_sizes.get(i).copied().unwrap_or(0) as usize;
                outputs.extend(output_for(&inputs[at..at + len]));
                at += len;
            }
            let padded = models
                .get(model)
                .and_then(|p| p.padded_batch(*batch_size))
                .unwrap_or(*batch_size);
            let done = Inferred {
                gpu: *gpu,
                padded_batch: padded,
                copy_input: Timing {
                    begin,
                    end: begin,
                    duration: Nanos::ZERO,
                },
                exec,
                copy_output: Timing {
                    begin: end,
                    end,
                    duration: Nanos::ZERO,
                },
                gpu_clock_before_mhz: 0,
                gpu_clock_mhz: 0,
                outputs,
            };
            (ok, Outcome::Inferred(done))
        }
    }
}

/// A running controller with its native and HTTP ports; stopped on drop.
struct Controller {
    native: SocketAddr,
    http: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<ExecutorHandle<Result<(), String>>>,
}

impl Controller {
    fn start(worker: SocketAddr) -> Self {
        let (native, http) = (free_port(), free_port());
        let mut cfg = ServiceConfig::new(vec![worker], native, TOKEN);
        cfg.reconnect_interval = Duration::from_millis(50);
        cfg.http = Some(http);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = runtime::spawn(ExecutorConfig::named("path-test-ctl"), move || async move {
            let shutdown = async move {
                while !s.load(Ordering::Relaxed) {
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                }
            };
            serve(cfg, shutdown).await.map_err(|e| e.to_string())
        })
        .unwrap();
        Self {
            native,
            http,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

async fn connect(addr: SocketAddr) -> Client {
    for _ in 0..200 {
        if let Ok(c) = Client::connect(addr, TOKEN, "path-test").await {
            return c;
        }
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    panic!("controller did not come up");
}

fn post(url: &str, body: &Value) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut r = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(body).unwrap())
        .expect("HTTP exchange");
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_vec().unwrap();
    (status, serde_json::from_slice(&body).expect("JSON answer"))
}

/// What the native client saw.
struct NativeSession {
    model: ModelId,
    /// `(input index, output, batch size)` of each pipelined request.
    answers: Vec<(u8, Vec<u8>, u32)>,
    /// Status and message of the request with a too-short input.
    short: (ClientStatus, String),
}

/// Native client, in its own executor: registers the model, serves one request to
/// warm it, sends a too-short input, then `n` requests at once (distinct inputs).
fn native_session(addr: SocketAddr, n: u8) -> NativeSession {
    run_here(ExecutorConfig::named("path-test-client"), async move {
        let mut c = connect(addr).await;
        let (model, _) = c.register(tiny(), 1).await.unwrap();
        let mut warm = false;
        for _ in 0..200 {
            let r = c.infer(model, Slo::Default, input_of(200)).await.unwrap();
            if r.status == ClientStatus::Success {
                assert_eq!(r.output, output_for(&input_of(200)));
                warm = true;
                break;
            }
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        assert!(warm, "the model never served");
        let short = c.infer(model, Slo::Default, vec![1, 2, 3]).await.unwrap();
        let (mut tx, mut rx, stash) = c.into_split();
        assert!(stash.is_empty());
        let mut by_id = HashMap::new();
        for i in 0..n {
            let id = tx
                .send_infer(model, Slo::Absolute(Nanos::from_millis(500)), input_of(i))
                .await
                .unwrap();
            by_id.insert(id, i);
        }
        let mut got = Vec::new();
        while got.len() < usize::from(n) {
            let ClientResponse::Inferred(r) = rx.recv().await.unwrap() else {
                panic!("not an inference answer");
            };
            assert_eq!(r.status, ClientStatus::Success, "{r:?}");
            let i = by_id.remove(&r.id).expect("one answer per request");
            got.push((i, r.output, r.batch_size));
        }
        NativeSession {
            model,
            answers: got,
            short: (short.status, short.message),
        }
    })
    .unwrap()
}

#[test]
fn outputs_come_back_to_their_own_request_and_both_front_ends_share_one_path() {
    let (waddr, worker) = echo_worker();
    let ctl = Controller::start(waddr);
    let NativeSession {
        model,
        answers: native,
        short,
    } = native_session(ctl.native, 40);

    // Native: every request got exactly its own slice, also from shared batches.
    for (i, output, _) in &native {
        assert_eq!(*output, output_for(&input_of(*i)), "request {i}");
    }
    assert!(
        native.iter().any(|(_, _, b)| *b > 1),
        "no batch of more than one request formed"
    );

    // HTTP: the output tensor is the request's slice; the GPU was not emulated.
    let url = format!("http://{}/v2/models/tiny-{}/infer", ctl.http, model.0);
    let input = input_of(77);
    let (status, v) = post(
        &url,
        &json!({ "id": "h", "inputs": [{ "name": "input", "shape": [16], "datatype": "UINT8", "data": input }] }),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["outputs"][0]["shape"], json!([OUTPUT]));
    assert_eq!(v["outputs"][0]["data"], json!(output_for(&input)));
    assert!(v["parameters"].get("clockwork_emulated").is_none(), "{v}");

    // The same bad input gets the same refusal, in each protocol's terms.
    assert_eq!(short.0, ClientStatus::InvalidRequest);
    let (status, v) = post(
        &url,
        &json!({ "inputs": [{ "name": "input", "shape": [3], "datatype": "UINT8", "data": [1, 2, 3] }] }),
    );
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        v["clockwork_status"],
        json!(ClientStatus::InvalidRequest.to_string())
    );
    assert_eq!(v["error"], json!(format!("invalid: {}", short.1)));

    drop(ctl);
    worker.join().unwrap();
}
