//! The core driven without sockets or devices: archived messages and hand-made
//! completions in, results and session closes out, a fake in place of the devices.

use super::{Devices, Output, SessionId, WorkerCore};
use crate::clock::ClockMap;
use clockwork_core::model::MeasuredTimes;
use clockwork_core::wire::{ArchivedToWorker, ToWorker};
use clockwork_core::{
    Action, ActionId, ActionKind, ActionResult, BatchProfile, GpuId, GpuState, ModelId,
    ModelProfile, Nanos, Outcome, RegisteredModel, Timing, Window, WorkerStatus,
};
use clockwork_gpu::{Completion, DeviceAction, DeviceOp, GpuError, OpKind, SubmitError};
use std::collections::BTreeMap;

const PAGE: u64 = 1 << 20;
/// The link's frame limit in these tests.
const FRAME: usize = 1 << 16;

/// Devices that record what they are handed; GPU ids and registration are checked as
/// `DeviceSet` checks them.
#[derive(Debug, Default)]
struct FakeDevices {
    gpus: u32,
    models: BTreeMap<ModelId, ModelProfile>,
    loaded: BTreeMap<GpuId, Vec<ModelId>>,
    submitted: Vec<DeviceAction>,
    /// Refuse submissions as a full ring would.
    full: bool,
    /// Devices that compute (CPU devices): real models are measured first.
    computes: bool,
}

impl Devices for FakeDevices {
    fn register_model(&mut self, model: ModelId, profile: ModelProfile) -> Result<u32, GpuError> {
        profile
            .validate()
            .map_err(|source| GpuError::InvalidProfile { model, source })?;
        let pages = profile.pages(PAGE);
        match self.models.get(&model) {
            Some(known) if *known != profile => Err(GpuError::ModelConflict(model)),
            _ => {
                self.models.insert(model, profile);
                Ok(pages)
            }
        }
    }

    fn submit(&mut self, action: DeviceAction) -> Result<(), SubmitError> {
        if action.gpu.get() >= self.gpus {
            return Err(SubmitError::InvalidGpu(action.gpu));
        }
        if self.full {
            return Err(SubmitError::Full(action));
        }
        self.submitted.push(action);
        Ok(())
    }

    fn profile(&self, model: ModelId) -> Option<&ModelProfile> {
        self.models.get(&model)
    }

    fn registered(&self) -> Vec<RegisteredModel> {
        RegisteredModel::runs(self.models.iter().map(|(&id, p)| (id, p)))
    }

    fn state(&self) -> Vec<GpuState> {
        (0..self.gpus)
            .map(|g| GpuState {
                id: GpuId(g),
                name: format!("fake-{g} (emulated)"),
                emulated: true,
                total_pages: 100,
                free_pages: 100,
                loaded: self.loaded.get(&GpuId(g)).cloned().unwrap_or_default(),
            })
            .collect()
    }

    fn page_size(&self) -> u64 {
        PAGE
    }

    fn computes(&self) -> bool {
        self.computes
    }
}

/// 8 output bytes per request; batches 1, 2, 4.
fn small() -> ModelProfile {
    ModelProfile {
        name: "small".into(),
        weights_bytes: 3 * PAGE,
        input_bytes: 4,
        output_bytes: 8,
        load_time: Nanos(2_000),
        batches: [1, 2, 4]
            .iter()
            .map(|&batch_size| BatchProfile {
                batch_size,
                exec_time: Nanos(1_000),
            })
            .collect(),
        source: clockwork_core::ModelSource::Emulated,
        inputs: Default::default(),
        outputs: Vec::new(),
    }
}

/// A core with `gpus` fake devices.
struct Rig {
    core: WorkerCore<FakeDevices>,
}

impl Rig {
    fn new(gpus: u32) -> Self {
        let devices = FakeDevices {
            gpus,
            ..FakeDevices::default()
        };
        Self {
            core: WorkerCore::new(devices, FRAME),
        }
    }

