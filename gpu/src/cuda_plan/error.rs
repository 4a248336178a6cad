//! Why a model cannot be planned for the CUDA backend.

/// A model the planner refuses, with the op and node that stopped it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The batch size is zero.
    #[error("batch size 0: plans are built for batch sizes of 1 and more")]
    ZeroBatch,
    /// A node whose op has no step kind (yet).
    #[error("node `{node}` ({op}) is not supported by the CUDA plan: {reason}")]
    Unsupported {
        /// The node's name.
        node: String,
        /// The op's name.
        op: String,
        /// What is missing.
        reason: String,
    },
    /// tract could not fix the batch size or read a fact.
    #[error("tract: {0}")]
    Tract(String),
}
