//! The model repository on the controller (`--model-repository DIR`): every good
//! entry is imported (metadata only: no plans are built) and registered with the
//! scheduler at start; entries can be loaded again (re-read from the directory) and
//! unloaded while serving.
//!
//! Names: each copy is an instance `<name>-<id>`; the bare `<name>` addresses the
//! model as in Triton, and with several copies it routes each request to the copy
//! with the fewest queued requests (ties: the lowest id). A directory name that reads
//! as an instance name (all digits, or ending in `-<digits>`) is refused, so names stay
//! unambiguous. Bad entries are logged with their reason and skipped; they are listed
//! in the repository index as unavailable with that reason.

use super::{now, Shared};
use clockwork_core::{ModelId, ModelProfile, Nanos};
use clockwork_models::repository::EntryError;
use clockwork_models::{core_profile, ImportLimits, Repository};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// The repository and what came of its entries.
#[derive(Debug)]
pub(super) struct ModelRepository {
    repo: Repository,
    /// Registered repository models by name.
    models: BTreeMap<String, RepositoryModel>,
    /// Entries that could not be served, by name, with the reason.
    failed: BTreeMap<String, String>,
}

/// A repository model registered with the scheduler.
#[derive(Debug)]
struct RepositoryModel {
    /// The profile it was registered with (before any worker measured it).
    profile: ModelProfile,
    copies: Vec<ModelId>,
    /// The default SLO of its config.
    default_slo: Nanos,
}

/// Why a repository load did not happen.
#[derive(Debug)]
pub(super) enum RepositoryLoadError {
    /// No entry of that name: other model sources may have it.
    NotInRepository,
    /// The entry is there but cannot be served.
    Bad(String),
}

/// All digits, or ending in `-<digits>`: the form of an instance name.
fn reads_as_instance(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(name) || name.rsplit_once('-').is_some_and(|(_, id)| digits(id))
}

/// One entry of the repository index that is not registered: its name and why.
#[derive(Debug)]
pub(super) struct Unavailable {
    pub(super) name: String,
    pub(super) reason: String,
}

impl ModelRepository {
    /// The repository at `dir`.
    pub(super) fn open(dir: &Path) -> io::Result<Self> {
        Ok(Self {
            repo: Repository::open(dir)?,
            models: BTreeMap::new(),
            failed: BTreeMap::new(),
        })
    }

    /// The copy that serves requests to `name`, if it is a registered repository model
    /// with a copy that is not retired.
    pub(super) fn route(
        &self,
        name: &str,
        sched: &clockwork_scheduler::Scheduler,
    ) -> Option<ModelId> {
        self.models
            .get(name)?
            .copies
            .iter()
            .copied()
            .filter(|&m| !sched.is_retired(m))
            .min_by_key(|&m| (sched.queued(m), m.0))
    }

    /// The bare name of `model` when it is the one copy of a repository model (its
    /// index entry then carries the bare name, as Triton's would).
    pub(super) fn bare_name(&self, model: ModelId) -> Option<&str> {
        self.models
            .iter()
            .find(|(_, m)| m.copies == [model])
            .map(|(name, _)| name.as_str())
    }

    /// The default SLO of the repository model `name`.
    pub(super) fn default_slo(&self, name: &str) -> Option<Nanos> {
        self.models.get(name).map(|m| m.default_slo)
    }

    /// Repository entries that are not registered, with why (a bad entry's reason, or
    /// "not loaded"), sorted by name.
    pub(super) fn unavailable(&self) -> Vec<Unavailable> {
        let mut out = BTreeMap::new();
        for (name, reason) in &self.failed {
            out.insert(name.clone(), reason.clone());
        }
        if let Ok(entries) = self.repo.scan() {
            for e in entries {
                let (name, reason) = match e {
                    Ok(entry) => (entry.name, String::from("not loaded")),
                    Err(e) => (e.name().to_owned(), e.to_string()),
                };
                if !self.models.contains_key(&name) {
                    out.entry(name).or_insert(reason);
                }
            }
        }
        out.into_iter()
            .map(|(name, reason)| Unavailable { name, reason })
            .collect()
    }
}

