//! Results the controller expects from one worker link, and by when: the deadline on
//! expected results that, with heartbeats, bounds how long any action stays pending.
//!
//! A LOAD or INFER sent on a link must come back by the end of its window plus its
//! expected duration plus a grace (the worker answers every action exactly once: it
//! runs it inside its window or drops it at `latest`). A result that is not back by
//! then was lost (frames dropped on a path that still carries heartbeats, a worker
//! that lost track of it): the link can no longer be trusted, and the service treats
//! the worker as lost, exactly as for a closed link (its actions are answered or moved
//! by the scheduler's `worker_lost`, and the worker is planned onto again from a fresh
//! GET STATE once it reconnects). Other actions (REGISTER, GET STATE, CLEAR CACHE,
//! UNLOAD) have no window to measure against and are not tracked: the link's silence
//! timeout still bounds them when the worker is gone.
//!
//! Sans-IO: times in, verdicts out.

use clockwork_core::{Action, ActionId, ActionKind, Nanos};
use std::collections::{BTreeSet, HashMap};

/// The tracked actions of one link.
#[derive(Debug, Default)]
pub(super) struct Expected {
    due: HashMap<ActionId, Nanos>,
    by_due: BTreeSet<(Nanos, ActionId)>,
}

impl Expected {
    /// `action` was sent; expect its result by the end of its window plus its expected
    /// duration plus `grace`.
    pub(super) fn sent(&mut self, action: &Action, grace: Nanos) {
        let took = match &action.kind {
            ActionKind::Infer {
                expected_duration, ..
            }
            | ActionKind::LoadWeights {
                expected_duration, ..
            } => *expected_duration,
            _ => return,
        };
        let due = Nanos(
            action
                .window
                .latest
                .get()
                .saturating_add(took.get())
                .saturating_add(grace.get()),
        );
        if let Some(old) = self.due.insert(action.id, due) {
            self.by_due.remove(&(old, action.id));
        }
        self.by_due.insert((due, action.id));
    }

    /// `id`'s result arrived.
    pub(super) fn answered(&mut self, id: ActionId) {
        if let Some(due) = self.due.remove(&id) {
            self.by_due.remove(&(due, id));
        }
    }

    /// The first action whose result is overdue at `now`, with its due time.
    pub(super) fn overdue(&self, now: Nanos) -> Option<(ActionId, Nanos)> {
        self.by_due
            .first()
            .filter(|(due, _)| *due < now)
            .map(|&(due, id)| (id, due))
    }

    /// Actions tracked.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::{GpuId, ModelId, Window};

    fn infer(id: u64, latest: u64, took: u64) -> Action {
        Action {
            id: ActionId(id),
            window: Window::new(Nanos(0), Nanos(latest)),
            kind: ActionKind::Infer {
                model: ModelId(0),
                gpu: GpuId(0),
                batch_size: 1,
                expected_duration: Nanos(took),
                input_sizes: Vec::new(),
                inputs: Default::default(),
            },
        }
    }

    #[test]
    fn a_result_is_due_at_window_end_plus_duration_plus_grace() {
        let mut e = Expected::default();
        e.sent(&infer(1, 100, 10), Nanos(5));
        assert_eq!(e.overdue(Nanos(115)), None, "due at 115, not after it yet");
        assert_eq!(e.overdue(Nanos(116)), Some((ActionId(1), Nanos(115))));
        e.answered(ActionId(1));
        assert_eq!(e.overdue(Nanos(1_000)), None);
        assert_eq!(e.len(), 0);
    }

    #[test]
    fn the_earliest_due_is_reported_and_answers_in_any_order_clear_it() {
        let mut e = Expected::default();
        e.sent(&infer(1, 300, 0), Nanos(0));
        e.sent(&infer(2, 100, 0), Nanos(0));
        e.sent(&infer(3, 200, 0), Nanos(0));
        assert_eq!(e.overdue(Nanos(1_000)), Some((ActionId(2), Nanos(100))));
        e.answered(ActionId(2));
        assert_eq!(e.overdue(Nanos(1_000)), Some((ActionId(3), Nanos(200))));
        e.answered(ActionId(99));
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn untimed_actions_are_not_tracked() {
        let mut e = Expected::default();
        let a = Action {
            id: ActionId(7),
            window: Window::ANY,
            kind: ActionKind::GetState,
        };
        e.sent(&a, Nanos(0));
        assert_eq!(e.len(), 0);
        assert_eq!(e.overdue(Nanos::MAX), None);
    }
}