    fn devices(&mut self) -> &mut FakeDevices {
        self.core.devices.as_mut().expect("not shut down")
    }

    /// Deliver `actions` (id, window, kind) as one archived message.
    fn send(
        &mut self,
        session: SessionId,
        now: u64,
        offset: Option<i64>,
        actions: Vec<(u64, Window, ActionKind)>,
    ) {
        let msg = ToWorker::Actions(
            actions
                .into_iter()
                .map(|(id, window, kind)| Action {
                    id: ActionId(id),
                    window,
                    kind,
                })
                .collect(),
        );
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&msg).expect("serialises");
        let archived =
            rkyv::access::<ArchivedToWorker, rkyv::rancor::Error>(&bytes).expect("valid archive");
        self.core.message(session, Nanos(now), offset, archived);
    }

    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.core.next_output()).collect()
    }

    /// The outputs, which must all be results for `session`.
    fn results(&mut self, session: SessionId) -> Vec<(ActionResult, ClockMap)> {
        self.outputs()
            .into_iter()
            .map(|o| match o {
                Output::Send {
                    session: s,
                    result,
                    clock,
                } if s == session => (result, clock),
                other => panic!("expected a result for {session:?}, got {other:?}"),
            })
            .collect()
    }

    /// The one output, a result for `session`.
    fn result(&mut self, session: SessionId) -> ActionResult {
        let mut rs = self.results(session);
        assert_eq!(rs.len(), 1, "exactly one result: {rs:?}");
        rs.remove(0).0
    }

    /// Register `small()` as model 1 on a fresh session.
    fn with_model(gpus: u32) -> (Self, SessionId) {
        let mut r = Self::new(gpus);
        let s = r.core.connect("ctl");
        r.send(s, 0, None, vec![(1, Window::ANY, register(1))]);
        assert_eq!(r.result(s).status, WorkerStatus::Success);
        (r, s)
    }

    /// Complete the submitted action with tag `tag`: its buffers go back, as a device
    /// hands them back (taken out of the recorded action, so they keep their memory).
    fn complete(&mut self, tag: u64, status: WorkerStatus, timing: Timing) {
        let a = self
            .devices()
            .submitted
            .iter_mut()
            .find(|a| a.action == ActionId(tag))
            .expect("submitted");
        let (input, output) = match &mut a.op {
            DeviceOp::Infer { input, output, .. } => {
                (std::mem::take(input), std::mem::take(output))
            }
            _ => (Vec::new(), Vec::new()),
        };
        let (action, gpu, model, kind) = (a.action, a.gpu, a.op.model(), a.op.kind());
        self.core.completion(Completion {
            action,
            gpu,
            model,
            kind,
            status,
            timing,
            padded_batch: 4,
            emulated: true,
            output,
            input,
        });
    }

    fn last_tag(&mut self) -> u64 {
        self.devices()
            .submitted
            .last()
            .expect("something submitted")
            .action
            .get()
    }
}

fn register(model: u32) -> ActionKind {
    ActionKind::RegisterModel {
        model: ModelId(model),
        count: 1,
        profile: small(),
    }
}

fn load(model: u32, gpu: u32) -> ActionKind {
    ActionKind::LoadWeights {
        model: ModelId(model),
        gpu: GpuId(gpu),
        expected_duration: Nanos::ZERO,
    }
}

fn infer(batch_size: u32, input_sizes: Vec<u32>, inputs: Vec<u8>) -> ActionKind {
    ActionKind::Infer {
        model: ModelId(1),
        gpu: GpuId(0),
        batch_size,
        expected_duration: Nanos::ZERO,
        input_sizes,
        inputs: inputs.into(),
    }
}

fn timing(begin: u64, end: u64) -> Timing {
    Timing {
        begin: Nanos(begin),
        end: Nanos(end),
        duration: Nanos(end - begin),
    }
}

