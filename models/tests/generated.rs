//! Generated models import, run, and compute what they should: identity exactly, a
//! batch of k the same as k single runs.

use clockwork_models::{make_model, DataType, ImportLimits, ImportedModel, ModelKind, Repository};

/// Seeded FP32 values in [-1, 1).
fn input_values(seed: u64, count: usize) -> Vec<f32> {
    let mut rng = clockwork_core::rng::Rng::new(seed);
    (0..count).map(|_| (rng.f64() * 2.0 - 1.0) as f32).collect()
}

fn to_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn import(kind: ModelKind) -> ImportedModel {
    ImportedModel::import_bytes(kind.name(), &kind.onnx_bytes(7), &ImportLimits::default()).unwrap()
}

/// Run `requests` requests (one input) through a runner planned for `plans`.
fn run(model: &ImportedModel, plans: &[usize], requests: usize, input: &[u8]) -> Vec<u8> {
    let mut runner = model.plan(plans).unwrap();
    let mut out = vec![0u8; requests * model.metadata().outputs[0].bytes_per_request()];
    runner.run(requests, &[input], &mut [&mut out]).unwrap();
    out
}

#[test]
fn identity_returns_its_input_exactly() {
    let model = import(ModelKind::Identity);
    let meta = model.metadata();
    assert_eq!(meta.inputs.len(), 1);
    assert_eq!(meta.inputs[0].name, "input");
    assert_eq!(meta.inputs[0].datatype, DataType::Fp32);
    assert_eq!(meta.inputs[0].shape, vec![-1, 16]);
    assert_eq!(meta.outputs[0].name, "output");
    assert_eq!(meta.outputs[0].shape, vec![-1, 16]);
    assert_eq!(meta.input_bytes_per_request(), 64);
    assert_eq!(meta.weight_bytes, 0);

    let mut runner = model.plan(&[1, 4, 8]).unwrap();
    assert_eq!(runner.batch_sizes(), vec![1, 4, 8]);
    // Odd bit patterns (NaN payloads, negative zero, subnormals) must survive unchanged.
    let mut bytes = to_bytes(&input_values(3, 16 * 3));
    bytes[0..4].copy_from_slice(&0x7fc0_1234u32.to_le_bytes());
    bytes[4..8].copy_from_slice(&(-0.0f32).to_le_bytes());
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    for _ in 0..3 {
        let mut out = vec![0xAAu8; bytes.len()];
        let planned = runner.run(3, &[&bytes], &mut [&mut out]).unwrap();
        assert_eq!(planned, 4, "3 requests run on the batch-4 plan");
        assert_eq!(out, bytes);
    }
    // A smaller batch next: the padding of the reused input tensor must not leak.
    let mut out = vec![0u8; 64];
    runner.run(1, &[&bytes[..64]], &mut [&mut out]).unwrap();
    assert_eq!(out, &bytes[..64]);
}

#[test]
fn small_cnn_batch_equals_single_runs() {
    let model = import(ModelKind::SmallCnn);
    let meta = model.metadata();
    assert_eq!(meta.inputs[0].shape, vec![-1, 3, 64, 64]);
    assert_eq!(meta.outputs[0].shape, vec![-1, 10]);
    // 3 convs (weights + bias) and a Gemm.
    let expected_weights =
        4 * (32 * 3 * 9 + 32 + 64 * 32 * 9 + 64 + 128 * 64 * 9 + 128 + 10 * 8192 + 10);
    assert_eq!(meta.weight_bytes, expected_weights);

    let per_image = meta.inputs[0].elements_per_request();
    let images = input_values(11, 4 * per_image);
    let singles: Vec<Vec<f32>> = (0..4)
        .map(|j| {
            to_f32(&run(
                &model,
                &[1],
                1,
                &to_bytes(&images[j * per_image..(j + 1) * per_image]),
            ))
        })
        .collect();
    for out in &singles {
        assert!(out.iter().all(|v| v.is_finite()), "{out:?}");
        assert!(
            out.iter().any(|v| v.abs() > 1e-3),
            "all outputs near zero: {out:?}"
        );
    }
    assert_ne!(
        singles[0], singles[1],
        "different images give different outputs"
    );
    let mut runner = model.plan(&[1, 2, 3, 4]).unwrap();
    for k in 1..=4 {
        let mut out = vec![0u8; k * 40];
        let planned = runner
            .run(k, &[&to_bytes(&images[..k * per_image])], &mut [&mut out])
            .unwrap();
        assert_eq!(planned, k);
        let batched = to_f32(&out);
        for j in 0..k {
            assert_close(
                &batched[j * 10..(j + 1) * 10],
                &singles[j],
                &format!("k={k} request {j}"),
            );
        }
    }
}

