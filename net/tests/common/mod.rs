//! Shared pieces of the transport tests: sample messages of every kind and an echo
//! server that answers each frame with the same message.

#![allow(dead_code, unreachable_pub)]

use clockwork_core::client::{
    ClientRequest, ClientResponse, InferRequest, InferResponse, ModelInfo, Slo,
};
use clockwork_core::model::resnet50;
use clockwork_core::{BatchProfile, MeasuredTimes, ModelProfile, ModelSource, TensorSpec};

/// A real model's profile: an ONNX source and a tensor signature.
fn real_model() -> ModelProfile {
    ModelProfile {
        name: "small_cnn".into(),
        source: ModelSource::Onnx {
            path: "/models/small_cnn/1/model.onnx".into(),
        },
        input_bytes: 12_288,
        output_bytes: 40,
        inputs: vec![TensorSpec {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![-1, 3, 32, 32],
            item_bytes: 12_288,
        }],
        outputs: vec![TensorSpec {
            name: "logits".into(),
            datatype: "FP32".into(),
            shape: vec![-1, 10],
            item_bytes: 40,
        }],
        ..resnet50()
    }
}
use clockwork_core::result::{GpuState, Inferred, Outcome, RegisteredModel, Timing, WorkerState};
use clockwork_core::wire::{
    FromWorker, Hello, HelloReply, MessageKind, PeerRole, ToWorker, PROTOCOL_VERSION,
};
use clockwork_core::*;
use clockwork_net::frame::Frame;
use clockwork_net::handshake::LinkConfig;
use clockwork_net::tcp::{Listener, TcpConnection};
use clockwork_net::NetError;
use rkyv::rancor::BoxedError;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

pub const TOKEN: &str = "test-cluster-token";

pub fn link(name: &str) -> LinkConfig {
    LinkConfig::new(TOKEN, name)
}

fn timing(b: u64) -> Timing {
    Timing {
        begin: Nanos(b),
        end: Nanos(b + 1_000),
        duration: Nanos(900),
    }
}

/// One action of every kind.
pub fn all_actions() -> Vec<Action> {
    let w = Window::new(Nanos(1_000_000), Nanos(11_000_000));
    vec![
        Action {
            id: ActionId(1),
            window: Window::ANY,
            kind: ActionKind::RegisterModel {
                model: ModelId(7),
                count: 3,
                profile: real_model(),
            },
        },
        Action {
            id: ActionId(2),
            window: w,
            kind: ActionKind::LoadWeights {
                model: ModelId(7),
                gpu: GpuId(1),
                expected_duration: Nanos(8_370_000),
            },
        },
        Action {
            id: ActionId(3),
            window: Window::ANY,
            kind: ActionKind::Unload {
                model: ModelId(7),
                gpu: GpuId(1),
            },
        },
        Action {
            id: ActionId(4),
            window: w,
            kind: ActionKind::Infer {
                model: ModelId(7),
                gpu: GpuId(1),
                batch_size: 3,
                expected_duration: Nanos(7_500_000),
                input_sizes: vec![4, 0, 2],
                inputs: vec![1, 2, 3, 4, 5, 6].into(),
            },
        },
        Action {
            id: ActionId(5),
            window: Window::ANY,
            kind: ActionKind::GetState,
        },
        Action {
            id: ActionId(6),
            window: Window::ANY,
            kind: ActionKind::ClearCache,
        },
    ]
}

/// One result of every outcome.
pub fn all_results() -> Vec<ActionResult> {
    let r = |id, status, outcome| ActionResult {
        action_id: ActionId(id),
        status,
        received: Nanos(10),
        sent: Nanos(20),
        outcome,
    };
    vec![
        r(
            1,
            WorkerStatus::LoadInsufficientCache,
            Outcome::Error {
                message: "need 7 pages, 3 free".into(),
            },
        ),
        r(
            2,
            WorkerStatus::Success,
            Outcome::Registered {
                model: ModelId(7),
                pages: 7,
                measured: Some(MeasuredTimes {
                    load_time: Nanos::from_micros(1_900),
                    batches: vec![BatchProfile {
                        batch_size: 1,
                        exec_time: Nanos::from_micros(904),
                    }],
                }),
            },
        ),
        r(
            3,
            WorkerStatus::Success,
            Outcome::Loaded {
                timing: timing(100),
            },
        ),
        r(
            4,
            WorkerStatus::Success,
            Outcome::Unloaded {
                timing: timing(200),
            },
        ),
        r(
            5,
            WorkerStatus::Success,
            Outcome::Inferred(Inferred {
                gpu: GpuId(1),
                padded_batch: 4,
                copy_input: timing(300),
                exec: timing(400),
                copy_output: timing(500),
                gpu_clock_before_mhz: 1380,
                gpu_clock_mhz: 1380,
                outputs: vec![9; 16],
            }),
        ),
        r(
            6,
            WorkerStatus::Success,
            Outcome::State(WorkerState {
                page_size: DEFAULT_PAGE_SIZE,
                gpus: vec![GpuState {
                    id: GpuId(0),
                    name: "emulated-gpu-0 (emulated)".into(),
                    emulated: true,
                    total_pages: 1376,
                    free_pages: 1369,
                    loaded: vec![ModelId(7)],
                }],
                models: vec![RegisteredModel {
                    id: ModelId(7),
                    count: 1,
                    profile: resnet50(),
                }],
            }),
        ),
        r(7, WorkerStatus::Success, Outcome::CacheCleared),
    ]
}

