//! The per-model configuration file, `DIR/<name>/config.json`: batch sizes, default SLO,
//! copies and precision, with validation and defaults.
//!
//! JSON rather than Triton's `config.pbtxt`: the fields are few and flat, JSON needs no
//! schema compiler, and `serde_json` is already a workspace dependency. Unknown fields
//! are refused so that a misspelt key is an error, not a silently ignored setting.
//!
//! ```json
//! { "max_batch_size": 8, "allowed_batch_sizes": [1, 2, 4, 8],
//!   "default_slo_ms": 50, "copies": 2, "precision": "fp32" }
//! ```
//!
//! Every field is optional. Without `allowed_batch_sizes`, the powers of two up to
//! `max_batch_size` are allowed, plus `max_batch_size` itself; without `max_batch_size`,
//! it is the largest allowed size (16 when neither is given).

use std::fmt;

use clockwork_core::model::MAX_BATCH_SIZE;
use clockwork_core::Nanos;
use serde::{Deserialize, Serialize};

/// Batch size limit when the config file names none.
pub const DEFAULT_MAX_BATCH_SIZE: u32 = 16;
/// SLO of a request that names none, when the config file names none.
pub const DEFAULT_SLO: Nanos = Nanos::from_millis(100);
/// Most copies (instances) of one model a config may ask for.
pub const MAX_COPIES: u32 = 256;
/// Largest default SLO a config may set (one hour).
pub const MAX_SLO_MS: f64 = 3_600_000.0;

/// Numeric precision a model runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats (the CPU backend always runs fp32).
    #[default]
    Fp32,
    /// 16-bit floats: for the GPU backend; the CPU backend runs such a model in fp32.
    Fp16,
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fp32 => "fp32",
            Self::Fp16 => "fp16",
        })
    }
}

/// A model's validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    /// Largest batch the model is run with.
    pub max_batch_size: u32,
    /// Batch sizes with a runnable plan, strictly ascending, the last equal to
    /// `max_batch_size`. A batch of `k` requests runs on the smallest allowed size `>= k`,
    /// padded with zeros.
    pub allowed_batch_sizes: Vec<u32>,
    /// SLO of a request that names none.
    pub default_slo: Nanos,
    /// Copies (instances) of the model to place.
    pub copies: u32,
    /// Precision asked for.
    pub precision: Precision,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
            allowed_batch_sizes: default_batch_sizes(DEFAULT_MAX_BATCH_SIZE),
            default_slo: DEFAULT_SLO,
            copies: 1,
            precision: Precision::Fp32,
        }
    }
}

/// Why a config file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The file's form: everything optional, nothing unknown.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_batch_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allowed_batch_sizes: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_slo_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    copies: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    precision: Option<Precision>,
}

/// Powers of two below `max`, then `max`.
fn default_batch_sizes(max: u32) -> Vec<u32> {
    let mut sizes: Vec<u32> = std::iter::successors(Some(1u32), |b| b.checked_mul(2))
        .take_while(|&b| b < max)
        .collect();
    sizes.push(max);
    sizes
}

