//! Why a model is refused at import, and why one run of a model fails.

use std::io;
use std::path::PathBuf;

/// Why a model cannot be imported. Every variant names the model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be read.
    #[error("model `{model}`: cannot read {}: {source}", path.display())]
    Read {
        /// Model name.
        model: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Not a decodable ONNX protobuf, or a graph that is malformed.
    #[error("model `{model}`: not a valid ONNX model: {reason}")]
    InvalidOnnx {
        /// Model name.
        model: String,
        /// What is wrong.
        reason: String,
    },
    /// The graph uses operators tract does not implement.
    #[error("model `{model}`: unsupported ONNX operators: {}", ops.join(", "))]
    UnsupportedOps {
        /// Model name.
        model: String,
        /// The operator types, sorted, each once.
        ops: Vec<String>,
    },
    /// An input or output has no variable first (batch) axis.
    #[error("model `{model}`: tensor `{tensor}` has no batch dimension: {reason}")]
    NoBatchDimension {
        /// Model name.
        model: String,
        /// The input or output.
        tensor: String,
        /// What its shape is instead.
        reason: String,
    },
    /// An axis other than the batch axis is not fixed.
    #[error("model `{model}`: tensor `{tensor}` axis {axis} is not fixed ({dim}); only the first (batch) axis may vary")]
    DynamicShape {
        /// Model name.
        model: String,
        /// The input or output.
        tensor: String,
        /// The axis.
        axis: usize,
        /// What the file or tract says the dimension is.
        dim: String,
    },
    /// An input or output whose element type is not served.
    #[error("model `{model}`: tensor `{tensor}` has unsupported datatype {datatype}")]
    UnsupportedDatatype {
        /// Model name.
        model: String,
        /// The input or output.
        tensor: String,
        /// The type, as ONNX or tract names it.
        datatype: String,
    },
    /// The file or its weights exceed the import limit.
    #[error("model `{model}`: {what} of {bytes} bytes exceed the limit of {limit} bytes")]
    TooLarge {
        /// Model name.
        model: String,
        /// `"file"` or `"weights"`.
        what: &'static str,
        /// Measured bytes.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// Batch sizes asked of [`crate::ImportedModel::plan`] that are empty, zero or repeated.
    #[error("model `{model}`: invalid batch sizes {sizes:?}: {reason}")]
    BadBatchSizes {
        /// Model name.
        model: String,
        /// The sizes asked for.
        sizes: Vec<usize>,
        /// What is wrong with them.
        reason: String,
    },
    /// tract failed to analyse, simplify or plan the graph.
    #[error("model `{model}`: {stage} failed: {reason}")]
    Tract {
        /// Model name.
        model: String,
        /// The step that failed (`"parsing"`, `"type analysis"`, `"optimising batch 4"`, ...).
        stage: String,
        /// tract's error chain.
        reason: String,
    },
}

impl ImportError {
    /// The model the error is about.
    pub fn model(&self) -> &str {
        match self {
            Self::Read { model, .. }
            | Self::InvalidOnnx { model, .. }
            | Self::UnsupportedOps { model, .. }
            | Self::NoBatchDimension { model, .. }
            | Self::DynamicShape { model, .. }
            | Self::UnsupportedDatatype { model, .. }
            | Self::TooLarge { model, .. }
            | Self::BadBatchSizes { model, .. }
            | Self::Tract { model, .. } => model,
        }
    }
}

/// Why one run of a model's plan failed. The runner stays usable after any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Zero requests, or more than the largest plan holds.
    #[error("model `{model}`: batch of {requests} requests; plans hold 1..={max}")]
    BatchSize {
        /// Model name.
        model: String,
        /// Requests in the batch.
        requests: usize,
        /// Largest planned batch size.
        max: usize,
    },
    /// Not one buffer per model input or output.
    #[error("model `{model}`: {given} {what} buffers given, the model has {expected}")]
    BufferCount {
        /// Model name.
        model: String,
        /// `"input"` or `"output"`.
        what: &'static str,
        /// Buffers given.
        given: usize,
        /// Tensors the model has.
        expected: usize,
    },
    /// A buffer whose length is not `requests x bytes per request`.
    #[error("model `{model}`: {what} `{tensor}` buffer holds {given} bytes, {requests} requests need {expected}")]
    BufferSize {
        /// Model name.
        model: String,
        /// `"input"` or `"output"`.
        what: &'static str,
        /// Tensor name.
        tensor: String,
        /// Requests in the batch.
        requests: usize,
        /// Bytes given.
        given: usize,
        /// Bytes needed.
        expected: usize,
    },
    /// tract failed while running the plan.
    #[error("model `{model}`: execution failed: {reason}")]
    Execution {
        /// Model name.
        model: String,
        /// tract's error chain.
        reason: String,
    },
}
