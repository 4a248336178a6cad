//! What the scheduler asks its driver to do: send actions to a worker (with the batch
//! members of each INFER), answer a client.
//!
//! The driver never calls back into the scheduler to act on an output: an
//! [`Output::Send`] lists, for every INFER it carries, the requests of the batch in
//! order, each with the [`InputRef`] the driver gave when it submitted the request;
//! an [`Output::Respond`] hands that [`InputRef`] back once more, so that the driver
//! can free the input it stored.

use clockwork_core::{Action, ActionKind, InferResponse, RequestId, WorkerId};

/// An opaque client handle. The driver picks it (a connection id, a slab key) and
/// the scheduler hands it back with the response so the driver can route it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, Default)]
pub struct ClientKey(pub u64);

/// Where the driver keeps a request's input bytes, and how many there are. The
/// scheduler plans with the length only; it never reads `location`, and hands both
/// back in [`BatchMember::input`] and [`Output::Respond`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct InputRef {
    /// The driver's own handle to the bytes (a slab index, an offset).
    pub location: u64,
    /// Byte length of the input; 0 when the worker generates the input.
    pub len: u32,
}

impl InputRef {
    /// No input: the worker generates one.
    pub const NONE: Self = Self {
        location: 0,
        len: 0,
    };
}

/// One request of an INFER batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BatchMember {
    /// The client, as given to [`crate::Scheduler::request`].
    pub client: ClientKey,
    /// The request's id.
    pub id: RequestId,
    /// Its input, as given to [`crate::Scheduler::request`].
    pub input: InputRef,
}

/// One output of the scheduler, drained with [`crate::Scheduler::poll_output`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send these actions, in this order, to a worker. All actions the scheduler
    /// produced for one worker during one input call travel in one `Send`.
    Send {
        /// The worker.
        worker: WorkerId,
        /// The actions. INFER actions leave `inputs` and `input_sizes` empty: the
        /// driver fills them from `members` (see [`infer_batches`]).
        actions: Vec<Action>,
        /// The requests of the INFERs among `actions`, flat: the first INFER's
        /// `batch_size` members in batch order, then the next INFER's, and so on.
        /// Empty when `actions` holds no INFER.
        members: Vec<BatchMember>,
    },
    /// Answer a client's inference request. Every request gets exactly one.
    Respond {
        /// The client, as given to [`crate::Scheduler::request`].
        client: ClientKey,
        /// The request's input, as given to [`crate::Scheduler::request`]: the
        /// scheduler no longer needs it.
        input: InputRef,
        /// The answer.
        response: InferResponse,
    },
}

/// Pairs each INFER action of an [`Output::Send`] with its batch members: yields
/// `(index into actions, members)` in action order. Actions other than INFER are
/// skipped. Should `members` run short (it never does for a `Send` the scheduler
/// made), the INFERs past its end get what is left, possibly nothing.
pub fn infer_batches<'a, 'm>(
    actions: &'a [Action],
    members: &'m [BatchMember],
) -> impl Iterator<Item = (usize, &'m [BatchMember])> + use<'a, 'm> {
    let mut rest = members;
    actions.iter().enumerate().filter_map(move |(i, a)| {
        let ActionKind::Infer { batch_size, .. } = a.kind else {
            return None;
        };
        let (batch, tail) = rest.split_at((batch_size as usize).min(rest.len()));
        rest = tail;
        Some((i, batch))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::{ActionId, GpuId, ModelId, Nanos, Window};

    fn infer(id: u64, batch_size: u32) -> Action {
        Action {
            id: ActionId(id),
            window: Window::ANY,
            kind: ActionKind::Infer {
                model: ModelId(0),
                gpu: GpuId(0),
                batch_size,
                expected_duration: Nanos(1),
                input_sizes: Vec::new(),
                inputs: Default::default(),
            },
        }
    }

    fn member(n: u64) -> BatchMember {
        BatchMember {
            client: ClientKey(n),
            id: RequestId(n),
            input: InputRef::NONE,
        }
    }

    #[test]
    fn infer_batches_pairs_each_infer_with_its_own_members() {
        let load = Action {
            id: ActionId(9),
            window: Window::ANY,
            kind: ActionKind::LoadWeights {
                model: ModelId(0),
                gpu: GpuId(0),
                expected_duration: Nanos(1),
            },
        };
        let actions = [infer(1, 2), load, infer(2, 3)];
        let members: Vec<BatchMember> = (0..5).map(member).collect();
        let got: Vec<(usize, Vec<u64>)> = infer_batches(&actions, &members)
            .map(|(i, b)| (i, b.iter().map(|m| m.id.0).collect()))
            .collect();
        assert_eq!(got, [(0, vec![0, 1]), (2, vec![2, 3, 4])]);
        // Short member lists give what is left, never a panic.
        let got: Vec<usize> = infer_batches(&actions, &members[..3])
            .map(|(_, b)| b.len())
            .collect();
        assert_eq!(got, [2, 1]);
    }
}
