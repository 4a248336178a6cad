//! Per-GPU and per-worker scheduler state: page accounting, the EXEC and PCIe
//! timelines, resident models, and the dispatch heap of models with queued work.
//!
//! Page accounting starts from the worker's GET STATE and is then kept exact by the
//! controller's own decisions: a LOAD takes its pages when sent, an UNLOAD returns
//! them when sent (the worker runs them in order on one executor), a failed LOAD
//! returns them. An unexpected result triggers a resync from GET STATE.

use crate::doubt::DoubtfulAdmissions;
use crate::output::BatchMember;
use crate::timeline::Timeline;
use clockwork_core::{Action, GpuId, ModelId, Nanos, WorkerId};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Entry of a GPU's dispatch heap: a model whose queue head had this urgency when
/// pushed (see [`crate::model_state::Replica::heap_key`] for how staleness is told).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct HeapEntry {
    pub(crate) urgency: Nanos,
    pub(crate) model: u32,
}

/// Which executor a wake-up timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// The EXEC timeline has room again.
    Exec,
    /// The PCIe timeline has room again.
    Pcie,
    /// The earliest deadline among the requests of INFERs in flight on the GPU.
    Deadline,
}

/// One GPU.
#[derive(Debug)]
pub(crate) struct GpuSlot {
    pub(crate) worker: u32,
    pub(crate) worker_id: WorkerId,
    pub(crate) gpu_id: GpuId,
    pub(crate) alive: bool,
    pub(crate) page_size: u64,
    pub(crate) total_pages: u32,
    pub(crate) free_pages: u32,
    pub(crate) exec: Timeline,
    pub(crate) pcie: Timeline,
    pub(crate) loads_in_flight: u32,
    /// Models resident or loading here.
    pub(crate) residents: Vec<ModelId>,
    pub(crate) heap: BinaryHeap<Reverse<HeapEntry>>,
    /// Armed EXEC wake-up (the time the GPU next has room), if any.
    pub(crate) exec_wake: Option<Nanos>,
    /// Armed PCIe wake-up, if any.
    pub(crate) pcie_wake: Option<Nanos>,
    /// Armed in-flight deadline check, if any.
    pub(crate) deadline_wake: Option<Nanos>,
    /// Queued work of resident models credited to this GPU (load tracker).
    pub(crate) credit: u64,
    /// GPU time per request of the batches sent here lately, as a fraction of their
    /// model's batch-1 estimate (moving average over about 16 batches; 1 at first):
    /// how much batching currently saves here (early refusal's cost per request).
    pub(crate) cost_ratio: f64,
    /// INFER actions sent here and not yet answered (ids), for the deadline check.
    /// Kept apart from the timeline, which may retire actions it infers are done.
    pub(crate) infers: Vec<u64>,
    /// How the requests admitted for this GPU fared, and whether to queue one its
    /// rollout doubts ([`crate::doubt`]).
    pub(crate) doubt: DoubtfulAdmissions,
}

impl GpuSlot {
    /// Outstanding work for the load tracker: EXEC backlog plus credited queued work.
    pub(crate) fn outstanding(&self, now: Nanos) -> u64 {
        self.exec.tail().saturating_sub(now).get() + self.credit
    }
}

/// A fixed-size bit set over model ids.
#[derive(Debug, Default, Clone)]
pub(crate) struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    pub(crate) fn insert(&mut self, i: u32) {
        let w = (i / 64) as usize;
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << (i % 64);
    }

    pub(crate) fn contains(&self, i: u32) -> bool {
        self.words
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Clears bit `i`; returns whether it was set.
    pub(crate) fn remove(&mut self, i: u32) -> bool {
        let Some(w) = self.words.get_mut((i / 64) as usize) else {
            return false;
        };
        let bit = 1 << (i % 64);
        let was = *w & bit != 0;
        *w &= !bit;
        was
    }
}

/// One worker.
#[derive(Debug)]
pub(crate) struct WorkerSlot {
    pub(crate) id: WorkerId,
    pub(crate) alive: bool,
    pub(crate) gpus: Vec<u32>,
    /// Models the worker has acknowledged (or reported) as registered.
    pub(crate) registered: BitSet,
    /// Actions produced during the current input call, sent at its end.
    pub(crate) pending: Vec<Action>,
    /// The batch members of the INFERs in `pending`, in order.
    pub(crate) pending_members: Vec<BatchMember>,
    /// A GET STATE resync is outstanding.
    pub(crate) resyncing: bool,
}

/// Worker id → worker slot. Ids are chosen by the driver; small ones (the common
/// case: numbered from 0) are looked up in a vector, others in a hash map.
#[derive(Debug, Default)]
pub(crate) struct WorkerIndex {
    dense: Vec<u32>,
    sparse: HashMap<WorkerId, u32>,
}

const DENSE_LIMIT: u32 = 1 << 16;
const NONE: u32 = u32::MAX;

impl WorkerIndex {
    pub(crate) fn get(&self, id: WorkerId) -> Option<u32> {
        if id.0 < DENSE_LIMIT {
            self.dense
                .get(id.0 as usize)
                .copied()
                .filter(|&k| k != NONE)
        } else {
            self.sparse.get(&id).copied()
        }
    }

    pub(crate) fn contains(&self, id: WorkerId) -> bool {
        self.get(id).is_some()
    }

    pub(crate) fn insert(&mut self, id: WorkerId, key: u32) {
        if id.0 < DENSE_LIMIT {
            let i = id.0 as usize;
            if self.dense.len() <= i {
                self.dense.resize(i + 1, NONE);
            }
            self.dense[i] = key;
        } else {
            self.sparse.insert(id, key);
        }
    }

    pub(crate) fn remove(&mut self, id: WorkerId) -> Option<u32> {
        if id.0 < DENSE_LIMIT {
            let slot = self.dense.get_mut(id.0 as usize)?;
            let k = std::mem::replace(slot, NONE);
            (k != NONE).then_some(k)
        } else {
            self.sparse.remove(&id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitset() {
        let mut b = BitSet::default();
        assert!(!b.contains(5));
        b.insert(5);
        b.insert(200);
        assert!(b.contains(5) && b.contains(200) && !b.contains(6) && !b.contains(10_000));
        assert!(b.remove(5));
        assert!(!b.remove(5));
        assert!(!b.remove(100_000));
        assert!(b.contains(200) && !b.contains(5));
    }

    #[test]
    fn worker_index_dense_and_sparse() {
        let mut w = WorkerIndex::default();
        w.insert(WorkerId(3), 7);
        w.insert(WorkerId(1 << 20), 8);
        assert_eq!(w.get(WorkerId(3)), Some(7));
        assert_eq!(w.get(WorkerId(1 << 20)), Some(8));
        assert_eq!(w.get(WorkerId(2)), None);
        assert_eq!(w.remove(WorkerId(3)), Some(7));
        assert!(!w.contains(WorkerId(3)));
        assert_eq!(w.remove(WorkerId(1 << 20)), Some(8));
        assert_eq!(w.remove(WorkerId(9)), None);
    }
}
