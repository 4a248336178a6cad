//! LoadTracker (reference 3.6): which model deserves the next LOAD.
//!
//! Demand is measured in nanoseconds of batch-1 GPU work: each queued request of a
//! model adds its batch-1 estimate. Each GPU's outstanding work `O_g` is its EXEC
//! backlog plus an equal share of the queued work of every model it holds (or is
//! loading), floored at 1 ms as in the original. Its weight is `w_g = C / O_g`, with
//! `C` the load capacity (100 ms by default).
//!
//! A model's *unmet* demand is
//! `L − Σ_g C · required_g / O_g`, with `required_g = L · w_g / Σ w`, i.e.
//! `L · (1 − Σ w_g² / Σ w_g)` over the GPUs that hold it; `L` for a cold model. With
//! one replica that is positive exactly when its GPU has more than `C` of outstanding
//! work: replication of hot models emerges from the rule. Its load priority is that
//! demand per unit of PCIe time ([`load_priority`]; the original ranked by raw
//! demand).
//!
//! **Bug fixed** (reference 3.12): the original compared a pointer to 0, so its "all
//! demand satisfied" check never fired. Here a model whose unmet demand is `<= 0` is
//! never loaded.

use clockwork_core::{ModelId, Nanos};
use std::cmp::Ordering;

/// Floor of a GPU's outstanding work (the original's initial value).
pub const MIN_OUTSTANDING: Nanos = Nanos::from_millis(1);

/// Unmet demand of a model with `demand` ns of queued work, held by GPUs whose
/// outstanding work is given by `outstanding`, under load capacity `capacity`.
pub fn unmet_demand(demand: u64, capacity: Nanos, outstanding: impl Iterator<Item = u64>) -> f64 {
    let l = demand as f64;
    let c = capacity.get() as f64;
    let (mut sw, mut sw2) = (0.0f64, 0.0f64);
    for o in outstanding {
        let w = c / o.max(MIN_OUTSTANDING.get()) as f64;
        sw += w;
        sw2 += w * w;
    }
    if sw == 0.0 {
        return l;
    }
    l * (1.0 - sw2 / sw)
}

/// Load priority of a model with `unmet` ns of unmet demand (see [`unmet_demand`]):
/// the requests that demand stands for (`unmet / b1`) per second of PCIe its LOAD
/// takes. PCIe is the scarce resource when many models are cold (start-up, bursts
/// of cold models): ranking by raw demand (ns of work, as the original) puts one
/// request of a large model (ResNet152: 9 ms of work, a 20 ms LOAD) ahead of five of a
/// small one (ResNet18: 8 ms of work, a 4 ms LOAD), and so serves fewer requests
/// in time. Positive exactly when `unmet` is.
pub fn load_priority(unmet: f64, b1: Nanos, load: Nanos) -> f64 {
    let cost = b1.get().max(1) as f64 * load.get().max(1) as f64;
    unmet / cost * 1e9
}

/// A model waiting for a LOAD, ordered by priority (highest first), then model id.
/// Priorities are snapshots: the scheduler recomputes them when popping.
#[derive(Debug, Clone, Copy)]
pub struct LoadCandidate {
    /// [`load_priority`] when pushed.
    pub priority: f64,
    /// The model.
    pub model: ModelId,
}

impl PartialEq for LoadCandidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for LoadCandidate {}
impl PartialOrd for LoadCandidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for LoadCandidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .total_cmp(&other.priority)
            .then_with(|| other.model.cmp(&self.model))
    }
}

/// A set of small integers (GPU keys) with O(1) insert, remove, membership and
/// uniform random pick: the GPUs that can take a LOAD now.
#[derive(Debug, Default)]
pub struct ReadySet {
    items: Vec<u32>,
    pos: Vec<u32>,
}

const ABSENT: u32 = u32::MAX;

impl ReadySet {
    /// Adds `x`; returns whether it was absent.
    pub fn insert(&mut self, x: u32) -> bool {
        let i = x as usize;
        if self.pos.len() <= i {
            self.pos.resize(i + 1, ABSENT);
        }
        if self.pos[i] != ABSENT {
            return false;
        }
        // The set never holds more than u32::MAX - 1 GPUs.
        self.pos[i] = self.items.len() as u32;
        self.items.push(x);
        true
    }

