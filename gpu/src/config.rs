//! How to start a [`crate::DeviceSet`]: which backend (emulated, CUDA or CPU), how many devices, cache geometry,
//! pinning and the engine threads' wait policy.

use crate::error::GpuError;
use crate::noise::NoiseModel;
use clockwork_core::DEFAULT_PAGE_SIZE;
use std::time::Duration;

/// The original's default weights cache: 21.5 GiB = 1376 pages of 16 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 23_085_449_216;

/// Default command-ring capacity per engine thread.
pub const DEFAULT_RING_CAPACITY: usize = 4096;

/// Default busy-wait before a due event: the engine sleeps until this long before it,
/// then spins, so that emulated completions and window starts land within a few µs.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(80);

/// Which devices to drive.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// Emulated devices: no GPU, a timing model from the profiles.
    Emulated {
        /// Number of devices (ids 0..devices).
        devices: u32,
        /// Engine threads; device `d` runs on thread `d % engine_threads`.
        engine_threads: usize,
        /// Timing noise.
        noise: NoiseModel,
        /// Noise seed.
        seed: u64,
    },
    /// Real GPUs through CUDA (needs the `cuda` feature): device `i` is CUDA ordinal
    /// `ordinals[i]`, each on its own engine thread.
    Cuda {
        /// CUDA device ordinals.
        ordinals: Vec<usize>,
    },
    /// CPU devices that really compute (not emulated): device `i` is one engine thread
    /// pinned to core `cores[i]`, running the models' ONNX plans one INFER at a time
    /// (see `cpu.rs`). [`DeviceConfig::cpus`] does not apply.
    Cpu {
        /// The core of each device.
        cores: Vec<usize>,
    },
}

/// Configuration of a [`crate::DeviceSet`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceConfig {
    /// The backend.
    pub backend: Backend,
    /// Weights-cache page size in bytes.
    pub page_size: u64,
    /// Weights-cache size per device in bytes (rounded down to whole pages).
    pub cache_bytes: u64,
    /// CPU for each engine thread: thread `i` is pinned to `cpus[i]` when present,
    /// unpinned otherwise. A failed pin is logged and ignored.
    pub cpus: Vec<usize>,
    /// Commands (actions, registrations) each engine's ring holds.
    pub ring_capacity: usize,
    /// Completions each engine's outbound ring holds; more wait on the engine thread.
    pub completion_capacity: usize,
    /// How long before a due event an engine stops sleeping and spins.
    pub spin: Duration,
}

impl DeviceConfig {
    /// `devices` emulated devices on one engine thread, no noise, default cache.
    pub fn emulated(devices: u32) -> Self {
        Self {
            backend: Backend::Emulated {
                devices,
                engine_threads: 1,
                noise: NoiseModel::None,
                seed: 0,
            },
            ..Self::with_backend_defaults()
        }
    }

    /// The CUDA devices with these ordinals, default cache.
    pub fn cuda(ordinals: Vec<usize>) -> Self {
        Self {
            backend: Backend::Cuda { ordinals },
            ..Self::with_backend_defaults()
        }
    }

    /// CPU devices pinned to these cores, default cache.
    pub fn cpu(cores: Vec<usize>) -> Self {
        Self {
            backend: Backend::Cpu { cores },
            ..Self::with_backend_defaults()
        }
    }

    fn with_backend_defaults() -> Self {
        Self {
            backend: Backend::Emulated {
                devices: 1,
                engine_threads: 1,
                noise: NoiseModel::None,
                seed: 0,
            },
            page_size: DEFAULT_PAGE_SIZE,
            cache_bytes: DEFAULT_CACHE_BYTES,
            cpus: Vec::new(),
            ring_capacity: DEFAULT_RING_CAPACITY,
            completion_capacity: DEFAULT_RING_CAPACITY * 4,
            spin: DEFAULT_SPIN,
        }
    }

    /// Pages per device.
    pub fn total_pages(&self) -> u32 {
        self.cache_bytes
            .checked_div(self.page_size)
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Reject configurations that cannot work.
    pub fn validate(&self) -> Result<(), GpuError> {
        let bad = |m: &str| Err(GpuError::InvalidConfig(m.to_owned()));
        if self.page_size == 0 {
            return bad("page_size is zero");
        }
        if self.ring_capacity == 0 || self.completion_capacity == 0 {
            return bad("ring capacities must be positive");
        }
        match &self.backend {
            Backend::Emulated {
                devices,
                engine_threads,
                noise,
                ..
            } => {
                if *devices == 0 {
                    return bad("no emulated devices");
                }
                if *engine_threads == 0 {
                    return bad("engine_threads is zero");
                }
                let rel = match *noise {
                    NoiseModel::None => 0.0,
                    NoiseModel::Normal { rel_sigma } => rel_sigma,
                    NoiseModel::Uniform { rel } => rel,
                };
                if !(rel.is_finite() && rel >= 0.0) {
                    return bad("noise must be finite and non-negative");
                }
            }
            Backend::Cuda { ordinals } => {
                if ordinals.is_empty() {
                    return bad("no CUDA ordinals");
                }
                let mut sorted = ordinals.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if sorted.len() != ordinals.len() {
                    return bad("duplicate CUDA ordinals");
                }
            }
            Backend::Cpu { cores } => {
                if cores.is_empty() {
                    return bad("no CPU devices");
                }
                let mut sorted = cores.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if sorted.len() != cores.len() {
                    return bad("two CPU devices on one core");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_original() {
        let c = DeviceConfig::emulated(2);
        assert_eq!(c.total_pages(), 1376);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn bad_configs_are_rejected() {
        let mut c = DeviceConfig::emulated(0);
        assert!(matches!(c.validate(), Err(GpuError::InvalidConfig(_))));
        c = DeviceConfig::emulated(1);
        c.page_size = 0;
        assert!(c.validate().is_err());
        assert!(DeviceConfig::cuda(vec![]).validate().is_err());
        assert!(DeviceConfig::cuda(vec![0, 0]).validate().is_err());
        assert!(DeviceConfig::cpu(vec![]).validate().is_err());
        assert!(DeviceConfig::cpu(vec![1, 1]).validate().is_err());
        assert!(DeviceConfig::cpu(vec![0, 1]).validate().is_ok());
        let mut c = DeviceConfig::emulated(1);
        c.backend = Backend::Emulated {
            devices: 1,
            engine_threads: 1,
            noise: NoiseModel::Normal {
                rel_sigma: f64::NAN,
            },
            seed: 0,
        };
        assert!(c.validate().is_err());
    }
}
