//! The CPU device: real compute, not emulated. Each device is one engine thread pinned
//! to its own core, running one INFER at a time through the model's tract plans
//! (`clockwork_models::ModelRunner`, single-threaded: no thread pool inside an INFER).
//!
//! * **Register** hands the model's ONNX file to the device's loader thread, which
//!   imports it once and keeps the imported model in host memory (the CPU's equivalent of
//!   a GPU's pinned host copy of the weights). An emulated model (a timing table only) is
//!   refused: a CPU device computes, it does not emulate.
//! * **LOAD** asks the loader thread to build one plan per batch size of the profile plus
//!   the scratch buffers an INFER needs; the engine thread polls for the finished runner
//!   (the LOAD timeline overlaps the EXEC timeline, as PCIe copies do on a GPU). Pages
//!   are accounted by the shared device logic from `weights_bytes`, as on a GPU. The
//!   LOAD's duration is the loader's plan-building time.
//! * **UNLOAD** drops the runner (and its scratch buffers).
//! * **INFER** runs synchronously on the engine thread: it re-lays the batch's
//!   concatenated per-request inputs into one packed buffer per model input (scratch
//!   sized at LOAD), runs the plan, and [`DeviceBackend::copy_output`] re-lays the packed
//!   outputs into per-request slices. Its duration is read from the monotonic clock
//!   around the run. The INFER path allocates nothing of its own for models of up to
//!   [`INLINE_TENSORS`] inputs and outputs; tract allocates each intermediate activation
//!   and output tensor of the run and its per-call bookkeeping (see
//!   `clockwork_models::ModelRunner`).
//! * An INFER with no input bytes (a caller that sends none) runs the padded batch on
//!   zeros.

use crate::backend::{DeviceBackend, Timeline};
use crate::error::GpuError;
use clockwork_core::{ModelId, ModelProfile, ModelSource, MonotonicClock, Nanos};
use clockwork_models::{ImportLimits, ImportedModel, ModelRunner};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

/// Inputs or outputs a model may have before an INFER builds its slice list on the heap.
pub(crate) const INLINE_TENSORS: usize = 8;

/// How often a running LOAD is polled (the loader thread cannot wake the engine).
const LOAD_POLL: Nanos = Nanos(200_000);

/// A model ready to run on a CPU device: its plans and the INFER's scratch buffers.
#[derive(Debug)]
struct LoadedModel {
    runner: ModelRunner,
    /// Bytes of one request's item, per input and per output, in model order.
    input_items: Vec<usize>,
    output_items: Vec<usize>,
    /// One packed buffer per input and per output, sized for the largest batch.
    inputs: Vec<Vec<u8>>,
    outputs: Vec<Vec<u8>>,
}

impl LoadedModel {
    fn new(runner: ModelRunner, profile: &ModelProfile) -> Result<Self, GpuError> {
        let meta = runner.metadata();
        let input_items: Vec<usize> = meta.inputs.iter().map(|t| t.bytes_per_request()).collect();
        let output_items: Vec<usize> = meta.outputs.iter().map(|t| t.bytes_per_request()).collect();
        let (in_total, out_total) = (
            input_items.iter().sum::<usize>(),
            output_items.iter().sum::<usize>(),
        );
        if in_total != profile.input_bytes as usize || out_total != profile.output_bytes as usize {
            return Err(GpuError::Model(format!(
                "model `{}`: the file's tensors take {in_total} input and {out_total} output \
                 bytes per request, the profile says {} and {}",
                profile.name, profile.input_bytes, profile.output_bytes
            )));
        }
        let max = runner.max_batch_size();
        Ok(Self {
            inputs: input_items.iter().map(|b| vec![0; b * max]).collect(),
            outputs: output_items.iter().map(|b| vec![0; b * max]).collect(),
            runner,
            input_items,
            output_items,
        })
    }

    /// Run `requests` requests whose concatenated inputs are `input` (empty: zeros).
    fn run(&mut self, requests: usize, input: &[u8]) -> Result<(), GpuError> {
        if input.is_empty() {
            for (buf, item) in self.inputs.iter_mut().zip(&self.input_items) {
                buf[..requests * item].fill(0);
            }
        } else {
            let per_request: usize = self.input_items.iter().sum();
            for (r, request) in input.chunks_exact(per_request).enumerate() {
                let mut at = 0;
                for (buf, &item) in self.inputs.iter_mut().zip(&self.input_items) {
                    buf[r * item..(r + 1) * item].copy_from_slice(&request[at..at + item]);
                    at += item;
                }
            }
        }
        let result = if self.inputs.len() <= INLINE_TENSORS && self.outputs.len() <= INLINE_TENSORS
        {
            let mut ins = self.inputs.iter().zip(&self.input_items);
            let ins: [&[u8]; INLINE_TENSORS] = std::array::from_fn(|_| {
                ins.next()
                    .map_or(&[][..], |(b, item)| &b[..requests * item])
            });
            let mut outs = self.outputs.iter_mut().zip(&self.output_items);
            let mut outs: [&mut [u8]; INLINE_TENSORS] = std::array::from_fn(|_| {
                outs.next()
                    .map_or(&mut [][..], |(b, item)| &mut b[..requests * item])
            });
            let (n_in, n_out) = (self.input_items.len(), self.output_items.len());
            self.runner.run(requests, &ins[..n_in], &mut outs[..n_out])
        } else {
            let ins: Vec<&[u8]> = self
                .inputs
                .iter()
                .zip(&self.input_items)
                .map(|(b, item)| &b[..requests * item])
                .collect();
            let mut outs: Vec<&mut [u8]> = self
                .outputs
                .iter_mut()
                .zip(&self.output_items)
                .map(|(b, item)| &mut b[..requests * item])
                .collect();
            self.runner.run(requests, &ins, &mut outs)
        };
        result
            .map(|_| ())
            .map_err(|e| GpuError::Model(e.to_string()))
    }

