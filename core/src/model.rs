//! Model profiles: what the controller and the devices know about a network. Weights
//! size and page count, per-batch execution time, LOAD time, where the executable model
//! comes from ([`ModelSource`]) and, for a real model, its tensor signature
//! ([`TensorSpec`]). The built-in profiles are the V100 measurements of the original
//! model zoo, for emulated devices only; a real model's times are measured by the worker
//! that registers it ([`MeasuredTimes`]).

use crate::time::Nanos;
use rkyv::{Archive, Deserialize, Serialize};
use thiserror::Error;

/// Default weights-cache page size: 16 MiB, as the original.
pub const DEFAULT_PAGE_SIZE: u64 = 16 * 1024 * 1024;

/// Largest batch size a profile may declare.
pub const MAX_BATCH_SIZE: u32 = 1024;

/// Execution time of one batch size.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct BatchProfile {
    /// Batch size (a power of two in the built-in profiles).
    pub batch_size: u32,
    /// Measured execution time of one batch of that size.
    pub exec_time: Nanos,
}

/// Where a model's executable form comes from.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug, Default)]
#[rkyv(derive(Debug))]
pub enum ModelSource {
    /// A timing table only: emulated devices run it, no real compute; its outputs are
    /// zeros of `output_bytes`.
    #[default]
    Emulated,
    /// An ONNX file that every worker reads at this path (a shared or copied model
    /// repository: `docs/adr/0003-model-files-by-path.md`).
    Onnx {
        /// Absolute path of `model.onnx` on the worker's host.
        path: String,
    },
}

/// One named input or output tensor of a real model, as the Open Inference Protocol
/// describes it. A request carries one item along the batch axis.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct TensorSpec {
    /// The tensor's name in the model.
    pub name: String,
    /// OIP datatype (`FP32`, `FP16`, `INT64`, `UINT8`, ...).
    pub datatype: String,
    /// Shape with `-1` for the batch axis (always the first).
    pub shape: Vec<i64>,
    /// Bytes of one request's item (the shape without its batch axis).
    pub item_bytes: u32,
}

/// Times a worker measured for a model on its own device when it registered it.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct MeasuredTimes {
    /// LOAD on this device (for a CPU device: plans built and weights in memory).
    pub load_time: Nanos,
    /// Execution time of every supported batch size, ascending.
    pub batches: Vec<BatchProfile>,
}

/// The profile of one model (network). Copies of a model share a profile.
///
/// A request's input is the concatenation of one item of every input in
/// [`ModelProfile::inputs`] order (`input_bytes` in all); its output likewise of
/// [`ModelProfile::outputs`]. An emulated profile declares no tensors: its input and
/// output are opaque bytes.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct ModelProfile {
    /// Network name, e.g. `resnet50_v2`.
    pub name: String,
    /// Bytes of weights copied to the device on LOAD.
    pub weights_bytes: u64,
    /// Bytes of one request's input.
    pub input_bytes: u32,
    /// Bytes of one request's output.
    pub output_bytes: u32,
    /// Measured LOAD (host→device weights copy) time.
    pub load_time: Nanos,
    /// Supported batch sizes with their execution times, strictly ascending by size.
    pub batches: Vec<BatchProfile>,
    /// Where the executable model comes from.
    pub source: ModelSource,
    /// The input tensors of a real model, in order (empty for an emulated one).
    pub inputs: Vec<TensorSpec>,
    /// The output tensors of a real model, in order (empty for an emulated one).
    pub outputs: Vec<TensorSpec>,
}

/// Why a profile is unusable.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProfileError {
    /// No batch sizes.
    #[error("profile `{0}` declares no batch sizes")]
    NoBatches(String),
    /// Batch sizes not strictly ascending, zero, or above [`MAX_BATCH_SIZE`].
    #[error("profile `{0}`: batch sizes must be strictly ascending in 1..={MAX_BATCH_SIZE}")]
    BadBatchSizes(String),
    /// A zero execution or load time.
    #[error("profile `{0}`: execution and load times must be positive")]
    ZeroTime(String),
    /// Empty name.
    #[error("profile name is empty")]
    EmptyName,
    /// The tensors' item sizes do not add up to the per-request byte counts.
    #[error("profile `{0}`: its {1} tensors' item bytes do not add up to {1}_bytes")]
    TensorBytes(String, &'static str),
}

