//! Link faults with real processes (`clockwork-controller`, `clockwork-worker` with an
//! EMULATED GPU) on loopback: a stalled link and a lossy link (a frame-aware proxy
//! between controller and worker), a frozen worker (SIGSTOP), a second controller on
//! the same ports, a worker drained by SIGTERM under load, and what connections cost.
//!
//! Each asserts what must hold whatever the machine's speed: every request is answered
//! exactly once, no success comes after its deadline (the controller's own latency
//! against the SLO), the fault is detected (in `/metrics`) well within a generous bound
//! of the configured link timeout, and the worker serves again after the fault ends.

use clockwork_core::client::ClientResponse;
use clockwork_core::{ClientStatus, ModelId};
use clockwork_tests::native::{metric, scrape_metrics, NativeClient};
use clockwork_tests::procs::{free_addr, Proc};
use clockwork_tests::proxy::{Mode, Proxy};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TOKEN: &str = "fault-test-token";
/// The link timeout the processes run with (heartbeats every 50 ms).
const LINK_TIMEOUT_MS: u64 = 400;
/// Generous bound on detection: the timeout, plus a busy 2-core machine's delays.
const DETECT_WITHIN: Duration = Duration::from_secs(5);
const SLO: Duration = Duration::from_millis(100);

/// One cluster at a time: each is several processes, and the machine may have two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn s(v: impl ToString) -> String {
    v.to_string()
}

struct Cluster {
    dir: tempfile::TempDir,
    worker: Proc,
    worker_addr: SocketAddr,
    controller: Proc,
    client_addr: SocketAddr,
    http: SocketAddr,
    proxy: Option<Proxy>,
    model: ModelId,
}

fn start_worker(dir: &std::path::Path, addr: SocketAddr, log: &str) -> Proc {
    let mut w = Proc::start(
        "clockwork-worker",
        &[
            s("--emulate"),
            s("1"),
            s("--listen"),
            s(addr),
            s("--token"),
            s(TOKEN),
            s("--heartbeat-ms"),
            s(50),
            s("--link-timeout-ms"),
            s(LINK_TIMEOUT_MS),
            s("--drain-ms"),
            s(3000),
            s("--name"),
            s("w0"),
        ],
        &dir.join(log),
    );
    w.wait_stdout("listening on", Duration::from_secs(60));
    w
}

fn controller_args(workers: SocketAddr, listen: SocketAddr, http: SocketAddr) -> Vec<String> {
    vec![
        s("--workers"),
        s(workers),
        s("--listen"),
        s(listen),
        s("--http"),
        s(http),
        s("--token"),
        s(TOKEN),
        s("--heartbeat-ms"),
        s(50),
        s("--link-timeout-ms"),
        s(LINK_TIMEOUT_MS),
        s("--result-grace-ms"),
        s(1000),
        s("--reconnect-ms"),
        s(50),
    ]
}

