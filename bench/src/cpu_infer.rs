//! `clockwork-bench cpu-infer`: a real model's execution on one pinned core through the
//! CPU device (clockwork-gpu's CPU backend: the engine-thread path a worker uses, LOAD
//! then INFERs) against the baseline of the same tract plans run directly in this
//! process on the same core; then the serving overhead of a controller and a `--cpu 1`
//! worker over HTTP (Open Inference Protocol, binary tensors, keep-alive, one request
//! at a time): the round trip minus the request's execution.
//!
//! Per batch size it prints execution p50/p99, p99/p50 and the coefficient of variation
//! of both paths, and counts the device's outputs that are bitwise equal to the direct
//! run's (also the HTTP answers'). It also checks that a row's outputs do not depend on
//! the other rows of its batch (what `local --backend cpu` relies on to check answers).
//! Goals are printed with pass/fail; the process does not fail on them.

use crate::cluster::{free_addr, ControllerCommand, WorkerCommand};
use crate::local::cpu::{cores, direct_row, pin, random_values};
use anyhow::{anyhow, bail, Context as _};
use clockwork_bench::report::read_action_log;
use clockwork_core::rng::Rng;
use clockwork_core::telemetry::{ActionLog, ACTION_LOG_FILE};
use clockwork_core::{ActionId, GpuId, ModelId, MonotonicClock, Nanos, Window, WorkerStatus};
use clockwork_gpu::{Completion, Completions, DeviceAction, DeviceConfig, DeviceOp, DeviceSet};
use clockwork_models::{
    core_profile, write_entry, ImportLimits, ImportedModel, ModelKind, ModelRunner, Repository,
    RepositoryEntry,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `cpu-infer`.
#[derive(clap::Args, Debug)]
pub(crate) struct CpuInferArgs {
    /// The model: a repository, one of its entries (`DIR/<name>`) or an entry's
    /// `model.onnx`, as `make-model` writes them. Default: a generated model (--kind) in
    /// a temporary folder.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The entry to use when --model is a repository of several.
    #[arg(long)]
    name: Option<String>,
    /// The model generated when --model is not given.
    #[arg(long, default_value = "small_cnn", value_parser = parse_kind)]
    kind: ModelKind,
    /// Timed runs per batch size, on the device and directly.
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Untimed runs before each batch size's timed ones.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// HTTP round trips for the serving overhead (batch 1); 0 skips that part.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// The core the device and the direct runs use (default: the last one).
    #[arg(long)]
    core: Option<usize>,
    /// Seed of the generated weights and of the inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder for the serving part's logs (default: a temporary one, removed).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_kind(s: &str) -> Result<ModelKind, String> {
    s.replace('-', "_").parse().map_err(|e| format!("{e}"))
}

/// A folder under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("cpu-infer-{}-{t}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Goals (printed with pass/fail).
const GOAL_P99_OVER_P50: f64 = 1.05;
const GOAL_OVERHEAD_P50_US: f64 = 200.0;
/// Distinct batches of inputs each batch size cycles through.
const POOL: usize = 8;
const TOKEN: &str = "bench-cpu-infer";

/// Execution-time statistics of one path at one batch size.
#[derive(Debug, Clone, Copy)]
struct Exec {
    p50: u64,
    p99: u64,
    mean: f64,
    cv: f64,
}

impl Exec {
    fn of(mut ns: Vec<u64>) -> Self {
        ns.sort_unstable();
        let n = ns.len().max(1) as f64;
        let mean = ns.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = ns.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        Self {
            p50: nearest_rank(&ns, 0.5),
            p99: nearest_rank(&ns, 0.99),
            mean,
            cv: if mean > 0.0 { var.sqrt() / mean } else { 0.0 },
        }
    }

    fn spread(&self) -> f64 {
        self.p99 as f64 / self.p50.max(1) as f64
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "p50_us": self.p50 as f64 / 1e3,
            "p99_us": self.p99 as f64 / 1e3,
            "mean_us": self.mean / 1e3,
            "p99_over_p50": self.spread(),
            "cv": self.cv,
        })
    }
}

fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// One batch size's results.
struct BatchResult {
    batch: usize,
    device: Exec,
    direct: Exec,
    compared: usize,
    equal: usize,
    /// Row 0 alone (other rows zero) gives row 0's outputs of the full batch.
    rows_independent: bool,
}

/// The model entry `path` names (see [`CpuInferArgs::model`]).
fn resolve(path: &Path, name: Option<&str>) -> anyhow::Result<RepositoryEntry> {
    let err = |e: clockwork_models::EntryError| anyhow!("{e}");
    if path.is_file() {
        // DIR/<name>/<version>/model.onnx
        let entry_dir = path
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| anyhow!("{} is not inside DIR/<name>/<version>/", path.display()))?;
        let (repo, name) = split_entry(entry_dir)?;
        let entry = Repository::open(repo)?.entry(&name).map_err(err)?;
        if std::fs::canonicalize(&entry.model_path)? != std::fs::canonicalize(path)? {
            bail!(
                "{} is not the served version of `{name}` ({}): pass the entry's folder",
                path.display(),
                entry.model_path.display()
            );
        }
        return Ok(entry);
    }
    let is_entry = std::fs::read_dir(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .filter_map(Result::ok)
        .any(|d| {
            d.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                && d.path().join("model.onnx").is_file()
        });
    if is_entry {
        let (repo, name) = split_entry(path)?;
        return Repository::open(repo)?.entry(&name).map_err(err);
    }
    let repo = Repository::open(path)?;
    if let Some(name) = name {
        return repo.entry(name).map_err(err);
    }
    let good: Vec<RepositoryEntry> = repo.scan()?.into_iter().filter_map(Result::ok).collect();
    match good.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("{} holds no servable model entry", path.display()),
        many => bail!(
            "{} holds {} entries ({}): choose one with --name",
            path.display(),
            many.len(),
            many.iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn split_entry(entry_dir: &Path) -> anyhow::Result<(PathBuf, String)> {
    let name = entry_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("{} has no UTF-8 name", entry_dir.display()))?
        .to_owned();
    let repo = entry_dir
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    Ok((repo, name))
}

/// Submit one action to device 0 and wait for its completion.
fn device_run(
    set: &mut DeviceSet,
    done: &mut Completions,
    id: u64,
    op: DeviceOp,
) -> anyhow::Result<Completion> {
    let now = MonotonicClock::read();
    set.submit(DeviceAction {
        action: ActionId(id),
        gpu: GpuId(0),
        window: Window::new(now, now + Nanos::from_secs(600)),
        op,
    })
    .map_err(|e| anyhow!("submit: {e}"))?;
    let c = done
        .recv_timeout(Duration::from_secs(600))
        .map_err(|e| anyhow!("no completion: {e}"))?;
    if c.action != ActionId(id) {
        bail!("completion of action {:?}, expected {id}", c.action);
    }
    if c.status != WorkerStatus::Success {
        bail!("{:?} failed: {}", c.kind, c.status);
    }
    Ok(c)
}

/// Split a batch of per-request inputs (each the model's inputs concatenated) into one
/// packed buffer per model input.
fn pack_inputs(runner: &ModelRunner, requests: &[u8], batch: usize) -> Vec<Vec<u8>> {
    let meta = runner.metadata();
    let items: Vec<usize> = meta.inputs.iter().map(|t| t.bytes_per_request()).collect();
    let per: usize = items.iter().sum();
    let mut bufs: Vec<Vec<u8>> = items
        .iter()
        .map(|n| Vec::with_capacity(n * batch))
        .collect();
    for r in requests.chunks_exact(per.max(1)) {
        let mut at = 0;
        for (buf, &n) in bufs.iter_mut().zip(&items) {
            buf.extend_from_slice(&r[at..at + n]);
            at += n;
        }
    }
    bufs
}

/// Packed per-output buffers back into per-request concatenated outputs.
fn unpack_outputs(runner: &ModelRunner, outputs: &[Vec<u8>], batch: usize) -> Vec<u8> {
    let items: Vec<usize> = runner
        .metadata()
        .outputs
        .iter()
        .map(|t| t.bytes_per_request())
        .collect();
    let mut v = Vec::new();
    for r in 0..batch {
        for (o, &n) in outputs.iter().zip(&items) {
            v.extend_from_slice(&o[r * n..(r + 1) * n]);
        }
    }
    v
}

/// Time `runs` (after `warmup`) direct runs of the pool's batches on the calling thread;
/// returns the durations and each pool entry's outputs (per request, concatenated).
fn direct_runs(
    runner: &mut ModelRunner,
    pool: &[Vec<u8>],
    batch: usize,
    warmup: usize,
    runs: usize,
) -> anyhow::Result<(Vec<u64>, Vec<Vec<u8>>)> {
    let packed: Vec<Vec<Vec<u8>>> = pool.iter().map(|p| pack_inputs(runner, p, batch)).collect();
    let mut outputs: Vec<Vec<u8>> = runner
        .metadata()
        .outputs
        .iter()
        .map(|t| vec![0; t.bytes_per_request() * batch])
        .collect();
    let mut firsts: Vec<Option<Vec<u8>>> = vec![None; pool.len()];
    let mut times = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let k = i % pool.len();
        let ins: Vec<&[u8]> = packed[k].iter().map(Vec::as_slice).collect();
        let mut outs: Vec<&mut [u8]> = outputs.iter_mut().map(Vec::as_mut_slice).collect();
        let t0 = Instant::now();
        runner.run(batch, &ins, &mut outs)?;
        let ns = t0.elapsed().as_nanos() as u64;
        if i >= warmup {
            times.push(ns);
        }
        if firsts[k].is_none() {
            firsts[k] = Some(unpack_outputs(runner, &outputs, batch));
        }
    }
    Ok((
        times,
        firsts.into_iter().map(Option::unwrap_or_default).collect(),
    ))
}

