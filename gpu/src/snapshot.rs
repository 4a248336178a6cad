//! What [`crate::DeviceSet::state`] reads: a per-device snapshot that the device's engine
//! thread republishes whenever residency or page use changes (LOAD start and end,
//! UNLOAD), never on the INFER path. A small mutex keeps free pages and the loaded list
//! consistent with each other; it is taken by the engine only on those cache changes and
//! by readers only in `state()`, so the hot path never contends on it.
//!
//! The snapshot is as of the last action the engine processed: an action still in the
//! command ring is not reflected. A LOAD in flight holds its pages (they count as used)
//! but its model is not yet listed as loaded.

use clockwork_core::{GpuId, GpuState, ModelId};
use std::sync::{Mutex, PoisonError};

/// One device's published cache state.
#[derive(Debug)]
pub(crate) struct Snapshot {
    id: GpuId,
    name: String,
    emulated: bool,
    total_pages: u32,
    cache: Mutex<CacheView>,
}

#[derive(Debug, Clone, Default)]
struct CacheView {
    free_pages: u32,
    loaded: Vec<ModelId>,
}

impl Snapshot {
    /// A snapshot of an empty device.
    pub(crate) fn new(id: GpuId, name: String, emulated: bool, total_pages: u32) -> Self {
        Self {
            id,
            name,
            emulated,
            total_pages,
            cache: Mutex::new(CacheView {
                free_pages: total_pages,
                loaded: Vec::new(),
            }),
        }
    }

    /// Publish the device's current cache state (`loaded` sorted by the caller).
    pub(crate) fn publish(&self, free_pages: u32, loaded: Vec<ModelId>) {
        // A panic while holding this lock cannot leave the two plain fields torn in a
        // way that matters more than the panic itself; keep serving.
        let mut view = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        view.free_pages = free_pages;
        view.loaded = loaded;
    }

    /// The state as last published.
    pub(crate) fn read(&self) -> GpuState {
        let view = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        GpuState {
            id: self.id,
            name: self.name.clone(),
            emulated: self.emulated,
            total_pages: self.total_pages,
            free_pages: view.free_pages,
            loaded: view.loaded,
        }
    }
}
