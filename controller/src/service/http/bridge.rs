//! The HTTP front end's endpoint logic offered to the gRPC front end, so that both
//! answer alike: model resolution, tensor checks against the model's signature, the
//! one request path (`Shared::submit`), SLOs, the admin guard, the repository API.
//!
//! Each call takes what an HTTP request would carry (a model name, an OIP JSON body
//! with the binary tensor extension, the `Authorization` value) and returns what the
//! HTTP answer would say ([`Answer`]: status code, JSON, binary tail); the gRPC front
//! end translates protobuf to and from that. An inference opens its own route (a
//! gRPC connection has many inferences in flight, an HTTP one at most one) and closes
//! it when answered or dropped.

use super::super::auth::ApiAuth;
use super::super::path::Route;
use super::super::{now, Shared, SharedRef};
use super::wire::{Request, Response};
use super::{AdminAccess, HttpLimits};
use super::{Conn, Ctx};
use clockwork_scheduler::ClientKey;
use glommio::channels::local_channel;
use serde_json::Value;

/// What an HTTP answer would say.
#[derive(Debug)]
pub(in crate::service) struct Answer {
    /// The HTTP status code.
    pub(in crate::service) status: u16,
    /// The JSON part (`Null` when the body is not JSON).
    pub(in crate::service) json: Value,
    /// The binary tensor extension's bytes after the JSON part.
    pub(in crate::service) tail: Vec<u8>,
}

impl Answer {
    fn of(r: Response) -> Self {
        let header_len = r
            .headers
            .iter()
            .find(|(k, _)| *k == "Inference-Header-Content-Length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .filter(|&n| n <= r.body.len());
        let mut body = r.body;
        let tail = match header_len {
            Some(n) => body.split_off(n),
            None => Vec::new(),
        };
        Self {
            status: r.status,
            json: serde_json::from_slice(&body).unwrap_or(Value::Null),
            tail,
        }
    }

    /// The error message of a failed answer (its `error`, with the scheduler's
    /// status when there is one).
    pub(in crate::service) fn message(&self) -> String {
        let error = self.json.get("error").and_then(Value::as_str).unwrap_or("");
        match self.json.get("clockwork_status").and_then(Value::as_str) {
            Some(s) => format!("{error} (clockwork_status {s})"),
            None => error.to_owned(),
        }
    }
}

/// The HTTP front end's logic, with the limits and admin access it runs under.
pub(in crate::service) struct Bridge {
    ctx: Ctx,
}

/// Closes an inference's route when the inference is answered or abandoned.
struct RouteGuard<'a> {
    shared: &'a SharedRef,
    key: ClientKey,
}

impl Drop for RouteGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.shared.try_borrow_mut() {
            s.close_route(self.key);
        }
    }
}

fn request(body: Vec<u8>, header_len: Option<usize>, authorization: Option<String>) -> Request {
    Request {
        method: "POST".to_owned(),
        path: String::new(),
        query: String::new(),
        authorization,
        keep_alive: true,
        inference_header_len: header_len,
        body: body.into(),
    }
}

impl Bridge {
    pub(in crate::service) fn new(limits: HttpLimits, admin: AdminAccess, api: ApiAuth) -> Self {
        Self {
            ctx: Ctx {
                limits,
                admin,
                api,
                metrics_need_token: true,
                engine: super::HttpEngine::Native,
            },
        }
    }

    /// The API token check (`--api-token`) on an `authorization` value; a refusal is
    /// counted (`clockwork_auth_refused_total{front="grpc"}`) and its message returned.
    pub(in crate::service) fn check_api(
        &self,
        s: &mut Shared,
        authorization: Option<&str>,
    ) -> Result<(), &'static str> {
        self.ctx.api.check(authorization).map_err(|refusal| {
            s.metrics.auth_refused("grpc", refusal.label());
            refusal.message()
        })
    }

    /// `GET /v2/models/{name}/stats`, or `/v2/models/stats` for `None`.
    pub(in crate::service) fn statistics(&self, s: &Shared, name: Option<&str>) -> Answer {
        Answer::of(super::statistics(s, name))
    }

    pub(in crate::service) fn limits(&self) -> &HttpLimits {
        &self.ctx.limits
    }

    /// `GET /v2/health/ready`.
    pub(in crate::service) fn server_ready(&self, s: &Shared) -> Answer {
        Answer::of(super::server_ready(s))
    }

    /// `GET /v2/models/{name}`.
    pub(in crate::service) fn model_metadata(&self, s: &Shared, name: &str) -> Answer {
        Answer::of(super::model_metadata(s, name))
    }

    /// `GET /v2/models/{name}/ready`.
    pub(in crate::service) fn model_ready(&self, s: &Shared, name: &str) -> Answer {
        Answer::of(super::model_ready(s, name))
    }

    /// `POST /v2/repository/index` with `{"ready": ready}`, whole: the entries
    /// (`name`, `version`, `state`, `reason`, ...), handed to `each_page` a page at a
    /// time with the executor let go between pages.
    pub(in crate::service) async fn repository_index(
        &self,
        shared: &SharedRef,
        ready: bool,
        each_page: impl FnMut(Vec<Value>),
    ) {
        super::whole_index(shared, 0, ready, each_page).await;
    }

    /// `POST /v2/repository/models/{name}/load` (admin).
    pub(in crate::service) fn repository_load(
        &self,
        s: &mut Shared,
        name: &str,
        body: Vec<u8>,
        authorization: Option<String>,
    ) -> Answer {
        let req = request(body, None, authorization);
        Answer::of(match self.ctx.admin.check(&req) {
            Err(refusal) => refusal,
            Ok(()) => super::repository_load(s, name, &req.body),
        })
    }

    /// `POST /v2/repository/models/{name}/unload` (admin).
    pub(in crate::service) fn repository_unload(
        &self,
        s: &mut Shared,
        name: &str,
        body: Vec<u8>,
        authorization: Option<String>,
    ) -> Answer {
        let req = request(body, None, authorization);
        Answer::of(match self.ctx.admin.check(&req) {
            Err(refusal) => refusal,
            Ok(()) => super::repository_unload(s, name, &req.body),
        })
    }

    /// `POST /v2/models/{name}/infer` with `body` (its JSON part `header_len` bytes
    /// long, the binary tensor extension's bytes after it): submitted on the one
    /// request path, answered when the scheduler answers (or the wait runs out).
    pub(in crate::service) async fn infer(
        &self,
        shared: &SharedRef,
        name: &str,
        body: Vec<u8>,
        header_len: usize,
    ) -> Answer {
        let (tx, answers) = local_channel::new_unbounded();
        let key = shared.borrow_mut().open_route(Route::Http(tx));
        let _guard = RouteGuard { shared, key };
        let mut conn = Conn {
            key,
            answers,
            next_id: 0,
            answering: None,
        };
        let req = request(body, Some(header_len), None);
        let r = super::infer(shared, &self.ctx, &mut conn, name, &req).await;
        if let Some((id, success, deadline)) = conn.answering.take() {
            // Handed to HTTP/2 now: the log row goes out with this time.
            shared
                .borrow_mut()
                .http_answer_sent(key, id, success, deadline, now());
        }
        Answer::of(r)
    }
}