pub(crate) fn run(args: &CpuInferArgs) -> anyhow::Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let n_cores = cores();
    let core = args.core.unwrap_or(n_cores - 1);
    if core >= n_cores {
        bail!("--core {core}: this machine has {n_cores} cores");
    }
    let tmp = TempDir::new()?;
    let entry = match &args.model {
        Some(p) => resolve(p, args.name.as_deref())?,
        None => {
            let repo = tmp.path().join("models");
            clockwork_models::make_model(args.kind, &repo, args.seed)?;
            Repository::open(&repo)?
                .entry(args.kind.name())
                .map_err(|e| anyhow!("{e}"))?
        }
    };
    let imported = entry
        .import(&ImportLimits::default())
        .map_err(|e| anyhow!("{e}"))?;
    let sizes: Vec<usize> = entry
        .config
        .allowed_batch_sizes
        .iter()
        .map(|&b| b as usize)
        .collect();
    let profile = core_profile(imported.metadata(), &entry.config, &entry.model_path)
        .map_err(|e| anyhow!("{e}"))?;
    eprintln!(
        "cpu-infer: model {} ({}), batch sizes {sizes:?}, core {core}, {} runs each (+{} warm-up)",
        entry.name,
        entry.model_path.display(),
        args.runs,
        args.warmup
    );
    let batches = execution(args, &imported, &profile, &sizes, core)?;
    let serving = if args.requests > 0 {
        Some(serving(
            args,
            &entry,
            &imported,
            core,
            &batches,
            tmp.path(),
        )?)
    } else {
        None
    };
    print_and_json(args, &entry, core, &batches, serving.as_ref());
    Ok(())
}