    /// Write the last run's outputs for `requests` requests into `output`, request by
    /// request (each the concatenation of its outputs).
    fn copy_output(&self, requests: usize, output: &mut [u8]) -> Result<(), GpuError> {
        let per_request: usize = self.output_items.iter().sum();
        if output.len() != requests * per_request {
            return Err(GpuError::Model(format!(
                "output buffer of {} bytes for {requests} requests of {per_request} bytes",
                output.len()
            )));
        }
        for (r, dst) in output.chunks_exact_mut(per_request).enumerate() {
            let mut at = 0;
            for (buf, &item) in self.outputs.iter().zip(&self.output_items) {
                dst[at..at + item].copy_from_slice(&buf[r * item..(r + 1) * item]);
                at += item;
            }
        }
        Ok(())
    }
}

/// Work for a device's loader thread.
enum LoaderJob {
    /// Import a model's file and keep it.
    Import {
        model: ModelId,
        name: String,
        path: PathBuf,
    },
    /// Build a runner for a LOAD; the result (with the building time) goes to `reply`.
    Build {
        model: ModelId,
        profile: ModelProfile,
        reply: mpsc::Sender<Result<(LoadedModel, Nanos), GpuError>>,
    },
}

/// The loader thread's body: imports and plan building, off the INFER thread.
fn loader_main(jobs: mpsc::Receiver<LoaderJob>) {
    let mut imported: HashMap<ModelId, Result<ImportedModel, String>> = HashMap::new();
    while let Ok(job) = jobs.recv() {
        match job {
            LoaderJob::Import { model, name, path } => {
                let result = ImportedModel::import_file(&name, &path, &ImportLimits::default())
                    .map_err(|e| e.to_string());
                if let Err(e) = &result {
                    tracing::warn!(%model, error = %e, "CPU device could not import model; its LOADs will fail");
                }
                imported.insert(model, result);
            }
            LoaderJob::Build {
                model,
                profile,
                reply,
            } => {
                let start = Instant::now();
                let built = match imported.get(&model) {
                    Some(Ok(m)) => {
                        let sizes: Vec<usize> = profile
                            .batches
                            .iter()
                            .map(|b| b.batch_size as usize)
                            .collect();
                        m.plan(&sizes)
                            .map_err(|e| GpuError::Model(e.to_string()))
                            .and_then(|runner| LoadedModel::new(runner, &profile))
                    }
                    Some(Err(e)) => Err(GpuError::Model(e.clone())),
                    None => Err(GpuError::Model(format!("model {model} was not imported"))),
                };
                let took = Nanos(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
                // The LOAD may have been abandoned: then nobody wants the runner.
                let _ = reply.send(built.map(|m| (m, took.max(Nanos(1)))));
            }
        }
    }
}

/// A LOAD in progress: the model and where its runner will arrive.
type PendingLoad = (
    ModelId,
    mpsc::Receiver<Result<(LoadedModel, Nanos), GpuError>>,
);

/// One CPU device.
#[derive(Debug)]
pub(crate) struct CpuDevice {
    index: u32,
    core: usize,
    jobs: Option<mpsc::Sender<LoaderJob>>,
    loader: Option<JoinHandle<()>>,
    models: HashMap<ModelId, LoadedModel>,
    pcie: Option<PendingLoad>,
    /// The finished INFER: its model, its request count and its result.
    exec: Option<(ModelId, usize, Result<Nanos, GpuError>)>,
    /// The last successful INFER's model and request count, for `copy_output`.
    last: Option<(ModelId, usize)>,
}

impl std::fmt::Debug for LoaderJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Import { model, .. } => write!(f, "Import({model})"),
            Self::Build { model, .. } => write!(f, "Build({model})"),
        }
    }
}

impl CpuDevice {
    /// CPU device number `index`, whose engine thread is pinned to `core`; starts its
    /// loader thread.
    pub(crate) fn new(index: u32, core: usize) -> Result<Self, GpuError> {
        let (jobs, rx) = mpsc::channel();
        let loader = std::thread::Builder::new()
            .name(format!("cw-cpu-loader-{index}"))
            .spawn(move || loader_main(rx))?;
        Ok(Self {
            index,
            core,
            jobs: Some(jobs),
            loader: Some(loader),
            models: HashMap::new(),
            pcie: None,
            exec: None,
            last: None,
        })
    }

