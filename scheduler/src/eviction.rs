//! Eviction order (reference 3.7): when a LOAD needs pages a GPU does not have free,
//! evict cached models in this order until enough pages are free:
//! 1. idle models (no queued demand), least recently used first;
//! 2. then busy models (with queued demand), least recently used first.
//!
//! Models with INFERs in flight on that GPU, or still loading there, are pinned and
//! never chosen (an UNLOAD would void the INFER or race the LOAD). If even evicting
//! every unpinned model would not free enough, nothing is evicted.

use clockwork_core::{ModelId, Nanos};

/// A cached model as the eviction planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Victim {
    /// The model.
    pub model: ModelId,
    /// Its pages on this GPU.
    pub pages: u32,
    /// Has queued requests (demand).
    pub busy: bool,
    /// Last batch sent or completed on this GPU.
    pub last_used: Nanos,
    /// INFERs in flight or a LOAD in progress: never evict.
    pub pinned: bool,
}

/// Chooses the models to evict so that `free + freed >= need`. Reorders `cands`.
/// Returns `None` when that is impossible, `Some(empty)` when nothing is needed.
pub fn plan(cands: &mut [Victim], free: u32, need: u32) -> Option<Vec<ModelId>> {
    if free >= need {
        return Some(Vec::new());
    }
    let evictable: u64 = cands
        .iter()
        .filter(|v| !v.pinned)
        .map(|v| u64::from(v.pages))
        .sum();
    if u64::from(free) + evictable < u64::from(need) {
        return None;
    }
    cands.sort_unstable_by_key(|v| (v.pinned, v.busy, v.last_used, v.model));
    let mut freed = u64::from(free);
    let mut out = Vec::new();
    for v in cands.iter() {
        if freed >= u64::from(need) {
            break;
        }
        // Sorted with pinned last, and the sum above guarantees we stop before them.
        out.push(v.model);
        freed += u64::from(v.pages);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(m: u32, busy: bool, last: u64, pinned: bool) -> Victim {
        Victim {
            model: ModelId(m),
            pages: 7,
            busy,
            last_used: Nanos(last),
            pinned,
        }
    }

    #[test]
    fn idle_lru_first_then_busy_lru_never_pinned() {
        let mut c = vec![
            v(1, true, 10, false),
            v(2, false, 50, false),
            v(3, false, 20, false),
            v(4, true, 5, false),
            v(5, false, 1, true),
        ];
        assert_eq!(plan(&mut c.clone(), 0, 7), Some(vec![ModelId(3)]));
        assert_eq!(
            plan(&mut c.clone(), 0, 14),
            Some(vec![ModelId(3), ModelId(2)])
        );
        assert_eq!(
            plan(&mut c.clone(), 0, 21),
            Some(vec![ModelId(3), ModelId(2), ModelId(4)])
        );
        assert_eq!(
            plan(&mut c.clone(), 3, 28),
            Some(vec![ModelId(3), ModelId(2), ModelId(4), ModelId(1)])
        );
        // 4 unpinned x 7 + 3 free = 31 < 32: impossible, and model 5 is never chosen.
        assert_eq!(plan(&mut c, 3, 32), None);
        assert_eq!(plan(&mut [], 10, 7), Some(vec![]));
    }
}