/// Wait until `/metrics` at `http` satisfies `ok`, up to `within`; the time it took.
fn wait_metrics(http: SocketAddr, within: Duration, ok: impl Fn(&str) -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < within {
        if let Ok(text) = scrape_metrics(http) {
            if ok(&text) {
                return Some(t.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn links_lost(text: &str) -> f64 {
    ["closed", "silent", "result_overdue", "error"]
        .iter()
        .map(|r| {
            metric(
                text,
                "clockwork_worker_links_lost_total",
                &format!("reason=\"{r}\""),
            )
        })
        .sum()
}

impl Cluster {
    fn start(with_proxy: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let worker_addr = free_addr();
        let worker = start_worker(dir.path(), worker_addr, "worker.log");
        let proxy = with_proxy.then(|| Proxy::start(worker_addr));
        let target = proxy.as_ref().map_or(worker_addr, |p| p.addr);
        let (client_addr, http) = (free_addr(), free_addr());
        let controller = Proc::start(
            "clockwork-controller",
            &controller_args(target, client_addr, http),
            &dir.path().join("controller.log"),
        );
        let joined = wait_metrics(http, Duration::from_secs(60), |t| {
            metric(t, "clockwork_workers_connected", "") >= 1.0
        });
        assert!(
            joined.is_some(),
            "the worker never joined{}",
            controller.log_tail()
        );
        let mut c = NativeClient::connect(client_addr, TOKEN).expect("client connects");
        let model = c
            .register(clockwork_core::model::resnet50(), 1)
            .expect("register");
        Self {
            dir,
            worker,
            worker_addr,
            controller,
            client_addr,
            http,
            proxy,
            model,
        }
    }

    fn metrics(&self) -> String {
        scrape_metrics(self.http).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!("{}{}", self.controller.log_tail(), self.worker.log_tail())
    }
}

/// One answer, as the client saw it.
#[derive(Debug, Clone)]
struct Answer {
    status: ClientStatus,
    latency: Duration,
    at: Instant,
}

/// Open-loop load on one native connection: a request every `every`, answers
/// collected as they come.
struct Load {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(u64, HashMap<u64, Vec<Answer>>)>,
}

impl Load {
    fn start(addr: SocketAddr, model: ModelId, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut c = NativeClient::connect(addr, TOKEN).expect("load client connects");
            let mut answers: HashMap<u64, Vec<Answer>> = HashMap::new();
            let mut sent = 0u64;
            let mut next = Instant::now();
            let record = |r: ClientResponse, answers: &mut HashMap<u64, Vec<Answer>>| {
                if let ClientResponse::Inferred(r) = r {
                    answers.entry(r.id.0).or_default().push(Answer {
                        status: r.status,
                        latency: Duration::from_nanos(r.controller_latency.get()),
                        at: Instant::now(),
                    });
                }
            };
            while !st.load(Ordering::SeqCst) {
                if Instant::now() >= next {
                    c.infer(sent, model, SLO).expect("send");
                    sent += 1;
                    next += every;
                }
                let wait = next.saturating_duration_since(Instant::now());
                if let Ok(Some(r)) = c.recv::<ClientResponse>(wait.max(Duration::from_micros(100)))
                {
                    record(r, &mut answers);
                }
            }
            // Collect what is still owed (every request has a deadline of SLO; allow
            // for a busy machine).
            let t = Instant::now();
            while (answers.len() as u64) < sent && t.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(r)) = c.recv::<ClientResponse>(Duration::from_millis(100)) {
                    record(r, &mut answers);
                }
            }
            // Anything more (a duplicate) would arrive now.
            if let Ok(Some(r)) = c.recv::<ClientResponse>(Duration::from_millis(300)) {
                record(r, &mut answers);
            }
            (sent, answers)
        });
        Self { stop, thread }
    }

    fn finish(self) -> (u64, HashMap<u64, Vec<Answer>>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("load thread")
    }
}

/// Every request answered exactly once, no success past its SLO; the successes.
fn check_answers(sent: u64, answers: &HashMap<u64, Vec<Answer>>, logs: &str) -> Vec<Answer> {
    assert!(sent > 0);
    let missing: Vec<u64> = (0..sent).filter(|i| !answers.contains_key(i)).collect();
    assert!(
        missing.is_empty(),
        "{} of {sent} requests unanswered (e.g. {:?}){logs}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let dup: Vec<&u64> = answers
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k)
        .collect();
    assert!(dup.is_empty(), "requests answered twice: {dup:?}");
    assert!(
        answers.keys().all(|&k| k < sent),
        "answers to requests never sent"
    );
    let late: Vec<&Answer> = answers
        .values()
        .flatten()
        .filter(|a| a.status.is_success() && a.latency > SLO)
        .collect();
    assert!(late.is_empty(), "successes after their deadline: {late:?}");
    answers
        .values()
        .flatten()
        .filter(|a| a.status.is_success())
        .cloned()
        .collect()
}

/// A link fault: run load, break the link with `fault`, check detection, heal with
/// `heal`, check the worker serves again and the accounting.
fn link_fault(
    with_proxy: bool,
    fault: impl FnOnce(&Cluster),
    heal: impl FnOnce(&Cluster),
    reasons: &[&str],
) {
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let cl = Cluster::start(with_proxy);
    let load = Load::start(cl.client_addr, cl.model, Duration::from_millis(10));
    std::thread::sleep(Duration::from_millis(1500));
    let before = links_lost(&cl.metrics());
    fault(&cl);
    let detected = wait_metrics(cl.http, DETECT_WITHIN, |t| links_lost(t) > before);
    let text = cl.metrics();
    let Some(took) = detected else {
        panic!(
            "the fault was not detected within {DETECT_WITHIN:?}:\n{text}{}",
            cl.logs()
        );
    };
    let by_reason: f64 = reasons
        .iter()
        .map(|r| {
            metric(
                &text,
                "clockwork_worker_links_lost_total",
                &format!("reason=\"{r}\""),
            )
        })
        .sum();
    assert!(
        by_reason >= 1.0,
        "lost for another reason than {reasons:?}:\n{text}"
    );
    eprintln!("detected after {took:?} (link timeout {LINK_TIMEOUT_MS} ms)");
    std::thread::sleep(Duration::from_millis(500));
    heal(&cl);
    let healed = Instant::now();
    let back = wait_metrics(cl.http, Duration::from_secs(20), |t| {
        metric(t, "clockwork_workers_connected", "") >= 1.0
    });
    assert!(back.is_some(), "the worker did not rejoin{}", cl.logs());
    std::thread::sleep(Duration::from_millis(2000));
    let (sent, answers) = load.finish();
    let ok = check_answers(sent, &answers, &cl.logs());
    let after = ok.iter().filter(|a| a.at > healed).count();
    assert!(after > 0, "no success after the link healed{}", cl.logs());
    eprintln!(
        "{sent} requests, {} successes, {after} after healing",
        ok.len()
    );
    drop(cl.dir);
}

#[test]
fn a_stalled_link_is_detected_its_requests_answered_and_the_worker_serves_again() {
    link_fault(
        true,
        |cl| cl.proxy.as_ref().unwrap().set(Mode::Stall),
        |cl| cl.proxy.as_ref().unwrap().set(Mode::Forward),
        &["silent"],
    );
}

#[test]
fn a_lossy_link_is_detected_its_requests_answered_and_the_worker_serves_again() {
    link_fault(
        true,
        |cl| {
            let p = cl.proxy.as_ref().unwrap();
            // Drop every frame (actions, results, heartbeats) for less than the link
            // timeout: the link never falls silent for long, but results are lost.
            p.set(Mode::Drop);
            std::thread::sleep(Duration::from_millis(LINK_TIMEOUT_MS / 2));
            p.set(Mode::Forward);
            assert!(p.dropped() > 0, "nothing was dropped");
        },
        |_| {},
        &["result_overdue", "silent"],
    );
}

#[test]
fn a_frozen_worker_is_detected_and_serves_again_once_thawed() {
    link_fault(
        false,
        |cl| cl.worker.signal("STOP"),
        |cl| cl.worker.signal("CONT"),
        &["silent"],
    );
}

#[test]
fn a_second_controller_on_the_same_ports_fails_and_one_on_other_ports_gets_no_worker() {
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let cl = Cluster::start(false);
    // Same ports: refused at start, in words, with a non-zero exit.
    let mut second = Proc::start(
        "clockwork-controller",
        &controller_args(cl.worker_addr, cl.client_addr, cl.http),
        &cl.dir.path().join("second.log"),
    );
    let status = second
        .wait_exit(Duration::from_secs(30))
        .expect("the second controller exits");
    assert!(
        !status.success(),
        "a second controller on the same ports started"
    );
    let log = second.log_text();
    assert!(log.contains("in use"), "no clear error: {log}");
    // Other ports, same worker: the worker refuses it while the first holds it.
    let (c2, h2) = (free_addr(), free_addr());
    let third = Proc::start(
        "clockwork-controller",
        &controller_args(cl.worker_addr, c2, h2),
        &cl.dir.path().join("third.log"),
    );
    let t = Instant::now();
    while !third.log_text().contains("held by controller") && t.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        third.log_text().contains("held by controller"),
        "{}",
        third.log_tail()
    );
    // The first keeps its worker and serves.
    let load = Load::start(cl.client_addr, cl.model, Duration::from_millis(10));
    std::thread::sleep(Duration::from_millis(1000));
    let (sent, answers) = load.finish();
    let ok = check_answers(sent, &answers, &cl.logs());
    assert!(
        !ok.is_empty(),
        "the first controller stopped serving{}",
        cl.logs()
    );
    assert_eq!(
        metric(
            &cl.metrics(),
            "clockwork_worker_links_lost_total",
            "reason=\"closed\""
        ),
        0.0
    );
    let t3 = scrape_metrics(h2).unwrap_or_default();
    assert_eq!(metric(&t3, "clockwork_workers_connected", ""), 0.0, "{t3}");
}

