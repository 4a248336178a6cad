//! `local --backend cpu`: the main job on CPU devices that really compute (tract), not
//! emulated. This module owns what differs from the emulated run: the generated model
//! (written into the run's folder as a model repository), its batch-1 time measured
//! here the way a worker measures it at registration (to size the default rate and
//! SLO), the seeded random inputs the requests carry, and the check of a sample of
//! answers, bit for bit, against a direct run of the same input through the same tract
//! plans. Starting the processes and replaying stays in `local.rs`.

use anyhow::{anyhow, bail, Context as _};
use clockwork_core::rng::Rng;
use clockwork_core::Nanos;
use clockwork_models::{
    make_model, profile_plans, DataType, ImportLimits, MeasuredProfile, ModelKind, ModelRunner,
    ProfileOptions, Repository,
};
use std::path::{Path, PathBuf};

/// What executes the main job's requests.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BackendKind {
    /// Emulated GPUs: timings from the model profiles, zero outputs.
    Emulated,
    /// CPU devices that really compute a generated ONNX model through tract.
    Cpu,
}

/// The flags of `local` that choose and shape the CPU backend.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct CpuArgs {
    /// What executes the requests: `emulated` GPUs (timings from profiles, zero outputs)
    /// or `cpu` devices that really compute a generated ONNX model through tract, one
    /// pinned core each. With `cpu` the defaults become: 1 worker with 1 device, the
    /// poisson workload over the one model, the rate from --load and the SLO from
    /// --slo-factor (both against the model's measured batch-1 time).
    #[arg(long, value_enum, default_value_t = BackendKind::Emulated)]
    pub(crate) backend: BackendKind,
    /// --backend cpu: the generated model (identity, small_cnn, resnet18, resnet50).
    #[arg(long, default_value = "small_cnn", value_parser = parse_kind)]
    pub(crate) model_kind: ModelKind,
    /// --backend cpu: offered load as a fraction of the devices' batch-1 capacity
    /// (devices / measured batch-1 time), when --rate is not given; at most 2000 r/s.
    #[arg(long, default_value_t = 0.6)]
    pub(crate) load: f64,
    /// --backend cpu: the SLO as a multiple of the measured batch-1 time (at least
    /// 10 ms), when --slo-ms is not given.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) slo_factor: f64,
    /// --backend cpu: answers whose outputs are compared bit for bit with a direct run.
    #[arg(long, default_value_t = 64)]
    pub(crate) check_outputs: usize,
}

impl Default for CpuArgs {
    fn default() -> Self {
        Self {
            backend: BackendKind::Emulated,
            model_kind: ModelKind::SmallCnn,
            load: 0.6,
            slo_factor: 10.0,
            check_outputs: 64,
        }
    }
}

impl CpuArgs {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if !(self.load.is_finite() && self.load > 0.0 && self.load <= 10.0) {
            bail!("--load must be in (0, 10]");
        }
        if !(self.slo_factor.is_finite() && self.slo_factor >= 1.0 && self.slo_factor <= 1e6) {
            bail!("--slo-factor must be in [1, 1000000]");
        }
        if self.check_outputs > 100_000 {
            bail!("--check-outputs must be at most 100000");
        }
        Ok(())
    }
}

fn parse_kind(s: &str) -> Result<ModelKind, String> {
    s.replace('-', "_").parse().map_err(|e| format!("{e}"))
}

/// Highest rate the default (--load) gives: the driver, the controller and the worker's
/// network share the machine with the devices.
pub(crate) const MAX_AUTO_RATE: f64 = 2000.0;
/// Lowest SLO the default (--slo-factor) gives: room for the network and the controller's
/// completion buffer.
pub(crate) const MIN_AUTO_SLO: Nanos = Nanos::from_millis(10);
/// Distinct inputs the requests cycle through.
const INPUT_POOL: usize = 32;

/// The model a CPU run serves, ready to feed and to check.
pub(crate) struct CpuModel {
    /// The model repository (the run's `models/` folder).
    pub(crate) repository: PathBuf,
    /// The entry's name, as the controller serves it.
    pub(crate) name: String,
    /// Times measured here, on the first device's core, before the cluster starts.
    pub(crate) measured: MeasuredProfile,
    /// The direct runner: the same plans, run in this process to check answers.
    runner: ModelRunner,
    /// Per-request input bytes of each input pool entry (the model's inputs
    /// concatenated, as a request carries them).
    pub(crate) inputs: Vec<Vec<u8>>,
}

impl std::fmt::Debug for CpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuModel")
            .field("repository", &self.repository)
            .field("name", &self.name)
            .field("measured", &self.measured)
            .field("inputs", &self.inputs.len())
            .finish()
    }
}

impl CpuModel {
    /// The measured batch-1 time (median of the timed runs).
    pub(crate) fn b1(&self) -> Nanos {
        self.measured.batches.first().map_or(Nanos(1), |b| b.p50)
    }

