//! Generated test models: ONNX files built in Rust from `tract_onnx::pb` types with
//! seeded random weights, written as model repository entries. Nothing is downloaded.
//!
//! Kinds: `identity` (FP32 `[-1, 16]`, output = input), `small_cnn` (FP32
//! `[-1, 3, 64, 64]` -> `[-1, 10]`, a few ms per image on one core in release),
//! `resnet18` and `resnet50` (FP32 `[-1, 3, 224, 224]` -> `[-1, 1000]`, BatchNorm,
//! residual adds, global pool, Gemm). Every kind's batch axis is the `dim_param`
//! `batch`. The same kind and seed always give the same bytes.

mod builder;
mod networks;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clockwork_core::Nanos;
use prost::Message;
use tract_onnx::pb::ModelProto;

use crate::config::{ModelConfig, Precision};
use crate::repository::{CONFIG_FILE, MODEL_FILE};

/// A kind of generated model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// `output = input`, FP32 `[-1, 16]`.
    Identity,
    /// Three conv + ReLU + maxpool stages and a Gemm head on 3 x 64 x 64 images.
    SmallCnn,
    /// ResNet-18-shaped network on 3 x 224 x 224 images.
    Resnet18,
    /// ResNet-50-shaped network on 3 x 224 x 224 images.
    Resnet50,
}

impl ModelKind {
    /// Every kind.
    pub const ALL: [Self; 4] = [
        Self::Identity,
        Self::SmallCnn,
        Self::Resnet18,
        Self::Resnet50,
    ];

    /// The kind's name, also the repository entry's default name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::SmallCnn => "small_cnn",
            Self::Resnet18 => "resnet18",
            Self::Resnet50 => "resnet50",
        }
    }

    /// The ONNX model with weights drawn from `seed`.
    pub fn model_proto(self, seed: u64) -> ModelProto {
        match self {
            Self::Identity => networks::identity(seed),
            Self::SmallCnn => networks::small_cnn(seed),
            Self::Resnet18 => networks::resnet18(seed),
            Self::Resnet50 => networks::resnet50(seed),
        }
    }

    /// The encoded ONNX file.
    pub fn onnx_bytes(self, seed: u64) -> Vec<u8> {
        self.model_proto(seed).encode_to_vec()
    }

    /// The config written with the kind: batch sizes and an SLO that suit a CPU core
    /// (a ResNet-50 batch of 4 takes about a second there).
    pub fn default_config(self) -> ModelConfig {
        let (max_batch_size, allowed_batch_sizes, slo_ms): (u32, Vec<u32>, u64) = match self {
            Self::Identity => (16, vec![1, 2, 4, 8, 16], 10),
            Self::SmallCnn => (8, vec![1, 2, 4, 8], 100),
            Self::Resnet18 => (4, vec![1, 2, 4], 1000),
            Self::Resnet50 => (4, vec![1, 2, 4], 2000),
        };
        ModelConfig {
            max_batch_size,
            allowed_batch_sizes,
            default_slo: Nanos::from_millis(slo_ms),
            copies: 1,
            precision: Precision::Fp32,
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A model kind name that is not one of [`ModelKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model kind `{0}` (known: identity, small_cnn, resnet18, resnet50)")]
pub struct UnknownModelKind(pub String);

impl FromStr for ModelKind {
    type Err = UnknownModelKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownModelKind(s.to_owned()))
    }
}

/// Write a repository entry: `dir/<name>/<version>/model.onnx` holding `onnx`, and
/// `dir/<name>/config.json` when `config` is given. Returns the model file's path.
pub fn write_entry(
    dir: &Path,
    name: &str,
    version: u64,
    onnx: &[u8],
    config: Option<&ModelConfig>,
) -> io::Result<PathBuf> {
    let model_dir = dir.join(name);
    let version_dir = model_dir.join(version.to_string());
    fs::create_dir_all(&version_dir)?;
    let path = version_dir.join(MODEL_FILE);
    fs::write(&path, onnx)?;
    if let Some(config) = config {
        fs::write(model_dir.join(CONFIG_FILE), config.to_json())?;
    }
    Ok(path)
}

/// Write a generated model of `kind` with weights from `seed` as repository entry
/// `dir/<kind name>/1/model.onnx`, with the kind's [`ModelKind::default_config`].
/// Returns the model file's path.
pub fn make_model(kind: ModelKind, dir: &Path, seed: u64) -> io::Result<PathBuf> {
    write_entry(
        dir,
        kind.name(),
        1,
        &kind.onnx_bytes(seed),
        Some(&kind.default_config()),
    )
}
