//! Registrations made over HTTP, kept across controller restarts (`--state-dir DIR`).
//!
//! The model repository (`--model-repository`) is re-read at every start, so its
//! models come back by themselves. What the repository API registers from a profile
//! (a built-in one or one given in the request) exists only in the scheduler; with a
//! state directory each such registration, and each unload or reload of its
//! instances, is written to `DIR/registrations.json` (a new file renamed over the old,
//! so a crash leaves the old or the new one). At start the registrations are made
//! again in their order, right after the repository's, and the unloaded instances
//! unloaded again. Ids are handed out in order, so they come out as before unless
//! something else (a native client, or a changed repository) registered models in
//! between; then the log says which ids moved.
//!
//! The file is written on the controller's thread: admin requests are rare and the
//! file small (one entry per load request, at most `MAX_COPIES` instances each).

use super::super::{now, Shared};
use clockwork_core::{BatchProfile, ModelId, ModelProfile, ModelSource, Nanos};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The state file's name in the state directory.
pub const STATE_FILE: &str = "registrations.json";
const VERSION: u32 = 1;

/// A profile as the state file keeps it (times in ns, exact).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct SavedProfile {
    name: String,
    weights_bytes: u64,
    input_bytes: u32,
    output_bytes: u32,
    load_time_ns: u64,
    /// `(batch size, execution time in ns)`, ascending.
    batches: Vec<(u32, u64)>,
}

impl SavedProfile {
    fn of(p: &ModelProfile) -> Self {
        Self {
            name: p.name.clone(),
            weights_bytes: p.weights_bytes,
            input_bytes: p.input_bytes,
            output_bytes: p.output_bytes,
            load_time_ns: p.load_time.get(),
            batches: p
                .batches
                .iter()
                .map(|b| (b.batch_size, b.exec_time.get()))
                .collect(),
        }
    }

    fn profile(&self) -> ModelProfile {
        ModelProfile {
            name: self.name.clone(),
            weights_bytes: self.weights_bytes,
            input_bytes: self.input_bytes,
            output_bytes: self.output_bytes,
            load_time: Nanos(self.load_time_ns),
            batches: self
                .batches
                .iter()
                .map(|&(batch_size, ns)| BatchProfile {
                    batch_size,
                    exec_time: Nanos(ns),
                })
                .collect(),
            source: ModelSource::Emulated,
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }
}

/// One load request's registration.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Registration {
    profile: SavedProfile,
    /// The id of its first instance; the others follow.
    first_id: u32,
    copies: u32,
}

#[derive(Serialize, Deserialize, Debug, Default, PartialEq, Eq)]
struct StateDoc {
    version: u32,
    registrations: Vec<Registration>,
    /// Instances (of the registrations above) that are unloaded.
    unloaded: BTreeSet<u32>,
}

/// The registrations made over HTTP and where they are kept.
#[derive(Debug)]
pub(crate) struct SavedRegistrations {
    path: PathBuf,
    doc: StateDoc,
}

/// What a restart re-creates: each registration's profile and copies, in order, and
/// then the instances to unload again.
pub(crate) struct Replay {
    /// `(profile, copies, the first id it had)`.
    pub(crate) registrations: Vec<(ModelProfile, u32, ModelId)>,
    pub(crate) unloaded: Vec<ModelId>,
}

