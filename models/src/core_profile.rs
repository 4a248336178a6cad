//! The `clockwork_core::ModelProfile` of a repository model: what the controller
//! registers with its scheduler and sends to workers for a model imported from the
//! repository.
//!
//! The profile carries the model's name, the absolute path of its `model.onnx` (workers
//! read the file from that same path: `docs/adr/0003-model-files-by-path.md`), its
//! tensor signature, its per-request and weight bytes, and the batch sizes of its
//! config. Its times are placeholders ([`PLACEHOLDER_LOAD_TIME`],
//! [`PLACEHOLDER_EXEC_PER_ITEM`]): the controller never runs the model, and every
//! worker measures the real times when it registers it (`Outcome::Registered {
//! measured }`); the scheduler reseeds its estimates from those before it plans on
//! the worker's measurements. Until then the placeholders only shape the first plans:
//! they are moderate (a millisecond per item; a LOAD of a millisecond plus one
//! nanosecond per weight byte), so a first cold start fits a small model's SLO and an
//! early plan is not wildly optimistic,
//! and a request that a too-optimistic plan makes late is answered as late, never
//! with a wrong output.

use std::path::Path;

use clockwork_core::model::BatchProfile;
use clockwork_core::{ModelProfile, ModelSource, Nanos};

use crate::config::ModelConfig;
use crate::metadata::{ModelMetadata, TensorSpec};

/// Placeholder LOAD time before a worker measures: this much for any model...
pub const PLACEHOLDER_LOAD_TIME: Nanos = Nanos::from_millis(1);
/// ...plus one nanosecond per this many weight bytes (1 GB/s).
pub const PLACEHOLDER_LOAD_BYTES_PER_NS: u64 = 1;
/// Placeholder execution time per item of a batch before a worker measures.
pub const PLACEHOLDER_EXEC_PER_ITEM: Nanos = Nanos::from_millis(1);

/// Why a repository model has no core profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model `{model}`: {reason}")]
pub struct CoreProfileError {
    /// The model.
    pub model: String,
    /// What does not fit.
    pub reason: String,
}

fn core_tensor(
    t: &TensorSpec,
    model: &str,
) -> Result<clockwork_core::TensorSpec, CoreProfileError> {
    let item_bytes = u32::try_from(t.bytes_per_request()).map_err(|_| CoreProfileError {
        model: model.into(),
        reason: format!(
            "tensor `{}` has {} bytes per request, more than a request may carry",
            t.name,
            t.bytes_per_request()
        ),
    })?;
    Ok(clockwork_core::TensorSpec {
        name: t.name.clone(),
        datatype: t.datatype.oip_name().to_owned(),
        shape: t.shape.clone(),
        item_bytes,
    })
}

/// The core profile of model `metadata` with `config`, whose file is `model_path`
/// (made absolute against the current directory when relative).
pub fn core_profile(
    metadata: &ModelMetadata,
    config: &ModelConfig,
    model_path: &Path,
) -> Result<ModelProfile, CoreProfileError> {
    let model = metadata.name.as_str();
    let error = |reason: String| CoreProfileError {
        model: model.into(),
        reason,
    };
    let path = std::path::absolute(model_path).map_err(|e| {
        error(format!(
            "cannot make {} absolute: {e}",
            model_path.display()
        ))
    })?;
    let path = path
        .to_str()
        .ok_or_else(|| error(format!("path {} is not UTF-8", path.display())))?
        .to_owned();
    let inputs = metadata
        .inputs
        .iter()
        .map(|t| core_tensor(t, model))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = metadata
        .outputs
        .iter()
        .map(|t| core_tensor(t, model))
        .collect::<Result<Vec<_>, _>>()?;
    let total = |ts: &[clockwork_core::TensorSpec], what: &str| {
        let sum: u64 = ts.iter().map(|t| u64::from(t.item_bytes)).sum();
        u32::try_from(sum)
            .map_err(|_| error(format!("{sum} {what} bytes per request are too many")))
    };
    let input_bytes = total(&inputs, "input")?;
    let output_bytes = total(&outputs, "output")?;
    let load_time =
        PLACEHOLDER_LOAD_TIME + Nanos(metadata.weight_bytes / PLACEHOLDER_LOAD_BYTES_PER_NS);
    let batches = config
        .allowed_batch_sizes
        .iter()
        .map(|&b| BatchProfile {
            batch_size: b,
            exec_time: Nanos(PLACEHOLDER_EXEC_PER_ITEM.get() * u64::from(b)),
        })
        .collect();
    let profile = ModelProfile {
        name: model.to_owned(),
        weights_bytes: metadata.weight_bytes,
        input_bytes,
        output_bytes,
        load_time,
        batches,
        source: ModelSource::Onnx { path },
        inputs,
        outputs,
    };
    profile.validate().map_err(|e| error(e.to_string()))?;
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datatype::DataType;

    fn metadata() -> ModelMetadata {
        ModelMetadata {
            name: "m".into(),
            inputs: vec![
                TensorSpec {
                    name: "x".into(),
                    datatype: DataType::Fp32,
                    shape: vec![-1, 3, 2],
                },
                TensorSpec {
                    name: "ids".into(),
                    datatype: DataType::Int64,
                    shape: vec![-1, 4],
                },
            ],
            outputs: vec![TensorSpec {
                name: "y".into(),
                datatype: DataType::Fp16,
                shape: vec![-1, 5],
            }],
            weight_bytes: 2_000_000,
        }
    }

    #[test]
    fn profile_has_the_signature_bytes_path_and_config_batches() {
        let config = ModelConfig {
            allowed_batch_sizes: vec![1, 2, 4],
            max_batch_size: 4,
            ..ModelConfig::default()
        };
        let p = core_profile(&metadata(), &config, Path::new("repo/m/1/model.onnx")).unwrap();
        assert_eq!(p.name, "m");
        assert_eq!(p.input_bytes, 24 + 32);
        assert_eq!(p.output_bytes, 10);
        assert_eq!(p.weights_bytes, 2_000_000);
        assert_eq!(
            p.inputs.iter().map(|t| t.item_bytes).collect::<Vec<_>>(),
            [24, 32]
        );
        assert_eq!(p.inputs[1].datatype, "INT64");
        assert_eq!(p.outputs[0].datatype, "FP16");
        assert_eq!(p.outputs[0].shape, [-1, 5]);
        let sizes: Vec<u32> = p.batches.iter().map(|b| b.batch_size).collect();
        assert_eq!(sizes, [1, 2, 4]);
        assert!(p.batches[0].exec_time < p.batches[2].exec_time);
        assert_eq!(p.load_time, PLACEHOLDER_LOAD_TIME + Nanos(2_000_000));
        match &p.source {
            ModelSource::Onnx { path } => {
                assert!(Path::new(path).is_absolute(), "{path}");
                assert!(path.ends_with("repo/m/1/model.onnx"), "{path}");
            }
            other => panic!("not an ONNX source: {other:?}"),
        }
        assert!(p.is_real());
    }

    #[test]
    fn oversized_tensors_are_refused_with_the_model_named() {
        let mut m = metadata();
        m.inputs[0].shape = vec![-1, 1 << 20, 1 << 20];
        let e =
            core_profile(&m, &ModelConfig::default(), Path::new("/r/m/1/model.onnx")).unwrap_err();
        assert_eq!(e.model, "m");
        assert!(e.reason.contains("`x`"), "{e}");
    }
}
