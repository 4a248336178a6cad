//! A local cluster of real processes on loopback: emulated workers and a controller,
//! each a child process of this binary (hidden subcommands `_worker` and
//! `_controller`), and the helpers to start, watch and stop them.

use anyhow::{anyhow, bail, Context as _};
use clockwork_controller::service::{serve, ServiceConfig};
use clockwork_core::Nanos;
use clockwork_gpu::{Backend, NoiseModel};
use clockwork_net::runtime::{self, ExecutorConfig};
use clockwork_worker::{Worker, WorkerConfig};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Arguments of the hidden `_worker` subcommand.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct WorkerArgs {
    /// Listen address (port 0: any free port; printed as `READY <addr>`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(crate) listen: SocketAddr,
    /// Emulated GPUs.
    #[arg(long, default_value_t = 1)]
    pub(crate) gpus: u32,
    /// Cluster token.
    #[arg(long)]
    pub(crate) token: String,
    /// Relative sigma of normal timing noise (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) noise: f64,
    /// Noise seed.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

/// Arguments of the hidden `_controller` subcommand.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ControllerArgs {
    /// Client address.
    #[arg(long)]
    pub(crate) listen: SocketAddr,
    /// Workers.
    #[arg(long, value_delimiter = ',')]
    pub(crate) workers: Vec<SocketAddr>,
    /// Cluster token.
    #[arg(long)]
    pub(crate) token: String,
    /// Default SLO in ms.
    #[arg(long, default_value_t = 100.0)]
    pub(crate) slo_ms: f64,
    /// Schedule-ahead in ms.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) schedule_ahead_ms: f64,
    /// Largest batch.
    #[arg(long, default_value_t = 16)]
    pub(crate) max_batch: u32,
    /// Log directory.
    #[arg(long)]
    pub(crate) log_dir: Option<PathBuf>,
    /// HTTP front end address.
    #[arg(long)]
    pub(crate) http: Option<SocketAddr>,
}

/// Run an emulated worker until stdin closes (the parent went away) or SIGTERM.
pub(crate) fn run_worker(args: &WorkerArgs) -> anyhow::Result<()> {
    let mut cfg = WorkerConfig::emulated(args.gpus);
    cfg.listen = args.listen;
    cfg.link.token = args.token.clone();
    cfg.link.name = format!("local-worker-{}", std::process::id());
    if let Backend::Emulated { noise, seed, .. } = &mut cfg.devices.backend {
        if args.noise > 0.0 {
            *noise = NoiseModel::Normal {
                rel_sigma: args.noise,
            };
        }
        *seed = args.seed;
    }
    let worker = Worker::serve(cfg).map_err(|e| anyhow!("worker: {e}"))?;
    println!("READY {}", worker.local_addr());
    wait_for_stdin_eof();
    worker.stop().map_err(|e| anyhow!("worker: {e}"))?;
    Ok(())
}

fn wait_for_stdin_eof() {
    let mut sink = String::new();
    while std::io::stdin()
        .read_line(&mut sink)
        .map(|n| n > 0)
        .unwrap_or(false)
    {
        sink.clear();
    }
}

/// Run the controller until stdin closes; then shut down gracefully (every pending
/// request answered, logs flushed).
pub(crate) fn run_controller(args: &ControllerArgs) -> anyhow::Result<()> {
    let mut cfg = ServiceConfig::new(args.workers.clone(), args.listen, args.token.clone());
    cfg.scheduler.default_slo = Nanos((args.slo_ms * 1e6) as u64);
    cfg.scheduler.schedule_ahead = Nanos((args.schedule_ahead_ms * 1e6) as u64);
    cfg.scheduler.max_batch = args.max_batch;
    cfg.scheduler.telemetry = args.log_dir.is_some();
    cfg.log_dir = args.log_dir.clone();
    cfg.http = args.http;
    cfg.reconnect_interval = Duration::from_millis(50);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        wait_for_stdin_eof();
        let _ = tx.send(());
    });
    let rx = std::rc::Rc::new(std::cell::RefCell::new(Some(rx)));
    println!("READY {}", args.listen);
    runtime::run_here(ExecutorConfig::named("local-controller"), async move {
        let shutdown = async move {
            loop {
                let done = rx.borrow().as_ref().is_none_or(|r| r.try_recv().is_ok());
                if done {
                    return;
                }
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
        };
        serve(cfg, shutdown).await
    })
    .map_err(|e| anyhow!("controller executor: {e}"))?
    .map_err(|e| anyhow!("controller: {e}"))
}

/// A child process that prints `READY <addr>` once serving. Closing its stdin stops
/// it; dropping the handle kills it if it is still running.
pub(crate) struct ChildProc {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    child: Option<Child>,
}

impl ChildProc {
    /// Start this binary with `args` and wait (up to 30 s) for its READY line.
    pub(crate) fn start(name: &str, args: &[String], log: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this program's path")?;
        let stderr = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .with_context(|| format!("cannot start the {name} process"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("READY ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a
                .parse()
                .with_context(|| format!("{name} printed a bad address {a}"))?,
            Err(_) => {
                let _ = child.kill();
                bail!("{name} did not start; see {}", log.display());
            }
        };
        Ok(Self {
            name: name.to_owned(),
            addr,
            child: Some(child),
        })
    }

    /// CPU time (user + system) the process has used so far, from /proc.
    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        let pid = self.child.as_ref()?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) start after ") ".
        let rest = stat.rsplit_once(") ")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        // /proc reports these in USER_HZ clock ticks, which Linux fixes at 100 on every
        // architecture this project builds for.
        const USER_HZ: f64 = 100.0;
        Some((utime + stime) / USER_HZ)
    }

    /// Close stdin and wait up to `grace` for a clean exit; kill after that.
    pub(crate) fn stop(&mut self, grace: Duration) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        drop(child.stdin.take());
        let t = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("{} exited with {status}", self.name);
                }
                return Ok(());
            }
            if t.elapsed() > grace {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not stop within {grace:?}; killed", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
