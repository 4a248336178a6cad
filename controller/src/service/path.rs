//! One inference request's path through the service, whichever front end it came
//! from: [`Shared::submit`] takes it in (the native links and HTTP only decode the
//! request and wait on their own route for the answer), the scheduler plans it, its
//! INFER leaves with its input filled from [`PendingRequests`](super::pending), and
//! its one answer goes back on the route of the client that sent it, carrying the
//! request's own slice of its batch's outputs (split by the scheduler).

use super::http::metrics::Call;
use super::{now, Shared};
use clockwork_core::client::ClientResponse;
use clockwork_core::wire::ToWorker;
use clockwork_core::{Action, ActionKind, InferRequest, InferResponse, WorkerId};
use clockwork_scheduler::{infer_batches, BatchMember, ClientKey, InputRef, Output};
use glommio::channels::local_channel::LocalSender;

/// An inference answer for the HTTP front end.
#[derive(Debug)]
pub(super) struct Answered {
    /// The scheduler's answer.
    pub(super) response: InferResponse,
    /// The request ran on an emulated GPU (its output is not a real model's).
    pub(super) emulated: bool,
}

/// Where a client's answers go.
#[derive(Debug)]
pub(super) enum Route {
    /// A native client link's writer task.
    Native(LocalSender<ClientResponse>),
    /// An HTTP connection's task, waiting for its one inference.
    Http(LocalSender<Answered>),
}

impl Shared {
    /// A new client route; its key names it to the scheduler.
    pub(super) fn open_route(&mut self, route: Route) -> ClientKey {
        let key = ClientKey(self.next_client);
        self.next_client += 1;
        self.routes.insert(key, route);
        key
    }

    /// The client is gone: answers still due to it are dropped.
    pub(super) fn close_route(&mut self, key: ClientKey) {
        self.routes.remove(&key);
    }

    /// The one way an inference request enters the service, from either front end:
    /// keeps its input for the INFER that will carry it, asks the scheduler (which
    /// answers bad input, unknown models and infeasible SLOs at once), and routes what
    /// the scheduler produced. The request's one answer goes to `client`'s route.
    pub(super) fn submit(&mut self, client: ClientKey, request: InferRequest) {
        let InferRequest {
            id,
            model,
            slo,
            input,
        } = request;
        let t = now();
        let input = self.pending.store(client, id, input);
        self.timed(Call::Request, |sc| {
            sc.request(t, client, id, model, slo, input);
        });
        self.drain();
    }

    /// Carries out one scheduler output.
    pub(super) fn route_output(&mut self, out: Output) {
        match out {
            Output::Send {
                worker,
                actions,
                members,
            } => self.send_actions(worker, actions, &members),
            Output::Respond {
                client,
                input,
                response,
            } => self.deliver(client, input, response),
        }
    }

    /// Fills each INFER's inputs from its batch members and sends the actions.
    fn send_actions(
        &mut self,
        worker: WorkerId,
        mut actions: Vec<Action>,
        members: &[BatchMember],
    ) {
        let batches: Vec<(usize, &[BatchMember])> = infer_batches(&actions, members).collect();
        for (i, batch) in batches {
            let a = &mut actions[i];
            let emulated = matches!(&a.kind, ActionKind::Infer { gpu, .. }
                if self.emulated_gpus.contains(&(worker, *gpu)));
            self.pending.fill_infer(&mut a.kind, batch, emulated);
        }
        if let Some(tx) = self.workers.get(&worker) {
            // Unbounded: try_send fails only when the writer is gone, and then the
            // link's reader reports the loss to the scheduler.
            let _ = tx.try_send(ToWorker::Actions(actions));
        }
    }

    /// Sends an inference answer to its client and forgets the request.
    fn deliver(&mut self, client: ClientKey, input: InputRef, response: InferResponse) {
        self.metrics.response(&self.sched, &response);
        self.answered += 1;
        let kept = self.pending.finish(client, response.id, input);
        if kept.is_none() {
            tracing::error!(
                client = client.0,
                request = response.id.0,
                "answer for a request the service does not hold"
            );
        }
        match self.routes.get(&client) {
            Some(Route::Native(tx)) => {
                let _ = tx.try_send(ClientResponse::Inferred(response));
            }
            Some(Route::Http(tx)) => {
                let emulated = kept.is_some_and(|k| k.emulated);
                let _ = tx.try_send(Answered { response, emulated });
            }
            None => {}
        }
    }
}
