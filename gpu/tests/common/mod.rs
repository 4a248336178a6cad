//! What the CUDA plan and executor tests share: the generated models, imported, and
//! step counts of a plan.

use clockwork_gpu::cuda_plan::Plan;
use clockwork_models::{ImportLimits, ImportedModel, ModelKind};

/// The cache's page size.
pub(crate) const PAGE: u64 = 16 << 20;

/// A generated model (seed 7), imported.
pub(crate) fn import(kind: ModelKind) -> ImportedModel {
    ImportedModel::import_bytes(kind.name(), &kind.onnx_bytes(7), &ImportLimits::default())
        .expect("generated models import")
}

/// How many of `plan`'s steps are of `kind`.
pub(crate) fn count(plan: &Plan, kind: &str) -> usize {
    plan.steps.iter().filter(|s| s.kind() == kind).count()
}
