//! The model repository, in Triton's layout: `DIR/<name>/<version>/model.onnx`, the
//! highest numeric version served, and an optional `DIR/<name>/config.json`
//! ([`crate::config`]).
//!
//! Scanning lists every model directory with its own result, so one bad entry never
//! hides the others. Hidden names (a leading `.`) and plain files at the top level are
//! skipped, as are non-numeric names inside a model directory. The highest version
//! directory must hold `model.onnx`: a lower version is never served in its place, so a
//! half-copied new version is an error rather than a silent rollback.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, ModelConfig};
use crate::error::ImportError;
use crate::import::{ImportLimits, ImportedModel};

/// The model file inside a version directory.
pub const MODEL_FILE: &str = "model.onnx";
/// The optional config file inside a model directory.
pub const CONFIG_FILE: &str = "config.json";
/// Longest model name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// A model repository rooted at a directory.
#[derive(Debug, Clone)]
pub struct Repository {
    root: PathBuf,
}

/// One servable model found in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryEntry {
    /// The model's name: its directory's name.
    pub name: String,
    /// The version served: the highest numeric version directory.
    pub version: u64,
    /// `DIR/<name>/<version>/model.onnx`.
    pub model_path: PathBuf,
    /// The config file's settings, or the defaults without one.
    pub config: ModelConfig,
}

impl RepositoryEntry {
    /// Import the entry's model file.
    pub fn import(&self, limits: &ImportLimits) -> Result<ImportedModel, ImportError> {
        ImportedModel::import_file(&self.name, &self.model_path, limits)
    }
}

/// Why one repository entry cannot be served. Every variant names the model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// No directory of that name.
    #[error("model `{name}` is not in the repository")]
    NotFound {
        /// Model name.
        name: String,
    },
    /// A directory name that cannot be a model name.
    #[error("model `{name}`: invalid name: use 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 _ . - (not starting with `.`)")]
    InvalidName {
        /// The name (lossily decoded).
        name: String,
    },
    /// A directory that cannot be read.
    #[error("model `{name}`: cannot read {}: {source}", path.display())]
    Io {
        /// Model name.
        name: String,
        /// What could not be read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// No numeric version directory.
    #[error("model `{name}`: no version directory (expected `<name>/<number>/{MODEL_FILE}`)")]
    NoVersion {
        /// Model name.
        name: String,
    },
    /// The highest version directory has no model file.
    #[error("model `{name}`: version {version} has no {MODEL_FILE} ({})", path.display())]
    MissingModelFile {
        /// Model name.
        name: String,
        /// The highest version.
        version: u64,
        /// The missing file's path.
        path: PathBuf,
    },
    /// The config file is invalid.
    #[error("model `{name}`: {}: {error}", path.display())]
    Config {
        /// Model name.
        name: String,
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        error: ConfigError,
    },
    /// The model file does not import.
    #[error(transparent)]
    Import(#[from] ImportError),
}

impl EntryError {
    /// The model the error is about.
    pub fn name(&self) -> &str {
        match self {
            Self::NotFound { name }
            | Self::InvalidName { name }
            | Self::Io { name, .. }
            | Self::NoVersion { name }
            | Self::MissingModelFile { name, .. }
            | Self::Config { name, .. } => name,
            Self::Import(e) => e.model(),
        }
    }
}

/// Whether `name` can be a model name (it is also a URL path segment).
pub fn is_valid_model_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Repository {
    /// A repository rooted at `root`, which must be a readable directory.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        if !fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("model repository {} is not a directory", root.display()),
            ));
        }
        Ok(Self { root })
    }

    /// The repository's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every model directory, sorted by name, each with its entry or its error. Fails
    /// only when the repository directory itself cannot be listed.
    pub fn scan(&self) -> io::Result<Vec<Result<RepositoryEntry, EntryError>>> {
        let mut dirs = Vec::new();
        for item in fs::read_dir(&self.root)? {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            // Follows symbolic links: a linked model directory is served.
            if fs::metadata(item.path())
                .map(|m| m.is_dir())
                .unwrap_or(false)
            {
                dirs.push((name, item.file_name().to_str().is_some()));
            }
        }
        dirs.sort();
        Ok(dirs
            .into_iter()
            .map(|(name, utf8)| {
                if utf8 {
                    self.entry(&name)
                } else {
                    Err(EntryError::InvalidName { name })
                }
            })
            .collect())
    }

    /// The entry of model `name`.
    pub fn entry(&self, name: &str) -> Result<RepositoryEntry, EntryError> {
        if !is_valid_model_name(name) {
            return Err(EntryError::InvalidName { name: name.into() });
        }
        let dir = self.root.join(name);
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(EntryError::NotFound { name: name.into() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(EntryError::NotFound { name: name.into() })
            }
            Err(source) => {
                return Err(EntryError::Io {
                    name: name.into(),
                    path: dir,
                    source,
                })
            }
        }
        let io_error = |path: &Path| {
            let path = path.to_owned();
            move |source| EntryError::Io {
                name: name.into(),
                path,
                source,
            }
        };
        let mut version = None;
        for item in fs::read_dir(&dir).map_err(io_error(&dir))? {
            let item = item.map_err(io_error(&dir))?;
            let Some(v) = item.file_name().to_str().and_then(parse_version) else {
                continue;
            };
            if fs::metadata(item.path())
                .map(|m| m.is_dir())
                .unwrap_or(false)
            {
                version = version.max(Some(v));
            }
        }
        let version = version.ok_or_else(|| EntryError::NoVersion { name: name.into() })?;
        let model_path = dir.join(version.to_string()).join(MODEL_FILE);
        if !model_path.is_file() {
            return Err(EntryError::MissingModelFile {
                name: name.into(),
                version,
                path: model_path,
            });
        }
        let config_path = dir.join(CONFIG_FILE);
        let config = match fs::read_to_string(&config_path) {
            Ok(text) => ModelConfig::from_json(&text).map_err(|error| EntryError::Config {
                name: name.into(),
                path: config_path,
                error,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => ModelConfig::default(),
            Err(source) => {
                return Err(EntryError::Io {
                    name: name.into(),
                    path: config_path,
                    source,
                })
            }
        };
        Ok(RepositoryEntry {
            name: name.into(),
            version,
            model_path,
            config,
        })
    }

    /// Find model `name` and import its served version.
    pub fn load(
        &self,
        name: &str,
        limits: &ImportLimits,
    ) -> Result<(RepositoryEntry, ImportedModel), EntryError> {
        let entry = self.entry(name)?;
        let model = entry.import(limits)?;
        Ok((entry, model))
    }
}

/// A version directory's number: decimal digits only (`"3"`, `"0012"`).
fn parse_version(name: &str) -> Option<u64> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        for ok in ["resnet50", "a", "cnn_v2.1-small"] {
            assert!(is_valid_model_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "a/b",
            "a b",
            "ü",
            &"x".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(!is_valid_model_name(bad), "{bad}");
        }
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("3"), Some(3));
        assert_eq!(parse_version("0012"), Some(12));
        assert_eq!(parse_version("v1"), None);
        assert_eq!(parse_version("-1"), None);
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("99999999999999999999999"), None);
    }
}