pub fn all_client_requests() -> Vec<ClientRequest> {
    vec![
        ClientRequest::RegisterModel {
            id: RequestId(1),
            profile: resnet50(),
            copies: 3,
        },
        ClientRequest::Infer(InferRequest {
            id: RequestId(2),
            model: ModelId(7),
            slo: Slo::Default,
            input: vec![].into(),
        }),
        ClientRequest::Infer(InferRequest {
            id: RequestId(3),
            model: ModelId(7),
            slo: Slo::Absolute(Nanos::from_millis(25)),
            input: vec![1, 2, 3].into(),
        }),
        ClientRequest::Infer(InferRequest {
            id: RequestId(4),
            model: ModelId(7),
            slo: Slo::Factor(3.5),
            input: vec![].into(),
        }),
        ClientRequest::ListModels { id: RequestId(5) },
    ]
}

pub fn all_client_responses() -> Vec<ClientResponse> {
    vec![
        ClientResponse::Registered {
            id: RequestId(1),
            first_model: ModelId(7),
            copies: 3,
        },
        ClientResponse::Inferred(InferResponse {
            id: RequestId(2),
            model: ModelId(7),
            status: ClientStatus::Success,
            batch_size: 4,
            controller_latency: Nanos(4_700_000),
            output: vec![1; 8],
            message: String::new(),
        }),
        ClientResponse::Inferred(InferResponse {
            id: RequestId(3),
            model: ModelId(7),
            status: ClientStatus::WorkerFailed(WorkerStatus::ExecTooLate),
            batch_size: 0,
            controller_latency: Nanos(0),
            output: vec![],
            message: "missed its window".into(),
        }),
        ClientResponse::Models {
            id: RequestId(5),
            models: vec![ModelInfo {
                id: ModelId(7),
                name: "resnet50_v2".into(),
                input_bytes: 602_112,
                output_bytes: 4_000,
                max_batch: 16,
            }],
        },
        ClientResponse::Error {
            id: RequestId(6),
            status: ClientStatus::UnknownModel,
            message: "no model m99".into(),
        },
    ]
}

pub fn hello(token: &str) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        role: PeerRole::Client,
        token: token.into(),
        name: "tester".into(),
    }
}

pub fn reply_accepted() -> HelloReply {
    HelloReply::Accepted {
        name: "server".into(),
    }
}

/// Re-send whatever message a frame holds, deserialized to its native type.
async fn echo(conn: &mut TcpConnection) -> Result<(), NetError> {
    macro_rules! back {
        ($frame:expr, $t:ty) => {{
            let a = $frame.access::<$t>()?;
            let native: $t = rkyv::deserialize::<$t, BoxedError>(a)
                .map_err(|e| NetError::Serialize(e.to_string()))?;
            native
        }};
    }
    loop {
        let frame: Frame<'_> = conn.recv().await?;
        match frame.kind() {
            Some(MessageKind::ToWorker) => {
                let m = back!(frame, ToWorker);
                conn.send(&m).await?
            }
            Some(MessageKind::FromWorker) => {
                let m = back!(frame, FromWorker);
                conn.send(&m).await?
            }
            Some(MessageKind::ClientRequest) => {
                let m = back!(frame, ClientRequest);
                conn.send(&m).await?
            }
            Some(MessageKind::ClientResponse) => {
                let m = back!(frame, ClientResponse);
                conn.send(&m).await?
            }
            Some(MessageKind::Hello) => {
                let m = back!(frame, Hello);
                conn.send(&m).await?
            }
            Some(MessageKind::HelloReply) => {
                let m = back!(frame, HelloReply);
                conn.send(&m).await?
            }
            None => return Err(NetError::UnknownKind(frame.header.kind)),
        }
    }
}

/// What the echo server saw: one entry per connection that ended, with its reason.
#[derive(Default, Debug)]
pub struct ServerLog {
    pub ended: Vec<String>,
    pub accepted: usize,
}

/// Start an echo server for clients on this executor; returns its address and log.
pub fn spawn_echo_server() -> (SocketAddr, Rc<RefCell<ServerLog>>) {
    spawn_echo_server_for(PeerRole::Client)
}

/// An echo server for peers of `role`.
pub fn spawn_echo_server_for(role: PeerRole) -> (SocketAddr, Rc<RefCell<ServerLog>>) {
    let listener =
        Rc::new(Listener::bind("127.0.0.1:0".parse().unwrap(), role, link("server")).unwrap());
    let addr = listener.local_addr().unwrap();
    let log = Rc::new(RefCell::new(ServerLog::default()));
    let (l, lg) = (listener, log.clone());
    glommio::spawn_local(async move {
        loop {
            let Ok(stream) = l.accept().await else {
                continue;
            };
            let (l2, lg2) = (l.clone(), lg.clone());
            glommio::spawn_local(async move {
                let reason = match l2.handshake(stream).await {
                    Ok((mut conn, _peer)) => {
                        lg2.borrow_mut().accepted += 1;
                        match echo(&mut conn).await {
                            Ok(()) => "ok".to_string(),
                            Err(e) => e.to_string(),
                        }
                    }
                    Err(e) => format!("handshake: {e}"),
                };
                lg2.borrow_mut().ended.push(reason);
            })
            .detach();
        }
    })
    .detach();
    (addr, log)
}