    /// Write `kind` (weights from `seed`) as `out/models/<name>/1/model.onnx`, import it,
    /// and time its plans on a thread pinned to `core` (as a worker's registration does).
    pub(crate) fn prepare(
        out: &Path,
        kind: ModelKind,
        seed: u64,
        core: usize,
    ) -> anyhow::Result<Self> {
        let repository = out.join("models");
        make_model(kind, &repository, seed)
            .with_context(|| format!("writing the model into {}", repository.display()))?;
        let repo = Repository::open(&repository)
            .with_context(|| format!("opening {}", repository.display()))?;
        let (entry, imported) = repo
            .load(kind.name(), &ImportLimits::default())
            .map_err(|e| anyhow!("{e}"))?;
        let sizes: Vec<usize> = entry
            .config
            .allowed_batch_sizes
            .iter()
            .map(|&b| b as usize)
            .collect();
        let (runner, measured) = std::thread::scope(|s| {
            s.spawn(|| {
                pin(core);
                profile_plans(&imported, &sizes, &ProfileOptions::default())
            })
            .join()
        })
        .map_err(|_| anyhow!("the measuring thread panicked"))?
        .map_err(|e| anyhow!("measuring {}: {e}", entry.name))?;
        let inputs = input_pool(&runner, seed)?;
        Ok(Self {
            repository,
            name: entry.name,
            measured,
            runner,
            inputs,
        })
    }

    /// Compare `output`, the answer to a request that carried input `input` and ran in a
    /// batch of `batch` requests, with a direct run of that input. The direct run puts
    /// the input in row 0 of the same planned batch size, the other rows zero: a row's
    /// outputs depend only on its own input (checked by `cpu_infer` and the tests), so
    /// the bytes must be equal.
    pub(crate) fn matches(
        &mut self,
        input: usize,
        batch: u32,
        output: &[u8],
    ) -> anyhow::Result<bool> {
        let expected = direct_row(&mut self.runner, &self.inputs[input], batch as usize)?;
        Ok(expected == output)
    }
}

/// Run `request` (one request's concatenated input bytes) in row 0 of the plan that a
/// batch of `batch` requests runs at, the other rows zero; returns row 0's concatenated
/// outputs.
pub(crate) fn direct_row(
    runner: &mut ModelRunner,
    request: &[u8],
    batch: usize,
) -> anyhow::Result<Vec<u8>> {
    let plan = runner
        .plan_batch_size(batch.max(1))
        .ok_or_else(|| anyhow!("no plan holds a batch of {batch}"))?;
    let meta = runner.metadata().clone();
    let mut inputs: Vec<Vec<u8>> = Vec::with_capacity(meta.inputs.len());
    let mut at = 0;
    for spec in &meta.inputs {
        let n = spec.bytes_per_request();
        let mut buf = vec![0u8; n * plan];
        let part = request
            .get(at..at + n)
            .ok_or_else(|| anyhow!("input is shorter than the model's {at}+{n} bytes"))?;
        buf[..n].copy_from_slice(part);
        inputs.push(buf);
        at += n;
    }
    let mut outputs: Vec<Vec<u8>> = meta
        .outputs
        .iter()
        .map(|s| vec![0u8; s.bytes_per_request() * plan])
        .collect();
    let ins: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
    let mut outs: Vec<&mut [u8]> = outputs.iter_mut().map(Vec::as_mut_slice).collect();
    runner.run(plan, &ins, &mut outs)?;
    Ok(meta
        .outputs
        .iter()
        .zip(&outputs)
        .flat_map(|(s, o)| o[..s.bytes_per_request()].iter().copied())
        .collect())
}

/// Seeded random per-request inputs for the model: floats in [-1, 1) for FP32 and FP64,
/// small non-negative integers for the integer types.
pub(crate) fn input_pool(runner: &ModelRunner, seed: u64) -> anyhow::Result<Vec<Vec<u8>>> {
    let meta = runner.metadata();
    let mut rng = Rng::derive(seed, 0x1_0c41);
    (0..INPUT_POOL)
        .map(|_| {
            let mut bytes = Vec::with_capacity(meta.input_bytes_per_request());
            for spec in &meta.inputs {
                random_values(
                    &mut rng,
                    spec.datatype,
                    spec.elements_per_request(),
                    &mut bytes,
                )?;
            }
            Ok(bytes)
        })
        .collect()
}

/// Append `n` seeded values of `datatype` to `out`.
pub(crate) fn random_values(
    rng: &mut Rng,
    datatype: DataType,
    n: usize,
    out: &mut Vec<u8>,
) -> anyhow::Result<()> {
    for _ in 0..n {
        let unit = rng.f64() * 2.0 - 1.0;
        match datatype {
            DataType::Fp32 => out.extend_from_slice(&(unit as f32).to_le_bytes()),
            DataType::Fp64 => out.extend_from_slice(&unit.to_le_bytes()),
            DataType::Fp16 => bail!("{datatype} inputs are not generated"),
            other => out.extend_from_slice(&rng.below(16).to_le_bytes()[..other.size_bytes()]),
        }
    }
    Ok(())
}

/// Pin the calling thread to `cpu` (best effort: a failure leaves it unpinned).
pub(crate) fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set
        .set(cpu)
        .and_then(|()| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set))
        .is_err()
    {
        tracing::warn!(cpu, "could not pin the thread");
    }
}

/// Cores of this machine (at least 1).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
