//! A timer queue tuned for the scheduler's common case: most timers are pushed in
//! non-decreasing order (requests with one SLO arrive in time order, so their expiry
//! times are monotone). Those go to a FIFO in O(1); the rest go to a binary heap.
//! Popping takes the earlier of the two heads.
//!
//! Entries are never cancelled: owners check on pop whether the entry still matters
//! (a stale arena key, a re-armed GPU wake), which is cheaper than removal.

use clockwork_core::Nanos;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

#[derive(Debug)]
struct Entry<T> {
    at: Nanos,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Timers of `T`, popped in time order (ties in push order within each lane).
#[derive(Debug)]
pub(crate) struct TimerQueue<T> {
    fifo: VecDeque<(Nanos, T)>,
    heap: BinaryHeap<Reverse<Entry<T>>>,
    seq: u64,
}

impl<T> TimerQueue<T> {
    pub(crate) const fn new() -> Self {
        Self {
            fifo: VecDeque::new(),
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Arms a timer at `at`.
    pub(crate) fn push(&mut self, at: Nanos, item: T) {
        if self.fifo.back().is_none_or(|&(last, _)| at >= last) {
            self.fifo.push_back((at, item));
        } else {
            self.seq += 1;
            self.heap.push(Reverse(Entry {
                at,
                seq: self.seq,
                item,
            }));
        }
    }

    /// The earliest armed time.
    pub(crate) fn next_time(&self) -> Option<Nanos> {
        self.peek().map(|(t, _)| t)
    }

    /// Pops one timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Nanos) -> Option<(Nanos, T)> {
        let f = self.fifo.front().map(|&(t, _)| t).filter(|&t| t <= now);
        let h = self.heap.peek().map(|e| e.0.at).filter(|&t| t <= now);
        match (f, h) {
            (Some(a), Some(b)) if b < a => self.pop_heap(),
            (Some(_), _) => self.fifo.pop_front(),
            (None, Some(_)) => self.pop_heap(),
            (None, None) => None,
        }
    }

    /// The earliest timer, without popping it.
    pub(crate) fn peek(&self) -> Option<(Nanos, &T)> {
        let f = self.fifo.front().map(|(t, v)| (*t, v));
        let h = self.heap.peek().map(|e| (e.0.at, &e.0.item));
        match (f, h) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// Pops the earliest timer, due or not.
    pub(crate) fn pop_next(&mut self) -> Option<(Nanos, T)> {
        let t = self.next_time()?;
        self.pop_due(t)
    }

    fn pop_heap(&mut self) -> Option<(Nanos, T)> {
        self.heap.pop().map(|Reverse(e)| (e.at, e.item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order_across_both_lanes() {
        let mut q = TimerQueue::new();
        for (t, v) in [(5, 'a'), (7, 'b'), (6, 'c'), (9, 'd'), (1, 'e'), (9, 'f')] {
            q.push(Nanos(t), v);
        }
        assert_eq!(q.next_time(), Some(Nanos(1)));
        assert_eq!(q.peek(), Some((Nanos(1), &'e')));
        assert_eq!(q.pop_due(Nanos(0)), None);
        let mut got = Vec::new();
        while let Some((t, v)) = q.pop_due(Nanos(100)) {
            got.push((t.0, v));
        }
        assert_eq!(
            got,
            vec![(1, 'e'), (5, 'a'), (6, 'c'), (7, 'b'), (9, 'd'), (9, 'f')]
        );
        assert_eq!(q.next_time(), None);
        assert_eq!(q.peek(), None);
        q.push(Nanos(3), 'g');
        q.push(Nanos(2), 'h');
        assert_eq!(q.pop_next(), Some((Nanos(2), 'h')));
        assert_eq!(q.pop_next(), Some((Nanos(3), 'g')));
        assert_eq!(q.pop_next(), None);
    }
}
