//! Model profiles: what the controller and the emulated device know about a network
//! without running it. Weights size and page count, per-batch execution time, LOAD time.
//! The built-in profiles are the V100 measurements of the original model zoo.

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

/// The profile of one model (network). Copies of a model share a profile.
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
        Ok(())
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

/// All built-in profiles.
pub fn builtin_profiles() -> Vec<ModelProfile> {
    vec![resnet18(), resnet50(), resnet152()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoo_pages_match_the_reference() {
        assert_eq!(resnet18().pages(DEFAULT_PAGE_SIZE), 3);
        assert_eq!(resnet50().pages(DEFAULT_PAGE_SIZE), 7);
        assert_eq!(resnet152().pages(DEFAULT_PAGE_SIZE), 15);
        for p in builtin_profiles() {
            p.validate().unwrap();
        }
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