#[test]
fn a_worker_drains_on_sigterm_under_load_and_exits_zero() {
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut cl = Cluster::start(false);
    let load = Load::start(cl.client_addr, cl.model, Duration::from_millis(10));
    std::thread::sleep(Duration::from_millis(1500));
    cl.worker.signal("TERM");
    let status = cl.worker.wait_exit(Duration::from_secs(20));
    let log = cl.worker.log_text();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "worker exit: {status:?}{}",
        cl.logs()
    );
    assert!(log.contains("drained"), "{log}");
    std::thread::sleep(Duration::from_millis(500));
    let (sent, answers) = load.finish();
    let ok = check_answers(sent, &answers, &cl.logs());
    assert!(!ok.is_empty());
}

/// A controller with no reachable worker, for measuring what connections cost.
fn lone_controller(dir: &std::path::Path) -> (Proc, SocketAddr) {
    let (client, http) = (free_addr(), free_addr());
    let c = Proc::start(
        "clockwork-controller",
        &controller_args(free_addr(), client, http),
        &dir.join("controller.log"),
    );
    let t = Instant::now();
    while std::net::TcpStream::connect(client).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "controller did not start{}",
            c.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (c, client)
}

/// Let RSS settle (the controller frees closed connections as it notices them).
fn settled_rss(p: &Proc) -> u64 {
    std::thread::sleep(Duration::from_millis(500));
    p.rss_kib()
}

