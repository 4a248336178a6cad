//! Running a model's plans on the calling thread: a batch of `k` requests' packed input
//! bytes in, their packed output bytes out, on the smallest planned batch size `>= k`.
//!
//! Allocation: each plan keeps its input tensors and its tract state across calls, so a
//! call copies the request bytes into tensors it already owns (zero-padding the unused
//! tail when `k` is below the plan's size) and copies the first `k` rows of each output
//! into the caller's buffers. tract itself still allocates every intermediate activation
//! and every output tensor on each call (freed as soon as their last reader has run),
//! plus its small per-call bookkeeping; matrix-multiply scratch space is kept per thread
//! by tract and reused.

use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::error::RunError;
use crate::metadata::{ModelMetadata, TensorSpec};

/// One batch size's plan, its reusable state and input tensors.
#[derive(Debug)]
pub(crate) struct BatchPlan {
    batch_size: usize,
    state: TypedSimpleState,
    inputs: Vec<Arc<Tensor>>,
}

impl BatchPlan {
    /// Spawn the plan's state and allocate its input tensors (zeroed).
    pub(crate) fn new(
        metadata: &ModelMetadata,
        batch_size: usize,
        plan: Arc<TypedSimplePlan>,
    ) -> TractResult<Self> {
        let state = plan.spawn()?;
        let inputs = metadata
            .inputs
            .iter()
            .map(|spec| {
                Tensor::zero_dt(spec.datatype.datum(), &spec.batch_shape(batch_size)).map(Arc::new)
            })
            .collect::<TractResult<_>>()?;
        Ok(Self {
            batch_size,
            state,
            inputs,
        })
    }
}

/// A model's runnable plans, one per batch size, run one at a time on the calling
/// thread (tract runs them single-threaded). Build it with [`crate::ImportedModel::plan`].
#[derive(Debug)]
pub struct ModelRunner {
    metadata: Arc<ModelMetadata>,
    /// Ascending by batch size.
    plans: Vec<BatchPlan>,
}

impl ModelRunner {
    pub(crate) fn new(metadata: Arc<ModelMetadata>, plans: Vec<BatchPlan>) -> Self {
        Self { metadata, plans }
    }

    /// The model's metadata.
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// The planned batch sizes, ascending.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.plans.iter().map(|p| p.batch_size).collect()
    }

    /// The largest planned batch size.
    pub fn max_batch_size(&self) -> usize {
        self.plans.last().map_or(0, |p| p.batch_size)
    }

    /// The planned batch size a batch of `requests` runs at: the smallest that holds
    /// them, or `None` for zero requests or more than the largest plan.
    pub fn plan_batch_size(&self, requests: usize) -> Option<usize> {
        if requests == 0 {
            return None;
        }
        self.plans
            .iter()
            .map(|p| p.batch_size)
            .find(|&b| b >= requests)
    }

    /// Run a batch of `requests` requests.
    ///
    /// `inputs` holds one buffer per model input, in the model's order: the requests'
    /// bytes packed along the batch axis (request `j` at `j * bytes_per_request`), so
    /// `requests * bytes_per_request` bytes each. `outputs` holds one buffer per model
    /// output, of `requests * bytes_per_request` bytes, filled the same way. Bytes are the
    /// elements in native (little-endian) order, as OIP's binary tensor data.
    ///
    /// Returns the planned batch size that ran. On error the outputs are unspecified and
    /// the runner is ready for the next call.
    pub fn run(
        &mut self,
        requests: usize,
        inputs: &[&[u8]],
        outputs: &mut [&mut [u8]],
    ) -> Result<usize, RunError> {
        let model = || self.metadata.name.clone();
        let Some(plan_ix) = self
            .plans
            .iter()
            .position(|p| p.batch_size >= requests)
            .filter(|_| requests > 0)
        else {
            return Err(RunError::BatchSize {
                model: model(),
                requests,
                max: self.max_batch_size(),
            });
        };
        let meta = &self.metadata;
        let input_lengths: TVec<usize> = inputs.iter().map(|b| b.len()).collect();
        check_buffers(&meta.name, &meta.inputs, requests, &input_lengths, "input")?;
        let output_lengths: TVec<usize> = outputs.iter().map(|b| b.len()).collect();
        check_buffers(
            &meta.name,
            &meta.outputs,
            requests,
            &output_lengths,
            "output",
        )?;
        let plan = &mut self.plans[plan_ix];
        let mut values: TVec<TValue> = TVec::with_capacity(plan.inputs.len());
        for (ix, bytes) in inputs.iter().enumerate() {
            let tensor = exclusive_input(&mut plan.inputs[ix], &self.metadata, ix, plan.batch_size)
                .map_err(|e| RunError::Execution {
                    model: model(),
                    reason: format!("{e:#}"),
                })?;
            let dst = tensor.as_bytes_mut();
            dst[..bytes.len()].copy_from_slice(bytes);
            dst[bytes.len()..].fill(0);
            values.push(TValue::from_const(Arc::clone(&plan.inputs[ix])));
        }
        let results = match plan.state.run(values) {
            Ok(results) => results,
            Err(e) => {
                // A failed turn leaves values behind: clear them for the next call.
                let _ = plan.state.reset_turn();
                return Err(RunError::Execution {
                    model: model(),
                    reason: format!("{e:#}"),
                });
            }
        };
        for (ix, (result, out)) in results.iter().zip(outputs.iter_mut()).enumerate() {
            let spec = &self.metadata.outputs[ix];
            if result.datum_type() != spec.datatype.datum()
                || result.shape() != spec.batch_shape(plan.batch_size).as_slice()
                || !result.is_plain_ram()
            {
                return Err(RunError::Execution {
                    model: model(),
                    reason: format!(
                        "output `{}` came out as {:?} {:?}, expected {} {:?}",
                        spec.name,
                        result.datum_type(),
                        result.shape(),
                        spec.datatype,
                        spec.batch_shape(plan.batch_size)
                    ),
                });
            }
            let len = out.len();
            out.copy_from_slice(&result.as_bytes()[..len]);
        }
        Ok(plan.batch_size)
    }
}

/// One buffer per tensor of `specs`, each `requests * bytes_per_request` long.
fn check_buffers(
    model: &str,
    specs: &[TensorSpec],
    requests: usize,
    lengths: &[usize],
    what: &'static str,
) -> Result<(), RunError> {
    if lengths.len() != specs.len() {
        return Err(RunError::BufferCount {
            model: model.into(),
            what,
            given: lengths.len(),
            expected: specs.len(),
        });
    }
    for (spec, &len) in specs.iter().zip(lengths) {
        let expected = requests * spec.bytes_per_request();
        if len != expected {
            return Err(RunError::BufferSize {
                model: model.into(),
                what,
                tensor: spec.name.clone(),
                requests,
                given: len,
                expected,
            });
        }
    }
    Ok(())
}

/// The input tensor, writable: the plan's own once tract has let go of the previous
/// call's reference (always, unless a model hands an input straight to an output that a
/// caller kept), else a fresh one.
fn exclusive_input<'a>(
    slot: &'a mut Arc<Tensor>,
    metadata: &ModelMetadata,
    ix: usize,
    batch_size: usize,
) -> TractResult<&'a mut Tensor> {
    if Arc::get_mut(slot).is_none() {
        let spec = &metadata.inputs[ix];
        *slot = Arc::new(Tensor::zero_dt(
            spec.datatype.datum(),
            &spec.batch_shape(batch_size),
        )?);
    }
    Arc::get_mut(slot).ok_or_else(|| TractError::msg(format!("input tensor {ix} is shared")))
}