/// The device and direct runs of every batch size.
fn execution(
    args: &CpuInferArgs,
    imported: &ImportedModel,
    profile: &clockwork_core::ModelProfile,
    sizes: &[usize],
    core: usize,
) -> anyhow::Result<Vec<BatchResult>> {
    let mut config = DeviceConfig::cpu(vec![core]);
    // Enough pages for the model, whatever the default cache.
    config.cache_bytes = config
        .cache_bytes
        .max(profile.weights_bytes.saturating_mul(2));
    let (mut set, mut done) = DeviceSet::start(config).map_err(|e| anyhow!("{e}"))?;
    set.register_model(ModelId(0), profile.clone())
        .map_err(|e| anyhow!("{e}"))?;
    let mut id = 1u64;
    device_run(
        &mut set,
        &mut done,
        id,
        DeviceOp::Load { model: ModelId(0) },
    )?;
    let mut runner = imported.plan(sizes).map_err(|e| anyhow!("{e}"))?;
    let meta = imported.metadata().clone();
    let mut rng = Rng::derive(args.seed, 0xc0_1f3e);
    let mut results = Vec::new();
    for &b in sizes {
        let pool: Vec<Vec<u8>> = (0..POOL.min(args.runs + args.warmup))
            .map(|_| {
                let mut v = Vec::new();
                for _ in 0..b {
                    for spec in &meta.inputs {
                        random_values(
                            &mut rng,
                            spec.datatype,
                            spec.elements_per_request(),
                            &mut v,
                        )?;
                    }
                }
                Ok(v)
            })
            .collect::<anyhow::Result<_>>()?;
        // The device: the engine-thread path a worker's INFER takes.
        let out_len = profile.output_bytes as usize * b;
        let mut device_times = Vec::with_capacity(args.runs);
        let mut device_outputs: Vec<(usize, Vec<u8>)> = Vec::with_capacity(args.runs);
        for i in 0..args.warmup + args.runs {
            id += 1;
            let k = i % pool.len();
            let c = device_run(
                &mut set,
                &mut done,
                id,
                DeviceOp::Infer {
                    model: ModelId(0),
                    batch_size: b as u32,
                    input: pool[k].clone(),
                    output: vec![0; out_len],
                },
            )?;
            if i >= args.warmup {
                device_times.push(c.timing.duration.get());
                device_outputs.push((k, c.output));
            }
        }
        // The baseline: the same plans, directly, on a thread pinned to the same core.
        let (direct_times, direct_outputs, rows_independent) = std::thread::scope(|s| {
            s.spawn(|| -> anyhow::Result<_> {
                pin(core);
                let (t, o) = direct_runs(&mut runner, &pool, b, args.warmup, args.runs)?;
                let per = meta.input_bytes_per_request();
                let out_per = meta.output_bytes_per_request();
                let row0 = direct_row(&mut runner, &pool[0][..per], b)?;
                Ok((t, o.clone(), o[0][..out_per] == row0[..]))
            })
            .join()
        })
        .map_err(|_| anyhow!("the direct-run thread panicked"))??;
        let equal = device_outputs
            .iter()
            .filter(|(k, out)| *out == direct_outputs[*k])
            .count();
        results.push(BatchResult {
            batch: b,
            device: Exec::of(device_times),
            direct: Exec::of(direct_times),
            compared: device_outputs.len(),
            equal,
            rows_independent,
        });
        eprintln!("  batch {b}: done");
    }
    set.shutdown();
    Ok(results)
}

/// What the serving part measured.
struct Serving {
    requests: usize,
    refused: usize,
    rtt: Exec,
    overhead_p50: f64,
    overhead_p99: f64,
    exec_source: String,
    compared: usize,
    equal: usize,
}