#[test]
fn a_new_session_replaces_the_old_and_old_results_are_dropped() {
    let (mut r, a) = Rig::with_model(1);
    r.send(a, 10, None, vec![(2, Window::ANY, load(1, 0))]);
    let tag = r.last_tag();
    assert!(r.outputs().is_empty(), "a LOAD is answered on completion");

    let b = r.core.connect("ctl-2");
    assert_ne!(a, b);
    assert_eq!(r.outputs(), vec![Output::Close { session: a }]);
    // The old session's LOAD completes: its result goes nowhere.
    r.complete(tag, WorkerStatus::Success, timing(20, 30));
    assert!(r.outputs().is_empty(), "stale result dropped");
    // Frames the old reader still delivers are ignored, and answered on no session.
    r.send(a, 40, None, vec![(3, Window::ANY, ActionKind::GetState)]);
    assert!(r.outputs().is_empty());
    // The new session works, and sees the state the old one built.
    r.send(b, 50, None, vec![(4, Window::ANY, ActionKind::GetState)]);
    let res = r.result(b);
    let Outcome::State(s) = res.outcome else {
        panic!("{res:?}")
    };
    assert_eq!(s.models.len(), 1);
    assert_eq!(res.action_id, ActionId(4));
}

#[test]
fn disconnect_drops_results_and_state_survives_a_reconnect() {
    let (mut r, a) = Rig::with_model(1);
    r.send(a, 10, None, vec![(2, Window::ANY, load(1, 0))]);
    let tag = r.last_tag();
    r.core.disconnect(a);
    assert!(r.outputs().is_empty(), "the shell closed it already");
    r.complete(tag, WorkerStatus::Success, timing(20, 30));
    assert!(r.outputs().is_empty());
    // A late disconnect of an old session does not end the new one.
    let b = r.core.connect("ctl-2");
    r.core.disconnect(a);
    r.send(
        b,
        40,
        None,
        vec![(5, Window::ANY, register(1)), (6, Window::ANY, load(1, 0))],
    );
    let rs = r.results(b);
    assert_eq!(rs.len(), 1, "REGISTER answered at once, LOAD submitted");
    assert_eq!(
        rs[0].0.outcome,
        Outcome::Registered {
            model: ModelId(1),
            pages: 3,
            measured: None,
        }
    );
}

#[test]
fn malformed_actions_are_answered_once_with_their_status() {
    let (mut r, s) = Rig::with_model(2);
    let inverted = Window::new(Nanos(10), Nanos(5));
    let mut conflicting = small();
    conflicting.output_bytes = 9;
    let mut no_batches = small();
    no_batches.batches.clear();
    let cases = vec![
        (10, inverted, register(2), WorkerStatus::InvalidAction),
        (
            11,
            inverted,
            ActionKind::GetState,
            WorkerStatus::InvalidAction,
        ),
        (
            12,
            inverted,
            ActionKind::ClearCache,
            WorkerStatus::InvalidAction,
        ),
        (
            13,
            Window::ANY,
            ActionKind::RegisterModel {
                model: ModelId(1),
                count: 1,
                profile: conflicting,
            },
            WorkerStatus::InvalidModelId,
        ),
        (
            14,
            Window::ANY,
            ActionKind::RegisterModel {
                model: ModelId(5),
                count: 1,
                profile: no_batches,
            },
            WorkerStatus::InvalidAction,
        ),
        (
            15,
            Window::ANY,
            infer(2, vec![1, 1], vec![0; 5]),
            WorkerStatus::InvalidInput,
        ),
        (
            16,
            Window::ANY,
            infer(2, vec![4], vec![0; 4]),
            WorkerStatus::InvalidInput,
        ),
        (
            17,
            Window::ANY,
            infer(1, vec![], vec![0; 3]),
            WorkerStatus::InvalidInput,
        ),
        (18, Window::ANY, load(1, 2), WorkerStatus::InvalidGpu),
    ];
    let expected: Vec<_> = cases.iter().map(|c| (ActionId(c.0), c.3)).collect();
    r.send(
        s,
        100,
        None,
        cases.into_iter().map(|(id, w, k, _)| (id, w, k)).collect(),
    );
    let got: Vec<_> = r
        .results(s)
        .into_iter()
        .map(|(res, _)| {
            assert!(matches!(res.outcome, Outcome::Error { .. }), "{res:?}");
            (res.action_id, res.status)
        })
        .collect();
    assert_eq!(got, expected, "one answer each, in order");
    assert!(r.devices().submitted.is_empty(), "nothing reached a device");

    // What the devices check is theirs: an inverted LOAD window goes through, still
    // inverted, and the device's refusal is the one answer.
    r.send(s, 200, Some(-50), vec![(20, inverted, load(1, 0))]);
    assert!(r.outputs().is_empty());
    assert!(!r.devices().submitted[0].window.is_valid());
    let tag = r.last_tag();
    r.complete(tag, WorkerStatus::InvalidAction, timing(200, 200));
    let res = r.result(s);
    assert_eq!(
        (res.action_id, res.status),
        (ActionId(20), WorkerStatus::InvalidAction)
    );

    // A full ring is a runtime error, answered at once.
    r.devices().full = true;
    r.send(s, 300, None, vec![(21, Window::ANY, load(1, 0))]);
    assert_eq!(r.result(s).status, WorkerStatus::RuntimeError);
}