impl Shared {
    /// Opens the repository at `dir` and registers every good entry; bad ones are
    /// logged with their reason and skipped. Fails only if `dir` cannot be listed.
    pub(super) fn open_repository(&mut self, dir: &Path) -> io::Result<()> {
        let repo = ModelRepository::open(dir)?;
        let entries = repo.repo.scan()?;
        self.repository = Some(repo);
        for e in entries {
            let name = match e {
                Ok(entry) => entry.name,
                Err(e) => {
                    let name = e.name().to_owned();
                    tracing::warn!(model = %name, reason = %e, "repository entry skipped");
                    if let Some(r) = &mut self.repository {
                        r.failed.insert(name, e.to_string());
                    }
                    continue;
                }
            };
            match self.load_from_repository(&name) {
                Ok(ids) => {
                    tracing::info!(model = %name, copies = ids.len(), "repository model registered")
                }
                Err(RepositoryLoadError::Bad(reason)) => {
                    tracing::warn!(model = %name, %reason, "repository entry skipped");
                }
                Err(RepositoryLoadError::NotInRepository) => {
                    tracing::warn!(model = %name, "repository entry vanished while scanning");
                }
            }
        }
        Ok(())
    }

    /// (Re)loads `name` from the repository: imports its model file (metadata only)
    /// and registers its copies. A model already registered with the same profile
    /// and copies is reinstated; one whose file or config changed has its old copies
    /// retired and new ones registered. Returns the copies.
    pub(super) fn load_from_repository(
        &mut self,
        name: &str,
    ) -> Result<Vec<ModelId>, RepositoryLoadError> {
        let Some(repo) = &mut self.repository else {
            return Err(RepositoryLoadError::NotInRepository);
        };
        let imported = match repo.repo.entry(name) {
            Err(EntryError::NotFound { .. }) => return Err(RepositoryLoadError::NotInRepository),
            Err(e) => Err(e.to_string()),
            Ok(_) if reads_as_instance(name) => Err(format!(
                "model `{name}`: a name that is all digits or ends in -<digits> reads as an \
                 instance name; rename the directory"
            )),
            Ok(entry) => entry
                .import(&ImportLimits::default())
                .map_err(|e| e.to_string())
                .and_then(|m| {
                    core_profile(m.metadata(), &entry.config, &entry.model_path)
                        .map_err(|e| e.to_string())
                })
                .map(|p| (p, entry.config)),
        };
        let (profile, config) = match imported {
            Ok(x) => x,
            Err(reason) => {
                repo.failed.insert(name.to_owned(), reason.clone());
                return Err(RepositoryLoadError::Bad(reason));
            }
        };
        let previous = repo.models.remove(name);
        let t = now();
        if let Some(old) = previous {
            if old.profile == profile && old.copies.len() == config.copies as usize {
                for &m in &old.copies {
                    self.sched.reinstate_model(m);
                }
                let ids = old.copies.clone();
                if let Some(r) = &mut self.repository {
                    r.failed.remove(name);
                    r.models.insert(name.to_owned(), old);
                }
                return Ok(ids);
            }
            for &m in &old.copies {
                self.sched.retire_model(t, m);
            }
        }
        let registered = self
            .sched
            .register_models(t, profile.clone(), config.copies);
        self.drain();
        let Some(repo) = &mut self.repository else {
            return Err(RepositoryLoadError::NotInRepository);
        };
        match registered {
            Ok(range) => {
                let copies: Vec<ModelId> = range.iter().collect();
                repo.failed.remove(name);
                repo.models.insert(
                    name.to_owned(),
                    RepositoryModel {
                        profile,
                        copies: copies.clone(),
                        default_slo: config.default_slo,
                    },
                );
                Ok(copies)
            }
            Err(e) => {
                let reason = format!("model `{name}`: {e}");
                repo.failed.insert(name.to_owned(), reason.clone());
                Err(RepositoryLoadError::Bad(reason))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_like_names_are_recognised() {
        assert!(reads_as_instance("12"));
        assert!(reads_as_instance("net-3"));
        assert!(!reads_as_instance("small_cnn"));
        assert!(!reads_as_instance("my-net"));
        assert!(!reads_as_instance("net-"));
    }
}
