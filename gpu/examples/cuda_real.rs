//! Runs a generated real model through the CUDA executor (feature `cuda`) on device 0
//! and writes what `scripts/compare_onnxruntime.py` compares with onnxruntime.
//!
//! `cuda_real KIND PRECISION OUT_DIR [RUNS]` (KIND: small_cnn, resnet18, resnet50;
//! PRECISION: fp32 or fp16) writes the model as a repository entry
//! `OUT_DIR/<kind>_<precision>/1/model.onnx` (with its config.json), registers it,
//! LOADs it (which captures one CUDA graph per batch size), then for batch sizes 1, 16
//! and 32 writes `input_b<B>.bin` (seeded values, fp32, NCHW), runs RUNS INFERs and
//! writes the last one's output as `output_b<B>.bin` (fp32). Prints one JSON line per
//! batch size with the device-measured p50/p99 and the LOAD time.

use clockwork_core::{ActionId, BatchProfile, GpuId, ModelId, Nanos, Window, WorkerStatus};
use clockwork_gpu::{DeviceAction, DeviceConfig, DeviceOp, DeviceSet};
use clockwork_models::{
    core_profile, write_entry, ImportLimits, ImportedModel, ModelKind, Precision,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const BATCHES: [u32; 3] = [1, 16, 32];

fn values(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(n * 4);
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn percentile(sorted: &[Nanos], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].get() as f64 / 1e6
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: cuda_real KIND fp32|fp16 OUT_DIR [RUNS]".into());
    }
    let kind: ModelKind = args[1]
        .replace('-', "_")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let precision = match args[2].as_str() {
        "fp32" => Precision::Fp32,
        "fp16" => Precision::Fp16,
        p => return Err(format!("precision `{p}`: fp32 or fp16")),
    };
    let out = PathBuf::from(&args[3]);
    let runs: usize = args
        .get(4)
        .map_or(Ok(30), |r| r.parse())
        .map_err(|e| format!("{e}"))?;
    let name = format!("{}_{}", kind.name(), args[2]);
    let mut config = kind.default_config();
    config.precision = precision;
    let path = write_entry(&out, &name, 1, &kind.onnx_bytes(7), Some(&config))
        .map_err(|e| e.to_string())?;
    let model = ImportedModel::import_file(&name, &path, &ImportLimits::default())
        .map_err(|e| e.to_string())?;
    let mut profile = core_profile(model.metadata(), &config, &path).map_err(|e| e.to_string())?;
    profile.batches = BATCHES
        .iter()
        .map(|&b| BatchProfile {
            batch_size: b,
            exec_time: Nanos::from_millis(1),
        })
        .collect();
    let id = ModelId(1);
    let (mut set, mut done) =
        DeviceSet::start(DeviceConfig::cuda(vec![0])).map_err(|e| e.to_string())?;
    set.register_model(id, profile.clone())
        .map_err(|e| e.to_string())?;
    let mut next = 0u64;
    let mut submit = |set: &mut DeviceSet, op: DeviceOp| {
        next += 1;
        set.submit(DeviceAction {
            action: ActionId(next),
            gpu: GpuId(0),
            window: Window::ANY,
            op,
        })
        .map_err(|e| e.to_string())
    };
    let wait = Duration::from_secs(120);
    submit(&mut set, DeviceOp::Load { model: id })?;
    let load = done.recv_timeout(wait).map_err(|e| e.to_string())?;
    if load.status != WorkerStatus::Success {
        return Err(format!(
            "LOAD failed: {:?} (see the log above)",
            load.status
        ));
    }
    let dir = path
        .parent()
        .and_then(|p| p.parent())
        .unwrap_or(&out)
        .to_path_buf();
    for &b in &BATCHES {
        let input = values(b as usize * profile.input_bytes as usize / 4, u64::from(b));
        std::fs::write(dir.join(format!("input_b{b}.bin")), &input).map_err(|e| e.to_string())?;
        let mut times = Vec::with_capacity(runs);
        let mut last = Vec::new();
        for _ in 0..runs.max(1) {
            submit(
                &mut set,
                DeviceOp::Infer {
                    model: id,
                    batch_size: b,
                    input: input.clone(),
                    output: vec![0; (profile.output_bytes * b) as usize],
                },
            )?;
            let c = done.recv_timeout(wait).map_err(|e| e.to_string())?;
            if c.status != WorkerStatus::Success {
                return Err(format!("INFER b{b} failed: {:?}", c.status));
            }
            times.push(c.timing.duration);
            last = c.output;
        }
        std::fs::write(dir.join(format!("output_b{b}.bin")), &last).map_err(|e| e.to_string())?;
        times.sort();
        println!(
            "{{\"model\":\"{}\",\"precision\":\"{}\",\"batch\":{b},\"runs\":{},\"p50_ms\":{:.4},\"p99_ms\":{:.4},\"load_ms\":{:.3},\"onnx\":\"{}\"}}",
            kind.name(),
            args[2],
            times.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            load.timing.duration.get() as f64 / 1e6,
            path.display()
        );
    }
    set.shutdown();
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