#[test]
fn windows_and_times_translate_through_the_clock_offset() {
    let (mut r, s) = Rig::with_model(1);
    // local = controller + 1000.
    let w = Window::new(Nanos(5_000), Nanos(9_000));
    r.send(
        s,
        20_000,
        Some(1_000),
        vec![(2, w, load(1, 0)), (3, Window::ANY, load(1, 0))],
    );
    let sub = &r.devices().submitted;
    assert_eq!(sub[0].window, Window::new(Nanos(6_000), Nanos(10_000)));
    assert_eq!(
        sub[1].window.latest,
        Nanos::MAX,
        "the end of time stays unbounded"
    );
    let tag = sub[0].action.get();
    r.complete(tag, WorkerStatus::Success, timing(6_500, 8_500));
    let (res, clock) = r.results(s).remove(0);
    assert_eq!(clock, ClockMap::new(1_000));
    assert_eq!(
        res.received,
        Nanos(19_000),
        "arrival in the controller's clock"
    );
    assert_eq!(
        res.outcome,
        Outcome::Loaded {
            timing: timing(5_500, 7_500)
        }
    );
    // Without an estimate the clocks are taken as the same.
    r.send(s, 30_000, None, vec![(4, w, load(1, 0))]);
    assert_eq!(r.devices().submitted.last().map(|a| a.window), Some(w));
}

#[test]
fn infer_inputs_go_to_the_device_and_outputs_come_back_per_request() {
    let (mut r, s) = Rig::with_model(1);
    let inputs: Vec<u8> = (1..=6).collect();
    r.send(
        s,
        10,
        None,
        vec![(2, Window::ANY, infer(3, vec![2, 3, 1], inputs.clone()))],
    );
    let DeviceOp::Infer {
        batch_size,
        input,
        output,
        ..
    } = &r.devices().submitted[0].op
    else {
        panic!("an INFER")
    };
    assert_eq!((*batch_size, input, output.len()), (3, &inputs, 3 * 8));
    // The device fills the buffer; the result carries it, one 8-byte slice per request.
    let tag = r.last_tag();
    if let DeviceOp::Infer { output, .. } = &mut r.devices().submitted[0].op {
        for (i, b) in output.iter_mut().enumerate() {
            *b = (i / 8) as u8 + 1;
        }
    }
    r.complete(tag, WorkerStatus::Success, timing(20, 30));
    let res = r.result(s);
    let Outcome::Inferred(i) = res.outcome else {
        panic!("{res:?}")
    };
    assert_eq!(i.outputs.len(), 24);
    for (k, slice) in i.outputs.chunks(8).enumerate() {
        assert!(
            slice.iter().all(|&b| b == k as u8 + 1),
            "request {k}: {slice:?}"
        );
    }
    assert_eq!(
        (i.padded_batch, i.exec, i.copy_input.begin),
        (4, timing(20, 30), Nanos(20))
    );

    // Generated inputs: nothing to hand over, the outputs are still there.
    r.send(
        s,
        40,
        None,
        vec![(3, Window::ANY, infer(2, vec![], vec![]))],
    );
    let DeviceOp::Infer { input, output, .. } = &r.devices().submitted[1].op else {
        panic!("an INFER")
    };
    assert_eq!((input.len(), output.len()), (0, 16));
    // A batch the profile does not allow is refused by the device; its buffer stays
    // bounded by the largest allowed batch.
    r.send(
        s,
        50,
        None,
        vec![(4, Window::ANY, infer(u32::MAX, vec![], vec![]))],
    );
    let DeviceOp::Infer { output, .. } = &r.devices().submitted[2].op else {
        panic!("an INFER")
    };
    assert_eq!(output.len(), 4 * 8);
}

