//! The simulator's event queue: a binary min-heap of `(time, sequence)` keys pointing
//! into a payload slab, so heap sifts move 24 bytes rather than whole events. The
//! sequence number makes ties pop in push order, which keeps every link FIFO and the
//! whole run deterministic.

use clockwork_core::{Action, ActionResult, Nanos};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Something that happens in the simulation at a given time.
#[derive(Debug)]
pub(crate) enum Event {
    /// Actions arrive at a worker.
    ToWorker {
        worker: u32,
        epoch: u32,
        actions: Vec<Action>,
    },
    /// A worker's result arrives at the controller.
    ToController {
        worker: u32,
        epoch: u32,
        result: ActionResult,
    },
    /// Something is due on a simulated GPU (an operation ends, a queued action's window
    /// opens or closes): the wake-up armed for `at`. One is live per GPU; a wake-up
    /// superseded by an earlier one is ignored when it fires.
    DeviceDue {
        worker: u32,
        epoch: u32,
        gpu: u32,
        at: Nanos,
    },
}

/// Time-ordered events.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    heap: BinaryHeap<Reverse<(Nanos, u64, u32)>>,
    slots: Vec<Option<Event>>,
    free: Vec<u32>,
    seq: u64,
}

impl EventQueue {
    pub(crate) fn push(&mut self, at: Nanos, ev: Event) {
        let slot = if let Some(s) = self.free.pop() {
            self.slots[s as usize] = Some(ev);
            s
        } else {
            self.slots.push(Some(ev));
            // Fewer than 4 billion events are ever pending at once.
            (self.slots.len() - 1) as u32
        };
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, slot)));
    }

    pub(crate) fn next_time(&self) -> Option<Nanos> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    pub(crate) fn pop(&mut self) -> Option<(Nanos, Event)> {
        let Reverse((t, _, slot)) = self.heap.pop()?;
        self.free.push(slot);
        self.slots[slot as usize].take().map(|e| (t, e))
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}