    fn send(&self, job: LoaderJob) -> Result<(), GpuError> {
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .ok_or(GpuError::Stopped)
    }
}

impl Drop for CpuDevice {
    fn drop(&mut self) {
        // Closing the job channel ends the loader after its current job.
        self.jobs = None;
        if let Some(t) = self.loader.take() {
            if t.join().is_err() {
                tracing::error!(device = self.index, "CPU loader thread panicked");
            }
        }
    }
}

impl DeviceBackend for CpuDevice {
    fn name(&self) -> String {
        format!("cpu-{} (core {}, real compute)", self.index, self.core)
    }

    fn emulated(&self) -> bool {
        false
    }

    fn register(&mut self, model: ModelId, profile: &ModelProfile) -> Result<(), GpuError> {
        match &profile.source {
            ModelSource::Emulated => Err(GpuError::EmulatedModelOnCpu(model)),
            ModelSource::Onnx { path } => self.send(LoaderJob::Import {
                model,
                name: profile.name.clone(),
                path: PathBuf::from(path),
            }),
        }
    }

    fn start_load(
        &mut self,
        model: ModelId,
        profile: &ModelProfile,
        _pages: &[u32],
        _now: Nanos,
    ) -> Result<(), GpuError> {
        let (reply, rx) = mpsc::channel();
        self.send(LoaderJob::Build {
            model,
            profile: profile.clone(),
            reply,
        })?;
        self.pcie = Some((model, rx));
        Ok(())
    }

    fn start_infer(
        &mut self,
        model: ModelId,
        profile: &ModelProfile,
        batch_index: usize,
        _pages: &[u32],
        input: &[u8],
        _now: Nanos,
    ) -> Result<(), GpuError> {
        let loaded = self
            .models
            .get_mut(&model)
            .ok_or_else(|| GpuError::Model(format!("model {model} has no runner")))?;
        let padded = profile
            .batches
            .get(batch_index)
            .map(|b| b.batch_size as usize)
            .ok_or_else(|| GpuError::InvalidConfig(format!("no batch index {batch_index}")))?;
        let per_request = profile.input_bytes as usize;
        let requests = if input.is_empty() {
            padded
        } else if per_request == 0 || !input.len().is_multiple_of(per_request) {
            return Err(GpuError::Model(format!(
                "{} input bytes are not whole requests of {per_request}",
                input.len()
            )));
        } else {
            input.len() / per_request
        };
        if requests == 0 || requests > padded {
            return Err(GpuError::Model(format!(
                "{requests} requests in a batch of {padded}"
            )));
        }
        let start = MonotonicClock::read();
        let result = loaded.run(requests, input);
        let took = (MonotonicClock::read() - start).max(Nanos(1));
        self.exec = Some((model, requests, result.map(|()| took)));
        Ok(())
    }

    fn copy_output(&mut self, output: &mut [u8]) -> Result<(), GpuError> {
        let (model, requests) = self
            .last
            .ok_or_else(|| GpuError::Model("no INFER to copy outputs from".into()))?;
        let loaded = self
            .models
            .get(&model)
            .ok_or_else(|| GpuError::Model(format!("model {model} has no runner")))?;
        loaded.copy_output(requests, output)
    }

    fn poll(&mut self, timeline: Timeline, _now: Nanos) -> Option<Result<Nanos, GpuError>> {
        match timeline {
            Timeline::Exec => {
                let (model, requests, result) = self.exec.take()?;
                self.last = result.is_ok().then_some((model, requests));
                Some(result)
            }
            Timeline::Pcie => {
                let (model, rx) = self.pcie.as_ref()?;
                let model = *model;
                let result = match rx.try_recv() {
                    Ok(Ok((loaded, took))) => {
                        self.models.insert(model, loaded);
                        Ok(took)
                    }
                    Ok(Err(e)) => Err(e),
                    Err(mpsc::TryRecvError::Empty) => return None,
                    Err(mpsc::TryRecvError::Disconnected) => Err(GpuError::Stopped),
                };
                self.pcie = None;
                Some(result)
            }
        }
    }

    fn next_check(&self, timeline: Timeline, now: Nanos) -> Nanos {
        match timeline {
            Timeline::Exec => now,
            Timeline::Pcie => now + LOAD_POLL,
        }
    }

    fn abort(&mut self, timeline: Timeline) {
        match timeline {
            Timeline::Exec => self.exec = None,
            // The loader finishes the build and drops it: nobody receives it.
            Timeline::Pcie => self.pcie = None,
        }
    }

    fn release(&mut self, model: ModelId) {
        self.models.remove(&model);
        if self.last.is_some_and(|(m, _)| m == model) {
            self.last = None;
        }
    }
}