impl ModelConfig {
    /// Parse and validate the text of a config file.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile =
            serde_json::from_str(text).map_err(|e| ConfigError(format!("invalid JSON: {e}")))?;
        Self::from_file(file)
    }

    fn from_file(file: ConfigFile) -> Result<Self, ConfigError> {
        let check_size = |what: &str, b: u32| {
            if b == 0 || b > MAX_BATCH_SIZE {
                Err(ConfigError(format!(
                    "{what} {b} is outside 1..={MAX_BATCH_SIZE}"
                )))
            } else {
                Ok(b)
            }
        };
        let (max_batch_size, allowed_batch_sizes) = match (
            file.max_batch_size,
            file.allowed_batch_sizes,
        ) {
            (max, Some(allowed)) => {
                if allowed.is_empty() {
                    return Err(ConfigError("allowed_batch_sizes is empty".into()));
                }
                for &b in &allowed {
                    check_size("allowed batch size", b)?;
                }
                if allowed.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(ConfigError(format!(
                        "allowed_batch_sizes {allowed:?} must be strictly ascending"
                    )));
                }
                let largest = allowed[allowed.len() - 1];
                let max = match max {
                    Some(max) => check_size("max_batch_size", max)?,
                    None => largest,
                };
                if largest != max {
                    return Err(ConfigError(format!(
                        "max_batch_size {max} must equal the largest allowed batch size ({largest}): \
                         every batch up to the maximum needs a plan"
                    )));
                }
                (max, allowed)
            }
            (Some(max), None) => {
                let max = check_size("max_batch_size", max)?;
                (max, default_batch_sizes(max))
            }
            (None, None) => (
                DEFAULT_MAX_BATCH_SIZE,
                default_batch_sizes(DEFAULT_MAX_BATCH_SIZE),
            ),
        };
        let default_slo = match file.default_slo_ms {
            None => DEFAULT_SLO,
            Some(ms) if ms.is_finite() && ms > 0.0 && ms <= MAX_SLO_MS => {
                // In range: at most 3.6e12 ns, exact enough in f64 and far below u64::MAX.
                Nanos((ms * 1e6).round() as u64)
            }
            Some(ms) => {
                return Err(ConfigError(format!(
                    "default_slo_ms {ms} must be positive and at most {MAX_SLO_MS}"
                )))
            }
        };
        let copies = file.copies.unwrap_or(1);
        if copies == 0 || copies > MAX_COPIES {
            return Err(ConfigError(format!(
                "copies {copies} is outside 1..={MAX_COPIES}"
            )));
        }
        Ok(Self {
            max_batch_size,
            allowed_batch_sizes,
            default_slo,
            copies,
            precision: file.precision.unwrap_or_default(),
        })
    }

    /// The config as the JSON text of a config file (every field written).
    pub fn to_json(&self) -> String {
        let file = ConfigFile {
            max_batch_size: Some(self.max_batch_size),
            allowed_batch_sizes: Some(self.allowed_batch_sizes.clone()),
            default_slo_ms: Some(self.default_slo.as_millis_f64()),
            copies: Some(self.copies),
            precision: Some(self.precision),
        };
        // A struct of plain numbers, a vector and an enum always serialises.
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// The allowed batch size a batch of `requests` runs at: the smallest one that holds
    /// them, or `None` past `max_batch_size` (or for zero requests).
    pub fn plan_batch_size(&self, requests: u32) -> Option<u32> {
        if requests == 0 {
            return None;
        }
        self.allowed_batch_sizes
            .iter()
            .copied()
            .find(|&b| b >= requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = ModelConfig::from_json("{}").unwrap();
        assert_eq!(c, ModelConfig::default());
        assert_eq!(c.allowed_batch_sizes, vec![1, 2, 4, 8, 16]);
        assert_eq!(c.default_slo, Nanos::from_millis(100));
    }

    #[test]
    fn full_file() {
        let c = ModelConfig::from_json(
            r#"{"max_batch_size": 6, "allowed_batch_sizes": [1, 3, 6], "default_slo_ms": 2.5,
                "copies": 3, "precision": "fp16"}"#,
        )
        .unwrap();
        assert_eq!(c.max_batch_size, 6);
        assert_eq!(c.allowed_batch_sizes, vec![1, 3, 6]);
        assert_eq!(c.default_slo, Nanos::from_micros(2500));
        assert_eq!(c.copies, 3);
        assert_eq!(c.precision, Precision::Fp16);
        assert_eq!(c.plan_batch_size(2), Some(3));
        assert_eq!(c.plan_batch_size(6), Some(6));
        assert_eq!(c.plan_batch_size(7), None);
        assert_eq!(c.plan_batch_size(0), None);
        assert_eq!(ModelConfig::from_json(&c.to_json()).unwrap(), c);
    }

    #[test]
    fn max_alone_gives_powers_of_two_and_max() {
        let c = ModelConfig::from_json(r#"{"max_batch_size": 12}"#).unwrap();
        assert_eq!(c.allowed_batch_sizes, vec![1, 2, 4, 8, 12]);
        let c = ModelConfig::from_json(r#"{"max_batch_size": 1}"#).unwrap();
        assert_eq!(c.allowed_batch_sizes, vec![1]);
        let c = ModelConfig::from_json(r#"{"allowed_batch_sizes": [2, 5]}"#).unwrap();
        assert_eq!(c.max_batch_size, 5);
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let cases = [
            ("not json", "invalid JSON"),
            (r#"{"max_batch": 4}"#, "unknown field"),
            (r#"{"max_batch_size": 0}"#, "outside"),
            (r#"{"max_batch_size": 100000}"#, "outside"),
            (r#"{"allowed_batch_sizes": []}"#, "empty"),
            (r#"{"allowed_batch_sizes": [4, 2]}"#, "ascending"),
            (r#"{"allowed_batch_sizes": [2, 2]}"#, "ascending"),
            (r#"{"allowed_batch_sizes": [0, 2]}"#, "outside"),
            (
                r#"{"max_batch_size": 8, "allowed_batch_sizes": [1, 4]}"#,
                "must equal",
            ),
            (r#"{"default_slo_ms": 0}"#, "default_slo_ms"),
            (r#"{"default_slo_ms": -3}"#, "default_slo_ms"),
            (r#"{"copies": 0}"#, "copies"),
            (r#"{"precision": "int8"}"#, "unknown variant"),
            (r#"{"max_batch_size": -1}"#, "invalid JSON"),
        ];
        for (text, needle) in cases {
            let err = ModelConfig::from_json(text).unwrap_err();
            assert!(err.0.contains(needle), "{text}: {err}");
        }
    }
}