/// A controller and a `--cpu 1` worker as processes; batch-1 requests over HTTP.
fn serving(
    args: &CpuInferArgs,
    entry: &RepositoryEntry,
    imported: &ImportedModel,
    core: usize,
    batches: &[BatchResult],
    tmp: &Path,
) -> anyhow::Result<Serving> {
    // A repository of this one entry, so the controller serves (and the worker
    // measures) nothing else.
    let repo = tmp.join("serve");
    let bytes = std::fs::read(&entry.model_path)?;
    write_entry(
        &repo,
        &entry.name,
        entry.version,
        &bytes,
        Some(&entry.config),
    )?;
    let out = args.out.clone().unwrap_or_else(|| tmp.join("logs"));
    std::fs::create_dir_all(&out)?;
    let n_cores = cores();
    let other = (n_cores > 1).then_some(usize::from(core == 0));
    let mut worker_command = WorkerCommand::new(TOKEN)
        .flag("--cpu", 1)
        .flag("--engine-cpus", core);
    if let Some(c) = other {
        worker_command = worker_command.flag("--net-cpu", c);
    }
    let mut worker = worker_command.start("worker", &out.join("worker.log"))?;
    let http = free_addr()?;
    let mut controller_command =
        ControllerCommand::new(free_addr()?, std::slice::from_ref(&worker), TOKEN)
            .flag("--http", http)
            .flag("--model-repository", repo.display())
            .flag("--log-dir", out.display());
    if let Some(c) = other {
        controller_command = controller_command.flag("--cpu", c);
    }
    let mut controller = controller_command.start(&out.join("controller.log"))?;
    let result = http_round_trips(args, entry, imported, http);
    controller.stop(Duration::from_secs(10))?;
    worker.stop(Duration::from_secs(10))?;
    let RoundTrips {
        rtts,
        successes,
        refused,
        compared,
        equal,
    } = result?;
    // The execution of each measured request: the worker-measured duration of its INFER
    // from the controller's action log, when the log pairs with the requests one to
    // one (one request at a time: the k-th successful INFER is the k-th answer);
    // otherwise the direct run's batch-1 median.
    let actions = read_action_log(&out.join(ACTION_LOG_FILE)).unwrap_or_default();
    let infers: Vec<&ActionLog> = actions
        .iter()
        .filter(|a| a.action_type == ActionLog::INFER && a.succeeded())
        .collect();
    let warm = successes - rtts.len();
    let paired = infers.len() == successes && infers.iter().all(|a| a.batch_size == 1);
    let b1 = batches
        .iter()
        .find(|b| b.batch == 1)
        .map_or(0, |b| b.direct.p50);
    let (overheads, exec_source): (Vec<i64>, String) = if paired {
        (
            rtts.iter()
                .zip(&infers[warm..])
                .map(|(&rtt, a)| rtt as i64 - a.worker_exec_duration.get() as i64)
                .collect(),
            "controller telemetry: the worker-measured INFER duration of each request".into(),
        )
    } else {
        (
            rtts.iter().map(|&rtt| rtt as i64 - b1 as i64).collect(),
            format!(
                "the direct run's batch-1 p50 ({} successful INFERs logged for {successes} answers)",
                infers.len()
            ),
        )
    };
    let mut sorted = overheads;
    sorted.sort_unstable();
    let q = |q: f64| {
        let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
        sorted.get(i).copied().unwrap_or(0) as f64 / 1e3
    };
    Ok(Serving {
        requests: rtts.len(),
        refused,
        rtt: Exec::of(rtts),
        overhead_p50: q(0.5),
        overhead_p99: q(0.99),
        exec_source,
        compared,
        equal,
    })
}

/// What the timed HTTP requests of [`http_round_trips`] gave.
struct RoundTrips {
    /// Round trip of each successful timed request, in ns.
    rtts: Vec<u64>,
    /// Successful answers in all, warm-up included.
    successes: usize,
    /// Timed requests refused (429/503) and sent again.
    refused: usize,
    /// Outputs compared with a direct run, and how many of them were equal.
    compared: usize,
    equal: usize,
}

