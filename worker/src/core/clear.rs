//! CLEAR CACHE: unload, on every GPU, every resident model, and also every model a LOAD
//! already handed to a device will bring in. That unload is queued with the LOAD's
//! `earliest`, so it runs as soon as the LOAD starts and supersedes it (the LOAD fails
//! with 54). The one answer (`CacheCleared`, or 5 RuntimeError naming what could not be
//! unloaded) is sent once every such unload and LOAD has ended, so the cache is empty
//! when the controller reads it; it may therefore wait for a LOAD planned in the future.
//! Host copies (registrations) stay.

use super::{Devices, Pending, Reply, WorkerCore};
use clockwork_core::{ActionId, GpuId, ModelId, Nanos, Outcome, Window, WorkerStatus};
use clockwork_gpu::{DeviceAction, DeviceOp};
use std::collections::{BTreeMap, HashMap};

/// The CLEAR CACHE actions waiting for their unloads and LOADs, by group tag.
#[derive(Debug, Default)]
pub(crate) struct ClearGroups {
    groups: HashMap<u64, ClearGroup>,
}

/// One CLEAR CACHE waiting.
#[derive(Debug)]
struct ClearGroup {
    reply: Reply,
    /// Unloads and LOADs still to end.
    remaining: usize,
    failures: Vec<String>,
}

impl<D: Devices> WorkerCore<D> {
    /// Start a CLEAR CACHE (the devices are there: the caller checked).
    pub(super) fn clear_cache(&mut self, reply: Reply) {
        let group = self.tag();
        let Some(devices) = self.devices.as_ref() else {
            return;
        };
        // (gpu, model) -> earliest local start of its unload.
        let mut targets: BTreeMap<(GpuId, ModelId), Nanos> = BTreeMap::new();
        for g in devices.state() {
            for &m in &g.loaded {
                targets.entry((g.id, m)).or_insert(Nanos::ZERO);
            }
        }
        let mut remaining = 0;
        for p in self.pending.values_mut() {
            if let Some(t) = p.load_target {
                let e = targets.entry((t.gpu, t.model)).or_insert(Nanos::ZERO);
                *e = (*e).max(t.earliest);
                p.awaited_by.push(group);
                remaining += 1;
            }
        }
        if targets.is_empty() {
            return self.answer(reply, WorkerStatus::Success, Outcome::CacheCleared);
        }
        let mut failures = Vec::new();
        for ((gpu, model), earliest) in targets {
            let tag = self.tag();
            let action = DeviceAction {
                action: ActionId(tag),
                gpu,
                window: Window::new(earliest, Nanos::MAX),
                op: DeviceOp::Unload { model },
            };
            let Some(devices) = self.devices.as_mut() else {
                return;
            };
            match devices.submit(action) {
                Ok(()) => {
                    remaining += 1;
                    self.pending.insert(
                        tag,
                        Pending {
                            reply,
                            load_target: None,
                            clear_group: Some(group),
                            awaited_by: Vec::new(),
                        },
                    );
                }
                Err(e) => failures.push(format!("unload {model} on {gpu}: {e}")),
            }
        }
        let g = ClearGroup {
            reply,
            remaining,
            failures,
        };
        if g.remaining == 0 {
            self.finish_clear(g);
        } else {
            self.clears.groups.insert(group, g);
        }
    }

    /// One unload or awaited LOAD of `group` ended (`failure` says why it did not clear).
    pub(super) fn clear_part_done(&mut self, group: u64, failure: Option<String>) {
        let Some(g) = self.clears.groups.get_mut(&group) else {
            return;
        };
        g.failures.extend(failure);
        g.remaining = g.remaining.saturating_sub(1);
        if g.remaining == 0 {
            if let Some(g) = self.clears.groups.remove(&group) {
                self.finish_clear(g);
            }
        }
    }

    fn finish_clear(&mut self, g: ClearGroup) {
        if g.failures.is_empty() {
            self.answer(g.reply, WorkerStatus::Success, Outcome::CacheCleared);
        } else {
            let message = format!("clear cache incomplete: {}", g.failures.join("; "));
            self.fail(g.reply, WorkerStatus::RuntimeError, message);
        }
    }
}
