//! CPU devices through `DeviceSet`: a generated small CNN is loaded, run at batch sizes
//! 1..=4 with real input bytes, and its outputs are compared bit for bit with a direct
//! `ModelRunner::run` of the same inputs and, to float rounding, with single runs; UNLOAD frees pages; a model whose file is gone
//! fails its LOAD cleanly; an emulated model is refused.

use clockwork_core::model::ModelSource;
use clockwork_core::rng::Rng;
use clockwork_core::{ActionId, GpuId, ModelId, ModelProfile, MonotonicClock, Nanos, Window};
use clockwork_core::{WorkerStatus, DEFAULT_PAGE_SIZE};
use clockwork_gpu::GpuError;
use clockwork_gpu::{Completion, Completions, DeviceAction, DeviceConfig, DeviceOp, DeviceSet};
use clockwork_models::{make_model, ImportLimits, ImportedModel, ModelKind};
use std::path::Path;
use std::time::Duration;

const BATCHES: [u32; 3] = [1, 2, 4];

/// A profile for the ONNX model at `path` (times are placeholders: CPU devices run for
/// real and ignore them).
fn onnx_profile(model: &ImportedModel, path: &Path) -> ModelProfile {
    let config = clockwork_models::ModelConfig {
        max_batch_size: 4,
        allowed_batch_sizes: BATCHES.to_vec(),
        ..clockwork_models::ModelConfig::default()
    };
    clockwork_models::core_profile(model.metadata(), &config, path).expect("a core profile")
}

struct Rig {
    set: DeviceSet,
    done: Completions,
    next: u64,
}

impl Rig {
    fn new() -> Self {
        let mut config = DeviceConfig::cpu(vec![0]);
        config.cache_bytes = 64 * DEFAULT_PAGE_SIZE;
        let (set, done) = DeviceSet::start(config).expect("CPU devices start");
        Self { set, done, next: 1 }
    }

    fn run(&mut self, op: DeviceOp) -> Completion {
        let id = ActionId(self.next);
        self.next += 1;
        let now = MonotonicClock::read();
        self.set
            .submit(DeviceAction {
                action: id,
                gpu: GpuId(0),
                window: Window::new(now, now + Nanos::from_secs(30)),
                op,
            })
            .expect("room in the ring");
        let c = self
            .done
            .recv_timeout(Duration::from_secs(60))
            .expect("a completion");
        assert_eq!(c.action, id);
        c
    }
}

fn random_input(rng: &mut Rng, floats: usize) -> Vec<u8> {
    (0..floats)
        .flat_map(|_| ((rng.f64() * 2.0 - 1.0) as f32).to_le_bytes())
        .collect()
}

