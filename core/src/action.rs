//! The controller→worker action set. Every action carries an `[earliest, latest]`
//! window in the controller's clock: the worker never starts it before `earliest` and
//! drops it, unrun, if it cannot start by `latest`.

use crate::ids::{ActionId, GpuId, ModelId};
use crate::input_bytes::InputBytes;
use crate::model::ModelProfile;
use crate::time::Nanos;
use rkyv::{Archive, Deserialize, Serialize};

/// The time window in which an action may start.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[rkyv(derive(Debug))]
pub struct Window {
    /// Never start before this.
    pub earliest: Nanos,
    /// Never start after this; drop instead.
    pub latest: Nanos,
}

impl Window {
    /// A window that accepts any start time (used for UNLOAD, state queries).
    pub const ANY: Self = Self {
        earliest: Nanos::ZERO,
        latest: Nanos::MAX,
    };

    /// A window `[earliest, latest]`.
    pub const fn new(earliest: Nanos, latest: Nanos) -> Self {
        Self { earliest, latest }
    }

    /// Well-formed: `earliest <= latest`.
    pub fn is_valid(&self) -> bool {
        self.earliest <= self.latest
    }

    /// May an action start at `t`? Both bounds are inclusive.
    pub fn admits(&self, t: Nanos) -> bool {
        self.earliest <= t && t <= self.latest
    }
}

impl ArchivedWindow {
    /// The native window.
    pub fn to_native(&self) -> Window {
        Window {
            earliest: self.earliest.to_native(),
            latest: self.latest.to_native(),
        }
    }
}

/// One action for a worker.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub struct Action {
    /// Echoed by the result.
    pub id: ActionId,
    /// When it may start.
    pub window: Window,
    /// What to do.
    pub kind: ActionKind,
}

/// What an action does.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Debug)]
#[rkyv(derive(Debug))]
pub enum ActionKind {
    /// Register `count` instances of a model with the worker, ids `model` to
    /// `model + count - 1`: from now on their weights live in host memory (emulated
    /// workers keep only the sizes). Replaces the original's `LoadModelFromDisk`;
    /// unlike it, allowed at any time, not only at start-up. The copies of one
    /// registration take one action, so that a worker joining a controller with
    /// 100,000 instances gets a few actions, not 100,000.
    RegisterModel {
        /// Id the controller gives the first instance.
        model: ModelId,
        /// How many instances (at least 1), with consecutive ids.
        count: u32,
        /// Their profile (sizes, batch sizes, timings).
        profile: ModelProfile,
    },
    /// Copy a registered model's weights into a GPU's page cache.
    LoadWeights {
        /// The model.
        model: ModelId,
        /// The GPU.
        gpu: GpuId,
        /// The controller's estimate, echoed in logs.
        expected_duration: Nanos,
    },
    /// Free a model's pages on a GPU (the original's EVICT).
    Unload {
        /// The model.
        model: ModelId,
        /// The GPU.
        gpu: GpuId,
    },
    /// Run one batch.
    Infer {
        /// The model.
        model: ModelId,
        /// The GPU.
        gpu: GpuId,
        /// Number of requests in the batch (the device pads to a supported size).
        batch_size: u32,
        /// The controller's estimate, echoed in logs.
        expected_duration: Nanos,
        /// Byte length of each request's input inside `inputs`; empty when inputs are
        /// generated on the worker.
        input_sizes: Vec<u32>,
        /// The concatenated inputs: the requests' own buffers, shared (archived as
        /// one byte vector).
        inputs: InputBytes,
    },
    /// Report devices, pages, registered models and their profiles.
    GetState,
    /// Drop every GPU's cached weights (not the host copies).
    ClearCache,
}

impl ActionKind {
    /// A short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RegisterModel { .. } => "register_model",
            Self::LoadWeights { .. } => "load",
            Self::Unload { .. } => "unload",
            Self::Infer { .. } => "infer",
            Self::GetState => "get_state",
            Self::ClearCache => "clear_cache",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds_are_inclusive() {
        let w = Window::new(Nanos(10), Nanos(20));
        assert!(!w.admits(Nanos(9)));
        assert!(w.admits(Nanos(10)));
        assert!(w.admits(Nanos(20)));
        assert!(!w.admits(Nanos(21)));
        assert!(!Window::new(Nanos(2), Nanos(1)).is_valid());
        assert!(Window::ANY.admits(Nanos::MAX));
    }
}