impl ModelProfile {
    /// Check the invariants the rest of the system relies on.
    pub fn validate(&self) -> Result<(), ProfileError> {
        if self.name.is_empty() {
            return Err(ProfileError::EmptyName);
        }
        if self.batches.is_empty() {
            return Err(ProfileError::NoBatches(self.name.clone()));
        }
        let mut prev = 0;
        for b in &self.batches {
            if b.batch_size <= prev || b.batch_size > MAX_BATCH_SIZE {
                return Err(ProfileError::BadBatchSizes(self.name.clone()));
            }
            if b.exec_time == Nanos::ZERO {
                return Err(ProfileError::ZeroTime(self.name.clone()));
            }
            prev = b.batch_size;
        }
        if self.load_time == Nanos::ZERO {
            return Err(ProfileError::ZeroTime(self.name.clone()));
        }
        let sum = |t: &[TensorSpec]| t.iter().map(|t| u64::from(t.item_bytes)).sum::<u64>();
        if !self.inputs.is_empty() && sum(&self.inputs) != u64::from(self.input_bytes) {
            return Err(ProfileError::TensorBytes(self.name.clone(), "input"));
        }
        if !self.outputs.is_empty() && sum(&self.outputs) != u64::from(self.output_bytes) {
            return Err(ProfileError::TensorBytes(self.name.clone(), "output"));
        }
        Ok(())
    }

    /// Whether devices run this model for real (it is not a timing table).
    pub fn is_real(&self) -> bool {
        !matches!(self.source, ModelSource::Emulated)
    }

    /// This profile with the times a worker measured.
    pub fn with_measured(&self, m: &MeasuredTimes) -> Self {
        Self {
            load_time: m.load_time,
            batches: m.batches.clone(),
            ..self.clone()
        }
    }

    /// Pages of `page_size` bytes that the weights occupy (at least one).
    pub fn pages(&self, page_size: u64) -> u32 {
        let pages = self.weights_bytes.div_ceil(page_size.max(1)).max(1);
        u32::try_from(pages).unwrap_or(u32::MAX)
    }

    /// Largest supported batch size.
    pub fn max_batch(&self) -> u32 {
        self.batches.last().map_or(0, |b| b.batch_size)
    }

    /// The smallest supported batch size that holds `requests` requests (the size the
    /// device pads a batch of `requests` to), or `None` if none is large enough.
    pub fn padded_batch(&self, requests: u32) -> Option<u32> {
        self.batches
            .iter()
            .find(|b| b.batch_size >= requests)
            .map(|b| b.batch_size)
    }

    /// Execution time of a batch of `requests` (padded to a supported size).
    pub fn exec_time(&self, requests: u32) -> Option<Nanos> {
        self.batches
            .iter()
            .find(|b| b.batch_size >= requests)
            .map(|b| b.exec_time)
    }

    /// The index into [`ModelProfile::batches`] of the size that serves `requests`.
    pub fn batch_index(&self, requests: u32) -> Option<usize> {
        self.batches.iter().position(|b| b.batch_size >= requests)
    }
}

fn zoo_profile(name: &str, weights_bytes: u64, load_us: u64, exec_us: [u64; 5]) -> ModelProfile {
    let sizes = [1, 2, 4, 8, 16];
    ModelProfile {
        name: name.to_owned(),
        weights_bytes,
        input_bytes: 602_112,
        output_bytes: 4_000,
        load_time: Nanos::from_micros(load_us),
        batches: sizes
            .iter()
            .zip(exec_us)
            .map(|(&batch_size, us)| BatchProfile {
                batch_size,
                exec_time: Nanos::from_micros(us),
            })
            .collect(),
        source: ModelSource::Emulated,
        inputs: Vec::new(),
        outputs: Vec::new(),
    }
}

/// ResNet18 v2 on a V100 (original model zoo measurements).
pub fn resnet18() -> ModelProfile {
    zoo_profile(
        "resnet18_v2",
        46_737_836,
        3_850,
        [1_630, 2_510, 3_620, 6_630, 11_860],
    )
}

/// ResNet50 v2 on a V100 (original model zoo measurements).
pub fn resnet50() -> ModelProfile {
    zoo_profile(
        "resnet50_v2",
        102_160_300,
        8_370,
        [3_320, 5_270, 7_500, 12_440, 21_730],
    )
}

/// ResNet152 v2 on a V100 (original model zoo measurements).
pub fn resnet152() -> ModelProfile {
    zoo_profile(
        "resnet152_v2",
        240_637_868,
        19_680,
        [9_130, 14_770, 22_510, 34_960, 61_550],
    )
}