impl SavedRegistrations {
    /// Opens (creating the directory if needed) the state in `dir`; an absent file is
    /// an empty state, an unreadable or malformed one an error (the controller then
    /// refuses to start rather than forget registrations).
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(STATE_FILE);
        let doc = match std::fs::read(&path) {
            Ok(bytes) => {
                let doc: StateDoc = serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                if doc.version != VERSION {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: version {} (this controller reads {VERSION})",
                            path.display(),
                            doc.version
                        ),
                    ));
                }
                doc
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => StateDoc {
                version: VERSION,
                ..StateDoc::default()
            },
            Err(e) => return Err(e),
        };
        Ok(Self { path, doc })
    }

    /// What to register again, in order.
    pub(crate) fn replay(&self) -> Replay {
        Replay {
            registrations: self
                .doc
                .registrations
                .iter()
                .map(|r| (r.profile.profile(), r.copies, ModelId(r.first_id)))
                .collect(),
            unloaded: self.doc.unloaded.iter().map(|&m| ModelId(m)).collect(),
        }
    }

    /// After a replay: the ids each registration got now (in order), replacing the
    /// old ones (unloaded instances move with their registration).
    pub(crate) fn renumber(&mut self, firsts: &[Option<ModelId>]) -> io::Result<()> {
        let mut unloaded = BTreeSet::new();
        let mut kept = Vec::new();
        for (r, first) in self.doc.registrations.iter().zip(firsts) {
            let Some(first) = first else { continue };
            for m in r.first_id..r.first_id.saturating_add(r.copies) {
                if self.doc.unloaded.contains(&m) {
                    unloaded.insert(first.0 + (m - r.first_id));
                }
            }
            kept.push(Registration {
                first_id: first.0,
                ..r.clone()
            });
        }
        self.doc.registrations = kept;
        self.doc.unloaded = unloaded;
        self.save()
    }

    /// Whether `model` belongs to a registration kept here.
    fn holds(&self, model: ModelId) -> bool {
        self.doc
            .registrations
            .iter()
            .any(|r| (r.first_id..r.first_id.saturating_add(r.copies)).contains(&model.0))
    }

    /// A load registered `copies` instances of `profile` from `first`.
    pub(crate) fn registered(
        &mut self,
        profile: &ModelProfile,
        first: ModelId,
        copies: u32,
    ) -> io::Result<()> {
        self.doc.registrations.push(Registration {
            profile: SavedProfile::of(profile),
            first_id: first.0,
            copies,
        });
        self.save()
    }

    /// Instances were unloaded (`unloaded`) or loaded again (`!unloaded`); those not
    /// registered over HTTP are not kept here and are ignored.
    pub(crate) fn set_unloaded(&mut self, models: &[ModelId], unloaded: bool) -> io::Result<()> {
        let mut changed = false;
        for &m in models {
            if !self.holds(m) {
                continue;
            }
            changed |= if unloaded {
                self.doc.unloaded.insert(m.0)
            } else {
                self.doc.unloaded.remove(&m.0)
            };
        }
        if changed {
            self.save()?;
        }
        Ok(())
    }

    /// Writes the state: a new file, synced, renamed over the old one.
    fn save(&self) -> io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&self.doc).map_err(io::Error::other)?;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

impl Shared {
    /// Opens the state in `dir` and registers its registrations again (see the
    /// module's documentation). A registration the scheduler now refuses is logged
    /// and dropped from the state.
    pub(crate) fn restore_registrations(&mut self, dir: &Path) -> io::Result<()> {
        let mut saved = SavedRegistrations::open(dir)?;
        let replay = saved.replay();
        let t = now();
        let mut firsts = Vec::with_capacity(replay.registrations.len());
        for (profile, copies, old) in replay.registrations {
            let name = profile.name.clone();
            match self.sched.register_models(t, profile, copies) {
                Ok(range) => {
                    if range.first == old {
                        tracing::info!(model = %name, copies, first = old.0, "registration restored");
                    } else {
                        tracing::warn!(
                            model = %name, copies, was = old.0, now = range.first.0,
                            "registration restored under new ids (something else registered first)"
                        );
                    }
                    firsts.push(Some(range.first));
                }
                Err(e) => {
                    tracing::warn!(model = %name, error = %e, "saved registration refused; dropped");
                    firsts.push(None);
                }
            }
        }
        saved.renumber(&firsts)?;
        for m in saved.replay().unloaded {
            self.sched.retire_model(t, m);
        }
        self.drain();
        self.registrations = Some(saved);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> ModelProfile {
        clockwork_core::model::builtin_profiles().remove(0)
    }

    #[test]
    fn registrations_survive_a_reopen_and_move_with_their_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SavedRegistrations::open(dir.path()).unwrap();
        s.registered(&profile(), ModelId(5), 3).unwrap();
        s.set_unloaded(&[ModelId(6), ModelId(99)], true).unwrap();
        let s = SavedRegistrations::open(dir.path()).unwrap();
        let r = s.replay();
        assert_eq!(r.registrations.len(), 1);
        assert_eq!(r.registrations[0].0, profile());
        assert_eq!(
            (r.registrations[0].1, r.registrations[0].2),
            (3, ModelId(5))
        );
        // 99 is not an HTTP registration: not kept.
        assert_eq!(r.unloaded, vec![ModelId(6)]);
        let mut s = s;
        s.renumber(&[Some(ModelId(10))]).unwrap();
        let r = SavedRegistrations::open(dir.path()).unwrap().replay();
        assert_eq!(r.registrations[0].2, ModelId(10));
        assert_eq!(r.unloaded, vec![ModelId(11)]);
    }

    #[test]
    fn a_malformed_state_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        assert!(SavedRegistrations::open(dir.path()).is_err());
    }
}