#[test]
fn idle_connections_cost_little_and_give_it_back() {
    const N: usize = 2_000;
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let (c, addr) = lone_controller(dir.path());
    // Warm the allocator and the executor's tables with a first round.
    let warm: Vec<NativeClient> = (0..N)
        .map(|_| NativeClient::connect(addr, TOKEN).unwrap())
        .collect();
    drop(warm);
    let base = settled_rss(&c);
    let held: Vec<NativeClient> = (0..N)
        .map(|i| {
            NativeClient::connect(addr, TOKEN).unwrap_or_else(|e| panic!("connection {i}: {e}"))
        })
        .collect();
    let open = settled_rss(&c);
    drop(held);
    let closed = settled_rss(&c);
    let per_conn = (open.saturating_sub(base) * 1024) as f64 / N as f64;
    eprintln!(
        "controller RSS: {base} KiB before, {open} KiB with {N} idle connections ({per_conn:.0} B each), {closed} KiB after they closed"
    );
    assert!(
        per_conn < 8.0 * 1024.0,
        "{per_conn:.0} bytes per idle connection"
    );
    // What they took comes back (to within allocator slack).
    assert!(
        closed <= base + (open.saturating_sub(base)) / 2 + 1024,
        "RSS did not come back: {base} -> {open} -> {closed} KiB"
    );
}

#[test]
fn unauthenticated_connections_announcing_big_frames_cost_almost_nothing() {
    use std::io::Write;
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let worker_addr = free_addr();
    let worker = start_worker(dir.path(), worker_addr, "worker.log");
    let (c, addr) = lone_controller(dir.path());
    for (p, target) in [(&c, addr), (&worker, worker_addr)] {
        let base = settled_rss(p);
        let mut conns = Vec::new();
        for _ in 0..48 {
            let mut s = std::net::TcpStream::connect(target).unwrap();
            // A frame header (magic, our version, kind Hello) announcing 16 MiB, then
            // 1 MiB of it.
            let mut h = [0u8; 32];
            h[0..4].copy_from_slice(b"CLWK");
            h[4..6].copy_from_slice(&clockwork_core::wire::PROTOCOL_VERSION.to_le_bytes());
            h[6..8].copy_from_slice(&1u16.to_le_bytes());
            h[8..12].copy_from_slice(&(16u32 << 20).to_le_bytes());
            let _ = s.write_all(&h);
            s.set_nonblocking(true).unwrap();
            let _ = s.write_all(&vec![7u8; 1 << 20]);
            conns.push(s);
        }
        let grown = settled_rss(p).saturating_sub(base);
        eprintln!(
            "{}: 48 connections announcing 16 MiB frames added {grown} KiB",
            p.name
        );
        assert!(
            grown < 4 * 1024,
            "{}: {grown} KiB for 48 unauthenticated connections",
            p.name
        );
        drop(conns);
    }
}
