//! Requests the scheduler has not answered yet, as the service keeps them: their input
//! bytes (where the scheduler's [`InputRef`] points), and whether the device that last
//! ran them was emulated.
//!
//! An INFER shares its members' input buffers ([`clockwork_core::InputBytes`]): the
//! bytes are copied once more only by the frame encoder, straight into the frame.
//!
//! A request's slot lives from its submission to its one answer: a request that goes
//! back to its queue after a missed window is sent again with the same input. Slots
//! are reused through a free list, so the steady state allocates nothing but the
//! inputs themselves.

use clockwork_core::{ActionKind, InputBytes, RequestId};
use clockwork_scheduler::{BatchMember, ClientKey, InputRef};

/// One unanswered request.
#[derive(Debug)]
struct Pending {
    client: ClientKey,
    id: RequestId,
    /// Shared with the INFERs that carry it.
    input: InputBytes,
    /// The GPU its last INFER was sent to is emulated.
    emulated: bool,
}

/// What the service kept of a request, returned with its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Finished {
    /// The GPU that ran (or last tried to run) the request is emulated.
    pub(super) emulated: bool,
}

/// Unanswered requests by slot; the slot index is the [`InputRef::location`].
#[derive(Debug, Default)]
pub(super) struct PendingRequests {
    slots: Vec<Option<Pending>>,
    free: Vec<usize>,
}