#[test]
fn outputs_too_large_for_a_result_frame_are_refused_before_allocation() {
    let (mut r, s) = Rig::with_model(1);
    let mut huge = small();
    huge.output_bytes = u32::MAX;
    r.send(
        s,
        0,
        None,
        vec![(
            2,
            Window::ANY,
            ActionKind::RegisterModel {
                model: ModelId(2),
                count: 1,
                profile: huge,
            },
        )],
    );
    assert_eq!(r.result(s).status, WorkerStatus::Success);
    let mut kind = infer(1, vec![], vec![]);
    if let ActionKind::Infer { model, .. } = &mut kind {
        *model = ModelId(2);
    }
    r.send(s, 10, None, vec![(3, Window::ANY, kind)]);
    let res = r.result(s);
    assert_eq!(res.status, WorkerStatus::InvalidBatchSize);
    assert!(r.devices().submitted.is_empty());
    // A model whose outputs fit (4 x 8 bytes) still goes through.
    r.send(
        s,
        20,
        None,
        vec![(4, Window::ANY, infer(4, vec![], vec![]))],
    );
    assert!(r.outputs().is_empty());
    assert_eq!(r.devices().submitted.len(), 1);
}

#[test]
fn clear_cache_is_answered_once_when_every_unload_and_pending_load_ended() {
    let (mut r, s) = Rig::with_model(2);
    r.devices().loaded.insert(GpuId(0), vec![ModelId(1)]);
    // A LOAD on GPU 1, due later (local 7000).
    r.send(
        s,
        1_000,
        None,
        vec![(2, Window::new(Nanos(7_000), Nanos::MAX), load(1, 1))],
    );
    let pending_load = r.last_tag();
    r.send(
        s,
        2_000,
        None,
        vec![(3, Window::ANY, ActionKind::ClearCache)],
    );
    assert!(r.outputs().is_empty(), "waits for its unloads");
    let unloads: Vec<_> = r.devices().submitted[1..].to_vec();
    assert_eq!(unloads.len(), 2);
    assert_eq!(
        (unloads[0].gpu, &unloads[0].op, unloads[0].window),
        (
            GpuId(0),
            &DeviceOp::Unload { model: ModelId(1) },
            Window::new(Nanos::ZERO, Nanos::MAX)
        )
    );
    assert_eq!(
        (unloads[1].gpu, unloads[1].window.earliest),
        (GpuId(1), Nanos(7_000)),
        "the pending LOAD's unload waits for it to start"
    );
    r.complete(
        unloads[0].action.get(),
        WorkerStatus::Success,
        timing(2_000, 2_000),
    );
    r.complete(
        unloads[1].action.get(),
        WorkerStatus::UnloadNotInCache,
        timing(7_000, 7_000),
    );
    assert!(
        r.outputs().is_empty(),
        "the superseded LOAD has not ended yet"
    );
    r.complete(
        pending_load,
        WorkerStatus::LoadConcurrentModification,
        timing(7_000, 9_000),
    );
    let rs: Vec<_> = r
        .results(s)
        .into_iter()
        .map(|(res, _)| (res.action_id, res.status, res.outcome))
        .collect();
    assert_eq!(rs.len(), 2);
    assert_eq!(
        (rs[0].0, rs[0].1),
        (ActionId(2), WorkerStatus::LoadConcurrentModification)
    );
    assert_eq!(
        (rs[1].0, rs[1].1, &rs[1].2),
        (ActionId(3), WorkerStatus::Success, &Outcome::CacheCleared)
    );
}

