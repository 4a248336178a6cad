//! Execution plans for the CUDA backend: a fixed list of steps per (model, batch size),
//! built from the imported model's decluttered tract graph, with every activation a span
//! of one arena and every weight a slot in the model's pages.
//!
//! It owns the lowering (which graph node becomes which step: convolutions for cuDNN in
//! NHWC, GEMMs for cuBLASLt with bias/ReLU epilogues, pooling, small element-wise
//! kernels, reshapes as no-op views), the fusion of a convolution or GEMM with the bias
//! add and ReLU that only it feeds, the arena layout by liveness (`arena.rs`) and the
//! weights' placement in pages (`pages.rs`). It needs no driver and no `cuda` feature:
//! CI builds and tests all of it. It does not launch anything: executing a plan on a GPU
//! is not written yet (see docs/cuda-backend.md).
//!
//! Why here and not in `clockwork-models`: the plan encodes the CUDA backend's choices
//! (NHWC, cuDNN's fusion rules, 256-byte alignment, the page cache's pages), which are
//! this crate's business; `clockwork-models` stays backend-neutral.

mod arena;
mod error;
mod lower;
mod pages;
pub mod reference;
mod step;

pub use error::PlanError;
pub use pages::{place_weights, PlacementError, WeightPlacement, WeightSlot};
pub use step::{ArenaSpan, ConvGeometry, ElementwiseOp, Epilogue, PoolGeometry, PoolKind, Step};

use std::sync::Arc;

use clockwork_models::{ImportedModel, Precision};
use tract_onnx::prelude::Tensor;

/// Alignment of every arena span and weight slot, in bytes.
pub const ALIGN: u64 = 256;

/// How a weight is laid out on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// A convolution filter, `K x R x S x C` (cuDNN's NHWC filter format).
    Krsc,
    /// A GEMM operand, row-major as stored in the model (see `Step::Gemm`).
    Matrix,
    /// A GEMM weight `n x (c*h*w)` read against a flattened NHWC image: stored
    /// `n x h x w x c` (`dims`), permuted from the model's `n x c x h x w` at load.
    MatrixNhwc,
    /// A per-channel vector (bias).
    Vector,
}

/// One weight tensor of a plan.
#[derive(Debug, Clone)]
pub struct Weight {
    /// The graph node it comes from.
    pub name: String,
    /// Dimensions in the device layout.
    pub dims: Vec<usize>,
    /// The device layout.
    pub layout: WeightLayout,
    /// Bytes on the device (elements x element size of the plan's precision).
    pub bytes: u64,
    /// The values, fp32, in the model's own layout (OIHW for filters), converted to the
    /// device layout and precision when loaded.
    pub source: Arc<Tensor>,
}

/// A model lowered for one batch size.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The batch size.
    pub batch_size: usize,
    /// Element type of activations and weights.
    pub precision: Precision,
    /// The steps, in launch order.
    pub steps: Vec<Step>,
    /// Bytes of the activation arena.
    pub arena_bytes: u64,
    /// Sum of every activation's bytes, each rounded up to [`ALIGN`]: what the arena
    /// would be without reuse.
    pub activation_bytes: u64,
    /// Where the host copies the model input in (NCHW, as clients send it).
    pub input: ArenaSpan,
    /// Where the host copies the model output from.
    pub output: ArenaSpan,
    /// The weights, in the order steps index them.
    pub weights: Vec<Weight>,
}

impl Plan {
    /// Lower `model` for `batch_size` with activations and weights in `precision`.
    pub fn build(
        model: &ImportedModel,
        batch_size: usize,
        precision: Precision,
    ) -> Result<Self, PlanError> {
        lower::lower(model, batch_size, precision)
    }

    /// Bytes of all weights on the device.
    pub fn weight_bytes(&self) -> u64 {
        self.weights.iter().map(|w| w.bytes).sum()
    }

    /// Place the weights in pages of `page_size` bytes.
    pub fn place_weights(&self, page_size: u64) -> Result<WeightPlacement, PlacementError> {
        let sizes: Vec<u64> = self.weights.iter().map(|w| w.bytes).collect();
        place_weights(&sizes, page_size)
    }
}

/// Bytes of one element in `precision`.
pub const fn element_bytes(precision: Precision) -> u64 {
    match precision {
        Precision::Fp32 => 4,
        Precision::Fp16 => 2,
    }
}
