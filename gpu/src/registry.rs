//! [`ModelRegistry`]: the model profiles that devices read, by model id, checked as a
//! worker checks a registration (valid profile, no conflicting re-registration).
//!
//! Engine threads keep their own copy, filled through their command rings; devices in
//! virtual time ([`crate::VirtualDevice`]) all read one shared registry, so a
//! simulation of a thousand devices holds each profile once. Copies of a model that
//! share a profile share one allocation ([`ModelRegistry::register`] interns them), so
//! 100,000 instances of three networks take three profiles.

use crate::error::GpuError;
use crate::id_hash::BuildIdHasher;
use clockwork_core::{ModelId, ModelProfile};
use std::collections::HashMap;
use std::sync::Arc;

/// Ids below this are kept in a plain vector indexed by id (controllers number models
/// densely from 0); larger ones in a hash map, so a stray id cannot allocate gigabytes.
const DENSE_IDS: usize = 1 << 20;

/// Profiles by model id: what the device logic reads on every action. A vector indexed
/// by id for the dense ids controllers hand out (8 bytes per id, no hashing), a map for
/// the rest.
#[derive(Debug, Default)]
pub(crate) struct ProfileTable {
    dense: Vec<Option<Arc<ModelProfile>>>,
    sparse: HashMap<ModelId, Arc<ModelProfile>, BuildIdHasher>,
    len: usize,
}

impl ProfileTable {
    /// The profile of `model`, if known.
    pub(crate) fn get(&self, model: &ModelId) -> Option<&Arc<ModelProfile>> {
        let i = model.0 as usize;
        if i < DENSE_IDS {
            self.dense.get(i)?.as_ref()
        } else {
            self.sparse.get(model)
        }
    }

    /// Set the profile of `model`; the one it replaces, if any.
    pub(crate) fn insert(
        &mut self,
        model: ModelId,
        profile: Arc<ModelProfile>,
    ) -> Option<Arc<ModelProfile>> {
        let i = model.0 as usize;
        let old = if i < DENSE_IDS {
            if self.dense.len() <= i {
                self.dense.resize(i + 1, None);
            }
            self.dense[i].replace(profile)
        } else {
            self.sparse.insert(model, profile)
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Models known.
    pub(crate) const fn len(&self) -> usize {
        self.len
    }
}

/// Registered model profiles by model id.
#[derive(Debug, Default)]
pub struct ModelRegistry {
    by_model: ProfileTable,
    /// The distinct profiles, most recently added last (registrations come in runs of
    /// one profile, so the search from the end is short).
    distinct: Vec<Arc<ModelProfile>>,
}

impl ModelRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register (or re-register identically) `model`, as [`crate::DeviceSet::register_model`]
    /// does: [`GpuError::InvalidProfile`] for a profile that fails validation,
    /// [`GpuError::ModelConflict`] for a known id with a different profile. Returns the
    /// registered profile.
    pub fn register(
        &mut self,
        model: ModelId,
        profile: &ModelProfile,
    ) -> Result<&ModelProfile, GpuError> {
        if let Some(known) = self.by_model.get(&model) {
            if **known != *profile {
                return Err(GpuError::ModelConflict(model));
            }
        } else {
            profile
                .validate()
                .map_err(|source| GpuError::InvalidProfile { model, source })?;
            let shared = intern(&mut self.distinct, profile);
            self.by_model.insert(model, shared);
        }
        // Just checked or inserted.
        self.by_model
            .get(&model)
            .map(|p| &**p)
            .ok_or(GpuError::ModelConflict(model))
    }

    /// The profile of `model`, if registered.
    pub fn get(&self, model: ModelId) -> Option<&ModelProfile> {
        self.by_model.get(&model).map(|p| &**p)
    }

    /// Registered models.
    pub const fn len(&self) -> usize {
        self.by_model.len()
    }

    /// True when no model is registered.
    pub const fn is_empty(&self) -> bool {
        self.by_model.len() == 0
    }

    /// Profile allocations held (copies of a model share one).
    pub fn distinct_profiles(&self) -> usize {
        self.distinct.len()
    }

    /// The table the device logic reads.
    pub(crate) const fn profiles(&self) -> &ProfileTable {
        &self.by_model
    }
}

/// How many of the most recent distinct profiles a registration is compared with: enough
/// for runs of copies and small model zoos, bounded for registries of unique profiles.
const INTERN_WINDOW: usize = 16;

/// The shared copy of `profile` among the recent `distinct` ones, added if new.
fn intern(distinct: &mut Vec<Arc<ModelProfile>>, profile: &ModelProfile) -> Arc<ModelProfile> {
    let mut recent = distinct.iter().rev().take(INTERN_WINDOW);
    if let Some(p) = recent.find(|p| ***p == *profile) {
        return Arc::clone(p);
    }
    let p = Arc::new(profile.clone());
    distinct.push(Arc::clone(&p));
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::model::{resnet18, resnet50};

    #[test]
    fn copies_share_a_profile_and_conflicts_are_refused() {
        let mut r = ModelRegistry::new();
        for m in 0..100 {
            let p = if m % 2 == 0 { resnet50() } else { resnet18() };
            r.register(ModelId(m), &p).expect("valid profile");
        }
        assert_eq!(r.len(), 100);
        assert_eq!(r.distinct_profiles(), 2);
        assert!(!r.is_empty());
        assert_eq!(r.get(ModelId(2)), Some(&resnet50()));
        assert!(r.get(ModelId(100)).is_none());
        // Ids far beyond the dense range work too.
        let far = ModelId(u32::MAX - 1);
        r.register(far, &resnet18()).expect("valid profile");
        assert_eq!(r.get(far), Some(&resnet18()));
        assert_eq!(r.len(), 101);
        // Same profile again: fine; another profile under a known id: refused.
        assert!(r.register(ModelId(2), &resnet50()).is_ok());
        assert!(matches!(
            r.register(ModelId(2), &resnet18()),
            Err(GpuError::ModelConflict(ModelId(2)))
        ));
        assert_eq!(r.get(ModelId(2)), Some(&resnet50()), "unchanged");
    }

    #[test]
    fn invalid_profiles_are_refused() {
        let mut r = ModelRegistry::new();
        let mut bad = resnet50();
        bad.batches.clear();
        assert!(matches!(
            r.register(ModelId(1), &bad),
            Err(GpuError::InvalidProfile { .. })
        ));
        assert!(r.is_empty());
    }
}