#[test]
fn clear_cache_answers_at_once_when_empty_and_reports_failed_unloads() {
    let (mut r, s) = Rig::with_model(2);
    r.send(s, 0, None, vec![(2, Window::ANY, ActionKind::ClearCache)]);
    assert_eq!(r.result(s).outcome, Outcome::CacheCleared);

    r.devices().loaded.insert(GpuId(1), vec![ModelId(1)]);
    r.send(s, 10, None, vec![(3, Window::ANY, ActionKind::ClearCache)]);
    let tag = r.last_tag();
    r.complete(tag, WorkerStatus::UnloadTooLate, timing(10, 10));
    let res = r.result(s);
    assert_eq!(res.status, WorkerStatus::RuntimeError);
    let Outcome::Error { message } = res.outcome else {
        panic!("an error")
    };
    assert!(message.contains("clear cache incomplete"), "{message}");
}

#[test]
fn an_infer_reuses_the_buffers_of_those_that_ended_before_it() {
    let (mut r, s) = Rig::with_model(1);
    let pool = r.core.buffers();
    let buffers = |op: &DeviceOp| match op {
        DeviceOp::Infer { input, output, .. } => (input.as_ptr(), output.as_ptr()),
        _ => panic!("an INFER"),
    };
    r.send(
        s,
        10,
        None,
        vec![(2, Window::ANY, infer(3, vec![2, 3, 1], vec![5; 6]))],
    );
    let first = buffers(&r.devices().submitted[0].op);
    let tag = r.last_tag();
    r.complete(tag, WorkerStatus::Success, timing(20, 30));
    let Outcome::Inferred(i) = r.result(s).outcome else {
        panic!("a success")
    };
    // The outputs leave in the result; the writer gives the buffer back once sent.
    assert_eq!(i.outputs.as_ptr(), first.1);
    pool.give(i.outputs);
    let allocated = pool.allocated();

    // The next INFER of the same sizes runs in the same memory, allocating nothing,
    // with its own input and zeroed outputs.
    r.send(
        s,
        40,
        None,
        vec![(3, Window::ANY, infer(3, vec![1, 1, 4], vec![9; 6]))],
    );
    assert_eq!(buffers(&r.devices().submitted[1].op), first);
    assert_eq!(pool.allocated(), allocated);
    let DeviceOp::Infer { input, output, .. } = &r.devices().submitted[1].op else {
        panic!("an INFER")
    };
    assert_eq!(input, &vec![9; 6]);
    assert!(output.iter().all(|&b| b == 0) && output.len() == 24);

    // A failed INFER hands both back at once (its result carries no outputs).
    let tag = r.last_tag();
    r.complete(tag, WorkerStatus::ExecTooLate, timing(50, 50));
    assert_eq!(r.result(s).status, WorkerStatus::ExecTooLate);
    assert_eq!(pool.kept().0, 2);
}

#[test]
fn shutdown_closes_the_session_and_later_actions_are_shutting_down() {
    let (mut r, s) = Rig::with_model(1);
    r.send(s, 10, None, vec![(2, Window::ANY, load(1, 0))]);
    let tag = r.last_tag();
    let devices = r.core.shutdown();
    assert!(devices.is_some(), "the devices go back to the shell");
    assert_eq!(r.outputs(), vec![Output::Close { session: s }]);
    // Cancelled by the stopping engines: nobody to tell.
    r.core.completion(Completion {
        action: ActionId(tag),
        gpu: GpuId(0),
        model: ModelId(1),
        kind: OpKind::Load,
        status: WorkerStatus::Cancelled,
        timing: timing(20, 20),
        padded_batch: 0,
        emulated: true,
        output: Vec::new(),
        input: Vec::new(),
    });
    assert!(r.outputs().is_empty());
    // A controller that still gets in is told the worker is stopping, once per action.
    let t = r.core.connect("late");
    r.send(
        t,
        30,
        None,
        vec![
            (3, Window::ANY, ActionKind::GetState),
            (4, Window::ANY, load(1, 0)),
        ],
    );
    let rs = r.results(t);
    assert_eq!(rs.len(), 2);
    assert!(rs
        .iter()
        .all(|(res, _)| res.status == WorkerStatus::ShuttingDown));
}