    /// Removes `x`; returns whether it was present.
    pub fn remove(&mut self, x: u32) -> bool {
        let i = x as usize;
        let Some(&p) = self.pos.get(i) else {
            return false;
        };
        if p == ABSENT {
            return false;
        }
        self.items.swap_remove(p as usize);
        if let Some(&moved) = self.items.get(p as usize) {
            self.pos[moved as usize] = p;
        }
        self.pos[i] = ABSENT;
        true
    }

    /// Membership.
    pub fn contains(&self, x: u32) -> bool {
        self.pos.get(x as usize).is_some_and(|&p| p != ABSENT)
    }

    /// The members, in no particular order.
    pub fn as_slice(&self) -> &[u32] {
        &self.items
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// No members.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BinaryHeap;

    const C: Nanos = Nanos::from_millis(100);

    #[test]
    fn cold_models_have_full_demand() {
        assert_eq!(unmet_demand(5_000, C, std::iter::empty()), 5_000.0);
        assert_eq!(unmet_demand(0, C, std::iter::empty()), 0.0);
    }

    #[test]
    fn a_lightly_loaded_replica_satisfies_demand_and_an_overloaded_one_does_not() {
        // 10 ms outstanding on the only replica: w = 10, unmet = L(1 - 10) < 0.
        assert!(unmet_demand(5_000_000, C, [10_000_000].into_iter()) < 0.0);
        // Exactly at capacity: zero, which must not trigger a load (the 3.12 fix).
        assert_eq!(unmet_demand(5_000_000, C, [100_000_000].into_iter()), 0.0);
        // 400 ms outstanding: w = 0.25, unmet = 0.75 L.
        let u = unmet_demand(4_000_000, C, [400_000_000].into_iter());
        assert!((u - 3_000_000.0).abs() < 1.0, "{u}");
        // A second, idle replica covers it.
        assert!(unmet_demand(4_000_000, C, [400_000_000, 1_000_000].into_iter()) < 0.0);
    }

    #[test]
    fn load_priority_counts_requests_per_pcie_time() {
        let ms = Nanos::from_millis;
        // Five ResNet18 requests (1.63 ms each, 3.85 ms LOAD) beat one ResNet152
        // request (9.13 ms, 19.68 ms LOAD), though the latter is more work.
        let r18 = load_priority(5.0 * 1_630_000.0, Nanos(1_630_000), Nanos(3_850_000));
        let r152 = load_priority(9_130_000.0, Nanos(9_130_000), Nanos(19_680_000));
        assert!(r18 > r152);
        assert!(load_priority(1.0, ms(1), ms(1)) > 0.0);
        assert_eq!(load_priority(0.0, ms(1), ms(1)), 0.0);
        assert!(load_priority(-1.0, ms(1), ms(1)) < 0.0);
    }

    #[test]
    fn candidates_pop_highest_priority_then_lowest_id() {
        let mut h = BinaryHeap::new();
        for (p, m) in [(1.0, 3), (5.0, 2), (5.0, 1), (0.5, 0)] {
            h.push(LoadCandidate {
                priority: p,
                model: ModelId(m),
            });
        }
        let order: Vec<u32> = std::iter::from_fn(|| h.pop().map(|c| c.model.0)).collect();
        assert_eq!(order, vec![1, 2, 3, 0]);
    }

    #[test]
    fn ready_set_ops() {
        let mut s = ReadySet::default();
        assert!(s.insert(3));
        assert!(s.insert(7));
        assert!(!s.insert(3));
        assert!(s.insert(1));
        assert!(s.remove(3));
        assert!(!s.remove(3));
        assert!(!s.contains(3));
        assert!(s.contains(7) && s.contains(1));
        let mut v = s.as_slice().to_vec();
        v.sort_unstable();
        assert_eq!(v, vec![1, 7]);
        assert!(!s.remove(100));
    }
}
