//! A worker with one CPU device (`--cpu 1`), driven over the worker protocol: registering
//! a generated ONNX model answers `Registered` with the times measured on this worker,
//! an INFER with real input bytes returns the model's real output, and a bad model path
//! is refused with `InvalidModelPath` while the worker serves on.

mod common;

use clockwork_core::model::ModelSource;
use clockwork_core::{
    ActionKind, GpuId, ModelId, ModelProfile, Nanos, Outcome, Window, WorkerStatus,
    DEFAULT_PAGE_SIZE,
};
use clockwork_models::{make_model, ImportLimits, ImportedModel, ModelKind};
use clockwork_net::LinkConfig;
use clockwork_worker::{Worker, WorkerConfig, WorkerHandle};
use common::*;
use std::path::Path;

/// A profile of the ONNX model at `path`, batch sizes 1, 2, 4 (placeholder times: the
/// worker measures the real ones).
fn onnx_profile(model: &ImportedModel, path: &Path) -> ModelProfile {
    let config = clockwork_models::ModelConfig {
        max_batch_size: 4,
        allowed_batch_sizes: vec![1, 2, 4],
        ..clockwork_models::ModelConfig::default()
    };
    clockwork_models::core_profile(model.metadata(), &config, path).expect("a core profile")
}

/// A worker with one CPU device on the last core, 16 pages.
fn cpu_worker() -> WorkerHandle {
    let n = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut c = WorkerConfig::cpu(vec![n - 1]);
    c.devices.cache_bytes = 16 * DEFAULT_PAGE_SIZE;
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.link = LinkConfig::new(TOKEN, "test-cpu-worker");
    c.liveness = patient();
    Worker::serve(c).expect("worker starts")
}

#[test]
fn cpu_worker_measures_at_registration_and_computes_real_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_model(ModelKind::SmallCnn, dir.path(), 11).unwrap();
    let imported =
        ImportedModel::import_file("small_cnn", &path, &ImportLimits::default()).unwrap();
    let profile = onnx_profile(&imported, &path);
    let (in_bytes, out_bytes) = (profile.input_bytes as usize, profile.output_bytes as usize);
    let mut direct = imported.plan(&[2]).unwrap();
    let input: Vec<u8> = (0..2 * in_bytes / 4)
        .flat_map(|i| ((i % 17) as f32 / 17.0 - 0.5).to_le_bytes())
        .collect();
    let mut expected = vec![0; 2 * out_bytes];
    direct.run(2, &[&input], &mut [&mut expected]).unwrap();

    let w = cpu_worker();
    assert!(w.gpus().iter().all(|g| !g.emulated), "{:?}", w.gpus());
    let mut bad = profile.clone();
    bad.name = "missing".into();
    bad.source = ModelSource::Onnx {
        path: dir
            .path()
            .join("no/such/model.onnx")
            .to_string_lossy()
            .into_owned(),
    };
    run(async {
        let mut c = Ctl::connect(w.local_addr()).await;
        let r = c.call(Window::ANY, register(1, profile.clone())).await;
        assert_status(&r, WorkerStatus::Success);
        let Outcome::Registered {
            model,
            measured: Some(times),
            ..
        } = &r.outcome
        else {
            panic!("expected measured times: {:?}", r.outcome);
        };
        assert_eq!(*model, ModelId(1));
        assert!(times.load_time > Nanos::ZERO);
        let sizes: Vec<u32> = times.batches.iter().map(|b| b.batch_size).collect();
        assert_eq!(sizes, vec![1, 2, 4]);
        assert!(times.batches.iter().all(|b| b.exec_time > Nanos::ZERO));

        // A bad path: a clear error, and the worker serves on.
        let r = c.call(Window::ANY, register(2, bad.clone())).await;
        assert_status(&r, WorkerStatus::InvalidModelPath);
        let Outcome::Error { message } = &r.outcome else {
            unreachable!()
        };
        assert!(message.contains("cannot read"), "{message}");
        // An emulated model is refused on a CPU device.
        let r = c.call(Window::ANY, register(3, tiny())).await;
        assert_status(&r, WorkerStatus::InvalidAction);

        let l = c.call(window(0, 30_000), load(1, 0)).await;
        assert_status(&l, WorkerStatus::Success);
        let kind = ActionKind::Infer {
            model: ModelId(1),
            gpu: GpuId(0),
            batch_size: 2,
            expected_duration: Nanos::ZERO,
            input_sizes: vec![in_bytes as u32; 2],
            inputs: input.clone().into(),
        };
        let r = c.call(window(0, 30_000), kind).await;
        assert_status(&r, WorkerStatus::Success);
        let Outcome::Inferred(i) = &r.outcome else {
            unreachable!()
        };
        assert_eq!(i.outputs, expected, "the model's real outputs");
        assert!(i.exec.duration > Nanos::ZERO);

        let s = c.state().await;
        assert!(!s.gpus[0].emulated && s.gpus[0].name.contains("real compute"));
        assert_eq!(s.gpus[0].loaded, vec![ModelId(1)]);
        let ids: Vec<ModelId> = s.models.iter().map(|m| m.id).collect();
        assert_eq!(
            ids,
            vec![ModelId(1)],
            "failed registrations leave nothing behind"
        );
    });
}