#[test]
fn get_state_reports_devices_models_and_page_size() {
    let (mut r, s) = Rig::with_model(3);
    r.devices().loaded.insert(GpuId(2), vec![ModelId(1)]);
    r.send(s, 5, Some(-5), vec![(2, Window::ANY, ActionKind::GetState)]);
    let res = r.result(s);
    assert_eq!(res.received, Nanos(10));
    let Outcome::State(st) = res.outcome else {
        panic!("{res:?}")
    };
    assert_eq!(st.page_size, PAGE);
    assert_eq!(st.gpus.len(), 3);
    assert_eq!(st.gpus[2].loaded, vec![ModelId(1)]);
    assert_eq!(
        st.models,
        vec![RegisteredModel {
            id: ModelId(1),
            count: 1,
            profile: small()
        }]
    );
}

#[test]
fn completion_of_no_pending_action_is_ignored() {
    let (mut r, _s) = Rig::with_model(1);
    r.core.completion(Completion {
        action: ActionId(999),
        gpu: GpuId(0),
        model: ModelId(1),
        kind: OpKind::Infer,
        status: WorkerStatus::Success,
        timing: timing(1, 2),
        padded_batch: 1,
        emulated: true,
        output: Vec::new(),
        input: Vec::new(),
    });
    assert!(r.outputs().is_empty());
}

/// `small()` as a real model (an ONNX path), for devices that compute.
fn real() -> ModelProfile {
    ModelProfile {
        source: clockwork_core::ModelSource::Onnx {
            path: "/models/small/1/model.onnx".into(),
        },
        ..small()
    }
}

#[test]
fn real_models_on_computing_devices_are_answered_once_measured() {
    let mut r = Rig::new(1);
    r.devices().computes = true;
    let s = r.core.connect("ctl");
    let reg = |model| ActionKind::RegisterModel {
        model: ModelId(model),
        count: 1,
        profile: real(),
    };
    r.send(
        s,
        0,
        None,
        vec![(1, Window::ANY, reg(1)), (2, Window::ANY, reg(2))],
    );
    let jobs: Vec<(u64, ModelProfile)> = r
        .outputs()
        .into_iter()
        .map(|o| match o {
            Output::Measure { tag, profile } => (tag, profile),
            other => panic!("expected a measurement, got {other:?}"),
        })
        .collect();
    assert_eq!(jobs.len(), 2, "nothing answered before the measurement");
    assert!(jobs.iter().all(|(_, p)| *p == real()));
    assert!(
        r.devices().models.is_empty(),
        "registered only once measured"
    );

    let times = MeasuredTimes {
        load_time: Nanos(5_000),
        batches: vec![BatchProfile {
            batch_size: 1,
            exec_time: Nanos(700),
        }],
    };
    // The second fails (bad path), the first succeeds; each is answered exactly once.
    r.core.measured(
        jobs[1].0,
        Err(crate::measure::MeasureError {
            status: WorkerStatus::InvalidModelPath,
            message: "cannot read".into(),
        }),
    );
    let failed = r.result(s);
    assert_eq!(
        (failed.action_id, failed.status),
        (ActionId(2), WorkerStatus::InvalidModelPath)
    );
    r.core.measured(jobs[0].0, Ok(times.clone()));
    let ok = r.result(s);
    assert_eq!(ok.action_id, ActionId(1));
    assert_eq!(
        ok.outcome,
        Outcome::Registered {
            model: ModelId(1),
            pages: 3,
            measured: Some(times.clone()),
        }
    );
    assert_eq!(
        r.devices().models.keys().copied().collect::<Vec<_>>(),
        vec![ModelId(1)]
    );
    // A stale tag is ignored.
    r.core.measured(jobs[0].0, Ok(times.clone()));
    assert!(r.outputs().is_empty());

    // Re-registering the same model answers the first measurement at once.
    r.send(s, 10, None, vec![(3, Window::ANY, reg(1))]);
    let again = r.result(s);
    assert_eq!(
        again.outcome,
        Outcome::Registered {
            model: ModelId(1),
            pages: 3,
            measured: Some(times),
        }
    );
    // An invalid real profile is refused without measuring.
    let mut bad = real();
    bad.batches.clear();
    r.send(
        s,
        20,
        None,
        vec![(
            4,
            Window::ANY,
            ActionKind::RegisterModel {
                model: ModelId(4),
                count: 1,
                profile: bad,
            },
        )],
    );
    assert_eq!(r.result(s).status, WorkerStatus::InvalidAction);
}