/// Batched and single runs agree to within float reassociation: tract picks another
/// matrix-multiply kernel (so another summation order) for a single row than for
/// several. Measured: the small CNN's batched outputs differ from single runs by up to
/// 2e-6 of the largest output (its Gemm head sums 8192 products); ResNet-18's are
/// bitwise equal. The bound is 1e-5 of the largest output (at least 1e-5).
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().map(|w| w.abs()).fold(1.0, f32::max);
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-5 * scale, "{what}: {got:?} vs {want:?}");
    }
}

#[test]
fn padded_batch_matches_exact_batch() {
    // 3 requests on the batch-4 plan (zero padding) give what the batch-3 plan gives.
    let model = import(ModelKind::SmallCnn);
    let per_image = model.metadata().inputs[0].elements_per_request();
    let images = to_bytes(&input_values(5, 3 * per_image));
    let padded = to_f32(&run(&model, &[4], 3, &images));
    let exact = to_f32(&run(&model, &[3], 3, &images));
    assert_close(&padded, &exact, "padded vs exact");
}

#[test]
fn resnet18_imports_and_batches() {
    let model = import(ModelKind::Resnet18);
    let meta = model.metadata();
    assert_eq!(meta.inputs[0].shape, vec![-1, 3, 224, 224]);
    assert_eq!(meta.outputs[0].shape, vec![-1, 1000]);
    let params = meta.weight_bytes / 4;
    assert!(
        (11_000_000..12_500_000).contains(&params),
        "{params} parameters"
    );
    let per_image = meta.inputs[0].elements_per_request();
    let images = input_values(13, 2 * per_image);
    let first = to_f32(&run(&model, &[1], 1, &to_bytes(&images[..per_image])));
    let second = to_f32(&run(&model, &[1], 1, &to_bytes(&images[per_image..])));
    assert!(first.iter().all(|v| v.is_finite()));
    assert!(
        first.iter().map(|v| v.abs()).fold(0.0, f32::max) < 1e4,
        "activations blew up"
    );
    let both = to_f32(&run(&model, &[2], 2, &to_bytes(&images)));
    assert_close(&both[..1000], &first, "b2 request 0");
    assert_close(&both[1000..], &second, "b2 request 1");
}

#[test]
fn resnet50_imports_and_runs() {
    let model = import(ModelKind::Resnet50);
    let meta = model.metadata();
    assert_eq!(meta.outputs[0].shape, vec![-1, 1000]);
    let params = meta.weight_bytes / 4;
    assert!(
        (25_000_000..26_500_000).contains(&params),
        "{params} parameters"
    );
    let images = to_bytes(&input_values(17, meta.inputs[0].elements_per_request()));
    let out = to_f32(&run(&model, &[1], 1, &images));
    assert!(out.iter().all(|v| v.is_finite()));
    let largest = out.iter().map(|v| v.abs()).fold(0.0, f32::max);
    assert!(largest > 1e-3 && largest < 1e4, "largest output {largest}");
}

#[test]
fn generation_is_deterministic_per_seed() {
    for kind in [ModelKind::Identity, ModelKind::SmallCnn] {
        assert_eq!(kind.onnx_bytes(1), kind.onnx_bytes(1));
    }
    assert_ne!(
        ModelKind::SmallCnn.onnx_bytes(1),
        ModelKind::SmallCnn.onnx_bytes(2)
    );
    assert_eq!("resnet50".parse::<ModelKind>(), Ok(ModelKind::Resnet50));
    assert!("resnet101".parse::<ModelKind>().is_err());
}

#[test]
fn make_model_writes_a_repository_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_model(ModelKind::SmallCnn, dir.path(), 3).unwrap();
    assert_eq!(
        path,
        dir.path().join("small_cnn").join("1").join("model.onnx")
    );
    let repo = Repository::open(dir.path()).unwrap();
    let (entry, model) = repo.load("small_cnn", &ImportLimits::default()).unwrap();
    assert_eq!(entry.version, 1);
    assert_eq!(entry.config, ModelKind::SmallCnn.default_config());
    let sizes: Vec<usize> = entry
        .config
        .allowed_batch_sizes
        .iter()
        .map(|&b| b as usize)
        .collect();
    let runner = model.plan(&sizes).unwrap();
    assert_eq!(
        runner.max_batch_size(),
        entry.config.max_batch_size as usize
    );
}

#[test]
fn a_runner_runs_on_another_thread() {
    // The worker builds runners and hands each to its pinned thread.
    let model = import(ModelKind::Identity);
    let runner = model.plan(&[2]).unwrap();
    let shared = std::sync::Arc::new(model);
    let input = to_bytes(&input_values(23, 32));
    let expected = input.clone();
    let handle = std::thread::spawn(move || {
        let mut runner = runner;
        let mut out = vec![0u8; 128];
        runner.run(2, &[&input], &mut [&mut out]).unwrap();
        (out, shared.metadata().name.clone())
    });
    let (out, name) = handle.join().unwrap();
    assert_eq!(out, expected);
    assert_eq!(name, "identity");
}
