//! One inference request's path through the service, whichever front end it came
//! from: [`Shared::submit`] takes it in (the native links and HTTP only decode the
//! request and wait on their own route for the answer), the scheduler plans it, its
//! INFER leaves with its input filled from [`PendingRequests`](super::pending), and
//! its one answer goes back on the route of the client that sent it, carrying the
//! request's own slice of its batch's outputs (split by the scheduler).

use super::http::metrics::Call;
use super::{now, LogFiles, Shared};
use clockwork_core::client::ClientResponse;
use clockwork_core::telemetry::{LogRecord, RequestLog};
use clockwork_core::wire::ToWorker;
use clockwork_core::{Action, ActionKind, InferRequest, InferResponse, Nanos, RequestId, WorkerId};
use clockwork_scheduler::{infer_batches, BatchMember, ClientKey, InputRef, Output};
use glommio::channels::local_channel::LocalSender;
use std::collections::HashMap;

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

    /// The client is gone: answers still due to it are dropped. Log rows of HTTP
    /// answers that were never sent are written as the scheduler made them.
    pub(super) fn close_route(&mut self, key: ClientKey) {
        self.routes.remove(&key);
        if let Some(rows) = self.http_rows.remove(&key) {
            if let Some(logs) = &mut self.logs {
                for r in rows {
                    logs.write(&LogRecord::Request(r));
                }
            }
        }
    }

    /// The HTTP answer to request `id` of `client` finished writing at `sent`. An
    /// answer's send time counts against its SLO: a success written after its
    /// `deadline` is counted late (`clockwork_http_late_answers_total`), and its
    /// request-log row, held back since the scheduler answered, is written with the
    /// send time (`t`, `latency`) and `deadline_met` false. The row's deadline is the
    /// scheduler's; `deadline` (the front end's own) counts only when telemetry is off.
    pub(super) fn http_answer_sent(
        &mut self,
        client: ClientKey,
        id: RequestId,
        success: bool,
        deadline: Nanos,
        sent: Nanos,
    ) {
        let mut late = success && sent > deadline;
        let rows = self.http_rows.remove(&client).unwrap_or_default();
        for mut r in rows {
            if r.request_id == id.0 {
                let arrival = r.arrival();
                r.t = r.t.max(sent);
                r.latency = r.t.saturating_sub(arrival);
                r.deadline_met = r.deadline_met && sent <= r.deadline;
                late = success && sent > r.deadline;
            }
            if let Some(logs) = &mut self.logs {
                logs.write(&LogRecord::Request(r));
            }
        }
        if late {
            self.metrics.http_late_answers += 1;
        }
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
        self.inference_stats.answered(&self.sched, &response, now());
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

/// Writes one telemetry record, except the request row of an HTTP client's answer:
/// that one waits in `http_rows` until the answer is sent
/// ([`Shared::http_answer_sent`]), so that the log counts the send time.
pub(super) fn write_log(
    logs: &mut LogFiles,
    routes: &HashMap<ClientKey, Route>,
    http_rows: &mut HashMap<ClientKey, Vec<RequestLog>>,
    rec: LogRecord,
) {
    if let LogRecord::Request(r) = &rec {
        let key = ClientKey(r.user_id);
        if matches!(routes.get(&key), Some(Route::Http(_))) {
            http_rows.entry(key).or_default().push(*r);
            return;
        }
    }
    logs.write(&rec);
}