#[test]
fn cpu_device_computes_the_model_bit_for_bit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = make_model(ModelKind::SmallCnn, dir.path(), 7).expect("model written");
    let imported =
        ImportedModel::import_file("small_cnn", &path, &ImportLimits::default()).expect("import");
    let profile = onnx_profile(&imported, &path);
    let mut direct = imported.plan(&[1, 2, 4]).expect("plans");
    assert_eq!(
        imported.metadata().inputs.len(),
        1,
        "the small CNN has one input"
    );

    let mut rig = Rig::new();
    let state = rig.set.state();
    assert!(!state[0].emulated, "a CPU device is not emulated");
    let pages = rig
        .set
        .register_model(ModelId(1), profile.clone())
        .expect("registered");
    assert!(pages >= 1);

    let load = rig.run(DeviceOp::Load { model: ModelId(1) });
    assert_eq!(load.status, WorkerStatus::Success, "{load:?}");
    assert!(!load.emulated);
    assert_eq!(rig.set.state()[0].loaded, vec![ModelId(1)]);

    let (in_bytes, out_bytes) = (profile.input_bytes as usize, profile.output_bytes as usize);
    let mut rng = Rng::new(3);
    for k in 1..=4_usize {
        let input = random_input(&mut rng, k * in_bytes / 4);
        let c = rig.run(DeviceOp::Infer {
            model: ModelId(1),
            batch_size: u32::try_from(k).expect("small"),
            input: input.clone(),
            output: vec![0xAA; k * out_bytes],
        });
        assert_eq!(c.status, WorkerStatus::Success, "batch {k}: {c:?}");
        assert!(c.timing.duration > Nanos::ZERO);
        let mut expected = vec![0; k * out_bytes];
        direct
            .run(k, &[&input], &mut [&mut expected])
            .expect("direct run");
        assert_eq!(c.output, expected, "batch {k} differs from a direct run");
        assert!(
            c.output.iter().any(|&b| b != 0),
            "real outputs are not zeros"
        );

        // A batch of k equals k single runs (to float rounding).
        let mut one_by_one = Vec::new();
        for r in 0..k {
            let single = rig.run(DeviceOp::Infer {
                model: ModelId(1),
                batch_size: 1,
                input: input[r * in_bytes..(r + 1) * in_bytes].to_vec(),
                output: vec![0; out_bytes],
            });
            assert_eq!(single.status, WorkerStatus::Success);
            one_by_one.extend_from_slice(&single.output);
        }
        // Different batch sizes are different tract plans (other kernel tilings), so
        // they agree to float rounding, not bit for bit.
        let floats = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        for (a, b) in floats(&c.output).iter().zip(floats(&one_by_one)) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "batch {k} differs from {k} single runs: {a} vs {b}"
            );
        }
    }

    let unload = rig.run(DeviceOp::Unload { model: ModelId(1) });
    assert_eq!(unload.status, WorkerStatus::Success);
    let state = &rig.set.state()[0];
    assert!(state.loaded.is_empty());
    assert_eq!(
        state.free_pages, state.total_pages,
        "UNLOAD frees the pages"
    );
    let after = rig.run(DeviceOp::Infer {
        model: ModelId(1),
        batch_size: 1,
        input: vec![0; in_bytes],
        output: vec![0; out_bytes],
    });
    assert_eq!(after.status, WorkerStatus::ExecWeightsMissing);
}

#[test]
fn load_of_a_missing_file_fails_cleanly_and_the_device_serves_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = make_model(ModelKind::Identity, dir.path(), 1).expect("model written");
    let imported =
        ImportedModel::import_file("identity", &path, &ImportLimits::default()).expect("import");
    let good = onnx_profile(&imported, &path);
    let mut gone = good.clone();
    gone.name = "gone".into();
    gone.source = ModelSource::Onnx {
        path: dir
            .path()
            .join("nowhere/model.onnx")
            .to_string_lossy()
            .into_owned(),
    };

    let mut rig = Rig::new();
    rig.set
        .register_model(ModelId(1), gone)
        .expect("registration is checked at LOAD");
    rig.set
        .register_model(ModelId(2), good.clone())
        .expect("registered");
    let load = rig.run(DeviceOp::Load { model: ModelId(1) });
    assert_eq!(load.status, WorkerStatus::RuntimeError);
    let state = &rig.set.state()[0];
    assert_eq!(
        state.free_pages, state.total_pages,
        "a failed LOAD holds no pages"
    );

    let load = rig.run(DeviceOp::Load { model: ModelId(2) });
    assert_eq!(load.status, WorkerStatus::Success);
    let input: Vec<u8> = (0..good.input_bytes).map(|i| i as u8).collect();
    let c = rig.run(DeviceOp::Infer {
        model: ModelId(2),
        batch_size: 1,
        input: input.clone(),
        output: vec![0; good.output_bytes as usize],
    });
    assert_eq!(c.status, WorkerStatus::Success);
    assert_eq!(c.output, input, "identity gives its input back");
}

#[test]
fn emulated_models_are_refused_on_cpu_devices() {
    let mut rig = Rig::new();
    let err = rig
        .set
        .register_model(ModelId(9), clockwork_core::model::resnet50())
        .expect_err("refused");
    assert!(
        matches!(err, GpuError::EmulatedModelOnCpu(ModelId(9))),
        "{err}"
    );
    assert!(rig.set.profile(ModelId(9)).is_none());
}
