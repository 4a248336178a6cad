//! Model profiles from a file, and model instances spread over profiles.
//!
//! The file is JSON: an object with a `profiles` array; times are milliseconds.
//!
//! ```json
//! { "profiles": [ {
//!     "name": "resnet50_v2", "weights_bytes": 102160300,
//!     "input_bytes": 602112, "output_bytes": 4000, "load_ms": 8.37,
//!     "batches": [ { "batch_size": 1, "exec_ms": 3.32 }, { "batch_size": 2, "exec_ms": 5.27 } ]
//! } ] }
//! ```
//!
//! Unknown fields are errors (a typo must not silently drop a setting), and every
//! profile must pass [`ModelProfile::validate`].

use clockwork_core::model::{BatchProfile, ModelProfile, ProfileError};
use clockwork_core::rng::Rng;
use clockwork_core::time::Nanos;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::path::Path;
use thiserror::Error;

/// Why a profiles file is unusable.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProfilesError {
    /// Could not read the file.
    #[error("{origin}: {source}")]
    Io {
        /// The file.
        origin: String,
        /// The error.
        source: std::io::Error,
    },
    /// Not valid JSON, or not the expected shape (the message has line and column).
    #[error("{origin}: {source}")]
    Json {
        /// The file.
        origin: String,
        /// The error.
        source: serde_json::Error,
    },
    /// A time that is negative, not finite, or too large.
    #[error("{origin}: profile `{name}`: {what} = {value} ms is not a positive finite time")]
    BadTime {
        /// The file.
        origin: String,
        /// The profile.
        name: String,
        /// Which time.
        what: String,
        /// Its value.
        value: f64,
    },
    /// A profile that fails validation.
    #[error("{origin}: profile #{index}: {source}")]
    Invalid {
        /// The file.
        origin: String,
        /// 0-based position in the file.
        index: usize,
        /// What is wrong.
        source: ProfileError,
    },
    /// Two profiles with the same name.
    #[error("{origin}: profile `{name}` is defined twice")]
    Duplicate {
        /// The file.
        origin: String,
        /// The name.
        name: String,
    },
    /// No profile at all.
    #[error("{origin}: the `profiles` list is empty")]
    Empty {
        /// The file.
        origin: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBatch {
    batch_size: u32,
    exec_ms: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProfile {
    name: String,
    weights_bytes: u64,
    input_bytes: u32,
    output_bytes: u32,
    load_ms: f64,
    batches: Vec<FileBatch>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    profiles: Vec<FileProfile>,
}

fn ms_to_nanos(origin: &str, name: &str, what: String, ms: f64) -> Result<Nanos, ProfilesError> {
    let ns = ms * 1e6;
    if !ns.is_finite() || ns < 1.0 || ns > u64::MAX as f64 {
        return Err(ProfilesError::BadTime {
            origin: origin.to_owned(),
            name: name.to_owned(),
            what,
            value: ms,
        });
    }
    // Finite and within u64, checked above.
    Ok(Nanos(ns.round() as u64))
}

/// Parse profiles from JSON text; `origin` names it in errors.
pub fn parse_profiles(text: &str, origin: &str) -> Result<Vec<ModelProfile>, ProfilesError> {
    let file: ProfilesFile = serde_json::from_str(text).map_err(|source| ProfilesError::Json {
        origin: origin.to_owned(),
        source,
    })?;
    if file.profiles.is_empty() {
        return Err(ProfilesError::Empty {
            origin: origin.to_owned(),
        });
    }
    let mut out: Vec<ModelProfile> = Vec::with_capacity(file.profiles.len());
    for (index, p) in file.profiles.into_iter().enumerate() {
        let load_time = ms_to_nanos(origin, &p.name, "load_ms".into(), p.load_ms)?;
        let batches = p
            .batches
            .iter()
            .map(|b| {
                Ok(BatchProfile {
                    batch_size: b.batch_size,
                    exec_time: ms_to_nanos(
                        origin,
                        &p.name,
                        format!("exec_ms of batch {}", b.batch_size),
                        b.exec_ms,
                    )?,
                })
            })
            .collect::<Result<Vec<_>, ProfilesError>>()?;
        let profile = ModelProfile {
            name: p.name,
            weights_bytes: p.weights_bytes,
            input_bytes: p.input_bytes,
            output_bytes: p.output_bytes,
            load_time,
            batches,
            source: clockwork_core::ModelSource::Emulated,
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        profile
            .validate()
            .map_err(|source| ProfilesError::Invalid {
                origin: origin.to_owned(),
                index,
                source,
            })?;
        if out.iter().any(|q| q.name == profile.name) {
            return Err(ProfilesError::Duplicate {
                origin: origin.to_owned(),
                name: profile.name,
            });
        }
        out.push(profile);
    }
    Ok(out)
}

/// Read profiles from a JSON file.
pub fn load_profiles(path: &Path) -> Result<Vec<ModelProfile>, ProfilesError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ProfilesError::Io {
        origin: origin.clone(),
        source,
    })?;
    parse_profiles(&text, &origin)
}

/// Profiles as JSON in the file format (e.g. to start a file from the built-ins).
pub fn profiles_to_json(profiles: &[ModelProfile]) -> String {
    let file = ProfilesFile {
        profiles: profiles
            .iter()
            .map(|p| FileProfile {
                name: p.name.clone(),
                weights_bytes: p.weights_bytes,
                input_bytes: p.input_bytes,
                output_bytes: p.output_bytes,
                load_ms: p.load_time.as_millis_f64(),
                batches: p
                    .batches
                    .iter()
                    .map(|b| FileBatch {
                        batch_size: b.batch_size,
                        exec_ms: b.exec_time.as_millis_f64(),
                    })
                    .collect(),
            })
            .collect(),
    };
    // Plain structs of strings and numbers: serialisation cannot fail (non-finite
    // floats, the one failure, serialise as null in serde_json).
    serde_json::to_string_pretty(&file).unwrap_or_default()
}

/// How [`models_spread`] orders instances over profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Spread {
    /// Contiguous copies per profile, in profile order, the counts as even as possible
    /// (earlier profiles get the smaller share, as the original's `azure_parameterized`).
    #[default]
    Blocks,
    /// Instance `i` uses profile `i mod P`.
    RoundRobin,
    /// [`Spread::Blocks`], then shuffled with this seed, so that with the block mapping
    /// of a trace each profile gets busy and idle functions alike. (The original meant
    /// to do this, but its `size % rand()` insertion position almost always appends.)
    Shuffled {
        /// Shuffle seed.
        seed: u64,
    },
}

