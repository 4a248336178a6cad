//! Writes every generated model kind with a seeded input batch and tract's outputs for
//! it, for `models/scripts/compare_onnxruntime.py` to check against onnxruntime.
//!
//! Usage: `cargo run --release -p clockwork-models --example export_outputs -- DIR [BATCH]`
//! writes `DIR/<kind>/1/model.onnx`, `DIR/<kind>/input.bin`, `DIR/<kind>/tract_output.bin`
//! (little-endian FP32) and `DIR/<kind>/shapes.json`.

use std::path::PathBuf;
use std::process::ExitCode;

use clockwork_core::rng::Rng;
use clockwork_models::{make_model, ImportLimits, ImportedModel, ModelKind};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: export_outputs DIR [BATCH]");
        return ExitCode::from(2);
    };
    let batch: usize = match args.next().map(|b| b.parse()) {
        None => 2,
        Some(Ok(b)) if b > 0 => b,
        Some(_) => {
            eprintln!("BATCH must be a positive integer");
            return ExitCode::from(2);
        }
    };
    for kind in ModelKind::ALL {
        if let Err(e) = export(&dir, kind, batch) {
            eprintln!("{kind}: {e}");
            return ExitCode::FAILURE;
        }
        println!("{kind}: exported batch {batch}");
    }
    ExitCode::SUCCESS
}

fn export(
    dir: &std::path::Path,
    kind: ModelKind,
    batch: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let path = make_model(kind, dir, 42)?;
    let model = ImportedModel::import_file(kind.name(), &path, &ImportLimits::default())?;
    let meta = model.metadata();
    let mut rng = Rng::new(7);
    let input: Vec<u8> = (0..batch * meta.inputs[0].elements_per_request())
        .flat_map(|_| ((rng.f64() * 2.0 - 1.0) as f32).to_le_bytes())
        .collect();
    let mut output = vec![0u8; batch * meta.outputs[0].bytes_per_request()];
    model
        .plan(&[batch])?
        .run(batch, &[&input], &mut [&mut output])?;
    let entry = dir.join(kind.name());
    std::fs::write(entry.join("input.bin"), &input)?;
    std::fs::write(entry.join("tract_output.bin"), &output)?;
    let shapes = format!(
        "{{\"input\": {:?}, \"output\": {:?}}}",
        meta.inputs[0].batch_shape(batch),
        meta.outputs[0].batch_shape(batch)
    );
    std::fs::write(entry.join("shapes.json"), shapes)?;
    Ok(())
}