/// Warm up, then `args.requests` timed batch-1 requests with binary input and output
/// (a refused one is counted and sent again).
fn http_round_trips(
    args: &CpuInferArgs,
    entry: &RepositoryEntry,
    imported: &ImportedModel,
    http: SocketAddr,
) -> anyhow::Result<RoundTrips> {
    let meta = imported.metadata();
    let mut runner = imported.plan(&[1]).map_err(|e| anyhow!("{e}"))?;
    let mut rng = Rng::derive(args.seed, 0x4777);
    let mut bodies = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..POOL {
        let mut header_inputs = Vec::new();
        let mut raw = Vec::new();
        for spec in &meta.inputs {
            let at = raw.len();
            random_values(
                &mut rng,
                spec.datatype,
                spec.elements_per_request(),
                &mut raw,
            )?;
            let mut shape: Vec<i64> = spec.shape.clone();
            if let Some(first) = shape.first_mut() {
                *first = 1;
            }
            header_inputs.push(serde_json::json!({
                "name": spec.name,
                "shape": shape,
                "datatype": spec.datatype.oip_name(),
                "parameters": { "binary_data_size": raw.len() - at },
            }));
        }
        let header = serde_json::json!({
            "inputs": header_inputs,
            "parameters": { "binary_data_output": true },
        });
        let mut body = serde_json::to_vec(&header)?;
        let header_len = body.len();
        expected.push(direct_row(&mut runner, &raw, 1)?);
        body.extend_from_slice(&raw);
        bodies.push((body, header_len));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let base = format!("http://{http}/v2/models/{}", entry.name);
    // Ready once a worker has joined and measured the model.
    let t0 = Instant::now();
    loop {
        if let Ok(r) = agent.get(format!("{base}/ready").as_str()).call() {
            if r.status() == 200 {
                break;
            }
        }
        if t0.elapsed() > Duration::from_secs(120) {
            bail!("`{}` was not ready within 120 s", entry.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("{base}/infer");
    let post = |k: usize| -> anyhow::Result<(u16, Vec<u8>, Option<usize>)> {
        let (body, header_len) = &bodies[k];
        let mut resp = agent
            .post(url.as_str())
            .header("Content-Type", "application/octet-stream")
            .header("Inference-Header-Content-Length", header_len.to_string())
            .send(&body[..])?;
        let json_len = resp
            .headers()
            .get("Inference-Header-Content-Length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let bytes = resp.body_mut().read_to_vec()?;
        Ok((resp.status().as_u16(), bytes, json_len))
    };
    // Warm-up: until 20 successes (the first request loads the model).
    let (mut successes, mut tries) = (0usize, 0usize);
    while successes < 20 {
        tries += 1;
        let (status, body, _) = post(tries % POOL)?;
        if tries > 2_000 {
            bail!(
                "the warm-up requests keep failing ({successes} successes in {tries}), the last: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
        if status == 200 {
            successes += 1;
        } else if status != 429 && status != 503 {
            bail!(
                "HTTP inference failed: {status} {}",
                String::from_utf8_lossy(&body)
            );
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut rtts = Vec::with_capacity(args.requests);
    let (mut compared, mut equal, mut refused) = (0, 0, 0usize);
    let mut i = 0;
    while rtts.len() < args.requests {
        let k = i % POOL;
        i += 1;
        let t = Instant::now();
        let (status, body, json_len) = post(k)?;
        let ns = t.elapsed().as_nanos() as u64;
        if status == 429 || status == 503 {
            // A refusal (the SLO could not be met, e.g. on a busy shared machine) is an
            // answer, not a failure of the measurement: counted, and the request is sent
            // again; only a refusal rate that says the setup is wrong stops the run.
            refused += 1;
            if refused > args.requests.max(20) {
                bail!(
                    "{refused} of {i} HTTP inferences refused, the last: {status} {}",
                    String::from_utf8_lossy(&body)
                );
            }
            continue;
        }
        if status != 200 {
            bail!(
                "HTTP inference {i} failed: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
        successes += 1;
        rtts.push(ns);
        if let Some(n) = json_len {
            compared += 1;
            equal += usize::from(body.get(n..) == Some(&expected[k][..]));
        }
    }
    Ok(RoundTrips {
        rtts,
        successes,
        refused,
        compared,
        equal,
    })
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn print_and_json(
    args: &CpuInferArgs,
    entry: &RepositoryEntry,
    core: usize,
    batches: &[BatchResult],
    serving: Option<&Serving>,
) {
    println!(
        "\ncpu-infer: {} on core {core} (real compute, tract), {} runs per batch size",
        entry.name, args.runs
    );
    println!(
        "{:>6} | {:>10} {:>10} {:>8} {:>7} | {:>10} {:>10} {:>8} {:>7} | {:>9} | {:>9} | rows indep.",
        "batch",
        "dev p50us",
        "dev p99us",
        "p99/p50",
        "cv",
        "dir p50us",
        "dir p99us",
        "p99/p50",
        "cv",
        "dev/dir",
        "equal",
    );
    for b in batches {
        println!(
            "{:>6} | {:>10.1} {:>10.1} {:>8.3} {:>7.4} | {:>10.1} {:>10.1} {:>8.3} {:>7.4} | {:>9.3} | {:>4}/{:<4} | {}",
            b.batch,
            b.device.p50 as f64 / 1e3,
            b.device.p99 as f64 / 1e3,
            b.device.spread(),
            b.device.cv,
            b.direct.p50 as f64 / 1e3,
            b.direct.p99 as f64 / 1e3,
            b.direct.spread(),
            b.direct.cv,
            b.device.p50 as f64 / b.direct.p50.max(1) as f64,
            b.equal,
            b.compared,
            b.rows_independent
        );
    }
    if let Some(s) = serving {
        println!(
            "\nserving (controller + --cpu 1 worker, HTTP binary tensors, keep-alive, one at a time, batch 1, {} requests):",
            s.requests
        );
        println!(
            "  round trip p50 {:.1} us, p99 {:.1} us; overhead (round trip - execution) p50 {:.1} us, p99 {:.1} us",
            s.rtt.p50 as f64 / 1e3,
            s.rtt.p99 as f64 / 1e3,
            s.overhead_p50,
            s.overhead_p99
        );
        println!("  execution from {}", s.exec_source);
        if s.refused > 0 {
            println!("  refused (429/503) and sent again: {}", s.refused);
        }
        println!(
            "  HTTP outputs bitwise equal to the direct run: {}/{}",
            s.equal, s.compared
        );
    }
    let outputs_equal = batches.iter().all(|b| b.equal == b.compared)
        && serving.is_none_or(|s| s.equal == s.compared && s.compared > 0);
    let spread_ok = batches
        .iter()
        .all(|b| b.device.spread() <= GOAL_P99_OVER_P50);
    let overhead_ok = serving.map(|s| s.overhead_p50 <= GOAL_OVERHEAD_P50_US);
    println!("\ngoals:");
    println!(
        "  outputs bitwise equal to the direct run           {}",
        pass(outputs_equal)
    );
    println!(
        "  device execution p99/p50 <= {GOAL_P99_OVER_P50} at every batch size  {}",
        pass(spread_ok)
    );
    match overhead_ok {
        Some(ok) => println!(
            "  serving overhead p50 <= {GOAL_OVERHEAD_P50_US} us                  {}",
            pass(ok)
        ),
        None => println!("  serving overhead: not measured (--requests 0)"),
    }
    let json = serde_json::json!({
        "bench": "cpu-infer",
        "devices": "real (CPU, tract)",
        "model": entry.name,
        "model_path": entry.model_path,
        "core": core,
        "runs": args.runs,
        "warmup": args.warmup,
        "batches": batches.iter().map(|b| serde_json::json!({
            "batch_size": b.batch,
            "device": b.device.json(),
            "direct": b.direct.json(),
            "device_over_direct_p50": b.device.p50 as f64 / b.direct.p50.max(1) as f64,
            "outputs_compared": b.compared,
            "outputs_equal": b.equal,
            "rows_independent": b.rows_independent,
        })).collect::<Vec<_>>(),
        "serving": serving.map(|s| serde_json::json!({
            "requests": s.requests,
            "refused_and_resent": s.refused,
            "rtt": s.rtt.json(),
            "overhead_p50_us": s.overhead_p50,
            "overhead_p99_us": s.overhead_p99,
            "exec_source": s.exec_source,
            "outputs_compared": s.compared,
            "outputs_equal": s.equal,
        })),
        "goals": {
            "outputs_bitwise_equal": outputs_equal,
            "p99_over_p50_max": GOAL_P99_OVER_P50,
            "p99_over_p50_pass": spread_ok,
            "overhead_p50_max_us": GOAL_OVERHEAD_P50_US,
            "overhead_p50_pass": overhead_ok,
        },
    });
    println!("{json}");
}
