//! What the scheduler asks its driver to do: send actions to a worker, answer a client.

use clockwork_core::{Action, InferResponse, WorkerId};

/// An opaque client handle. The driver picks it (a connection id, a slab key) and
/// the scheduler hands it back with the response so the driver can route it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, Default)]
pub struct ClientKey(pub u64);

/// One output of the scheduler, drained with [`crate::Scheduler::poll_output`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send these actions, in this order, to a worker. All actions the scheduler
    /// produced for one worker during one input call travel in one `Send`.
    Send {
        /// The worker.
        worker: WorkerId,
        /// The actions. For INFER actions, [`crate::Scheduler::batch_requests`] lists
        /// the requests (and their input lengths) whose inputs must be concatenated
        /// into `inputs`; the scheduler does not hold input bytes.
        actions: Vec<Action>,
    },
    /// Answer a client's inference request. Every request gets exactly one.
    Respond {
        /// The client, as given to [`crate::Scheduler::request`].
        client: ClientKey,
        /// The answer.
        response: InferResponse,
    },
}
