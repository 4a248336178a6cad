//! One real model on one CUDA device (feature `cuda`): its plans and prepared ops per
//! batch size, its arena, its pinned staging buffers, the host image of its weights, and
//! the graphs captured at its last LOAD. Built at registration; nothing here allocates
//! on the INFER path.

use super::device::{Graph, Libraries, Prepared};
use super::error::ExecError;
use super::schedule::Schedule;
use super::weights::{decode, f16_bits, host_image, pack_weights, weight_addresses};
use crate::cuda_plan::{element_bytes, Plan, WeightPlacement};
use clockwork_core::ModelProfile;
use clockwork_models::{ImportLimits, ImportedModel, ModelConfig, Precision};
use cudarc::driver::{
    result as dres, CudaContext, CudaSlice, CudaStream, DevicePtr, PinnedHostSlice,
};
use std::path::Path;
use std::sync::Arc;

/// The precision a model's `config.json` asks for (beside the ONNX file's version
/// directory, or beside the file), fp32 without one.
pub(crate) fn configured_precision(onnx: &Path) -> Result<Precision, ExecError> {
    let candidates = [onnx.parent(), onnx.parent().and_then(Path::parent)];
    for dir in candidates.into_iter().flatten() {
        let file = dir.join(clockwork_models::repository::CONFIG_FILE);
        if let Ok(text) = std::fs::read_to_string(&file) {
            return ModelConfig::from_json(&text)
                .map(|c| c.precision)
                .map_err(|e| ExecError::Call {
                    call: "reading config.json",
                    status: format!("{}: {e}", file.display()),
                });
        }
    }
    Ok(Precision::Fp32)
}

#[derive(Debug)]
struct Batch {
    plan: Plan,
    prepared: Prepared,
    graph: Option<Graph>,
}

/// A real model on one device.
#[derive(Debug)]
pub(crate) struct RealModel {
    precision: Precision,
    placement: WeightPlacement,
    batches: Vec<Batch>,
    arena: CudaSlice<u8>,
    staging_in: PinnedHostSlice<u8>,
    staging_out: PinnedHostSlice<u8>,
    /// Values of one request's input.
    in_values: usize,
    /// Whether every batch size ran once eagerly (the first LOAD does it, before the
    /// first capture, so that the libraries' lazy set-up is not captured).
    warmed: bool,
}