#[test]
fn a_state_too_long_for_one_frame_leaves_the_last_models_out() {
    let entry = |id: u32, count: u32, name: &str| RegisteredModel {
        id: ModelId(id),
        count,
        profile: ModelProfile {
            name: name.into(),
            ..small()
        },
    };
    let all = vec![
        entry(0, 1000, "a"),
        entry(1000, 5, "b"),
        entry(1005, 7, "c"),
    ];
    let one = rkyv::to_bytes::<rkyv::rancor::Error>(&all[0].profile)
        .unwrap()
        .len();
    // Room for two entries: the third's 7 ids are left out.
    let mut models = all.clone();
    let left_out = super::keep_within(&mut models, 2 * (one + super::ENTRY_HEADROOM) + 8);
    assert_eq!(left_out, 7);
    assert_eq!(models, all[..2]);
    // Room for all: nothing left out.
    let mut models = all.clone();
    assert_eq!(super::keep_within(&mut models, 1 << 20), 0);
    assert_eq!(models, all);
}

#[test]
fn a_registration_of_copies_registers_each_and_is_answered_once() {
    // Model 1 is registered already (small profile).
    let (mut r, s) = Rig::with_model(1);
    let mut other = small();
    other.output_bytes = 9;
    let range = |model: u32, count: u32, profile: ModelProfile| ActionKind::RegisterModel {
        model: ModelId(model),
        count,
        profile,
    };
    r.send(s, 10, None, vec![(2, Window::ANY, range(2, 3, small()))]);
    let rs = r.results(s);
    assert_eq!(rs.len(), 1, "one answer for the range");
    assert_eq!(rs[0].0.status, WorkerStatus::Success);
    let registered: Vec<u32> = r.devices().models.keys().map(|m| m.0).collect();
    assert_eq!(registered, [1, 2, 3, 4]);
    // A range over an instance with another profile: the others are registered, and
    // the one answer is the failure, saying how many failed.
    r.send(
        s,
        20,
        None,
        vec![(3, Window::ANY, range(0, 2, other.clone()))],
    );
    let res = r.result(s);
    assert_eq!(res.status, WorkerStatus::InvalidModelId);
    let Outcome::Error { message } = &res.outcome else {
        panic!("{res:?}")
    };
    assert!(message.contains("1 failed"), "{message}");
    assert_eq!(r.devices().models.get(&ModelId(0)), Some(&other));
    // A range past the id space is refused whole.
    r.send(
        s,
        30,
        None,
        vec![(4, Window::ANY, range(u32::MAX, 2, small()))],
    );
    assert_eq!(r.result(s).status, WorkerStatus::InvalidAction);
    r.send(s, 40, None, vec![(5, Window::ANY, range(9, 0, small()))]);
    assert_eq!(r.result(s).status, WorkerStatus::InvalidAction);
}
