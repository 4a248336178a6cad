//! Bearer-token auth on the HTTP front end (`--api-token`): every endpoint but the
//! health probes (and `/metrics`, unless `--metrics-need-token`) needs the API token
//! or the admin token; a refused request gets 401 and changes nothing, and clients
//! with the right token are not affected by refused ones.

mod support;

use clockwork_controller::service::BearerToken;
use support::{free_port, plain, wait_for, worker_at, Controller, ADMIN_TOKEN};

const API_TOKEN: &str = "the-api-token";
const GOOD: &str = "Bearer the-api-token";
const MODEL_INFER: &str = "/v2/models/resnet50_v2-0/infer";

fn start(metrics_need_token: bool) -> (Controller, clockwork_worker::WorkerHandle) {
    let waddr = free_port();
    let w = worker_at(waddr);
    let c = Controller::start(waddr, move |cfg| {
        cfg.api_token = Some(BearerToken::new(API_TOKEN).unwrap());
        cfg.metrics_need_token = metrics_need_token;
    });
    // The health probes need no token.
    wait_for("ready", || {
        plain(c.http, "GET", "/v2/health/ready", None, "").status == 200
    });
    // One instance (resnet50_v2-0), registered with the admin token.
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let load = "/v2/repository/models/resnet50_v2/load";
    let a = plain(c.http, "POST", load, Some(&admin), "{}");
    assert_eq!(a.status, 200, "{a:?}");
    for i in 0.. {
        let a = plain(c.http, "POST", MODEL_INFER, Some(GOOD), r#"{"inputs":[]}"#);
        if a.status == 200 {
            break;
        }
        assert!(i < 500, "no inference served: {a:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (c, w)
}

/// The value of one sample in the `/metrics` text (0 when absent).
fn metric(text: &str, sample: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Inference answers of every status, from `/metrics`.
fn answered(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("clockwork_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn assert_refused(a: &support::Answer, says: &str) {
    assert_eq!(a.status, 401, "{a:?}");
    assert_eq!(a.header("WWW-Authenticate"), Some("Bearer"), "{a:?}");
    assert!(a.error().contains(says), "{a:?}");
    assert!(!a.body.contains(API_TOKEN) && !a.body.contains(ADMIN_TOKEN));
}

#[test]
fn the_api_token_guards_every_endpoint_but_the_health_probes() {
    let (c, _w) = start(false);
    let h = c.http;
    assert_eq!(plain(h, "GET", "/v2/health/live", None, "").status, 200);
    assert_eq!(plain(h, "HEAD", "/v2/health/live", None, "").status, 200);
    assert_eq!(
        plain(h, "GET", "/v2/health/ready", Some("Bearer x"), "").status,
        200
    );
    // Open by default, for scrapers.
    let before = plain(h, "GET", "/metrics", None, "");
    assert_eq!(before.status, 200);

    // Accepted: the API token, the admin token, the scheme in any case.
    assert_eq!(plain(h, "GET", "/v2", Some(GOOD), "").status, 200);
    assert_eq!(
        plain(h, "GET", "/v2", Some("bearer the-api-token"), "").status,
        200
    );
    let admin = format!("Bearer {ADMIN_TOKEN}");
    assert_eq!(plain(h, "GET", "/v2", Some(&admin), "").status, 200);

    // Refused: missing, another scheme, a wrong token, a prefix of the right one.
    assert_refused(&plain(h, "GET", "/v2", None, ""), "Authorization: Bearer");
    assert_refused(
        &plain(
            h,
            "GET",
            "/v2/models/resnet50_v2-0",
            Some("Basic dXNlcjpwYXNz"),
            "",
        ),
        "must be Bearer",
    );
    assert_refused(
        &plain(h, "GET", "/v2", Some("Bearer wrong"), ""),
        "wrong token",
    );
    assert_refused(
        &plain(h, "GET", "/v2", Some("Bearer the-api-toke"), ""),
        "wrong token",
    );
    assert_refused(
        &plain(h, "POST", "/v2/repository/index", None, ""),
        "Bearer",
    );
    assert_refused(&plain(h, "GET", "/v2/no/such/thing", None, ""), "Bearer");
    // A refused inference is not queued: no answer is counted for it.
    assert_refused(
        &plain(h, "POST", MODEL_INFER, None, r#"{"inputs":[]}"#),
        "Bearer",
    );
    assert_refused(
        &plain(
            h,
            "POST",
            MODEL_INFER,
            Some("Bearer nope"),
            r#"{"inputs":[]}"#,
        ),
        "wrong token",
    );
    let after = plain(h, "GET", "/metrics", None, "");
    assert_eq!(answered(&after.body), answered(&before.body));
    let refused = |reason: &str| {
        metric(
            &after.body,
            &format!("clockwork_auth_refused_total{{interface=\"http\",reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(refused("missing"), 4);
    assert_eq!(refused("not_bearer"), 1);
    assert_eq!(refused("wrong"), 3);

    // The admin endpoints still need the admin token: the API token is not enough.
    let load = "/v2/repository/models/resnet50_v2/load";
    let a = plain(h, "POST", load, Some(GOOD), "{}");
    assert_eq!(a.status, 403, "{a:?}");
    assert!(a.error().contains("wrong admin token"), "{a:?}");
    assert_refused(&plain(h, "POST", load, None, "{}"), "Bearer");
    assert_eq!(plain(h, "POST", load, Some(&admin), "{}").status, 200);

    // And inference with the token is served.
    assert_eq!(
        plain(h, "POST", MODEL_INFER, Some(GOOD), r#"{"inputs":[]}"#).status,
        200
    );
    c.stop().unwrap();
}

#[test]
fn metrics_can_need_the_token_too() {
    let (c, _w) = start(true);
    let h = c.http;
    assert_refused(&plain(h, "GET", "/metrics", None, ""), "Bearer");
    assert_eq!(plain(h, "GET", "/metrics", Some(GOOD), "").status, 200);
    assert_eq!(plain(h, "GET", "/v2/health/live", None, "").status, 200);
}

#[test]
fn refused_clients_do_not_disturb_a_client_with_the_token() {
    let (c, _w) = start(false);
    let h = c.http;
    let good = std::thread::spawn(move || {
        // A keep-alive client: many requests on one connection.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("http://{h}{MODEL_INFER}");
        (0..60)
            .map(|_| {
                agent
                    .post(&url)
                    .header("Authorization", GOOD)
                    .header("Content-Type", "application/json")
                    .send(r#"{"inputs":[]}"#)
                    .map_or(0, |r| r.status().as_u16())
            })
            .collect::<Vec<u16>>()
    });
    let bad: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                (0..40)
                    .map(|_| {
                        let auth = (i > 0).then_some("Bearer not-it");
                        plain(h, "POST", MODEL_INFER, auth, r#"{"inputs":[]}"#).status
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    for b in bad {
        assert!(b.join().unwrap().iter().all(|&s| s == 401));
    }
    let statuses = good.join().unwrap();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
}