impl RealModel {
    /// Import the ONNX file, plan and prepare every batch size of `profile`, and return
    /// the model with the host image of its weights (to be copied at each LOAD).
    pub(crate) fn new(
        ctx: &Arc<CudaContext>,
        stream: &Arc<CudaStream>,
        libs: &Libraries,
        profile: &ModelProfile,
        path: &Path,
        page_size: u64,
    ) -> Result<(Self, Vec<u8>), ExecError> {
        let fail = |call: &'static str| move |e: String| ExecError::Call { call, status: e };
        let precision = configured_precision(path)?;
        let model = ImportedModel::import_file(&profile.name, path, &ImportLimits::default())
            .map_err(|e| e.to_string())
            .map_err(fail("importing the model"))?;
        let mut batches = Vec::with_capacity(profile.batches.len());
        for b in &profile.batches {
            let plan = Plan::build(&model, b.batch_size as usize, precision)
                .map_err(|e| e.to_string())
                .map_err(fail("planning the model"))?;
            let schedule = Schedule::build(&plan)?;
            let prepared = Prepared::new(libs, &plan, &schedule)?;
            tracing::debug!(
                model = %profile.name,
                batch = b.batch_size,
                launches = schedule.launches.len(),
                workspace = prepared.workspace,
                "CUDA executor prepared"
            );
            batches.push(Batch {
                plan,
                prepared,
                graph: None,
            });
        }
        let first = batches.first().ok_or_else(|| ExecError::Call {
            call: "planning the model",
            status: "the profile has no batch sizes".into(),
        })?;
        let sizes: Vec<u64> = first.plan.weights.iter().map(|w| w.bytes).collect();
        if batches.iter().any(|b| {
            b.plan
                .weights
                .iter()
                .map(|w| w.bytes)
                .ne(sizes.iter().copied())
        }) {
            return Err(fail("planning the model")(
                "the batch sizes' plans hold different weights".into(),
            ));
        }
        let placement = pack_weights(&sizes, page_size)
            .map_err(|e| e.to_string())
            .map_err(fail("placing the weights"))?;
        let granted = profile.weights_bytes.div_ceil(page_size);
        if u64::from(placement.pages) > granted {
            return Err(fail("placing the weights")(format!(
                "the weights need {} pages of {page_size} bytes in the device layout, the profile's \
                 {} bytes grant {granted}",
                placement.pages, profile.weights_bytes
            )));
        }
        let image = host_image(&first.plan, &placement)?;
        let eb = element_bytes(precision) as usize;
        let per = |bytes: u64, batch: usize| bytes as usize / eb / batch.max(1);
        let in_values = per(first.plan.input.bytes, first.plan.batch_size);
        let out_values = per(first.plan.output.bytes, first.plan.batch_size);
        if in_values * 4 != profile.input_bytes as usize
            || out_values * 4 != profile.output_bytes as usize
        {
            return Err(fail("planning the model")(format!(
                "the plan takes {} fp32 input and {} output bytes per request, the profile says {} and {}",
                in_values * 4,
                out_values * 4,
                profile.input_bytes,
                profile.output_bytes
            )));
        }
        let max =
            |f: fn(&Plan) -> u64| batches.iter().map(|b| f(&b.plan)).max().unwrap_or(0) as usize;
        let arena = stream
            .alloc_zeros::<u8>(max(|p| p.arena_bytes).max(1))
            .map_err(|e| fail("cuMemAlloc")(format!("{e:?}")))?;
        // SAFETY: uninitialised pinned memory, fully written (`fill`) before any use.
        let mut staging_in = unsafe { ctx.alloc_pinned::<u8>(max(|p| p.input.bytes).max(1)) }
            .map_err(|e| fail("cuMemHostAlloc")(format!("{e:?}")))?;
        // SAFETY: as above.
        let mut staging_out = unsafe { ctx.alloc_pinned::<u8>(max(|p| p.output.bytes).max(1)) }
            .map_err(|e| fail("cuMemHostAlloc")(format!("{e:?}")))?;
        for s in [&mut staging_in, &mut staging_out] {
            s.as_mut_slice()
                .map_err(|e| fail("cuMemHostAlloc")(format!("{e:?}")))?
                .fill(0);
        }
        Ok((
            Self {
                precision,
                placement,
                batches,
                arena,
                staging_in,
                staging_out,
                in_values,
                warmed: false,
            },
            image,
        ))
    }

    /// After a LOAD into `pages` of the slab at `slab_base` (its copies enqueued on
    /// `stream`): record every batch size's graph on `stream` with the weights where
    /// this LOAD puts them; the first time, run each batch size once eagerly first. The graphs replaced
    /// are returned (the caller drops them once no replay of them can be in flight).
    pub(crate) fn capture(
        &mut self,
        libs: &Libraries,
        stream: &Arc<CudaStream>,
        pages: &[u32],
        slab_base: u64,
    ) -> Result<Vec<Graph>, ExecError> {
        let addresses = weight_addresses(&self.placement, pages, slab_base)?;
        let (arena, _sync) = self.arena.device_ptr(stream);
        if !self.warmed {
            libs.set_stream(stream)?;
            for b in &self.batches {
                // Ordered after the LOAD's copies on the same stream: real weights.
                b.prepared.record(libs, stream, arena, &addresses)?;
            }
            self.warmed = true;
        }
        let mut old = Vec::new();
        for b in &mut self.batches {
            let graph = Graph::capture(&b.prepared, libs, stream, arena, &addresses)?;
            old.extend(b.graph.replace(graph));
        }
        Ok(old)
    }

