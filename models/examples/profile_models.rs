//! Times the generated models on the calling thread with `profile_plans` and prints, per
//! kind, import and LOAD-equivalent times and p50/p99 per batch size.
//!
//! Usage: `cargo run --release -p clockwork-models --example profile_models -- [KIND...]`
//! (default: every kind). Timings are of this machine's CPU, one thread.

use std::process::ExitCode;
use std::time::Instant;

use clockwork_models::{profile_plans, ImportLimits, ImportedModel, ModelKind, ProfileOptions};

fn main() -> ExitCode {
    let kinds: Result<Vec<ModelKind>, _> = std::env::args().skip(1).map(|k| k.parse()).collect();
    let kinds = match kinds {
        Ok(k) if k.is_empty() => ModelKind::ALL.to_vec(),
        Ok(k) => k,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    for kind in kinds {
        let bytes = kind.onnx_bytes(1);
        let start = Instant::now();
        let model = match ImportedModel::import_bytes(kind.name(), &bytes, &ImportLimits::default())
        {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let import = start.elapsed();
        let sizes: Vec<usize> = kind
            .default_config()
            .allowed_batch_sizes
            .iter()
            .map(|&b| b as usize)
            .collect();
        let options = ProfileOptions {
            warmup_runs: 2,
            timed_runs: 10,
            seed: 1,
        };
        match profile_plans(&model, &sizes, &options) {
            Ok((_, profile)) => {
                println!(
                    "{kind}: {} weight bytes, import {:.1} ms, LOAD (plans {sizes:?}) {:.1} ms",
                    profile.weight_bytes,
                    import.as_secs_f64() * 1e3,
                    profile.load_time.as_millis_f64()
                );
                for b in &profile.batches {
                    println!(
                        "  b{}: p50 {:.3} ms, p99 {:.3} ms ({} runs)",
                        b.batch_size,
                        b.p50.as_millis_f64(),
                        b.p99.as_millis_f64(),
                        b.runs
                    );
                }
            }
            Err(e) => {
                eprintln!("{kind}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