/// ResNet-50 in fp16 on an H200 with CUDA graphs (measured: batch 1 0.904 ms, 16
/// 1.495 ms; LOAD of its 102 MB 1.9 ms). Not in the default mix
/// ([`builtin_profiles`]); find it by name in [`named_profiles`].
pub fn resnet50_fp16_h200() -> ModelProfile {
    zoo_profile(
        "resnet50_fp16_h200",
        102_160_300,
        1_900,
        [904, 916, 1_012, 1_141, 1_495],
    )
}

/// All built-in profiles of the default mix (the original's V100 model zoo).
pub fn builtin_profiles() -> Vec<ModelProfile> {
    vec![resnet18(), resnet50(), resnet152()]
}

/// Every built-in profile, to pick by name: the default mix ([`builtin_profiles`])
/// and the ones kept out of it ([`resnet50_fp16_h200`]).
pub fn named_profiles() -> Vec<ModelProfile> {
    let mut all = builtin_profiles();
    all.push(resnet50_fp16_h200());
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, item_bytes: u32) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            datatype: "FP32".into(),
            shape: vec![-1, i64::from(item_bytes / 4)],
            item_bytes,
        }
    }

    #[test]
    fn tensors_must_add_up_to_the_request_bytes() {
        let mut p = ModelProfile {
            source: ModelSource::Onnx {
                path: "/m/1/model.onnx".into(),
            },
            input_bytes: 24,
            output_bytes: 8,
            inputs: vec![tensor("a", 16), tensor("b", 8)],
            outputs: vec![tensor("y", 8)],
            ..resnet50()
        };
        assert!(p.is_real());
        assert_eq!(p.validate(), Ok(()));
        p.input_bytes = 20;
        assert_eq!(
            p.validate(),
            Err(ProfileError::TensorBytes(p.name.clone(), "input"))
        );
        p.input_bytes = 24;
        p.outputs[0].item_bytes = 4;
        assert_eq!(
            p.validate(),
            Err(ProfileError::TensorBytes(p.name.clone(), "output"))
        );
        assert!(!resnet50().is_real());
        assert_eq!(resnet50().validate(), Ok(()));
    }

    #[test]
    fn measured_times_replace_only_the_times() {
        let m = MeasuredTimes {
            load_time: Nanos::from_micros(1_900),
            batches: vec![BatchProfile {
                batch_size: 1,
                exec_time: Nanos::from_micros(904),
            }],
        };
        let p = resnet50().with_measured(&m);
        assert_eq!(p.load_time, m.load_time);
        assert_eq!(p.batches, m.batches);
        assert_eq!(p.weights_bytes, resnet50().weights_bytes);
        assert_eq!(p.name, resnet50().name);
    }

    #[test]
    fn zoo_pages_match_the_reference() {
        assert_eq!(resnet18().pages(DEFAULT_PAGE_SIZE), 3);
        assert_eq!(resnet50().pages(DEFAULT_PAGE_SIZE), 7);
        assert_eq!(resnet152().pages(DEFAULT_PAGE_SIZE), 15);
        for p in named_profiles() {
            p.validate().unwrap();
        }
        assert_eq!(resnet50_fp16_h200().pages(DEFAULT_PAGE_SIZE), 7);
        assert_eq!(
            resnet50_fp16_h200().exec_time(3),
            Some(Nanos::from_micros(1_012))
        );
        assert!(builtin_profiles()
            .iter()
            .all(|p| p.name != "resnet50_fp16_h200"));
    }

    #[test]
    fn padding_picks_the_smallest_fitting_size() {
        let p = resnet50();
        assert_eq!(p.padded_batch(1), Some(1));
        assert_eq!(p.padded_batch(3), Some(4));
        assert_eq!(p.padded_batch(16), Some(16));
        assert_eq!(p.padded_batch(17), None);
        assert_eq!(p.exec_time(5), Some(Nanos::from_micros(12_440)));
        assert_eq!(p.max_batch(), 16);
    }

    #[test]
    fn validation_rejects_bad_profiles() {
        let mut p = resnet50();
        p.batches.swap(0, 1);
        assert!(matches!(p.validate(), Err(ProfileError::BadBatchSizes(_))));
        let mut p = resnet50();
        p.batches.clear();
        assert!(matches!(p.validate(), Err(ProfileError::NoBatches(_))));
        let mut p = resnet50();
        p.load_time = Nanos::ZERO;
        assert!(matches!(p.validate(), Err(ProfileError::ZeroTime(_))));
    }
}