/// `n` model instances spread over `profiles`: for each instance, its profile's index.
/// Empty if `profiles` is empty.
pub fn models_spread(n: usize, profiles: &[ModelProfile], spread: Spread) -> Vec<usize> {
    let p = profiles.len();
    if p == 0 {
        return Vec::new();
    }
    match spread {
        Spread::RoundRobin => (0..n).map(|i| i % p).collect(),
        Spread::Blocks | Spread::Shuffled { .. } => {
            let mut out = Vec::with_capacity(n);
            let mut left = n;
            for (k, _) in profiles.iter().enumerate() {
                let copies = left / (p - k);
                out.extend(std::iter::repeat_n(k, copies));
                left -= copies;
            }
            if let Spread::Shuffled { seed } = spread {
                out.shuffle(&mut Rng::derive(seed, 0x5_9EAD));
            }
            out
        }
    }
}

/// Consecutive runs of the same profile in `spread`, as `(profile, copies)`: one
/// `RegisterModel { copies }` each, which keeps instance ids in spread order.
pub fn registration_runs(spread: &[usize]) -> Vec<(usize, u32)> {
    let mut runs: Vec<(usize, u32)> = Vec::new();
    for &p in spread {
        match runs.last_mut() {
            Some((q, c)) if *q == p && *c < u32::MAX => *c += 1,
            _ => runs.push((p, 1)),
        }
    }
    runs
}
