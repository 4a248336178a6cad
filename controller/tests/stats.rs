//! The statistics extension end to end: requests served over HTTP by emulated workers,
//! then `GET /v2/models/{m}/stats` (and the all-models and versioned forms) checked
//! against what the client saw.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{free_port, tiny_profile, worker_at, Controller, ADMIN_TOKEN};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Status and JSON body of one exchange.
fn exchange(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut r = r.expect("HTTP exchange");
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_vec().unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn get(a: &ureq::Agent, url: &str) -> (u16, Value) {
    exchange(a.get(url).call())
}

fn post(a: &ureq::Agent, url: &str, body: &Value) -> (u16, Value) {
    exchange(
        a.post(url)
            .header("Content-Type", "application/json")
            .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
            .send(serde_json::to_vec(body).unwrap()),
    )
}

/// Statuses of the inference answers a client saw.
#[derive(Debug, Default)]
struct Seen {
    ok: u64,
    failed: u64,
}

impl Seen {
    fn count(&mut self, status: u16) {
        if status == 200 {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `inference_stats[k]` as (count, ns).
fn figure(m: &Value, k: &str) -> (u64, u64) {
    let d = &m["inference_stats"][k];
    (d["count"].as_u64().unwrap(), d["ns"].as_u64().unwrap())
}

#[test]
fn statistics_count_what_clients_saw_and_sum_batches_to_executions() {
    let waddr = free_port();
    let w = worker_at(waddr);
    let c = Controller::start(waddr, |_| {});
    let a = agent();
    let deadline = Instant::now() + Duration::from_secs(8);
    while get(&a, &c.url("/v2/health/ready")).0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, meta) = get(&a, &c.url("/v2"));
    assert!(
        meta["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("statistics")),
        "{meta}"
    );
    let profile = tiny_profile();
    let (status, loaded) = post(
        &a,
        &c.url("/v2/repository/models/tiny/load"),
        &json!({ "parameters": { "copies": 2, "profile": profile } }),
    );
    assert_eq!(status, 200, "{loaded}");
    let model = loaded["models"][0].as_str().unwrap().to_owned();
    let other = loaded["models"][1].as_str().unwrap().to_owned();

    // Known but never asked for: all zeros; unknown: 404; the all-models list holds
    // only models that were asked for.
    let (status, v) = get(&a, &c.url(&format!("/v2/models/{model}/stats")));
    assert_eq!(status, 200, "{v}");
    let m = &v["model_stats"][0];
    assert_eq!(m["name"], model.as_str());
    assert_eq!(m["version"], "1");
    assert_eq!(m["last_inference"], 0);
    assert_eq!(m["execution_count"], 0);
    assert_eq!(figure(m, "success"), (0, 0));
    assert_eq!(m["batch_stats"], json!([]));
    assert_eq!(get(&a, &c.url("/v2/models/nope-77/stats")).0, 404);
    assert_eq!(
        get(&a, &c.url(&format!("/v2/models/{model}/versions/2/stats"))).0,
        404
    );
    let (status, all) = get(&a, &c.url("/v2/models/stats"));
    assert_eq!(status, 200);
    assert_eq!(all["model_stats"], json!([]));

    let before_ms = unix_ms();
    let infer_url = c.url(&format!("/v2/models/{model}/infer"));
    let mut seen = Seen::default();
    // Until the model is loaded, answers may be failures: they count as such.
    for _ in 0..200 {
        let (status, _) = post(&a, &infer_url, &json!({ "inputs": [] }));
        seen.count(status);
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(seen.ok, 1, "the model never served");
    // Concurrent clients, so that some batches hold more than one request.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = infer_url.clone();
            std::thread::spawn(move || {
                let a = agent();
                let mut seen = Seen::default();
                for _ in 0..10 {
                    let body = json!({ "parameters": { "timeout": 200_000 }, "inputs": [] });
                    seen.count(post(&a, &url, &body).0);
                }
                seen
            })
        })
        .collect();
    for t in threads {
        let s = t.join().unwrap();
        seen.ok += s.ok;
        seen.failed += s.failed;
    }
    // SLOs no plan can meet (below the 1 ms batch-1 time): refused, counted as fails.
    for _ in 0..3 {
        let body = json!({ "parameters": { "timeout": 100 }, "inputs": [] });
        let (status, v) = post(&a, &infer_url, &body);
        assert_eq!(status, 429, "{v}");
        seen.count(status);
    }
    let after_ms = unix_ms();
    assert!(seen.ok > 10, "{seen:?}");

    let (status, v) = get(&a, &c.url(&format!("/v2/models/{model}/stats")));
    assert_eq!(status, 200, "{v}");
    let m = &v["model_stats"][0];
    let (ok, ok_ns) = figure(m, "success");
    assert_eq!(ok, seen.ok, "{m}");
    assert!(ok_ns > 0, "{m}");
    let (failed, _) = figure(m, "fail");
    assert_eq!(failed, seen.failed, "{m}");
    // Every success ran in a batch: queue and stage figures count each one.
    for k in ["queue", "compute_input", "compute_infer", "compute_output"] {
        assert_eq!(figure(m, k).0, seen.ok, "{k}: {m}");
    }
    assert!(figure(m, "queue").1 > 0, "{m}");
    assert!(figure(m, "compute_infer").1 > 0, "{m}");
    // Copies are not separate stages on emulated GPUs.
    assert_eq!(figure(m, "compute_input").1, 0, "{m}");
    assert_eq!(figure(m, "cache_hit"), (0, 0));
    let executions = m["execution_count"].as_u64().unwrap();
    let inferences = m["inference_count"].as_u64().unwrap();
    let batches = m["batch_stats"].as_array().unwrap();
    assert!(!batches.is_empty(), "{m}");
    let mut sizes = Vec::new();
    let (mut runs, mut requests) = (0, 0);
    for b in batches {
        let size = b["batch_size"].as_u64().unwrap();
        let n = b["compute_infer"]["count"].as_u64().unwrap();
        assert!(
            n > 0 && b["compute_infer"]["ns"].as_u64().unwrap() > 0,
            "{b}"
        );
        assert_eq!(b["compute_input"]["count"].as_u64().unwrap(), n, "{b}");
        sizes.push(size);
        runs += n;
        requests += n * size;
    }
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
    assert_eq!(runs, executions, "{m}");
    assert_eq!(requests, inferences, "{m}");
    // Every request answered with success ran; a batch may also have run for requests
    // already answered at their deadline.
    assert!(inferences >= seen.ok && executions <= inferences, "{m}");
    let last = m["last_inference"].as_u64().unwrap();
    assert!(
        last >= before_ms.saturating_sub(1_000) && last <= after_ms + 1_000,
        "{last}"
    );

    // The versioned form answers the same; the all-models form lists just this model.
    let (_, versioned) = get(&a, &c.url(&format!("/v2/models/{model}/versions/1/stats")));
    assert_eq!(
        versioned["model_stats"][0]["inference_stats"]["success"]["count"],
        ok
    );
    let (_, all) = get(&a, &c.url("/v2/models/stats"));
    let names: Vec<&str> = all["model_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [model.as_str()]);
    let (_, untouched) = get(&a, &c.url(&format!("/v2/models/{other}/stats")));
    assert_eq!(untouched["model_stats"][0]["execution_count"], 0);
    let (status, _) = post(&a, &c.url("/v2/models/stats"), &json!({}));
    assert_eq!(status, 405);
    drop(c);
    drop(w);
}
