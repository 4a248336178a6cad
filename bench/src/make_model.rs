//! `clockwork-bench make-model`: writes a generated ONNX model (seeded random weights,
//! built in Rust, nothing downloaded) as an entry of a model repository in Triton's
//! layout, ready for `clockwork-controller --model-repository DIR`.

use anyhow::Context as _;
use clockwork_models::{make_model, write_entry, ModelKind};
use std::path::PathBuf;

/// Arguments of `make-model`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct MakeModelArgs {
    /// What to generate: identity, small_cnn (also small-cnn), resnet18 or resnet50.
    #[arg(value_parser = parse_kind)]
    kind: ModelKind,
    /// The model repository (created if missing); the entry is `OUT/<name>/1/model.onnx`.
    #[arg(long)]
    out: PathBuf,
    /// Seed of the weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Entry name (default: the kind's name).
    #[arg(long)]
    name: Option<String>,
}

fn parse_kind(s: &str) -> Result<ModelKind, String> {
    s.replace('-', "_").parse().map_err(|e| format!("{e}"))
}

/// Writes the entry and says where.
pub(crate) fn run(args: &MakeModelArgs) -> anyhow::Result<()> {
    let path = match &args.name {
        None => make_model(args.kind, &args.out, args.seed),
        Some(name) => {
            if !clockwork_models::repository::is_valid_model_name(name) {
                anyhow::bail!("`{name}` is not a valid model name (1 to 128 of A-Z a-z 0-9 _ . -, not starting with `.`)");
            }
            write_entry(
                &args.out,
                name,
                1,
                &args.kind.onnx_bytes(args.seed),
                Some(&args.kind.default_config()),
            )
        }
    }
    .with_context(|| format!("writing the model into {}", args.out.display()))?;
    println!("{}", path.display());
    Ok(())
}