impl PendingRequests {
    /// Keeps a new request's input; returns where it is, for the scheduler.
    pub(super) fn store(
        &mut self,
        client: ClientKey,
        id: RequestId,
        input: InputBytes,
    ) -> InputRef {
        // Frames are far below 4 GiB; an absurd length is refused by the scheduler
        // as not the model's input size.
        let len = u32::try_from(input.len()).unwrap_or(u32::MAX);
        let p = Pending {
            client,
            id,
            input,
            emulated: false,
        };
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(p);
                i
            }
            None => {
                self.slots.push(Some(p));
                self.slots.len() - 1
            }
        };
        InputRef {
            location: slot as u64,
            len,
        }
    }

    /// The request at `input`, if it is the one `member` names.
    fn get_mut(&mut self, member: &BatchMember) -> Option<&mut Pending> {
        let slot = usize::try_from(member.input.location).ok()?;
        self.slots
            .get_mut(slot)?
            .as_mut()
            .filter(|p| p.client == member.client && p.id == member.id)
    }

    /// Fills an INFER's inputs from its batch members, in batch order: one size per
    /// member and their bytes (shared, not copied), or nothing when no member has an
    /// input (the worker then generates them). Records whether the batch goes to an emulated
    /// GPU. Not an INFER: nothing to do.
    pub(super) fn fill_infer(
        &mut self,
        kind: &mut ActionKind,
        batch: &[BatchMember],
        emulated: bool,
    ) {
        let ActionKind::Infer {
            input_sizes,
            inputs,
            ..
        } = kind
        else {
            return;
        };
        let any_input = batch.iter().any(|m| m.input.len > 0);
        input_sizes.clear();
        inputs.clear();
        if any_input {
            inputs.reserve(batch.len());
            input_sizes.reserve_exact(batch.len());
        }
        for m in batch {
            let Some(p) = self.get_mut(m) else {
                // Answered already (cannot happen for a fresh batch): no input.
                if any_input {
                    input_sizes.push(0);
                }
                continue;
            };
            p.emulated = emulated;
            if any_input {
                input_sizes.push(u32::try_from(p.input.len()).unwrap_or(u32::MAX));
                inputs.push_all(&p.input);
            }
        }
    }

    /// The request at `input` was answered: frees its slot. `None` if no such
    /// request is pending (the scheduler answers each request once, so only a bug
    /// gets here).
    pub(super) fn finish(
        &mut self,
        client: ClientKey,
        id: RequestId,
        input: InputRef,
    ) -> Option<Finished> {
        let member = BatchMember { client, id, input };
        self.get_mut(&member)?;
        // The slot exists and holds this request (checked just above).
        let slot = input.location as usize;
        let p = self.slots[slot].take()?;
        self.free.push(slot);
        Some(Finished {
            emulated: p.emulated,
        })
    }

    /// Requests kept.
    pub(super) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::{GpuId, ModelId, Nanos};

    fn infer(batch_size: u32) -> ActionKind {
        ActionKind::Infer {
            model: ModelId(0),
            gpu: GpuId(0),
            batch_size,
            expected_duration: Nanos(1),
            input_sizes: Vec::new(),
            inputs: Default::default(),
        }
    }

    fn member(client: u64, id: u64, input: InputRef) -> BatchMember {
        BatchMember {
            client: ClientKey(client),
            id: RequestId(id),
            input,
        }
    }

    fn inputs_of(kind: &ActionKind) -> (Vec<u32>, Vec<u8>) {
        match kind {
            ActionKind::Infer {
                input_sizes,
                inputs,
                ..
            } => (input_sizes.clone(), inputs.to_vec()),
            other => panic!("not an infer: {other:?}"),
        }
    }

    /// An INFER carries its members' own buffers: a 602,112-byte image is not copied
    /// (nor allocated again) on its way into the action, only by the frame encoder.
    #[test]
    fn an_infer_shares_its_members_input_buffers() {
        let mut p = PendingRequests::default();
        let (a, b) = (vec![5u8; 602_112], vec![6u8; 602_112]);
        let (at_a, at_b) = (a.as_ptr(), b.as_ptr());
        let ra = p.store(ClientKey(1), RequestId(1), a.into());
        let rb = p.store(ClientKey(1), RequestId(2), b.into());
        let mut kind = infer(2);
        p.fill_infer(&mut kind, &[member(1, 2, rb), member(1, 1, ra)], false);
        let ActionKind::Infer { inputs, .. } = &kind else {
            unreachable!("built as an infer")
        };
        let segments: Vec<*const u8> = inputs.segments().iter().map(|s| s.as_ptr()).collect();
        assert_eq!(segments, [at_b, at_a]);
        assert_eq!(inputs.len(), 2 * 602_112);
    }

    #[test]
    fn a_batch_gets_its_members_inputs_in_order_until_they_are_answered() {
        let mut p = PendingRequests::default();
        let a = p.store(ClientKey(1), RequestId(10), vec![1, 2, 3].into());
        let none = p.store(ClientKey(2), RequestId(10), Vec::new().into());
        let b = p.store(ClientKey(1), RequestId(11), vec![7, 8, 9].into());
        assert_eq!((a.len, none.len, b.len), (3, 0, 3));
        assert_eq!(p.len(), 3);
        let batch = [member(1, 11, b), member(2, 10, none), member(1, 10, a)];
        let mut kind = infer(3);
        p.fill_infer(&mut kind, &batch, true);
        assert_eq!(inputs_of(&kind), (vec![3, 0, 3], vec![7, 8, 9, 1, 2, 3]));
        // Sent again (a missed window, requeued): the inputs are still there.
        let mut again = infer(1);
        p.fill_infer(&mut again, &batch[..1], false);
        assert_eq!(inputs_of(&again), (vec![3], vec![7, 8, 9]));
        // The last send decides the label.
        assert_eq!(
            p.finish(ClientKey(1), RequestId(11), b),
            Some(Finished { emulated: false })
        );
        assert_eq!(
            p.finish(ClientKey(1), RequestId(10), a),
            Some(Finished { emulated: true })
        );
        // Answered twice, or under another name: nothing.
        assert_eq!(p.finish(ClientKey(1), RequestId(11), b), None);
        assert_eq!(p.finish(ClientKey(9), RequestId(10), none), None);
        assert_eq!(p.len(), 1);
        // A freed slot is reused.
        let c = p.store(ClientKey(3), RequestId(1), vec![5].into());
        assert!(c.location == a.location || c.location == b.location);
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn a_batch_without_inputs_leaves_the_action_empty() {
        let mut p = PendingRequests::default();
        let x = p.store(ClientKey(1), RequestId(1), Vec::new().into());
        let y = p.store(ClientKey(1), RequestId(2), Vec::new().into());
        let mut kind = infer(2);
        p.fill_infer(&mut kind, &[member(1, 1, x), member(1, 2, y)], true);
        assert_eq!(inputs_of(&kind), (vec![], vec![]));
        assert_eq!(
            p.finish(ClientKey(1), RequestId(1), x),
            Some(Finished { emulated: true })
        );
    }
}
