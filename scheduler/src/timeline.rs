//! GPU timeline tracker (reference 3.2): the controller's prediction of when one
//! executor of one GPU (EXEC or PCIe) becomes free.
//!
//! It holds the actions sent but not yet answered, in send order, each with its
//! start floor and its estimated duration. The floor is when the action reaches its
//! worker (sent + lead time), not when it was planned to start: its window opens when
//! it is sent, so the worker runs it as soon as the executor is free. The predicted
//! free time is their chain from the last reported completion:
//! `t = begin; for each: t = max(t, floor) + duration`, then `max(t, now + future)`.
//!
//! With the planned start as the floor (as before 2026-12-06), a GPU that ran batch
//! after batch faster than estimated never caught up in the prediction: each batch
//! was planned at the previous one's predicted end, so the chain kept every
//! estimate's excess and the predicted free time drifted later for as long as the GPU
//! stayed busy, past the schedule-ahead; the next batch was then handed out only after
//! the GPU had gone idle, and queued requests were dropped as unable to start in time.
//!
//! - A success result sets `begin` to the worker-reported end and retires that action
//!   and every older one (the executor runs one action at a time, in order).
//! - A failure result retires only that action: it did not use the executor.
//! - The lag rule: if the oldest action is overdue by more than `lag`, it is assumed
//!   to have ended at `now - lag`, so one lost result cannot stall the GPU forever.

use clockwork_core::Nanos;
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy)]
struct Work {
    action: u64,
    floor: Nanos,
    duration: Nanos,
}

/// One executor's predicted schedule.
#[derive(Debug, Default)]
pub struct Timeline {
    pending: VecDeque<Work>,
    begin: Nanos,
    tail: Nanos,
}

impl Timeline {
    /// An idle timeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the oldest action is overdue by more than `lag` at `now`: then
    /// [`Timeline::available`] moves with `now` (the head is taken to have ended at
    /// `now - lag`) until a result comes.
    pub fn overdue(&self, now: Nanos, lag: Nanos) -> bool {
        self.pending
            .front()
            .is_some_and(|head| now > self.begin.max(head.floor) + head.duration + lag)
    }

    /// Predicted time the executor can start new work, as seen at `now`.
    pub fn available(&self, now: Nanos, future: Nanos, lag: Nanos) -> Nanos {
        let floor = now + future;
        let Some(head) = self.pending.front() else {
            return self.tail.max(floor);
        };
        let head_end = self.begin.max(head.floor) + head.duration;
        if now > head_end + lag {
            // Overdue head: assume it ended at now - lag and chain the rest from there.
            let mut t = now - lag;
            for w in self.pending.iter().skip(1) {
                t = t.max(w.floor) + w.duration;
            }
            return t.max(floor);
        }
        self.tail.max(floor)
    }

    /// Appends an action that reaches its worker at `reach` (sent + lead time), is
    /// predicted to start at `start` (normally the value of [`Timeline::available`],
    /// never before `reach`) and to run for `duration`; returns its predicted end.
    pub fn push(&mut self, action: u64, reach: Nanos, start: Nanos, duration: Nanos) -> Nanos {
        self.pending.push_back(Work {
            action,
            floor: reach.min(start),
            duration,
        });
        self.tail = self.tail.max(start) + duration;
        self.tail
    }

    /// The action ran and ended at `end` (worker-reported, controller clock).
    pub fn complete(&mut self, action: u64, end: Nanos) {
        if let Some(pos) = self.pending.iter().position(|w| w.action == action) {
            self.pending.drain(..=pos);
            self.begin = self.begin.max(end);
            self.recompute();
        }
    }

    /// The action did not run (failed, dropped, or its worker vanished).
    pub fn remove(&mut self, action: u64) {
        if let Some(pos) = self.pending.iter().position(|w| w.action == action) {
            self.pending.remove(pos);
            self.recompute();
        }
    }

    /// Actions sent and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// Predicted end of all outstanding work, ignoring `now` (used for the load
    /// tracker's backlog and for reports).
    pub const fn tail(&self) -> Nanos {
        self.tail
    }

    fn recompute(&mut self) {
        let mut t = self.begin;
        for w in &self.pending {
            t = t.max(w.floor) + w.duration;
        }
        self.tail = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Nanos = Nanos::from_millis(1);
    const LAG: Nanos = Nanos::from_millis(10);

    fn ms(v: u64) -> Nanos {
        Nanos::from_millis(v)
    }

    #[test]
    fn chains_work_and_honours_future() {
        let mut t = Timeline::new();
        assert_eq!(t.available(ms(100), F, LAG), ms(101));
        let s = t.available(ms(100), F, LAG);
        assert_eq!(t.push(1, ms(101), s, ms(3)), ms(104));
        assert_eq!(t.available(ms(100), F, LAG), ms(104));
        t.push(2, ms(101), ms(104), ms(3));
        assert_eq!(t.available(ms(100), F, LAG), ms(107));
        // First completes early: the second, at its worker since 101, runs right away.
        t.complete(1, ms(102));
        assert_eq!(t.available(ms(102), F, LAG), ms(105));
        // Second fails: nothing outstanding.
        t.remove(2);
        assert_eq!(t.outstanding(), 0);
        assert_eq!(t.available(ms(103), F, LAG), ms(104));
    }

    #[test]
    fn a_gpu_faster_than_estimated_pulls_the_whole_chain_in() {
        // Each action is estimated at 10 and runs 8, and the next is sent (reaching
        // the worker one later) while the previous runs. Each completion must move
        // the prediction to the real pace; with the planned start as the floor it
        // stayed at the estimated pace (21, 31, ...) however early the GPU finished.
        let mut t = Timeline::new();
        assert_eq!(t.push(1, ms(1), ms(1), ms(10)), ms(11));
        assert_eq!(t.push(2, ms(2), ms(11), ms(10)), ms(21));
        t.complete(1, ms(9));
        assert_eq!(t.available(ms(9), F, LAG), ms(19));
        assert_eq!(t.push(3, ms(10), ms(19), ms(10)), ms(29));
        t.complete(2, ms(17));
        assert_eq!(t.available(ms(17), F, LAG), ms(27));
    }

    #[test]
    fn completion_of_a_later_action_retires_the_older_ones() {
        let mut t = Timeline::new();
        t.push(1, ms(1), ms(1), ms(3));
        t.push(2, ms(1), ms(4), ms(3));
        t.push(3, ms(1), ms(7), ms(3));
        t.complete(2, ms(8));
        assert_eq!(t.outstanding(), 1);
        assert_eq!(t.tail(), ms(11));
    }

    #[test]
    fn lag_rule_unsticks_an_overdue_head() {
        let mut t = Timeline::new();
        t.push(1, ms(1), ms(1), ms(5)); // predicted end 6
        t.push(2, ms(1), ms(6), ms(2)); // predicted end 8
                                        // At 10 the head is overdue by 4 < lag: still predicted from the chain.
        assert_eq!(t.available(ms(10), F, LAG), ms(11));
        // At 30 the head is overdue by 24 > lag: assumed ended at 20, then 2 runs.
        assert_eq!(t.available(ms(30), F, LAG), ms(31));
        let mut t = Timeline::new();
        t.push(1, ms(1), ms(1), ms(5));
        t.push(2, ms(1), ms(6), ms(50));
        assert_eq!(t.available(ms(30), F, LAG), ms(70));
    }
}