    /// Stage an INFER of batch `index`: `input` (the requests' fp32 values, empty for
    /// zeros) written in the plan's precision into the pinned input buffer, the rest of
    /// the batch zeroed. Host work only: call before the INFER's start event.
    pub(crate) fn stage_input(&mut self, index: usize, input: &[u8]) -> Result<(), ExecError> {
        let b = self.batches.get(index).ok_or_else(|| ExecError::Call {
            call: "INFER",
            status: format!("no batch index {index}"),
        })?;
        let item = self.in_values * 4;
        let requests = input.len() / item.max(1);
        if requests > b.plan.batch_size || !input.len().is_multiple_of(item.max(1)) {
            return Err(ExecError::Call {
                call: "INFER",
                status: format!(
                    "{} input bytes for a batch of {} requests of {item}",
                    input.len(),
                    b.plan.batch_size
                ),
            });
        }
        let eb = element_bytes(self.precision) as usize;
        let in_bytes = b.plan.input.bytes as usize;
        let host = self
            .staging_in
            .as_mut_slice()
            .map_err(|e| ExecError::Call {
                call: "staging",
                status: format!("{e:?}"),
            })?;
        let host = &mut host[..in_bytes];
        let filled = requests * self.in_values * eb;
        match self.precision {
            Precision::Fp32 => host[..filled].copy_from_slice(input),
            Precision::Fp16 => {
                for (src, dst) in input
                    .chunks_exact(4)
                    .zip(host[..filled].chunks_exact_mut(2))
                {
                    let v = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
                    dst.copy_from_slice(&f16_bits(v).to_le_bytes());
                }
            }
        }
        host[filled..].fill(0);
        Ok(())
    }

    /// Enqueue the staged INFER of batch `index` on `stream`: copy the input in, replay
    /// the graph, copy the output back to the pinned output buffer.
    pub(crate) fn enqueue(
        &mut self,
        index: usize,
        stream: &Arc<CudaStream>,
    ) -> Result<(), ExecError> {
        let b = self.batches.get(index).ok_or_else(|| ExecError::Call {
            call: "INFER",
            status: format!("no batch index {index}"),
        })?;
        let graph = b.graph.as_ref().ok_or_else(|| ExecError::Call {
            call: "INFER",
            status: "no graph captured (the model is not loaded)".into(),
        })?;
        let host = self.staging_in.as_slice().map_err(|e| ExecError::Call {
            call: "staging",
            status: format!("{e:?}"),
        })?;
        let host = &host[..b.plan.input.bytes as usize];
        let (arena, _sync) = self.arena.device_ptr(stream);
        // SAFETY: the destination is the plan's input span inside the arena (checked by
        // `Schedule`); the source is pinned memory owned by `self`, not written again
        // until this stream has passed the INFER's end event (the engine starts one INFER
        // at a time and reads its output only after completion).
        unsafe { dres::memcpy_htod_async(arena + b.plan.input.offset, host, stream.cu_stream()) }
            .map_err(|e| ExecError::Call {
            call: "cuMemcpyHtoDAsync",
            status: format!("{e:?}"),
        })?;
        graph.launch(stream)?;
        let out = self
            .staging_out
            .as_mut_slice()
            .map_err(|e| ExecError::Call {
                call: "staging",
                status: format!("{e:?}"),
            })?;
        let out = &mut out[..b.plan.output.bytes as usize];
        // SAFETY: the source is the plan's output span in the arena; the destination is
        // pinned memory owned by `self`, read only after the INFER completed.
        unsafe { dres::memcpy_dtoh_async(out, arena + b.plan.output.offset, stream.cu_stream()) }
            .map_err(|e| ExecError::Call {
            call: "cuMemcpyDtoHAsync",
            status: format!("{e:?}"),
        })?;
        Ok(())
    }

    /// Write the last INFER's outputs as fp32 into `output` (at most the batch's).
    pub(crate) fn copy_output(&self, output: &mut [u8]) -> Result<(), ExecError> {
        let eb = element_bytes(self.precision) as usize;
        let staged = self.staging_out.as_slice().map_err(|e| ExecError::Call {
            call: "staging",
            status: format!("{e:?}"),
        })?;
        let values = output.len() / 4;
        if values * eb > staged.len() {
            return Err(ExecError::Call {
                call: "copying the output",
                status: format!(
                    "{} bytes asked, the batch has {}",
                    output.len(),
                    staged.len() / eb * 4
                ),
            });
        }
        let mut one = [0f32; 1];
        for (i, dst) in output.chunks_exact_mut(4).enumerate() {
            decode(&staged[i * eb..(i + 1) * eb], self.precision, &mut one);
            dst.copy_from_slice(&one[0].to_le_bytes());
        }
        Ok(())
    }
}
